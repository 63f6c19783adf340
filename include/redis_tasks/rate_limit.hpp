// RedisRateLimit: `rate` events per `period`, with bursts of up to `burst`, shared exactly by
// every process: one atomic script per decision (GCRA, the generic cell rate algorithm), timed
// by the server's clock.
//
// On the server, the key holds the "theoretical arrival time" in the server's microseconds
// (when the limit is next fully rested, minus one event), expiring when it is.
#pragma once

#include "version.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/deadline.hpp"
#include "detail/run.hpp"
#include "detail/script.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "from_reply.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// A rate limiter's answer.
struct rate_decision {
  bool allowed = false;                      ///< the event may happen now (and was counted)
  std::chrono::milliseconds retry_after{0};  ///< when refused: how long until it would be allowed
  long long remaining = 0;  ///< events of cost 1 that would still be allowed right now
};

namespace detail {

/// KEYS = {key}; ARGV = {µs per event, burst tolerance in µs, cost}. Answers
/// {allowed, µs until allowed, remaining}.
REDIS_TASKS_DECL const script& rate_limit_script();

/// A double as text that Lua's tonumber reads back exactly.
REDIS_TASKS_DECL std::string exact_number_text(double v);

}  // namespace detail

/// RedisRateLimit's settings: the connection fields, as every task has them, then the rate limit's
/// own.
struct rate_limit_config {
  std::string host = "localhost";                                 ///< Redis host
  int port = 6379;                                                ///< Redis port
  int db = 0;                                                     ///< database index
  std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
  connection_params redis_connection_params{};                    ///< timeouts, user, TLS, pool…
  std::optional<std::string> redis_key{};                         ///< the limit's key
  long long rate = 0;                      ///< events per period; required, > 0
  std::chrono::milliseconds period{1000};  ///< the period `rate` counts over; > 0
  std::optional<long long> burst{};        ///< events at once; unset: `rate`
  long long cost = 1;                      ///< what one run counts as; >= 0
  std::chrono::milliseconds wait{0};       ///< how long a run may wait to be allowed; 0: no wait
  task_options task{};                     ///< name, retries, timeout
  std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
  /// Run on this shared connection instead of the connection fields above.
  std::shared_ptr<connection_handle> connection{};

  /// The fields of its own that a JSON config may give (beside the connection fields).
  static constexpr const char* own_fields = "rate, period, burst, cost, wait";
  /// Reads one of `own_fields`; false for any other name.
  REDIS_TASKS_DECL static bool load_field(rate_limit_config& c, const std::string& name,
                                          const nlohmann::json& v, const detail::json_fields& f);
};

/// Loads a rate_limit_config from JSON (durations in seconds); a wrong name or type is a
/// `config_error` naming the field. (nlohmann's `get<rate_limit_config>()` finds it.)
REDIS_TASKS_DECL void from_json(const nlohmann::json& j, rate_limit_config& c);

/// A RedisRateLimit run's settings; a given field wins over the config's.
struct rate_limit_overrides {
  std::optional<std::string> redis_key{};           ///< the limit's key
  std::optional<long long> cost{};                  ///< what this run counts as
  std::optional<std::chrono::milliseconds> wait{};  ///< how long it may wait
};

/// A rate limit shared by every process: `rate` events per `period`, and up to `burst` at
/// once after a quiet spell. Each `run()` is one decision by one atomic script on the server
/// (GCRA, server clock): allowed (and counted), or refused with how long to wait. With `wait`,
/// a refused run sleeps `retry_after` and tries again while that fits in `wait`.
class RedisRateLimit {
 public:
  /// The task's settings (see `rate_limit_config`).
  using config = rate_limit_config;
  /// A run's settings (see `rate_limit_overrides`).
  using overrides = rate_limit_overrides;

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  REDIS_TASKS_DECL explicit RedisRateLimit(config cfg = {});

  /// One decision: allowed (and counted) or refused with `retry_after`. With `wait`, a refused
  /// run sleeps and asks again while the wait allows.
  REDIS_TASKS_DECL rate_decision run(const overrides& o = {}) const;

  /// Same as `run(o)`.
  rate_decision operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key.
  const std::string& name() const noexcept { return name_; }

 private:
  REDIS_TASKS_DECL void check_cost(long long cost) const;
  REDIS_TASKS_DECL void check_wait(std::chrono::milliseconds wait) const;

  config cfg_;
  std::string label_;
  std::string name_;
  long long burst_ = 1;
  double interval_us_ = 0;
  std::string interval_text_;
  std::string tolerance_text_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/rate_limit.ipp"
#endif
