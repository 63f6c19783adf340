// RedisPubSubSensor: waits for a message on pub/sub channels or patterns. The task subscribes at
// its first run and stays subscribed: a thread of its own buffers what comes between runs, so
// consecutive runs return every message, in order, and flag where any may have been lost.
#pragma once

#include "version.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/cluster.hpp"
#include "detail/deadline.hpp"
#include "detail/fork.hpp"
#include "detail/listener.hpp"
#include "detail/run.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "pubsub_message.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

/// A JSON array of strings, for a field named `name`.
inline std::vector<std::string> string_list(const json_fields& f, const std::string& name,
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

/// RedisPubSubSensor's settings: the connection fields, as every task has them, then its own.
struct pubsub_sensor_config {
  std::string host = "localhost";                                 ///< Redis host
  int port = 6379;                                                ///< Redis port
  int db = 0;                                                     ///< database index
  std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
  connection_params redis_connection_params{};                    ///< timeouts, user, TLS, pool…
  std::vector<std::string> channels{};  ///< channels to listen to (SUBSCRIBE)
  std::vector<std::string> patterns{};  ///< glob patterns of channels (PSUBSCRIBE)
  /// Which messages a run returns; the others are skipped. Empty: every message.
  std::function<bool(const pubsub_message&)> predicate{};
  std::chrono::milliseconds timeout{std::chrono::hours(1)};  ///< how long a run waits; >= 0
  bool soft_fail = false;          ///< at `timeout`, return std::nullopt instead of throwing
  std::size_t buffer_size = 1000;  ///< messages kept between runs; when full, the oldest go
  /// Sharded pub/sub (SSUBSCRIBE, Redis 7): the channels must share one cluster slot (give
  /// them one hash tag); on a cluster the subscriber listens on that slot's node. No patterns.
  bool sharded = false;
  task_options task{};                              ///< name, retries, timeout (of subscribing)
  std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
  /// Run on this shared connection instead of the connection fields above.
  std::shared_ptr<connection_handle> connection{};

  /// The fields of its own that a JSON config may give (beside the connection fields).
  static constexpr const char* own_fields =
      "channels, patterns, timeout, soft_fail, buffer_size, sharded";
  /// Reads one of `own_fields`; false for any other name.
  static bool load_field(pubsub_sensor_config& c, const std::string& name, const nlohmann::json& v,
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
  /// Loads a config from JSON (durations in seconds); a wrong name or type is a
  /// `config_error` naming the field.
  friend void from_json(const nlohmann::json& j, pubsub_sensor_config& c) {
    detail::load_config(j, c, "config", "RedisPubSubSensor");
  }
};

/// A RedisPubSubSensor run's settings; a given field wins over the config's.
struct pubsub_sensor_overrides {
  /// Which messages this run returns (empty: the config's).
  std::function<bool(const pubsub_message&)> predicate{};
  std::optional<std::chrono::milliseconds> timeout{};  ///< how long this run waits
  std::optional<bool> soft_fail{};                     ///< std::nullopt instead of timeout_error
};

/// Waits for a message on pub/sub channels or patterns (Airflow's RedisPubSubSensor, without
/// its lost messages). The first run subscribes, on a connection of its own; from then on a
/// thread of the task reads every message into a buffer of `buffer_size`, reconnecting and
/// subscribing again on its own when the connection fails. Each run returns the oldest
/// buffered message that `predicate` takes, waiting up to `timeout` for one; so messages
/// published between runs are returned by the next runs, in order. `gap_before` marks the
/// first message after anything may have been lost. Concurrent runs of one task each get
/// different messages. A copy of the task is a new subscriber (it subscribes at its own first
/// run); destroying the task ends its subscription. Run hooks are told of subscribing.
class RedisPubSubSensor {
 public:
  /// The task's settings (see `pubsub_sensor_config`).
  using config = pubsub_sensor_config;
  /// A run's settings (see `pubsub_sensor_overrides`).
  using overrides = pubsub_sensor_overrides;

  /// Builds the task; nothing is subscribed yet. Throws `config_error` on invalid settings.
  explicit RedisPubSubSensor(config cfg = {})
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

  /// A new subscriber with the same settings: it subscribes at its own first run.
  RedisPubSubSensor(const RedisPubSubSensor& o)
      : cfg_(o.cfg_),
        label_(o.label_),
        name_(o.name_),
        sub_(o.sub_),
        client_(o.client_),
        slot_(std::make_unique<listener_slot>()) {}
  /// Becomes a new subscriber with `o`'s settings (this one's subscription ends).
  RedisPubSubSensor& operator=(const RedisPubSubSensor& o) {
    if (this != &o) *this = RedisPubSubSensor(o);
    return *this;
  }
  /// Takes over `o`'s subscription and buffered messages.
  RedisPubSubSensor(RedisPubSubSensor&&) noexcept = default;
  /// Takes over `o`'s subscription and buffered messages (this one's ends).
  RedisPubSubSensor& operator=(RedisPubSubSensor&&) noexcept = default;
  /// Ends the subscription (stops its thread and closes its connection).
  ~RedisPubSubSensor() = default;

  /// The oldest message received since the previous run (or, at the first run, since
  /// subscribing) that `predicate` takes, waiting up to `timeout`; at `timeout`, a
  /// `timeout_error` (std::nullopt with `soft_fail`). Subscribing errors propagate
  /// (connection_error, auth_error, reply_error), after the task's retries.
  std::optional<pubsub_message> run(const overrides& o = {}) const {
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

  /// Same as `run(o)`.
  std::optional<pubsub_message> operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its first channel or pattern.
  const std::string& name() const noexcept { return name_; }

 private:
  // The task's listener, made at the first run (and again in a fork() child, where the
  // parent's thread does not exist).
  struct listener_slot {
    detail::fork_safe_lock lock;
    std::shared_ptr<detail::pubsub_listener> current;
  };

  std::shared_ptr<detail::pubsub_listener> listener() const {
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

  static std::string first_name(const config& c) {
    if (!c.channels.empty()) return c.channels.front();
    if (!c.patterns.empty()) return c.patterns.front();
    return {};
  }

  std::vector<std::string> unique(const std::vector<std::string>& names, const char* what) const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& n : names) {
      if (n.empty()) throw config_error(label_ + ": " + what + " has an empty name");
      if (seen.insert(n).second) out.push_back(n);
    }
    return out;
  }

  void check_timeout(std::chrono::milliseconds t) const {
    if (t.count() < 0) {
      throw config_error(label_ +
                         ": timeout must not be negative (0: only what has arrived), got " +
                         std::to_string(t.count()) + " ms");
    }
  }

  config cfg_;
  std::string label_;
  std::string name_;
  detail::subscription sub_;
  std::shared_ptr<detail::client> client_;
  std::unique_ptr<listener_slot> slot_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
