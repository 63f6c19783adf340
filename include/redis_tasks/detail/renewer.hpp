// Auto-renewal of leases: one thread per process extends every lease that asked for it at a
// third of its ttl. One thread, not one per lease, so that acquiring stays cheap.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <new>
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
    static renewer* r = ::new (storage) renewer();
    return *r;
  }

  /// Renews `lease` from `when` on, until it is released, lost or gone. Starts the thread if
  /// this process has none yet (a fork() child starts its own). Throws `error` when no thread
  /// can be started.
  void add(const std::shared_ptr<lease_state>& lease, clock::time_point when) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    const std::uint64_t generation = fork_registry::generation();
    if (thread_generation_ != generation) {
      // A fork() child: the parent's thread does not exist here, and its leases are not ours.
      due_.clear();
      try {
        std::thread(&renewer::loop, this, generation).detach();
      } catch (const std::system_error& e) {
        throw error(std::string("cannot start the thread that renews leases (auto_renew): ") +
                    e.what() + "; set auto_renew to false and extend leases yourself");
      }
      thread_generation_ = generation;
    }
    due_.emplace(when, lease);
    lock_.cv().notify_one();
  }

 private:
  renewer() = default;

  void loop(std::uint64_t generation) {
    std::unique_lock<std::mutex> g(lock_.mutex());
    for (;;) {
      if (fork_registry::generation() != generation) return;  // defensive: never in a child
      if (due_.empty()) {
        lock_.cv().wait(g);
        continue;
      }
      const auto first = due_.begin();
      if (first->first > clock::now()) {
        lock_.cv().wait_until(g, first->first);
        continue;
      }
      std::weak_ptr<lease_state> weak = std::move(first->second);
      due_.erase(first);
      g.unlock();
      std::optional<clock::time_point> next;
      if (auto lease = weak.lock()) next = lease->renew();  // I/O without the lock
      g.lock();
      if (next) due_.emplace(*next, std::move(weak));
    }
  }

  fork_safe_lock lock_;
  std::multimap<clock::time_point, std::weak_ptr<lease_state>> due_;
  std::uint64_t thread_generation_ = ~std::uint64_t{0};  // no thread yet
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
