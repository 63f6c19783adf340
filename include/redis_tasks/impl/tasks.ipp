// The bodies of tasks.hpp (see ../tasks.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../tasks.hpp"

#include <charconv>
#include <cmath>
#include <future>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> expiry_of(
    const std::optional<std::chrono::seconds>& ex,
    const std::optional<std::chrono::milliseconds>& px, const std::string& label,
    const char* where) {
  if (ex && px) {
    throw config_error(label + ": " + where +
                       " gives both ex and px; they are one setting, give one");
  }
  if (ex) {
    if (ex->count() <= 0) {
      throw config_error(label + ": ex must be positive, got " + std::to_string(ex->count()) +
                         " s");
    }
    if (ex->count() > 1'000'000'000'000LL) throw config_error(label + ": ex is too large");
    return std::chrono::milliseconds(*ex);
  }
  if (px) {
    if (px->count() <= 0) {
      throw config_error(label + ": px must be positive, got " + std::to_string(px->count()) +
                         " ms");
    }
    return *px;
  }
  return std::nullopt;
}

REDIS_TASKS_DECL condition condition_of(bool nx, bool xx, const std::string& label,
                                        const char* where) {
  if (nx && xx) {
    throw config_error(label + ": " + where +
                       " sets both nx and xx; they are one setting (only-if-absent or "
                       "only-if-present), set one");
  }
  return nx ? condition::nx : (xx ? condition::xx : condition::none);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
