// The bodies of observe.hpp (see ../observe.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../observe.hpp"

#include <new>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::mutex& global_hook_mutex() {
  // Never destroyed (runs may end while the program exits), in static storage like the hook.
  alignas(std::mutex) static unsigned char storage[sizeof(std::mutex)];
  static auto* m = ::new (storage) std::mutex();
  return *m;
}

REDIS_TASKS_DECL std::shared_ptr<const run_hook>& global_hook_slot() {
  static std::shared_ptr<const run_hook> hook;
  return hook;
}

REDIS_TASKS_DECL std::atomic<bool>& global_hook_present() {
  static std::atomic<bool> present{false};
  return present;
}

REDIS_TASKS_DECL std::shared_ptr<const run_hook> global_hook() {
  if (!global_hook_present().load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(global_hook_mutex());
  return global_hook_slot();
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL void set_global_run_hook(run_hook hook) {
  std::shared_ptr<const run_hook> h;
  if (hook) h = std::make_shared<const run_hook>(std::move(hook));
  std::lock_guard<std::mutex> lock(detail::global_hook_mutex());
  detail::global_hook_present().store(h != nullptr, std::memory_order_release);
  detail::global_hook_slot() = std::move(h);
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
