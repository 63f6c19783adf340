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
#include "detail/deadline.hpp"
#include "detail/fork.hpp"
#include "detail/keys.hpp"
#include "detail/run.hpp"
#include "detail/subscriber.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "pubsub_message.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

class pubsub_listener;  // listener.hpp: the sensor holds it by pointer

/// A JSON array of strings, for a field named `name`.
REDIS_TASKS_DECL std::vector<std::string> string_list(const json_fields& f, const std::string& name,
                                                      const nlohmann::json& v);

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
  REDIS_TASKS_DECL static bool load_field(pubsub_sensor_config& c, const std::string& name,
                                          const nlohmann::json& v, const detail::json_fields& f);
};

/// Loads a pubsub_sensor_config from JSON (durations in seconds); a wrong name or type is a
/// `config_error` naming the field. (nlohmann's `get<pubsub_sensor_config>()` finds it.)
REDIS_TASKS_DECL void from_json(const nlohmann::json& j, pubsub_sensor_config& c);

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
  REDIS_TASKS_DECL explicit RedisPubSubSensor(config cfg = {});

  /// A new subscriber with the same settings: it subscribes at its own first run.
  RedisPubSubSensor(const RedisPubSubSensor& o)
      : cfg_(o.cfg_),
        label_(o.label_),
        name_(o.name_),
        sub_(o.sub_),
        client_(o.client_),
        slot_(std::make_unique<listener_slot>()) {}
  /// Becomes a new subscriber with `o`'s settings (this one's subscription ends).
  REDIS_TASKS_DECL RedisPubSubSensor& operator=(const RedisPubSubSensor& o);
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
  REDIS_TASKS_DECL std::optional<pubsub_message> run(const overrides& o = {}) const;

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

  REDIS_TASKS_DECL std::shared_ptr<detail::pubsub_listener> listener() const;

  REDIS_TASKS_DECL static std::string first_name(const config& c);

  REDIS_TASKS_DECL std::vector<std::string> unique(const std::vector<std::string>& names,
                                                   const char* what) const;

  REDIS_TASKS_DECL void check_timeout(std::chrono::milliseconds t) const;

  config cfg_;
  std::string label_;
  std::string name_;
  detail::subscription sub_;
  std::shared_ptr<detail::client> client_;
  std::unique_ptr<listener_slot> slot_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/pubsub_sensor.ipp"
#endif
