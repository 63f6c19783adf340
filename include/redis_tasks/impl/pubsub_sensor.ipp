// The bodies of pubsub_sensor.hpp (see ../pubsub_sensor.hpp): included by that header, or compiled
// once by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../detail/listener.hpp"
#include "../pubsub_sensor.hpp"

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::vector<std::string> string_list(const json_fields& f, const std::string& name,
                                                      const nlohmann::json& v) {
  if (!v.is_array()) throw f.field_error(name, "an array of strings", v);
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) throw f.field_error(name, "an array of strings", v);
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL bool pubsub_sensor_config::load_field(pubsub_sensor_config& c,
                                                       const std::string& name,
                                                       const nlohmann::json& v,
                                                       const detail::json_fields& f) {
  if (name == "channels") {
    c.channels = detail::string_list(f, name, v);
  } else if (name == "patterns") {
    c.patterns = detail::string_list(f, name, v);
  } else if (name == "timeout") {
    c.timeout = f.seconds(name, v);
  } else if (name == "soft_fail") {
    c.soft_fail = f.boolean(name, v);
  } else if (name == "buffer_size") {
    c.buffer_size = static_cast<std::size_t>(f.whole(name, v, 1, 100'000'000));
  } else if (name == "sharded") {
    c.sharded = f.boolean(name, v);
  } else {
    return false;
  }
  return true;
}

REDIS_TASKS_DECL RedisPubSubSensor::RedisPubSubSensor(config cfg)
    : cfg_(std::move(cfg)),
      label_(detail::task_label(cfg_.task, "RedisPubSubSensor")),
      name_(detail::task_name(cfg_.task, "RedisPubSubSensor", first_name(cfg_))),
      slot_(std::make_unique<listener_slot>()) {
  detail::check_retry_options(cfg_.task, label_);
  sub_.channels = unique(cfg_.channels, "channels");
  sub_.patterns = unique(cfg_.patterns, "patterns");
  sub_.sharded = cfg_.sharded;
  if (sub_.channels.empty() && sub_.patterns.empty()) {
    throw config_error(label_ + ": no channels and no patterns; give at least one to listen to");
  }
  if (cfg_.sharded) {
    if (!sub_.patterns.empty()) {
      throw config_error(label_ +
                         ": sharded pub/sub has no patterns; listen to patterns without "
                         "`sharded`, or name the sharded channels");
    }
    const int slot = detail::key_slot(sub_.channels.front());
    for (const auto& c : sub_.channels) {
      if (detail::key_slot(c) != slot) {
        throw config_error(label_ + ": sharded channels " +
                           detail::quote_for_message(sub_.channels.front()) + " and " +
                           detail::quote_for_message(c) +
                           " are in different cluster slots; give them one hash tag, e.g. "
                           "{orders}:new and {orders}:done, or use one task per channel");
      }
    }
    sub_.route_key = sub_.channels.front();
  }
  check_timeout(cfg_.timeout);
  if (cfg_.buffer_size < 1) {
    throw config_error(label_ + ": buffer_size must be at least 1 (messages kept between runs)");
  }
  client_ = detail::client_for(cfg_, label_);
}

REDIS_TASKS_DECL auto RedisPubSubSensor::operator=(const RedisPubSubSensor& o)
    -> RedisPubSubSensor& {
  if (this != &o) *this = RedisPubSubSensor(o);
  return *this;
}

REDIS_TASKS_DECL auto RedisPubSubSensor::run(const overrides& o) const
    -> std::optional<pubsub_message> {
  detail::check_live(client_.get(), "RedisPubSubSensor");
  const auto timeout = o.timeout.value_or(cfg_.timeout);
  if (o.timeout) check_timeout(timeout);
  // A timeout of 0 looks once (deadline_after would take 0 for "no deadline").
  const auto wait_end =
      timeout.count() > 0 ? detail::deadline_after(timeout) : detail::clock::now();
  auto l = listener();
  if (!l->started()) {
    const char* verb = sub_.sharded            ? "SSUBSCRIBE"
                       : sub_.channels.empty() ? "PSUBSCRIBE"
                                               : "SUBSCRIBE";
    const detail::run_info info{name_, {}, verb, client_->endpoint()};
    // Subscribing is bounded by the run's timeout too (by connect_timeout for a run that
    // waits for nothing).
    const auto& p = cfg_.redis_connection_params;
    const auto connect = p.connect_timeout.count() > 0 ? p.connect_timeout : p.socket_timeout;
    const auto bound = timeout.count() > 0 ? wait_end : detail::deadline_after(connect);
    detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      l->start(detail::earlier(deadline, bound));
      return true;
    });
  }
  auto m = l->next(wait_end, o.predicate ? o.predicate : cfg_.predicate);
  if (m) return m;
  if (o.soft_fail.value_or(cfg_.soft_fail)) return std::nullopt;
  std::string msg = label_ + ": no message on " + sub_.describe() +
                    (timeout.count() > 0 ? " within timeout " + detail::ms_text(timeout)
                                         : std::string(" had arrived (timeout 0)"));
  const std::string trouble = l->trouble();
  if (!trouble.empty()) msg += "; the subscription is down, reconnecting: " + trouble;
  throw timeout_error(msg);
}

REDIS_TASKS_DECL auto RedisPubSubSensor::listener() const
    -> std::shared_ptr<detail::pubsub_listener> {
  const auto generation = detail::fork_registry::generation();
  {
    const std::lock_guard<std::mutex> g(slot_->lock.mutex());
    if (slot_->current && slot_->current->generation() == generation) return slot_->current;
  }
  // Made, and a replaced one destroyed, without the slot's lock: a listener registers a
  // fork_safe_lock, which takes the fork registry's mutex, which fork() holds while it takes
  // every fork_safe_lock (the slot's too).
  auto fresh = std::make_shared<detail::pubsub_listener>(client_, sub_, cfg_.buffer_size);
  std::shared_ptr<detail::pubsub_listener> replaced;
  {
    const std::lock_guard<std::mutex> g(slot_->lock.mutex());
    auto& cur = slot_->current;
    if (cur && cur->generation() == generation) return cur;  // another run made one first
    replaced = std::move(cur);
    cur = fresh;
  }
  return fresh;
}

REDIS_TASKS_DECL std::string RedisPubSubSensor::first_name(const config& c) {
  if (!c.channels.empty()) return c.channels.front();
  if (!c.patterns.empty()) return c.patterns.front();
  return {};
}

REDIS_TASKS_DECL std::vector<std::string> RedisPubSubSensor::unique(
    const std::vector<std::string>& names, const char* what) const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (n.empty()) throw config_error(label_ + ": " + what + " has an empty name");
    if (seen.insert(n).second) out.push_back(n);
  }
  return out;
}

REDIS_TASKS_DECL void RedisPubSubSensor::check_timeout(std::chrono::milliseconds t) const {
  if (t.count() < 0) {
    throw config_error(label_ + ": timeout must not be negative (0: only what has arrived), got " +
                       std::to_string(t.count()) + " ms");
  }
}

REDIS_TASKS_DECL void from_json(const nlohmann::json& j, pubsub_sensor_config& c) {
  detail::load_config(j, c, "config", "RedisPubSubSensor");
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
