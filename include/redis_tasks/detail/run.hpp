// How a task's run is carried out around its commands: names and labels for messages, retries
// after connection errors within the run's deadline (task_options.timeout), and run hooks.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "../connection.hpp"
#include "../errors.hpp"
#include "../observe.hpp"
#include "codec.hpp"
#include "deadline.hpp"
#include "mux_request.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string task_label(const task_options& t, const char* kind);

/// task_options.name, or by default the class and what it is about: `RedisSet(greeting)`,
/// `RedisExecute(INCRBY)`, or just the class when the config names nothing.
/// `text` for a message: at most 64 bytes, control characters shown as '?'.
REDIS_TASKS_DECL std::string printable(std::string_view text);

REDIS_TASKS_DECL std::string task_name(const task_options& t, const char* kind,
                                       std::string_view subject);

REDIS_TASKS_DECL void check_retry_options(const task_options& t, const std::string& label);

/// What a run is about, for run hooks.
struct run_info {
  std::string_view task;      ///< the task's name
  std::string_view key;       ///< the key, or empty
  std::string_view command;   ///< the command name
  std::string_view endpoint;  ///< where it goes
};

/// The command a RedisSet<T> run sends, for run hooks.
template <class T>
constexpr const char* write_command_name() {
  if constexpr (category_of<T>() == category::user) {
    return write_command_name<typename value_traits<T>::storage_type>();
  }
  switch (kind_of(category_of<T>())) {
    case redis_kind::list:
      return "RPUSH";
    case redis_kind::set:
      return "SADD";
    case redis_kind::hash:
      return "HSET";
    case redis_kind::zset:
      return "ZADD";
    default:
      return "SET";
  }
}

/// The command a RedisGet<T> run sends, for run hooks.
template <class T>
constexpr const char* read_command_name() {
  if constexpr (category_of<T>() == category::user) {
    return read_command_name<typename value_traits<T>::storage_type>();
  }
  if (category_of<T>() == category::any) return "TYPE";
  switch (kind_of(category_of<T>())) {
    case redis_kind::list:
      return "LRANGE";
    case redis_kind::set:
      return "SMEMBERS";
    case redis_kind::hash:
      return "HGETALL";
    case redis_kind::zset:
      return "ZRANGE";
    default:
      return "GET";
  }
}

/// The name of the most specific library error type of `e`.
REDIS_TASKS_DECL const char* error_type_name(const std::exception& e);

/// The hook runs of a task are told of: the task's own, else the global one (kept alive by
/// `global`), else none.
struct hook_ref {
  std::shared_ptr<const run_hook> global;
  const run_hook* hook = nullptr;
};

REDIS_TASKS_DECL hook_ref hook_for(const task_options& t);

REDIS_TASKS_DECL void notify(const run_hook& hook, const run_event& ev) noexcept;

/// Runs a batch (`f` returns its results) and tells the run hook of it as one event with
/// `batch_size` set: ok when every item succeeded, else the first failed item's error.
template <class F>
auto told_batch(const task_options& t, const run_info& info, std::size_t n, F&& f)
    -> decltype(f()) {
  const hook_ref hr = hook_for(t);
  if (hr.hook == nullptr) return f();
  const auto start = clock::now();
  run_event ev;
  ev.task = info.task;
  ev.command = info.command;
  ev.endpoint = info.endpoint;
  ev.batch_size = n;
  std::string message;
  auto tell = [&](const std::exception* e, std::size_t item) {
    ev.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start);
    ev.ok = e == nullptr;
    if (e != nullptr) {
      ev.error_type = error_type_name(*e);
      message = item < n
                    ? "item " + std::to_string(item) + " of " + std::to_string(n) + ": " + e->what()
                    : e->what();
      ev.error = message;
    }
    notify(*hr.hook, ev);
  };
  try {
    auto results = f();
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) continue;
      try {
        std::rethrow_exception(results[i].error());
      } catch (const std::exception& e) {
        tell(&e, i);
        return results;
      } catch (...) {
        const error unknown("an exception that is not a std::exception");
        tell(&unknown, i);
        return results;
      }
    }
    tell(nullptr, n);
    return results;
  } catch (const std::exception& e) {
    tell(&e, n);
    throw;
  }
}

/// Rethrows the last connection error of a run with the task's name (and the run's key or
/// command, if the name does not show it) in front, keeping its type.
[[noreturn]] REDIS_TASKS_DECL void rethrow_in_context(const connection_error& e,
                                                      const run_info& info);

/// Runs `f(deadline)`, again up to `max_retries` times after a connection_error (timeouts
/// included), within the task's `timeout` (the deadline every attempt is given), telling the
/// run hook (the task's, else the global one) of every attempt.
template <class F>
auto with_retries(const task_options& t, const run_info& info, F&& f)
    -> decltype(f(clock::time_point())) {
  const hook_ref hr = hook_for(t);
  const run_hook* hook = hr.hook;
  const auto deadline = deadline_after(t.timeout);
  const bool bounded = deadline != no_deadline;
  for (int attempt = 1;; ++attempt) {
    const auto start = hook != nullptr ? clock::now() : clock::time_point();
    auto tell = [&](bool ok, bool retry, const std::exception* e) {
      if (hook == nullptr) return;
      // An asynchronous run's pass that stopped where it would wait is discarded, untold.
      if (const async_context* a = current_async_context(); a != nullptr && a->suspended) return;
      run_event ev;
      ev.task = info.task;
      ev.key = info.key;
      ev.command = info.command;
      ev.endpoint = info.endpoint;
      ev.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start);
      ev.attempt = attempt;
      ev.ok = ok;
      ev.will_retry = retry;
      if (e != nullptr) {
        ev.error_type = error_type_name(*e);
        ev.error = e->what();
      }
      notify(*hook, ev);
    };
    try {
      if (bounded && clock::now() >= deadline) {
        throw timeout_error("the run took longer than task.timeout " + ms_text(t.timeout));
      }
      auto result = f(deadline);
      tell(true, false, nullptr);
      return result;
    } catch (const connection_error& e) {
      const bool retry = attempt <= t.max_retries &&
                         (!bounded || saturating_add(clock::now(), t.retry_delay) < deadline);
      tell(false, retry, &e);
      if (!retry) rethrow_in_context(e, info);
    } catch (const std::exception& e) {
      tell(false, false, &e);
      throw;
    }
    if (t.retry_delay.count() > 0) sleep_within(t.retry_delay, deadline);
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/run.ipp"
#endif
