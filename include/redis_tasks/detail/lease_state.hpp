// What a lease (a lock or a semaphore permit) knows and does on the server: whether it is still
// held, extending it, releasing it. Shared by the `lease` handle and the renewal thread.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "../connection.hpp"
#include "../errors.hpp"
#include "../from_reply.hpp"
#include "client.hpp"
#include "deadline.hpp"
#include "fork.hpp"
#include "keys.hpp"
#include "run.hpp"
#include "script.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The scripts behind a kind of lease. Each takes KEYS = {key, signal key} and
/// ARGV = {holder, ttl in ms (extend) or signal ttl in ms (release), most signals kept}, and
/// answers 1 when the holder still held the key (and extended or released it), else 0.
struct lease_scripts {
  const script* extend = nullptr;   ///< extends the holder's expiry to ttl from now
  const script* release = nullptr;  ///< removes the holder and wakes one waiter
  long long signals = 1;            ///< how many wake-ups a release may leave queued
};

/// A lease's state. Fields that the renewal thread and the owner both touch are atomics, so
/// no lock is held across I/O and a fork() can never leave one locked.
class lease_state {
 public:
  /// A lease acquired when the acquiring request was sent at `sent`.
  lease_state(std::shared_ptr<client> cl, const lease_scripts& scripts, task_options task,
              std::string key, std::string holder, std::uint64_t token,
              std::chrono::milliseconds ttl, clock::time_point sent, std::string name)
      : client_(std::move(cl)),
        scripts_(scripts),
        task_(std::move(task)),
        key_(std::move(key)),
        signal_key_(companion_key(key_, "signal")),
        holder_(std::move(holder)),
        name_(std::move(name)),
        token_(token),
        generation_(fork_registry::generation()),
        ttl_ms_(ttl.count()),
        valid_until_(saturating_add(sent, ttl).time_since_epoch().count()) {}

  const std::string& key() const noexcept { return key_; }
  const std::string& holder() const noexcept { return holder_; }
  std::uint64_t token() const noexcept { return token_; }
  std::chrono::milliseconds ttl() const noexcept {
    return std::chrono::milliseconds(ttl_ms_.load(std::memory_order_relaxed));
  }

  /// True while the lease is held as far as this process can know: not released, no renewal
  /// found it gone, and less than its ttl since the last successful acquisition or extension
  /// was sent. Always false in a fork() child (the lease is the parent's).
  bool held() const noexcept {
    return in_owner() && !released_.load(std::memory_order_acquire) &&
           !lost_.load(std::memory_order_acquire) && clock::now() < valid_until();
  }

  /// Why `held()` is false, for lease_lost_error messages.
  std::string why_not_held() const {
    if (!in_owner()) return "it belongs to the process that forked this one";
    if (released_.load(std::memory_order_acquire)) return "it was released";
    if (lost_.load(std::memory_order_acquire)) {
      return "the server no longer has it for this holder (it expired, and may have been taken "
             "by another)";
    }
    return "its ttl of " + ms_text(ttl()) + " passed without a successful renewal";
  }

  /// Extends the lease to `ttl` from now (and later renewals to `ttl` too). False, and the
  /// lease is lost, when the server no longer has it for this holder. Connection errors
  /// propagate and leave the lease as it was.
  bool extend(std::chrono::milliseconds ttl) {
    if (!in_owner() || released_.load(std::memory_order_acquire) ||
        lost_.load(std::memory_order_acquire)) {
      return false;
    }
    const auto sent = clock::now();
    const std::string ms = std::to_string(ttl.count());
    const bool ok = call(*scripts_.extend, "extending the lease on", {holder_, ms}) == 1;
    if (!ok) {
      lost_.store(true, std::memory_order_release);
      return false;
    }
    ttl_ms_.store(ttl.count(), std::memory_order_relaxed);
    valid_until_.store(saturating_add(sent, ttl).time_since_epoch().count(),
                       std::memory_order_release);
    return true;
  }

  /// Releases the lease: true when it still held it. Compare-and-delete: another holder's
  /// lease is never touched. Does nothing (false) the second time and in a fork() child.
  bool release() {
    if (!in_owner() || released_.exchange(true, std::memory_order_acq_rel)) return false;
    const std::string signal_ttl = std::to_string(signal_ttl_ms());
    const std::string signals = std::to_string(scripts_.signals);
    return call(*scripts_.release, "releasing the lease on", {holder_, signal_ttl, signals}) == 1;
  }

  /// For the renewal thread: extends the lease by its ttl. Returns when to renew next, or
  /// nullopt when it is over (released, lost, expired, or in a fork() child).
  std::optional<clock::time_point> renew() noexcept {
    if (!in_owner() || released_.load(std::memory_order_acquire) ||
        lost_.load(std::memory_order_acquire)) {
      return std::nullopt;
    }
    const auto ttl = this->ttl();
    try {
      if (!extend(ttl)) return std::nullopt;
      return saturating_add(clock::now(), renew_every(ttl));
    } catch (...) {
      // The server could not be reached: try again soon, while the lease may still be held.
      const auto now = clock::now();
      if (now >= valid_until()) return std::nullopt;
      return earlier(valid_until(),
                     saturating_add(now, std::max(std::chrono::milliseconds(10), ttl / 10)));
    }
  }

  /// How long after an extension the next renewal is due: a third of the ttl.
  static std::chrono::milliseconds renew_every(std::chrono::milliseconds ttl) {
    return std::max(std::chrono::milliseconds(1), ttl / 3);
  }

 private:
  bool in_owner() const noexcept { return fork_registry::generation() == generation_; }

  clock::time_point valid_until() const noexcept {
    return clock::time_point(clock::duration(valid_until_.load(std::memory_order_acquire)));
  }

  // A wake-up left by a release outlives the moment between a waiter's failed try and its
  // next wait; it is dropped later so that it cannot wake waiters of much later contention.
  long long signal_ttl_ms() const noexcept {
    return std::max<long long>(1000, ttl_ms_.load(std::memory_order_relaxed));
  }

  // Runs one script about the lease within the task's timeout (and its retries), and returns
  // its integer answer.
  long long call(const script& s, const char* what, std::initializer_list<std::string_view> args) {
    const std::string context = std::string(what) + " " + quote_for_message(key_);
    const run_info info{name_, key_, "EVALSHA", client_->endpoint()};
    const reply r = with_retries(task_, info, [&](clock::time_point deadline) {
      return client_->run(key_, deadline, [&](connection& c) {
        return call_script(c, s, context, {key_, signal_key_}, args);
      });
    });
    if (r.type() != reply_type::integer) {
      throw type_error(context + ": the script answered " + describe_reply(r) + ", not an integer");
    }
    return r.integer();
  }

  std::shared_ptr<client> client_;
  lease_scripts scripts_;
  task_options task_;
  std::string key_;
  std::string signal_key_;
  std::string holder_;
  std::string name_;
  std::uint64_t token_;
  std::uint64_t generation_;
  std::atomic<long long> ttl_ms_;
  std::atomic<clock::rep> valid_until_;
  std::atomic<bool> released_{false};
  std::atomic<bool> lost_{false};
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
