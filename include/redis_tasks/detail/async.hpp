// Asynchronous runs: `run_async` hands a task's run to a thread of the library's own, which
// runs it exactly as `run()` does (merging, validation, retries, hooks, errors) and then fulfils
// a future or calls the caller's callback.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "../batch.hpp"
#include "fork.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The threads that carry asynchronous runs. A run waits on its server as `run()` does, so each
/// run in flight has a thread: an idle one when there is one, else a new one, up to
/// `max_threads`, after which runs queue. A thread that finds nothing to do for a few seconds
/// ends. A callback that blocks holds only its own thread, never another caller's run.
class async_executor {
 public:
  /// The most threads at once; more runs than this wait in a queue.
  static constexpr std::size_t max_threads = 1024;

  /// The executor of this copy of the library (never destroyed: a run may end during exit).
  static async_executor& instance() {
    alignas(async_executor) static unsigned char storage[sizeof(async_executor)];
    static async_executor* e = ::new (storage) async_executor();
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
      if (generation != generation_) return;  // (cannot happen: threads do not survive fork)
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

/// Runs `task.run(o)` on an executor thread (on a copy of the task, so the caller's may go);
/// its result or error comes through the future.
template <class R, class Task, class Overrides>
std::future<R> start_async(const Task& task, Overrides o) {
  auto promise = std::make_shared<std::promise<R>>();
  std::future<R> result = promise->get_future();
  try {
    async_executor::instance().post([t = task, o = std::move(o), promise]() {
      try {
        promise->set_value(t.run(o));
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
  } catch (...) {
    promise->set_exception(std::current_exception());
  }
  return result;
}

/// Runs `task.run(o)` on an executor thread and calls `done` there with its result or error.
/// An exception `done` throws is dropped: it cannot reach the caller, who has moved on.
template <class R, class Task, class Overrides>
void start_async(const Task& task, Overrides o, std::function<void(batch_result<R>)> done) {
  auto job = [t = task, o = std::move(o), done]() {
    std::optional<batch_result<R>> r;
    try {
      r.emplace(batch_result<R>::success(t.run(o)));
    } catch (...) {
      r.emplace(batch_result<R>::failure(std::current_exception()));
    }
    try {
      done(std::move(*r));
    } catch (...) {  // the callback's own failure has nowhere to go
    }
  };
  try {
    async_executor::instance().post(job);
  } catch (...) {
    try {
      done(batch_result<R>::failure(std::current_exception()));
    } catch (...) {
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
