// Time, passed and not found: absolute deadlines, saturating duration arithmetic, and waits
// that end at a deadline whatever signals arrive. Every wait of the library goes through here.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The library's clock: monotonic, so a change of the wall clock never ends or stretches a wait.
using clock = std::chrono::steady_clock;

/// "No deadline": a wait with it never ends by time.
inline constexpr clock::time_point no_deadline = clock::time_point::max();

/// How long before a run's deadline a server-side block (BLPOP, XREADGROUP BLOCK) must end.
/// Redis ends a block at its next timer tick, up to 1000/hz ms late (100 ms at the default hz
/// 10), and the reply still has to come back: a block that ends closer to the deadline can end
/// after it, in a timeout_error instead of the run's "nothing came" answer.
inline constexpr std::chrono::milliseconds server_block_margin{150};

/// `from + d`, saturating: a duration too large to add (e.g. `milliseconds::max()`) gives
/// `no_deadline` instead of overflowing.
template <class Rep, class Period>
clock::time_point saturating_add(clock::time_point from, std::chrono::duration<Rep, Period> d) {
  using std::chrono::duration_cast;
  if (d.count() <= 0) return from;
  // Compare in the duration's own unit first, so the conversion below cannot overflow.
  const auto room = no_deadline - from;
  if (duration_cast<std::chrono::duration<Rep, Period>>(room) <= d) return no_deadline;
  return from + duration_cast<clock::duration>(d);
}

/// The deadline `d` from now, where a zero (or negative) `d` means "no limit".
template <class Rep, class Period>
clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) {
  if (d.count() <= 0) return no_deadline;
  return saturating_add(clock::now(), d);
}

/// The earlier of two deadlines.
REDIS_TASKS_DECL clock::time_point earlier(clock::time_point a, clock::time_point b) noexcept;

/// What is left until `deadline` as a poll(2) timeout: -1 for none, 0 when passed, else the
/// milliseconds left rounded up (so a wait never ends just before its deadline and spins),
/// at most INT_MAX (a longer wait is made of several polls).
REDIS_TASKS_DECL int poll_timeout(clock::time_point deadline, clock::time_point now) noexcept;

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `deadline` passes. Signals
/// never end the wait early. Returns true when ready (or in error/hang-up state, which the next
/// I/O call reports), false when the deadline passed; throws nothing.
REDIS_TASKS_DECL bool wait_fd(int fd, short events, clock::time_point deadline) noexcept;

/// Sleeps until `deadline` (for back-off pauses); `no_deadline` is refused by the callers, which
/// always sleep for a bounded time.
REDIS_TASKS_DECL void sleep_until(clock::time_point deadline);

/// Sleeps for `d`, but never past `deadline`. Returns false when the deadline cut it short.
REDIS_TASKS_DECL bool sleep_within(std::chrono::milliseconds d, clock::time_point deadline);

/// Waits on `cv` until `ready()` or `deadline` (no_deadline: without limit). Returns ready().
template <class Pred>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                clock::time_point deadline, Pred ready) {
  while (!ready()) {
    if (deadline == no_deadline) {
      cv.wait(lock);
      continue;
    }
    const auto now = clock::now();
    if (now >= deadline) return ready();
    // Bounded steps, for the same reason as in sleep_until.
    cv.wait_until(lock, earlier(deadline, saturating_add(now, std::chrono::hours(1))));
  }
  return true;
}

/// Locks `lock` (a timed mutex) by `deadline`; false when the deadline passed first.
template <class Lock>
bool lock_by(Lock& lock, clock::time_point deadline) {
  if (deadline == no_deadline) {
    lock.lock();
    return true;
  }
  return lock.try_lock_until(deadline);
}

/// A duration for messages: "250 ms", or "no limit" for the largest values.
REDIS_TASKS_DECL std::string ms_text(std::chrono::milliseconds ms);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/deadline.ipp"
#endif
