// How a task names the companion keys it touches together with a user's key (a lock's token
// counter, a fenced key's fence record, a swap key): all in the user key's cluster slot.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Number of hash slots in a Redis Cluster.
inline constexpr int cluster_slots = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
REDIS_TASKS_DECL std::uint16_t crc16(std::string_view data);

/// The slot of `key`: only the part inside the first `{…}` counts when it is non-empty, so
/// `{user1}.name` and `{user1}.mail` land on the same node.
REDIS_TASKS_DECL int key_slot(std::string_view key);

/// `{key}:suffix`, or `key:suffix` when `key` has a hash tag of its own. Redis Cluster hashes
/// only a key's first non-empty `{…}` part, so both keys then live in one slot, as a script or
/// transaction over both needs. (A key holding a '}' but no hash tag cannot be wrapped; it is
/// kept as it is, which on a standalone server does not matter.)
REDIS_TASKS_DECL std::string companion_key(std::string_view key, std::string_view suffix);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/keys.ipp"
#endif
