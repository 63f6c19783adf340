// The bodies of script.hpp (see ../script.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../script.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool is_noscript(const reply& r) {
  return r.is_error() && r.str().compare(0, 8, "NOSCRIPT") == 0;
}

REDIS_TASKS_DECL void queue_script(connection& c, const script& s, bool with_text,
                                   std::initializer_list<std::string_view> keys,
                                   std::initializer_list<std::string_view> args) {
  queue_script_of(c, s, with_text, keys, args);
}

REDIS_TASKS_DECL reply call_script(connection& c, const script& s, std::string_view what,
                                   std::string_view subject,
                                   std::initializer_list<std::string_view> keys,
                                   std::initializer_list<std::string_view> args) {
  return call_script_of(c, s, what, subject, keys, args);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
