// The bodies of key_sensor.hpp (see ../key_sensor.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../key_sensor.hpp"

#include <algorithm>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool keyspace_events_on(std::string_view flags, std::string_view classes) {
  if (flags.find('K') == std::string_view::npos) return false;
  return flags.find_first_of(classes) != std::string_view::npos;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
