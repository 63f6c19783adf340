// The bodies of lease.hpp (see ../lease.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../lease.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL auto lease::operator=(lease&& other) noexcept -> lease& {
  if (this != &other) {
    release_quietly();
    state_ = std::move(other.state_);
  }
  return *this;
}

REDIS_TASKS_DECL void lease::check() const {
  if (held()) return;
  if (!state_) throw lease_lost_error("the lease was moved from; it holds nothing");
  throw lease_lost_error("the lease on " + detail::quote_for_message(key()) + " (token " +
                         std::to_string(token()) +
                         ") is no longer held: " + state_->why_not_held());
}

REDIS_TASKS_DECL bool lease::extend(std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0 || ttl > detail::longest_lease_ttl) {
    throw config_error("lease::extend: ttl must be positive and at most 30 years, got " +
                       std::to_string(ttl.count()) + " ms");
  }
  if (!state_ || !state_->extend(ttl)) return false;
  if (state_->auto_renew()) detail::renewer::instance().rescheduled(state_.get());
  return true;
}

REDIS_TASKS_DECL bool lease::release() {
  if (!state_) return false;
  forget();
  return state_->release();
}

REDIS_TASKS_DECL const std::string& lease::empty() noexcept {
  static const std::string e;
  return e;
}

REDIS_TASKS_DECL void lease::forget() noexcept {
  if (state_->auto_renew() && state_->in_owner()) {
    try {
      detail::renewer::instance().removed(state_.get());
    } catch (...) {  // a mutex that cannot be locked: the thread drops it when it is due
    }
  }
}

REDIS_TASKS_DECL void lease::release_quietly() noexcept {
  if (!state_) return;
  forget();
  try {
    (void)state_->release();
  } catch (...) {  // a destructor must not throw; the ttl frees the lock
  }
  state_.reset();
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
