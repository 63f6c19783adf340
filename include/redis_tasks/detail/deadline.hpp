// Time, passed and not found: absolute deadlines, saturating duration arithmetic, and waits
// that end at a deadline whatever signals arrive. Every wait of the library goes through here.
#pragma once

#include "../version.hpp"

#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <poll.h>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The library's clock: monotonic, so a change of the wall clock never ends or stretches a wait.
using clock = std::chrono::steady_clock;

/// "No deadline": a wait with it never ends by time.
inline constexpr clock::time_point no_deadline = clock::time_point::max();

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
inline clock::time_point earlier(clock::time_point a, clock::time_point b) noexcept {
  return a < b ? a : b;
}

/// What is left until `deadline` as a poll(2) timeout: -1 for none, 0 when passed, else the
/// milliseconds left rounded up (so a wait never ends just before its deadline and spins),
/// at most INT_MAX (a longer wait is made of several polls).
inline int poll_timeout(clock::time_point deadline, clock::time_point now) noexcept {
  if (deadline == no_deadline) return -1;
  if (deadline <= now) return 0;
  const auto left = deadline - now;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `deadline` passes. Signals
/// never end the wait early. Returns true when ready (or in error/hang-up state, which the next
/// I/O call reports), false when the deadline passed; throws nothing.
inline bool wait_fd(int fd, short events, clock::time_point deadline) noexcept {
  for (;;) {
    const auto now = clock::now();
    const int timeout = poll_timeout(deadline, now);
    if (timeout == 0 && deadline != no_deadline) {
      // Passed: one last look without waiting, so data already there is never missed.
      pollfd p{fd, events, 0};
      return ::poll(&p, 1, 0) > 0;
    }
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR && errno != EAGAIN) {
      // poll itself failed (ENOMEM): never take that for "ready", which could report a connect
      // still under way as done; try again shortly, still bounded by the deadline.
      const auto retry = saturating_add(clock::now(), std::chrono::milliseconds(1));
      std::this_thread::sleep_until(earlier(retry, deadline == no_deadline ? retry : deadline));
    }
  }
}

/// Sleeps until `deadline` (for back-off pauses); `no_deadline` is refused by the callers, which
/// always sleep for a bounded time.
inline void sleep_until(clock::time_point deadline) {
  // sleep_until converts to the system's time representation; cap each step at an hour so
  // huge deadlines cannot overflow that conversion.
  for (auto now = clock::now(); now < deadline; now = clock::now()) {
    const auto step = earlier(deadline, saturating_add(now, std::chrono::hours(1)));
    std::this_thread::sleep_until(step);
  }
}

/// Sleeps for `d`, but never past `deadline`. Returns false when the deadline cut it short.
inline bool sleep_within(std::chrono::milliseconds d, clock::time_point deadline) {
  const auto wake = saturating_add(clock::now(), d);
  sleep_until(earlier(wake, deadline));
  return wake <= deadline;
}

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
inline std::string ms_text(std::chrono::milliseconds ms) {
  if (ms.count() <= 0 || ms >= std::chrono::hours(24) * 365 * 1000) return "no limit";
  return std::to_string(ms.count()) + " ms";
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
