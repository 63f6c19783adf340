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
#include <new>
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

inline std::mutex& global_hook_mutex() {
  // Never destroyed (runs may end while the program exits), in static storage like the hook.
  alignas(std::mutex) static unsigned char storage[sizeof(std::mutex)];
  static auto* m = ::new (storage) std::mutex();
  return *m;
}

inline std::shared_ptr<const run_hook>& global_hook_slot() {
  static std::shared_ptr<const run_hook> hook;
  return hook;
}

// Lets runs skip the mutex when no global hook was ever set (the common case).
inline std::atomic<bool>& global_hook_present() {
  static std::atomic<bool> present{false};
  return present;
}

inline std::shared_ptr<const run_hook> global_hook() {
  if (!global_hook_present().load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(global_hook_mutex());
  return global_hook_slot();
}

}  // namespace detail

/// Sets the process-wide hook, told of runs of every task that has no hook of its own
/// (`task_options.on_run`). An empty function removes it.
inline void set_global_run_hook(run_hook hook) {
  std::shared_ptr<const run_hook> h;
  if (hook) h = std::make_shared<const run_hook>(std::move(hook));
  std::lock_guard<std::mutex> lock(detail::global_hook_mutex());
  detail::global_hook_present().store(h != nullptr, std::memory_order_release);
  detail::global_hook_slot() = std::move(h);
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
