// fork() without hangs: a counter of the forks this process went through, and locks that are
// taken by the forking thread across fork(), so that a child never inherits one that another
// thread of the parent held (which no thread of the child could ever release).
#pragma once

#include "../version.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <set>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

class fork_safe_lock;

/// The locks of this copy of the library, and the pthread_atfork handlers that keep them
/// usable across fork(). One per program image: a hidden-visibility plugin has its own, whose
/// handlers run on every fork too, so every lock is looked after by the copy that made it.
class fork_registry {
 public:
  /// The registry (its handlers are installed the first time).
  REDIS_TASKS_DECL static fork_registry& instance();

  /// How many forks this process is removed from the one that loaded the library: 0 in the
  /// original process, +1 in each child. Cheaper than getpid() (a system call) on every run.
  static std::uint64_t generation() noexcept { return counter().load(std::memory_order_acquire); }

  REDIS_TASKS_DECL void add(fork_safe_lock* l);
  REDIS_TASKS_DECL void remove(fork_safe_lock* l);

 private:
  fork_registry() = default;

  REDIS_TASKS_DECL static std::atomic<std::uint64_t>& counter() noexcept;

  static void prepare();
  static void in_parent();
  static void in_child();

  std::mutex mutex_;  // held from prepare until in_parent / in_child
  std::set<fork_safe_lock*> locks_;
};

/// A mutex with its condition variable that survives fork(): the forking thread holds it across
/// the fork, so no other thread is inside; the parent then releases it, and the child gets a
/// fresh, unlocked one (and a condition variable with no waiters: the parent's waiting threads
/// do not exist in the child). Hold it only briefly, never across I/O, and never lock another
/// fork_safe_lock while holding one.
class fork_safe_lock {
 public:
  fork_safe_lock() { fork_registry::instance().add(this); }
  fork_safe_lock(const fork_safe_lock&) = delete;
  fork_safe_lock& operator=(const fork_safe_lock&) = delete;
  ~fork_safe_lock() { fork_registry::instance().remove(this); }

  /// The mutex, for std::unique_lock and the condition variable.
  std::mutex& mutex() noexcept { return *std::launder(&mutex_); }
  /// The condition variable that goes with the mutex.
  std::condition_variable& cv() noexcept { return *std::launder(&cv_); }

 private:
  friend class fork_registry;
  void before_fork() { mutex().lock(); }
  void after_fork_in_parent() { mutex().unlock(); }
  REDIS_TASKS_DECL void after_fork_in_child();

  std::mutex mutex_;
  std::condition_variable cv_;
};

inline void fork_registry::prepare() {
  fork_registry& r = instance();
  r.mutex_.lock();
  for (fork_safe_lock* l : r.locks_)
    l->before_fork();
}

inline void fork_registry::in_parent() {
  fork_registry& r = instance();
  for (fork_safe_lock* l : r.locks_)
    l->after_fork_in_parent();
  r.mutex_.unlock();
}

inline void fork_registry::in_child() {
  fork_registry& r = instance();
  counter().fetch_add(1, std::memory_order_acq_rel);
  for (fork_safe_lock* l : r.locks_)
    l->after_fork_in_child();
  r.mutex_.unlock();  // taken by this thread in prepare
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/fork.ipp"
#endif
