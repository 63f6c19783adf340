// Auto-renewal of leases: one thread per process extends every lease that asked for it at a
// third of its ttl. One thread, not one per lease, so that acquiring stays cheap.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "../errors.hpp"
#include "deadline.hpp"
#include "fork.hpp"
#include "lease_state.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The renewal thread and the leases it looks after (by weak reference: a lease that is gone
/// is simply dropped).
class renewer {
 public:
  /// The process's renewer. Never destroyed (a lease may be renewed while the program exits),
  /// and in static storage, like the fork registry, so a plugin's copy goes with the plugin.
  REDIS_TASKS_DECL static renewer& instance();

  /// Renews `lease` at its `next_renewal()`, then again after each renewal, until it is
  /// released, lost or gone. Starts the thread if this process has none yet (a fork() child
  /// starts its own). Throws `error` when no thread can be started.
  REDIS_TASKS_DECL void add(const std::shared_ptr<lease_state>& lease);

  /// After `lease` was extended by its owner: its next renewal moves to a third of its new ttl.
  REDIS_TASKS_DECL void rescheduled(lease_state* lease);

  /// After `lease` was released: it leaves the queue (and its memory goes with its handle).
  REDIS_TASKS_DECL void removed(lease_state* lease);

 private:
  renewer() = default;

  struct entry {
    lease_state* key;
    std::weak_ptr<lease_state> lease;
  };

  // Under the lock. Wakes the thread only when the entry is due before the thread wakes by
  // itself: acquiring and releasing leases of equal ttls one after another wakes it about once
  // per renewal interval, not once per lease.
  REDIS_TASKS_DECL void queue(lease_state* key, std::weak_ptr<lease_state> lease,
                              clock::time_point when);

  // Under the lock: takes `key` out of the queue, if it is there.
  REDIS_TASKS_DECL std::optional<std::weak_ptr<lease_state>> unqueue(lease_state* key);

  REDIS_TASKS_DECL void loop(std::uint64_t generation);

  fork_safe_lock lock_;
  std::multimap<clock::time_point, entry> due_;
  std::uint64_t thread_generation_ = ~std::uint64_t{0};  // no thread yet
  // When the thread wakes by itself (min while it is awake: it looks at the queue before it
  // sleeps again, so nothing needs to wake it).
  clock::time_point wakes_at_ = clock::time_point::max();
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/renewer.ipp"
#endif
