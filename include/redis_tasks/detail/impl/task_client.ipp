// The bodies of task_client.hpp (see ../task_client.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../task_client.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL void check_live(const void* state, const char* kind) {
  if (state == nullptr) {
    throw config_error(std::string(kind) +
                       ": this task was moved from and has no settings left; run the task it "
                       "was moved to, or build a new one");
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
