// What RedisExecute lets through: commands refused because they would change a shared,
// reused connection, and how long a blocking command may wait on the server.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <optional>
#include <string>

#include "../command.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Commands that would change the state of a connection that later runs and other tasks
/// reuse, with what to use instead.
REDIS_TASKS_DECL const char* refused_command_hint(const command& cmd);

/// How long a blocking command may wait on the server: nullopt for a non-blocking command (or
/// a timeout argument the server will reject at once), 0 for "forever". Parsed as the server
/// parses it: seconds as a float rounded up to whole milliseconds (`BLPOP k 0.0001` waits 1 ms,
/// `+1` and hex floats are accepted), milliseconds as an integer (WAIT, XREAD BLOCK).
REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> block_time(const command& cmd);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/command_policy.ipp"
#endif
