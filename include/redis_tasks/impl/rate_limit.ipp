// The bodies of rate_limit.hpp (see ../rate_limit.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../rate_limit.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const script& rate_limit_script() {
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

REDIS_TASKS_DECL std::string exact_number_text(double v) {
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL bool rate_limit_config::load_field(rate_limit_config& c, const std::string& name,
                                                    const nlohmann::json& v,
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

REDIS_TASKS_DECL RedisRateLimit::RedisRateLimit(config cfg)
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
  interval_us_ = static_cast<double>(cfg_.period.count()) * 1000.0 / static_cast<double>(cfg_.rate);
  interval_text_ = detail::exact_number_text(interval_us_);
  tolerance_text_ = detail::exact_number_text(interval_us_ * static_cast<double>(burst_));
  client_ = detail::client_for(cfg_, label_);
}

REDIS_TASKS_DECL auto RedisRateLimit::run(const overrides& o) const -> rate_decision {
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
          throw type_error("rate limit " + detail::quote_for_message(key) + " on " + c.endpoint() +
                           ": the script answered " + detail::describe_reply(r) +
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

REDIS_TASKS_DECL void RedisRateLimit::check_cost(long long cost) const {
  if (cost < 0) {
    throw config_error(label_ + ": cost must not be negative, got " + std::to_string(cost));
  }
  if (cost > burst_) {
    throw config_error(label_ + ": cost " + std::to_string(cost) + " is more than burst " +
                       std::to_string(burst_) + ", so it could never be allowed; raise burst");
  }
}

REDIS_TASKS_DECL void RedisRateLimit::check_wait(std::chrono::milliseconds wait) const {
  if (wait.count() < 0) {
    throw config_error(label_ + ": wait must not be negative (0: no wait), got " +
                       std::to_string(wait.count()) + " ms");
  }
}

REDIS_TASKS_DECL void from_json(const nlohmann::json& j, rate_limit_config& c) {
  detail::load_config(j, c, "config", "RedisRateLimit");
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
