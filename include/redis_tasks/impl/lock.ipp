// The bodies of lock.hpp (see ../lock.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../lock.hpp"

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const acquire_spec& lock_spec() {
  static const script acquire(R"lua(
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, redis.call('INCR', KEYS[2])}
)lua");
  static const acquire_spec spec{&acquire, true, 1};
  return spec;
}

REDIS_TASKS_DECL const lease_scripts& lock_scripts() {
  static const script extend(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua");
  static const script release(R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
)lua");
  static const lease_scripts scripts{&extend, &release, 1};
  return scripts;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL bool lock_config::load_field(lock_config& c, const std::string& name,
                                              const nlohmann::json& v,
                                              const detail::json_fields& f) {
  if (name == "ttl") {
    c.ttl = f.seconds(name, v);
  } else if (name == "wait") {
    c.wait = f.seconds(name, v);
  } else if (name == "holder") {
    c.holder = f.optional_string(name, v);
  } else if (name == "auto_renew") {
    c.auto_renew = f.boolean(name, v);
  } else if (name == "wait_replicas") {
    c.wait_replicas = static_cast<int>(f.whole(name, v, 0, 1000));
  } else if (name == "wait_replicas_timeout") {
    c.wait_replicas_timeout = f.seconds(name, v);
  } else {
    return false;
  }
  return true;
}

REDIS_TASKS_DECL RedisLock::RedisLock(config cfg)
    : lease_task(std::move(cfg), "RedisLock", "lock") {
  if (cfg_.wait_replicas < 0) throw config_error(label_ + ": wait_replicas must not be negative");
  if (cfg_.wait_replicas > 0 && cfg_.wait_replicas_timeout.count() <= 0) {
    throw config_error(label_ +
                       ": wait_replicas_timeout must be positive (WAIT 0 would wait for ever)");
  }
  detail::acquire_spec spec = detail::lock_spec();
  spec.wait_replicas = cfg_.wait_replicas;
  spec.wait_replicas_timeout = cfg_.wait_replicas_timeout;
  start(spec, detail::lock_scripts());
}

REDIS_TASKS_DECL void from_json(const nlohmann::json& j, lock_config& c) {
  detail::load_config(j, c, "config", "RedisLock");
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
