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

#include <atomic>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "../batch.hpp"
#include "../from_reply.hpp"
#include "../reply.hpp"
#include "connection.hpp"
#include "deadline.hpp"
#include "mux_request.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

class multiplexer;  // mux.hpp: reached only through the two functions below

/// Gives a multiplexed connection back to its multiplexer: the deleter of `mux_connection`.
struct mux_giver {
  multiplexer* mux = nullptr;  ///< the connection's multiplexer
  /// Gives `c` back to `mux`.
  REDIS_TASKS_DECL void operator()(connection* c) const noexcept;
};

/// A connection of a multiplexer's, held for one asynchronous run: it goes back when it goes.
using mux_connection = std::unique_ptr<connection, mux_giver>;

/// A connection of `mux`'s for one asynchronous run, waited for by `deadline`.
REDIS_TASKS_DECL mux_connection acquire_multiplexed(multiplexer& mux, clock::time_point deadline);

/// Runs `job` on a thread of the library's executor (see executor.hpp).
REDIS_TASKS_DECL void post_async(std::function<void()> job);

/// Where an asynchronous run goes: the multiplexer its runs may go through without a thread
/// (null: a thread runs it), and its deadline (task_options.timeout from now).
struct async_route {
  multiplexer* mux = nullptr;                ///< the server's multiplexer, or null
  clock::time_point deadline = no_deadline;  ///< the run's deadline
  bool quiet = false;  ///< only the library reads replies (see connection::begin_async)
};

/// True when a RedisExecute<T> reply becomes a T by the library's own code alone.
template <class T>
constexpr bool library_reads() {
  if constexpr (std::is_same_v<T, reply> || std::is_same_v<T, std::string> ||
                std::is_arithmetic_v<T>) {
    return true;
  } else if constexpr (is_optional<T>::value) {
    return library_reads<typename T::value_type>();
  } else {
    return false;
  }
}

/// One asynchronous run on a multiplexer: the task (a copy), its overrides, and what to do
/// with the outcome. Kept alive by the reply it waits on, through `resume`.
template <class R, class Task, class Overrides>
class async_run : public std::enable_shared_from_this<async_run<R, Task, Overrides>> {
 public:
  using deliver_fn = std::function<void(batch_result<R>)>;

  async_run(const Task& t, Overrides o, multiplexer& mux, deliver_fn deliver)
      : task_(t), o_(std::move(o)), mux_(mux), deliver_(std::move(deliver)) {}

  /// Starts the run on this thread, with the connection it keeps to its end.
  void start(clock::time_point deadline, bool quiet) {
    conn_ = acquire_multiplexed(mux_, deadline);
    std::weak_ptr<async_run> weak = this->weak_from_this();
    conn_->begin_async(
        [weak] {
          // Called once the reply is in (on an executor thread, no lock held).
          if (auto self = weak.lock()) self->resume();
        },
        deadline, quiet);
    self_ = this->shared_from_this();  // alive until the run ends
    state_.store(running);
    passes();
  }

 private:
  // A pass runs, and the reply it waits for may come before it has ended (a quiet pass goes on
  // to its end): the next pass starts only after it, on the thread that ends it.
  enum : int { idle, running, running_resumed };

  void resume() {
    int s = state_.load();
    for (;;) {
      if (s == idle) {
        if (state_.compare_exchange_weak(s, running)) break;
      } else if (s == running) {
        if (state_.compare_exchange_weak(s, running_resumed)) return;
      } else {
        return;
      }
    }
    passes();
  }

  void passes() {
    const std::shared_ptr<async_run> keep = this->shared_from_this();
    for (;;) {
      if (pass()) return;
      int expected = running;
      if (state_.compare_exchange_strong(expected, idle)) return;  // resume() runs the next
      state_.store(running);  // resumed during the pass: the next one now
    }
  }

  // One pass of the run from its start; true when the run has ended.
  bool pass() {
    conn_->begin_async_pass();
    async_context ctx{&mux_, conn_.get()};
    async_context*& current = current_async_context();
    async_context* const outer = current;
    current = &ctx;
    std::optional<batch_result<R>> outcome;
    bool on_thread = false;
    try {
      R r = task_.run(o_);
      if (!ctx.suspended) outcome.emplace(batch_result<R>::success(std::move(r)));
    } catch (const async_pending&) {
      // Waits for a reply: `resume` runs the next pass.
    } catch (const async_unsupported&) {
      on_thread = true;  // needs a connection of its own: nothing was sent
    } catch (...) {
      if (!ctx.suspended) outcome.emplace(batch_result<R>::failure(std::current_exception()));
    }
    current = outer;
    if (!outcome && !on_thread) return false;
    conn_->end_multiplexed_run();
    conn_.reset();
    self_.reset();
    if (on_thread) {
      run_on_thread(task_, o_, std::move(deliver_));
    } else {
      deliver_(std::move(*outcome));
    }
    return true;
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
      post_async(std::move(job));
    } catch (...) {
      deliver(batch_result<R>::failure(std::current_exception()));
    }
  }

 private:
  Task task_;
  Overrides o_;
  multiplexer& mux_;
  deliver_fn deliver_;
  mux_connection conn_;  // the run's multiplexed connection, while the run lasts
  std::shared_ptr<async_run> self_;
  std::atomic<int> state_{idle};
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
  run->start(route.deadline, route.quiet);
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
      post_async([call, r]() { call(r); });
    } catch (...) {
      call(std::move(r));  // no thread to be had: here, then
    }
  });
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/async.ipp"
#endif
