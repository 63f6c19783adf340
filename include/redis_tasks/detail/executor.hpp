// The threads of the library's own that carry asynchronous runs (`run_async`): their steps,
// their callbacks, and the readers of shared connections that asynchronous runs wait on.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "fork.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The threads that carry asynchronous work: each job goes to an idle thread when there is
/// one, else to a new one, up to `max_threads`, after which jobs queue. A thread that finds
/// nothing to do for a few seconds ends. A job that blocks (a callback that waits) holds only
/// its own thread, never another caller's run.
class async_executor {
 public:
  /// The most threads at once; more runs than this wait in a queue.
  static constexpr std::size_t max_threads = 1024;

  /// The executor of this copy of the library (never destroyed: a run may end during exit).
  REDIS_TASKS_DECL static async_executor& instance();

  /// Runs `job` on one of the threads. Throws std::system_error when no thread can be made
  /// and none is there to take it.
  REDIS_TASKS_DECL void post(std::function<void()> job);

  /// Threads running a job now (for tests: a job that never ends holds one for good).
  REDIS_TASKS_DECL std::size_t busy_threads();

 private:
  async_executor() = default;

  // In a child after fork(): the parent's threads do not exist here, nor should its queue run.
  REDIS_TASKS_DECL void forget_parent_threads();

  REDIS_TASKS_DECL void work(std::uint64_t generation);

  fork_safe_lock lock_;
  std::deque<std::function<void()>> jobs_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
  std::uint64_t generation_ = fork_registry::generation();
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/executor.ipp"
#endif
