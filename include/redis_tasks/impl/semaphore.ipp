// The bodies of semaphore.hpp (see ../semaphore.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../semaphore.hpp"

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const acquire_spec& semaphore_spec() {
  static const script acquire(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, redis.call('INCR', KEYS[2])}
)lua");
  static const acquire_spec spec{&acquire, false, 1};
  return spec;
}

REDIS_TASKS_DECL const lease_scripts& semaphore_scripts() {
  static const script extend(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
)lua");
  static const script release(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(expires) <= now then return 0 end
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

REDIS_TASKS_DECL bool semaphore_config::load_field(semaphore_config& c, const std::string& name,
                                                   const nlohmann::json& v,
                                                   const detail::json_fields& f) {
  if (name == "limit") {
    c.limit = f.whole(name, v, 1, 1'000'000'000);
  } else if (name == "ttl") {
    c.ttl = f.seconds(name, v);
  } else if (name == "wait") {
    c.wait = f.seconds(name, v);
  } else if (name == "holder") {
    c.holder = f.optional_string(name, v);
  } else if (name == "auto_renew") {
    c.auto_renew = f.boolean(name, v);
  } else {
    return false;
  }
  return true;
}

REDIS_TASKS_DECL RedisSemaphore::RedisSemaphore(config cfg)
    : lease_task(std::move(cfg), "RedisSemaphore", "semaphore") {
  if (cfg_.limit < 1) {
    throw config_error(label_ + ": limit must be at least 1 (how many may hold a permit at " +
                       "once), got " + std::to_string(cfg_.limit));
  }
  detail::acquire_spec spec = detail::semaphore_spec();
  spec.limit = cfg_.limit;
  detail::lease_scripts scripts = detail::semaphore_scripts();
  scripts.signals = cfg_.limit;
  start(spec, scripts);
}

REDIS_TASKS_DECL void from_json(const nlohmann::json& j, semaphore_config& c) {
  detail::load_config(j, c, "config", "RedisSemaphore");
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
