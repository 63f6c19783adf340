// What a lease (a lock or a semaphore permit) knows and does on the server: whether it is still
// held, extending it, releasing it. Shared by the `lease` handle and the renewal thread.
#pragma once

#include "../version.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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

/// The longest ttl a lease may have (a crashed holder's lease would wedge its key that long).
inline constexpr std::chrono::milliseconds longest_lease_ttl = std::chrono::hours(24) * 365 * 30;

/// The scripts behind a kind of lease. Each takes KEYS = {key, signal list, waiters flag} and
/// ARGV = {holder, ttl in ms (extend) or signal ttl in ms (release), most signals kept}, and
/// answers 1 when the holder still held the key (and extended or released it), else 0. A
/// release pushes a wake-up onto the signal list only while the waiters flag says someone waits.
struct lease_scripts {
  const script* extend = nullptr;   ///< extends the holder's expiry to ttl from now
  const script* release = nullptr;  ///< removes the holder and wakes one waiter
  long long signals = 1;            ///< how many wake-ups a release may leave queued
};

/// What every lease of one task shares: made once per task, so that acquiring copies nothing
/// but a pointer.
struct lease_context {
  std::shared_ptr<client> cl;  ///< where the leases live
  task_options task;           ///< retries, timeout and hook of extensions and releases
  std::string name;            ///< the task's name, for hooks
  lease_scripts scripts;       ///< the kind of lease
};

/// A lease's state. Fields that the renewal thread and the owner both touch are atomics, so
/// no lock is held across I/O and a fork() can never leave one locked.
class lease_state {
 public:
  /// A lease acquired when the acquiring request was sent at `sent`.
  /// `value` is what the server stores for this holder (see acquire_request::value).
  lease_state(std::shared_ptr<const lease_context> ctx, std::string key, std::string holder,
              std::string value, std::uint64_t token, std::chrono::milliseconds ttl,
              clock::time_point sent, bool auto_renew)
      : ctx_(std::move(ctx)),
        key_(std::move(key)),
        holder_(std::move(holder)),
        value_(std::move(value)),
        token_(token),
        generation_(fork_registry::generation()),
        auto_renew_(auto_renew),
        ttl_ms_(ttl.count()),
        sent_(sent.time_since_epoch().count()) {}

  const std::string& key() const noexcept { return key_; }
  const std::string& holder() const noexcept { return holder_; }
  std::uint64_t token() const noexcept { return token_; }
  REDIS_TASKS_DECL std::chrono::milliseconds ttl() const noexcept;
  /// Whether the renewal thread looks after this lease.
  bool auto_renew() const noexcept { return auto_renew_; }
  /// True in the process that acquired it (not in a fork() child).
  bool in_owner() const noexcept { return fork_registry::generation() == generation_; }

  /// True while the lease is held as far as this process can know: not released, no renewal
  /// found it gone, and less than its ttl since the last successful acquisition or extension
  /// was sent. Once false, false for good. Always false in a fork() child.
  REDIS_TASKS_DECL bool held() const noexcept;

  /// Why `held()` is false, for lease_lost_error messages.
  REDIS_TASKS_DECL std::string why_not_held() const;

  /// Extends the lease to `ttl` from now (and later renewals to `ttl` too). False, and the
  /// lease is lost for good, when it was no longer held. Connection errors propagate and leave
  /// the lease as it was.
  REDIS_TASKS_DECL bool extend(std::chrono::milliseconds ttl);

  /// Releases the lease: true when it still held it. Compare-and-delete: another holder's
  /// lease is never touched. Does nothing (false) the second time and in a fork() child.
  REDIS_TASKS_DECL bool release();

  /// When the next renewal is due: a third of the ttl after the last acquisition or extension.
  REDIS_TASKS_DECL clock::time_point next_renewal() const noexcept;

  /// For the renewal thread: extends the lease by its ttl, within what is left of it (a slow
  /// server cannot keep the thread past that). True when it goes on (renew again at
  /// `next_renewal()`); `retry_at` is set instead when the server could not be reached; false
  /// when it is over (released, lost, expired, or in a fork() child). Skipped while the owner
  /// extends it: the owner's extension decides, and they must not cross on the wire.
  REDIS_TASKS_DECL bool renew(std::optional<clock::time_point>& retry_at) noexcept;

 private:
  // Under `extending_`: extends by `ttl`, waiting for the server until `cap` at the latest.
  REDIS_TASKS_DECL bool extend_now(std::chrono::milliseconds ttl, clock::time_point cap);

 public:
  /// How long after an extension the next renewal is due: a third of the ttl.
  REDIS_TASKS_DECL static std::chrono::milliseconds renew_every(std::chrono::milliseconds ttl);

  /// For the renewal thread's bookkeeping (guarded by its lock): when this lease is due in its
  /// queue, if it is queued.
  std::optional<clock::time_point> queued_at;

 private:
  REDIS_TASKS_DECL clock::time_point last_sent() const noexcept;
  clock::time_point valid_until() const noexcept { return saturating_add(last_sent(), ttl()); }

  // A wake-up left by a release outlives the moment between a waiter's failed try and its
  // next wait; it is dropped later so that it cannot wake waiters of much later contention.
  REDIS_TASKS_DECL long long signal_ttl_ms() const noexcept;

  // Runs one script about the lease within the task's timeout (and its retries), and returns
  // its integer answer.
  REDIS_TASKS_DECL long long call(const script& s, std::string_view what,
                                  std::initializer_list<std::string_view> args,
                                  clock::time_point cap);

  std::shared_ptr<const lease_context> ctx_;
  std::string key_;
  std::string holder_;
  std::string value_;
  std::uint64_t token_;
  std::uint64_t generation_;
  bool auto_renew_;
  std::atomic<long long> ttl_ms_;
  std::atomic<clock::rep> sent_;  // when the last successful acquisition or extension was sent
  std::atomic<bool> released_{false};
  mutable std::atomic<bool> lost_{false};
  std::atomic<bool> server_lost_{false};  // a renewal or extension found it gone
  std::mutex extending_;  // held across an extension's I/O (never by a fork() child's copy)
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/lease_state.ipp"
#endif
