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
#include <new>
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
  static async_executor& instance() {
    alignas(async_executor) static unsigned char storage[sizeof(async_executor)];
    static auto* e = ::new (storage) async_executor();
    return *e;
  }

  /// Runs `job` on one of the threads. Throws std::system_error when no thread can be made
  /// and none is there to take it.
  void post(std::function<void()> job) {
    std::unique_lock<std::mutex> lk(lock_.mutex());
    forget_parent_threads();
    jobs_.push_back(std::move(job));
    if (idle_ > 0) {
      lock_.cv().notify_one();
      return;
    }
    if (threads_ >= max_threads) return;  // a busy thread takes it when it is done
    ++threads_;
    try {
      std::thread([this, generation = generation_] { work(generation); }).detach();
    } catch (...) {
      --threads_;
      if (threads_ == 0) {
        jobs_.pop_back();
        throw;
      }
    }
  }

  /// Threads running a job now (for tests: a job that never ends holds one for good).
  std::size_t busy_threads() {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    forget_parent_threads();
    return threads_ - idle_;
  }

 private:
  async_executor() = default;

  // In a child after fork(): the parent's threads do not exist here, nor should its queue run.
  void forget_parent_threads() {
    const std::uint64_t now = fork_registry::generation();
    if (generation_ == now) return;
    generation_ = now;
    jobs_.clear();
    threads_ = 0;
    idle_ = 0;
  }

  void work(std::uint64_t generation) {
    std::unique_lock<std::mutex> lk(lock_.mutex());
    for (;;) {
      if (generation != fork_registry::generation()) {
        // This thread called fork() in a job and goes on in the child: the parent's queued jobs
        // are not the child's to run, and it is the child's only executor thread.
        forget_parent_threads();
        generation = generation_;
        ++threads_;
      }
      if (!jobs_.empty()) {
        std::function<void()> job = std::move(jobs_.front());
        jobs_.pop_front();
        lk.unlock();
        job();  // never throws: see start_async
        job = nullptr;
        lk.lock();
        continue;
      }
      ++idle_;
      const bool woke =
          lock_.cv().wait_for(lk, std::chrono::seconds(5)) == std::cv_status::no_timeout;
      --idle_;
      if (!woke && jobs_.empty()) {
        --threads_;
        return;
      }
    }
  }

  fork_safe_lock lock_;
  std::deque<std::function<void()>> jobs_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
  std::uint64_t generation_ = fork_registry::generation();
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
