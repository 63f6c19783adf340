// Auto-renewal of leases: one thread per process extends every lease that asked for it at a
// third of its ttl. One thread, not one per lease, so that acquiring stays cheap.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
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
  static renewer& instance() {
    alignas(renewer) static unsigned char storage[sizeof(renewer)];
    static auto* r = ::new (storage) renewer();
    return *r;
  }

  /// Renews `lease` at its `next_renewal()`, then again after each renewal, until it is
  /// released, lost or gone. Starts the thread if this process has none yet (a fork() child
  /// starts its own). Throws `error` when no thread can be started.
  void add(const std::shared_ptr<lease_state>& lease) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    const std::uint64_t generation = fork_registry::generation();
    if (thread_generation_ != generation) {
      // A fork() child: the parent's thread does not exist here, and its leases are not ours.
      due_.clear();
      wakes_at_ = clock::time_point::max();
      try {
        std::thread(&renewer::loop, this, generation).detach();
      } catch (const std::system_error& e) {
        throw error(std::string("cannot start the thread that renews leases (auto_renew): ") +
                    e.what() + "; set auto_renew to false and extend leases yourself");
      }
      thread_generation_ = generation;
    }
    queue(lease.get(), lease, lease->next_renewal());
  }

  /// After `lease` was extended by its owner: its next renewal moves to a third of its new ttl.
  void rescheduled(lease_state* lease) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    // Not queued: the thread is renewing it now, and queues it again by its new times after.
    if (auto weak = unqueue(lease)) queue(lease, std::move(*weak), lease->next_renewal());
  }

  /// After `lease` was released: it leaves the queue (and its memory goes with its handle).
  void removed(lease_state* lease) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    (void)unqueue(lease);
  }

 private:
  renewer() = default;

  struct entry {
    lease_state* key;
    std::weak_ptr<lease_state> lease;
  };

  // Under the lock. Wakes the thread only when the entry is due before the thread wakes by
  // itself: acquiring and releasing leases of equal ttls one after another wakes it about once
  // per renewal interval, not once per lease.
  void queue(lease_state* key, std::weak_ptr<lease_state> lease, clock::time_point when) {
    due_.emplace(when, entry{key, std::move(lease)});
    key->queued_at = when;
    if (when < wakes_at_) lock_.cv().notify_one();
  }

  // Under the lock: takes `key` out of the queue, if it is there.
  std::optional<std::weak_ptr<lease_state>> unqueue(lease_state* key) {
    if (!key->queued_at) return std::nullopt;
    const auto range = due_.equal_range(*key->queued_at);
    key->queued_at.reset();
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second.key != key) continue;
      std::weak_ptr<lease_state> weak = std::move(it->second.lease);
      due_.erase(it);
      return weak;
    }
    return std::nullopt;
  }

  void loop(std::uint64_t generation) {
    std::unique_lock<std::mutex> g(lock_.mutex());
    for (;;) {
      if (fork_registry::generation() != generation) return;  // defensive: never in a child
      if (due_.empty()) {
        wakes_at_ = clock::time_point::max();
        lock_.cv().wait(g);
        wakes_at_ = clock::time_point::min();  // awake: it looks at the queue before sleeping
        continue;
      }
      const auto first = due_.begin();
      if (first->first > clock::now()) {
        // A copy: while the thread waits, the entry may be taken out of the queue.
        const clock::time_point when = first->first;
        wakes_at_ = when;
        lock_.cv().wait_until(g, when);
        wakes_at_ = clock::time_point::min();
        continue;
      }
      entry e = std::move(first->second);
      due_.erase(first);
      auto lease = e.lease.lock();
      if (!lease) continue;
      lease->queued_at.reset();
      g.unlock();
      std::optional<clock::time_point> retry_at;
      const bool go_on = lease->renew(retry_at);  // I/O without the lock
      g.lock();
      if (go_on && lease->held())
        queue(e.key, std::move(e.lease), retry_at ? *retry_at : lease->next_renewal());
      g.unlock();
      lease.reset();  // may be the last reference: destroyed without the lock
      g.lock();
    }
  }

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
