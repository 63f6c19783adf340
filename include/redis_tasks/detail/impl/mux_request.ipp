// The bodies of mux_request.hpp (see ../mux_request.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../mux_request.hpp"

#include <algorithm>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool keeps_connection_state(std::string_view name) noexcept {
  static constexpr std::string_view stateful[] = {
      "MULTI",       "EXEC",         "DISCARD",      "WATCH",     "UNWATCH",    "SELECT",
      "AUTH",        "HELLO",        "CLIENT",       "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
      "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",   "SYNC",       "PSYNC",
      "QUIT",        "RESET",        "ASKING",       "READONLY",  "READWRITE",  "BLPOP",
      "BRPOP",       "BRPOPLPUSH",   "BLMOVE",       "BZPOPMIN",  "BZPOPMAX",   "BLMPOP",
      "BZMPOP",      "WAIT",         "WAITAOF",      "DEBUG"};
  if (name.size() > 12) return false;
  char upper[12];
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char ch = name[i];
    upper[i] = ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch;
  }
  const std::string_view n(upper, name.size());
  return std::any_of(std::begin(stateful), std::end(stateful),
                     [n](std::string_view s) { return s == n; });
}

REDIS_TASKS_DECL async_context*& current_async_context() noexcept {
  thread_local async_context* current = nullptr;
  return current;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
