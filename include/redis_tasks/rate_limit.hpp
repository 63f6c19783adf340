// RedisRateLimit: `rate` events per `period`, with bursts of up to `burst`, shared exactly by
// every process: one atomic script per decision (GCRA, the generic cell rate algorithm), timed
// by the server's clock.
//
// On the server, the key holds the "theoretical arrival time" in the server's microseconds
// (when the limit is next fully rested, minus one event), expiring when it is.
#pragma once

#include "version.hpp"

#include <chrono>
#include <cstdio>
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
inline const script& rate_limit_script() {
  static const script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  local remaining = math.floor((now + tolerance - tat) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, math.ceil(allow_at - now), remaining}
end
local ttl = math.ceil((new_tat - now) / 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', ttl)
local remaining = math.floor((now + tolerance - new_tat) / interval)
if remaining < 0 then remaining = 0 end
return {1, 0, remaining}
)lua");
  return s;
}

/// A double as text that Lua's tonumber reads back exactly.
inline std::string exact_number_text(double v) {
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  return std::string(buf, static_cast<std::size_t>(n));
}

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
  static bool load_field(rate_limit_config& c, const std::string& name, const nlohmann::json& v,
                         const detail::json_fields& f) {
    constexpr long long most = 1'000'000'000'000LL;
    if (name == "rate") {
      c.rate = f.whole(name, v, 1, most);
    } else if (name == "period") {
      c.period = f.seconds(name, v);
    } else if (name == "burst") {
      c.burst = v.is_null() ? std::nullopt : std::optional<long long>(f.whole(name, v, 1, most));
    } else if (name == "cost") {
      c.cost = f.whole(name, v, 0, most);
    } else if (name == "wait") {
      c.wait = f.seconds(name, v);
    } else {
      return false;
    }
    return true;
  }
  /// Loads a config from JSON (durations in seconds); a wrong name or type is a
  /// `config_error` naming the field.
  friend void from_json(const nlohmann::json& j, rate_limit_config& c) {
    detail::load_config(j, c, "config", "RedisRateLimit");
  }
};

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
  explicit RedisRateLimit(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisRateLimit")),
        name_(detail::task_name(cfg_.task, "RedisRateLimit", cfg_.redis_key.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_key && cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is empty; give the limit's key");
    }
    if (cfg_.rate < 1) {
      throw config_error(label_ + ": rate must be at least 1 (events per period), got " +
                         std::to_string(cfg_.rate));
    }
    if (cfg_.period.count() <= 0) {
      throw config_error(label_ + ": period must be positive, got " +
                         std::to_string(cfg_.period.count()) + " ms");
    }
    burst_ = cfg_.burst.value_or(cfg_.rate);
    if (burst_ < 1) {
      throw config_error(label_ + ": burst must be at least 1, got " + std::to_string(burst_));
    }
    check_cost(cfg_.cost);
    check_wait(cfg_.wait);
    interval_us_ =
        static_cast<double>(cfg_.period.count()) * 1000.0 / static_cast<double>(cfg_.rate);
    interval_text_ = detail::exact_number_text(interval_us_);
    tolerance_text_ = detail::exact_number_text(interval_us_ * static_cast<double>(burst_));
    client_ = detail::client_for(cfg_, label_);
  }

  /// One decision: allowed (and counted) or refused with `retry_after`. With `wait`, a refused
  /// run sleeps and asks again while the wait allows.
  rate_decision run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisRateLimit");
    const std::string key = o.redis_key ? *o.redis_key : cfg_.redis_key.value_or("");
    if (key.empty()) {
      throw config_error(label_ + ": redis_key is missing; give it in the config or in run()");
    }
    const long long cost = o.cost.value_or(cfg_.cost);
    const auto wait = o.wait.value_or(cfg_.wait);
    if (o.cost) check_cost(cost);
    if (o.wait) check_wait(wait);
    const std::string cost_text = std::to_string(cost);
    const auto wait_end = detail::saturating_add(detail::clock::now(), wait);
    const detail::run_info info{name_, key, "EVALSHA", client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      for (;;) {
        const rate_decision d = client_->run(key, deadline, [&](detail::connection& c) {
          const reply r = detail::call_script(c, detail::rate_limit_script(), "rate limit", key,
                                              {key}, {interval_text_, tolerance_text_, cost_text});
          const auto& e = r.elements();
          if (r.type() != reply_type::array || e.size() != 3) {
            throw type_error("rate limit " + detail::quote_for_message(key) + " on " +
                             c.endpoint() + ": the script answered " + detail::describe_reply(r) +
                             ", not {allowed, retry after, remaining}");
          }
          rate_decision out;
          out.allowed = e[0].integer() == 1;
          out.retry_after = std::chrono::milliseconds((e[1].integer() + 999) / 1000);
          out.remaining = e[2].integer();
          return out;
        });
        if (d.allowed) return d;
        const auto now = detail::clock::now();
        if (detail::saturating_add(now, d.retry_after) > wait_end) return d;
        detail::sleep_within(d.retry_after, detail::earlier(wait_end, deadline));
      }
    });
  }

  /// Same as `run(o)`.
  rate_decision operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key.
  const std::string& name() const noexcept { return name_; }

 private:
  void check_cost(long long cost) const {
    if (cost < 0) {
      throw config_error(label_ + ": cost must not be negative, got " + std::to_string(cost));
    }
    if (cost > burst_) {
      throw config_error(label_ + ": cost " + std::to_string(cost) + " is more than burst " +
                         std::to_string(burst_) + ", so it could never be allowed; raise burst");
    }
  }
  void check_wait(std::chrono::milliseconds wait) const {
    if (wait.count() < 0) {
      throw config_error(label_ + ": wait must not be negative (0: no wait), got " +
                         std::to_string(wait.count()) + " ms");
    }
  }

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
