// redis_tasks version: the single source of truth, parsed by CMakeLists.txt.
#pragma once

#define REDIS_TASKS_VERSION_MAJOR 0
#define REDIS_TASKS_VERSION_MINOR 2
#define REDIS_TASKS_VERSION_PATCH 0

/// The inline namespace every name of the library lives in, `redis_tasks::v0_2`: code built
/// against two versions of these headers in one program links two sets of names instead of
/// silently mixing them (a one-definition-rule break). Users keep writing `redis_tasks::`.
/// It changes with the minor version while the major version is 0.
#define REDIS_TASKS_ABI v0_2

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Library version as {major, minor, patch}.
struct version_info {
  int major;  ///< incompatible API changes
  int minor;  ///< added functionality
  int patch;  ///< fixes
};

/// The version of the headers in use.
inline constexpr version_info version{REDIS_TASKS_VERSION_MAJOR, REDIS_TASKS_VERSION_MINOR,
                                      REDIS_TASKS_VERSION_PATCH};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
