// A held lock or semaphore permit, as RedisLock and RedisSemaphore return it: movable, not
// copyable, released when it goes.
#pragma once

#include "version.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "detail/lease_state.hpp"
#include "detail/renewer.hpp"
#include "errors.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

class lease;

namespace detail {
/// Makes leases (their constructor is not public).
struct lease_access {
  static lease make(std::shared_ptr<lease_state> s);
};
}  // namespace detail

/// A lock or semaphore permit this process holds. Its destructor releases it (and never
/// throws); a moved-from lease holds nothing. In a fork() child, a lease copied from the parent
/// is not held and does nothing to the server, so the parent keeps it.
class lease {
 public:
  /// Takes over `other`'s lease; `other` then holds nothing.
  lease(lease&& other) noexcept = default;
  /// Releases what this lease held, then takes over `other`'s.
  REDIS_TASKS_DECL lease& operator=(lease&& other) noexcept;
  lease(const lease&) = delete;             ///< Not copyable: one lease, one holder.
  lease& operator=(const lease&) = delete;  ///< Not copyable: one lease, one holder.
  /// Releases the lease if it is still held; errors are swallowed (the ttl frees it anyway).
  ~lease() { release_quietly(); }

  /// The lock or semaphore key.
  const std::string& key() const noexcept { return state_ ? state_->key() : empty(); }
  /// Who holds it: the task's `holder`, or a unique id of this process and lease.
  const std::string& holder() const noexcept { return state_ ? state_->holder() : empty(); }
  /// The fencing token: every acquisition of a lock's key gets a larger one than all before it;
  /// pass it to RedisSet's `fence_token` for the keys that lock guards (tokens of different
  /// keys do not compare). A semaphore permit's token is unique per permit; permits are held
  /// at the same time, so their tokens are not for fencing one key.
  std::uint64_t token() const noexcept { return state_ ? state_->token() : 0; }
  /// True while it is held as far as this process can know: not released, no renewal found it
  /// gone or taken, and its ttl has not passed since the last successful acquisition, renewal
  /// or extension was sent.
  bool held() const noexcept { return state_ && state_->held(); }
  /// Throws `lease_lost_error` when `held()` is false; call it before committing work.
  REDIS_TASKS_DECL void check() const;
  /// Sets its expiry to `ttl` from now, and the ttl of later automatic renewals to `ttl`.
  /// False when it is no longer held (it is then lost). Throws `config_error` for a ttl that
  /// is not positive, and a `connection_error` when the server cannot be reached.
  REDIS_TASKS_DECL bool extend(std::chrono::milliseconds ttl);
  /// Releases it now: true when it still held it. Never deletes another holder's lock or
  /// permit; false the second time. A `connection_error` leaves it to expire by its ttl.
  REDIS_TASKS_DECL bool release();

 private:
  friend struct detail::lease_access;
  explicit lease(std::shared_ptr<detail::lease_state> s) noexcept : state_(std::move(s)) {}

  REDIS_TASKS_DECL static const std::string& empty() noexcept;

  // Takes the lease out of the renewal thread's queue.
  REDIS_TASKS_DECL void forget() noexcept;

  REDIS_TASKS_DECL void release_quietly() noexcept;

  std::shared_ptr<detail::lease_state> state_;
};

namespace detail {
inline lease lease_access::make(std::shared_ptr<lease_state> s) {
  return lease(std::move(s));
}
}  // namespace detail

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/lease.ipp"
#endif
