// The bodies of fork.hpp (see ../fork.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../fork.hpp"

#include <pthread.h>
#include <new>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL auto fork_registry::instance() -> fork_registry& {
  // Never destroyed (a fork may come during exit), and not on the heap: a plugin's copy
  // lives in the plugin's own static storage and goes with it when it is unloaded (glibc
  // unregisters its fork handlers then).
  alignas(fork_registry) static unsigned char storage[sizeof(fork_registry)];
  static fork_registry* r = [] {
    auto* made = ::new (storage) fork_registry();
    ::pthread_atfork(&prepare, &in_parent, &in_child);
    return made;
  }();
  return *r;
}

REDIS_TASKS_DECL void fork_registry::add(fork_safe_lock* l) {
  const std::lock_guard<std::mutex> g(mutex_);
  locks_.insert(l);
}

REDIS_TASKS_DECL void fork_registry::remove(fork_safe_lock* l) {
  const std::lock_guard<std::mutex> g(mutex_);
  locks_.erase(l);
}

REDIS_TASKS_DECL std::atomic<std::uint64_t>& fork_registry::counter() noexcept {
  static std::atomic<std::uint64_t> c{0};
  return c;
}

REDIS_TASKS_DECL void fork_safe_lock::after_fork_in_child() {
  // The mutex is held by this thread (prepare took it), so it is simply unlocked: building a
  // new one over it would leave ThreadSanitizer believing it still locked. The condition
  // variable may list waiters that do not exist here: start afresh rather than destroy it
  // (destroying a condition variable with waiters blocks).
  mutex().unlock();
  ::new (&cv_) std::condition_variable();
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
