// The bodies of errors.hpp (see ../errors.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../errors.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL std::string reply_error::code() const {
  auto end = server_message_.find(' ');
  return server_message_.substr(0, end);
}

REDIS_TASKS_DECL std::string reply_error::without_echoed_args(const std::string& m) {
  static constexpr std::string_view echo = "with args beginning with:";
  const auto pos = m.find(echo);
  if (pos == std::string::npos) return m;
  return m.substr(0, pos + echo.size()) + " (left out)";
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
