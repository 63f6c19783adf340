// redis_tasks version: the single source of truth, parsed by CMakeLists.txt.
#pragma once

#define REDIS_TASKS_VERSION_MAJOR 0
#define REDIS_TASKS_VERSION_MINOR 1
#define REDIS_TASKS_VERSION_PATCH 0

namespace redis_tasks {

/// Library version as {major, minor, patch}.
struct version_info {
  int major;  ///< incompatible API changes
  int minor;  ///< added functionality
  int patch;  ///< fixes
};

/// The version of the headers in use.
inline constexpr version_info version{REDIS_TASKS_VERSION_MAJOR, REDIS_TASKS_VERSION_MINOR,
                                      REDIS_TASKS_VERSION_PATCH};

}  // namespace redis_tasks
