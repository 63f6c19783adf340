// The bodies of deadline.hpp (see ../deadline.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../deadline.hpp"

#include <poll.h>
#include <cerrno>
#include <climits>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL clock::time_point earlier(clock::time_point a, clock::time_point b) noexcept {
  return a < b ? a : b;
}

REDIS_TASKS_DECL int poll_timeout(clock::time_point deadline, clock::time_point now) noexcept {
  if (deadline == no_deadline) return -1;
  if (deadline <= now) return 0;
  const auto left = deadline - now;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

REDIS_TASKS_DECL bool wait_fd(int fd, short events, clock::time_point deadline) noexcept {
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

REDIS_TASKS_DECL void sleep_until(clock::time_point deadline) {
  // sleep_until converts to the system's time representation; cap each step at an hour so
  // huge deadlines cannot overflow that conversion.
  for (auto now = clock::now(); now < deadline; now = clock::now()) {
    const auto step = earlier(deadline, saturating_add(now, std::chrono::hours(1)));
    std::this_thread::sleep_until(step);
  }
}

REDIS_TASKS_DECL bool sleep_within(std::chrono::milliseconds d, clock::time_point deadline) {
  const auto wake = saturating_add(clock::now(), d);
  sleep_until(earlier(wake, deadline));
  return wake <= deadline;
}

REDIS_TASKS_DECL std::string ms_text(std::chrono::milliseconds ms) {
  if (ms.count() <= 0 || ms >= std::chrono::hours(24) * 365 * 1000) return "no limit";
  return std::to_string(ms.count()) + " ms";
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
