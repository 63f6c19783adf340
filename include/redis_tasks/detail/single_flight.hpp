// One lookup at a time, shared by everyone who needs it: a cluster's slot map, a sentinel's
// answer. No lock is held across the lookup's I/O, each waiter waits no longer than its own
// deadline, and a failed lookup fails every waiter at once instead of each trying again in turn.
#pragma once

#include "../version.hpp"

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

#include "../errors.hpp"
#include "deadline.hpp"
#include "fork.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Runs a piece of work for many callers at once.
class single_flight {
 public:
  /// Runs `work()` unless a run of it is in flight, in which case waits for that one (until
  /// `deadline`) and shares its outcome: returns normally, or throws what it threw. A waiter
  /// whose deadline passes first gets a `timeout_error` about `what` ("the slot map of …").
  /// A run started before a fork() is not waited for in the child (its thread is not there).
  template <class Work>
  void run(clock::time_point deadline, const std::string& what, Work&& work) {
    std::shared_ptr<flight> f;
    bool leader = false;
    {
      const std::lock_guard<std::mutex> g(lock_.mutex());
      if (current_ && current_->generation == fork_registry::generation()) {
        f = current_;
      } else {
        f = current_ = std::make_shared<flight>();
        leader = true;
      }
    }
    if (leader) {
      std::exception_ptr error;
      try {
        work();
      } catch (...) {
        error = std::current_exception();
      }
      {
        const std::lock_guard<std::mutex> g(f->mutex);
        f->done = true;
        f->error = error;
      }
      f->done_cv.notify_all();
      {
        const std::lock_guard<std::mutex> g(lock_.mutex());
        if (current_ == f) current_.reset();
      }
      if (error) std::rethrow_exception(error);
      return;
    }
    std::unique_lock<std::mutex> l(f->mutex);
    if (!wait_until(f->done_cv, l, deadline, [&] { return f->done; })) {
      throw timeout_error("the run took longer than task.timeout waiting for " + what);
    }
    if (f->error) std::rethrow_exception(f->error);
  }

 private:
  struct flight {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::exception_ptr error;
    std::uint64_t generation = fork_registry::generation();
  };

  fork_safe_lock lock_;              // guards current_, briefly
  std::shared_ptr<flight> current_;  // the run in flight, if any
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
