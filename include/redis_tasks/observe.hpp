// Observability: a hook told of every attempt of every run, per task or process-wide. Events
// carry names, the endpoint, timings and outcomes — never a value or a password.
#pragma once

#include "version.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// One attempt of one run, as told to a run hook. The views are valid during the call only.
struct run_event {
  std::string_view task;  ///< task_options.name, or the class and key ("RedisSet(k)")
  std::string_view key;   ///< the key (RedisSet/RedisGet), empty for RedisExecute
  /// The command name ("SET", "GET", "INCRBY"), never arguments; for a RedisExecute batch
  /// whose items run different commands, "various".
  std::string_view command;
  std::string_view endpoint;  ///< "host:port", "cluster host:port" or the sentinel master
  std::chrono::microseconds duration{0};  ///< how long this attempt took
  int attempt = 1;                        ///< 1 for the first try, 2 for the first retry, …
  bool ok = true;                         ///< the attempt succeeded
  bool will_retry = false;                ///< it failed and the run will try again
  std::string_view error_type;            ///< "connection_error", "reply_error", … when it failed
  std::string_view error;                 ///< the exception's message when it failed
  /// For a `run_many` batch (one event for the whole batch): its number of items; 0 for a
  /// single run. A batch is ok when every item is; else `error` is the first failed item's.
  std::size_t batch_size = 0;
};

/// A hook called after every attempt of every run. It runs on the thread that called run(),
/// must be thread-safe, and should be quick; an exception it throws is ignored.
using run_hook = std::function<void(const run_event&)>;

namespace detail {

REDIS_TASKS_DECL std::mutex& global_hook_mutex();

REDIS_TASKS_DECL std::shared_ptr<const run_hook>& global_hook_slot();

// Lets runs skip the mutex when no global hook was ever set (the common case).
REDIS_TASKS_DECL std::atomic<bool>& global_hook_present();

REDIS_TASKS_DECL std::shared_ptr<const run_hook> global_hook();

}  // namespace detail

/// Sets the process-wide hook, told of runs of every task that has no hook of its own
/// (`task_options.on_run`). An empty function removes it.
REDIS_TASKS_DECL void set_global_run_hook(run_hook hook);

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/observe.ipp"
#endif
