// The bodies of lease_state.hpp (see ../lease_state.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../lease_state.hpp"

#include <algorithm>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::chrono::milliseconds lease_state::ttl() const noexcept {
  return std::chrono::milliseconds(ttl_ms_.load(std::memory_order_acquire));
}

REDIS_TASKS_DECL bool lease_state::held() const noexcept {
  if (!in_owner() || released_.load(std::memory_order_acquire) ||
      lost_.load(std::memory_order_acquire)) {
    return false;
  }
  if (clock::now() < valid_until()) return true;
  lost_.store(true, std::memory_order_release);
  return false;
}

REDIS_TASKS_DECL std::string lease_state::why_not_held() const {
  if (!in_owner()) return "it belongs to the process that forked this one";
  if (released_.load(std::memory_order_acquire)) return "it was released";
  if (server_lost_.load(std::memory_order_acquire)) {
    return "the server no longer has it for this holder (it expired, and may have been taken "
           "by another)";
  }
  return "its ttl of " + ms_text(ttl()) + " passed without a successful renewal";
}

REDIS_TASKS_DECL bool lease_state::extend(std::chrono::milliseconds ttl) {
  if (!held()) return false;  // before the lock: a fork() child never takes it
  const std::lock_guard<std::mutex> g(extending_);
  return extend_now(ttl, no_deadline);
}

REDIS_TASKS_DECL bool lease_state::release() {
  if (!in_owner() || released_.exchange(true, std::memory_order_acq_rel)) return false;
  const std::string signal_ttl = std::to_string(signal_ttl_ms());
  const std::string signals = std::to_string(ctx_->scripts.signals);
  return call(*ctx_->scripts.release, "releasing the lease on", {value_, signal_ttl, signals},
              no_deadline) == 1;
}

REDIS_TASKS_DECL clock::time_point lease_state::next_renewal() const noexcept {
  return saturating_add(last_sent(), renew_every(ttl()));
}

REDIS_TASKS_DECL bool lease_state::renew(std::optional<clock::time_point>& retry_at) noexcept {
  retry_at.reset();
  if (!held()) return false;
  const std::unique_lock<std::mutex> g(extending_, std::try_to_lock);
  if (!g.owns_lock()) return true;
  const auto ttl = this->ttl();
  try {
    return extend_now(ttl, valid_until());
  } catch (...) {
    // The server could not be reached: try again soon, while the lease may still be held.
    const auto now = clock::now();
    if (now >= valid_until()) return false;
    retry_at = earlier(valid_until(),
                       saturating_add(now, std::max(std::chrono::milliseconds(10), ttl / 10)));
    return true;
  }
}

REDIS_TASKS_DECL bool lease_state::extend_now(std::chrono::milliseconds ttl,
                                              clock::time_point cap) {
  if (!held()) return false;
  const auto sent = clock::now();
  const std::string ms = std::to_string(ttl.count());
  if (call(*ctx_->scripts.extend, "extending the lease on", {value_, ms}, cap) != 1) {
    server_lost_.store(true, std::memory_order_release);
    lost_.store(true, std::memory_order_release);
    return false;
  }
  // Local time may have passed the old ttl while the request was out: the lease then was
  // lost (held() may have said so), and an extension does not bring it back.
  if (lost_.load(std::memory_order_acquire)) return false;
  ttl_ms_.store(ttl.count(), std::memory_order_release);
  sent_.store(sent.time_since_epoch().count(), std::memory_order_release);
  return true;
}

REDIS_TASKS_DECL std::chrono::milliseconds lease_state::renew_every(std::chrono::milliseconds ttl) {
  return std::max(std::chrono::milliseconds(1), ttl / 3);
}

REDIS_TASKS_DECL clock::time_point lease_state::last_sent() const noexcept {
  return clock::time_point(clock::duration(sent_.load(std::memory_order_acquire)));
}

REDIS_TASKS_DECL long long lease_state::signal_ttl_ms() const noexcept {
  return std::max<long long>(1000, ttl_ms_.load(std::memory_order_acquire));
}

REDIS_TASKS_DECL long long lease_state::call(const script& s, std::string_view what,
                                             std::initializer_list<std::string_view> args,
                                             clock::time_point cap) {
  const lease_context& ctx = *ctx_;
  // A renewal waits no longer than the lease lasts: the task's timeout, capped.
  task_options capped;
  const task_options* task = &ctx.task;
  if (cap != no_deadline) {
    capped = ctx.task;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(cap - clock::now());
    const auto bound = std::max(std::chrono::milliseconds(1), left);
    if (capped.timeout.count() <= 0 || capped.timeout > bound) capped.timeout = bound;
    task = &capped;
  }
  const std::string signal_key = companion_key(key_, "signal");
  const std::string waiters_key = companion_key(key_, "waiters");
  const run_info info{ctx.name, key_, "EVALSHA", ctx.cl->endpoint()};
  const reply r = with_retries(*task, info, [&](clock::time_point deadline) {
    return ctx.cl->run(key_, deadline, [&](connection& c) {
      return call_script(c, s, what, key_, {key_, signal_key, waiters_key}, args);
    });
  });
  if (r.type() != reply_type::integer) {
    throw type_error(std::string(what) + " " + quote_for_message(key_) + ": the script answered " +
                     describe_reply(r) + ", not an integer");
  }
  return r.integer();
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
