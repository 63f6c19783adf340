// Asynchronous runs: `run_async` runs a task's run exactly as `run()` does (merging,
// validation, retries, hooks, errors) and then fulfils a future or calls the caller's callback.
//
// On a multiplexed server (and with no task retries) no thread waits for the reply: the run
// starts on the caller's thread, writes its request, and stops where it would wait. Once the
// reply is in, the run is run again from the start on an executor thread; its requests are
// matched to those already sent (never sent again) and read their replies, and it goes on to
// its end (or to its next reply). Anything else runs `run()` on an executor thread.
#pragma once

#include "../version.hpp"

#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <utility>

#include "../batch.hpp"
#include "deadline.hpp"
#include "executor.hpp"
#include "mux.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Where an asynchronous run goes: the multiplexer its runs may go through without a thread
/// (null: a thread runs it), and its deadline (task_options.timeout from now).
struct async_route {
  multiplexer* mux = nullptr;                ///< the server's multiplexer, or null
  clock::time_point deadline = no_deadline;  ///< the run's deadline
};

/// One asynchronous run on a multiplexer: the task (a copy), its overrides, and what to do
/// with the outcome. Kept alive by the reply it waits on, through `resume`.
template <class R, class Task, class Overrides>
class async_run : public std::enable_shared_from_this<async_run<R, Task, Overrides>> {
 public:
  using deliver_fn = std::function<void(batch_result<R>)>;

  async_run(const Task& t, Overrides o, multiplexer& mux, deliver_fn deliver)
      : task_(t), o_(std::move(o)), mux_(mux), deliver_(std::move(deliver)) {}

  /// Starts the run on this thread, with the connection it keeps to its end.
  void start(clock::time_point deadline) {
    conn_.emplace(mux_.acquire(deadline));
    std::weak_ptr<async_run> weak = this->weak_from_this();
    (*conn_)->begin_async(
        [weak] {
          // Called by the reader once the reply is in (no lock held): one more pass.
          if (auto self = weak.lock()) self->step();
        },
        deadline);
    self_ = this->shared_from_this();  // alive until the run ends
    step();
  }

 private:
  // One pass of the run from its start.
  void step() {
    (*conn_)->begin_async_pass();
    async_context ctx{&mux_, &**conn_};
    async_context*& current = current_async_context();
    async_context* const outer = current;
    current = &ctx;
    std::optional<batch_result<R>> outcome;
    bool on_thread = false;
    try {
      outcome.emplace(batch_result<R>::success(task_.run(o_)));
    } catch (const async_pending&) {
      // Waits for a reply: `resume` runs the next pass.
    } catch (const async_unsupported&) {
      on_thread = true;  // needs a connection of its own: nothing was sent
    } catch (...) {
      outcome.emplace(batch_result<R>::failure(std::current_exception()));
    }
    current = outer;
    if (!outcome && !on_thread) return;
    (*conn_)->end_multiplexed_run();
    conn_.reset();
    const std::shared_ptr<async_run> keep = std::move(self_);
    if (on_thread) {
      run_on_thread(task_, o_, std::move(deliver_));
      return;
    }
    deliver_(std::move(*outcome));
  }

 public:
  /// Runs `task.run(o)` on an executor thread and hands its outcome to `deliver` there.
  static void run_on_thread(const Task& task, const Overrides& o, deliver_fn deliver) {
    auto job = [t = task, o, deliver]() {
      std::optional<batch_result<R>> r;
      try {
        r.emplace(batch_result<R>::success(t.run(o)));
      } catch (...) {
        r.emplace(batch_result<R>::failure(std::current_exception()));
      }
      deliver(std::move(*r));
    };
    try {
      async_executor::instance().post(std::move(job));
    } catch (...) {
      deliver(batch_result<R>::failure(std::current_exception()));
    }
  }

 private:
  Task task_;
  Overrides o_;
  multiplexer& mux_;
  deliver_fn deliver_;
  std::optional<multiplexer::lease> conn_;
  std::shared_ptr<async_run> self_;
};

/// Starts `task.run(o)` asynchronously (see the top of this file); `deliver` gets the outcome
/// on an executor thread, or on this one when the run ends at once (a validation error).
template <class R, class Task, class Overrides>
void start_async_run(const Task& task, const async_route& route, Overrides o,
                     std::function<void(batch_result<R>)> deliver) {
  using run_t = async_run<R, Task, Overrides>;
  if (route.mux == nullptr) {
    run_t::run_on_thread(task, o, std::move(deliver));
    return;
  }
  auto run = std::make_shared<run_t>(task, std::move(o), *route.mux, std::move(deliver));
  run->start(route.deadline);
}

/// `task.run(o)` asynchronously; its result or error comes through the future.
template <class R, class Task, class Overrides>
std::future<R> start_async(const Task& task, const async_route& route, Overrides o) {
  auto promise = std::make_shared<std::promise<R>>();
  std::future<R> result = promise->get_future();
  start_async_run<R>(task, route, std::move(o), [promise](batch_result<R> r) {
    if (r.ok()) {
      promise->set_value(std::move(r).value());
    } else {
      promise->set_exception(r.error());
    }
  });
  return result;
}

/// `task.run(o)` asynchronously, then `done` with its outcome, on an executor thread of its own
/// (so that a callback that blocks holds up no other). An exception `done` throws is dropped:
/// it cannot reach the caller, who has moved on.
template <class R, class Task, class Overrides>
void start_async(const Task& task, const async_route& route, Overrides o,
                 std::function<void(batch_result<R>)> done) {
  auto call = [done](batch_result<R> r) {
    try {
      done(std::move(r));
    } catch (...) {  // the callback's own failure has nowhere to go
    }
  };
  start_async_run<R>(task, route, std::move(o), [call](batch_result<R> r) {
    try {
      async_executor::instance().post([call, r]() { call(r); });
    } catch (...) {
      call(std::move(r));  // no thread to be had: here, then
    }
  });
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
