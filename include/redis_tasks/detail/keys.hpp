// How a task names the companion keys it touches together with a user's key (a lock's token
// counter, a fenced key's fence record, a swap key): all in the user key's cluster slot.
#pragma once

#include "../version.hpp"

#include <string>
#include <string_view>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// `{key}:suffix`, or `key:suffix` when `key` has a hash tag of its own. Redis Cluster hashes
/// only a key's first non-empty `{…}` part, so both keys then live in one slot, as a script or
/// transaction over both needs. (A key holding a '}' but no hash tag cannot be wrapped; it is
/// kept as it is, which on a standalone server does not matter.)
inline std::string companion_key(std::string_view key, std::string_view suffix) {
  const auto open = key.find('{');
  const auto close = open == std::string_view::npos ? open : key.find('}', open + 1);
  const bool has_tag = close != std::string_view::npos && close > open + 1;
  std::string k;
  k.reserve(key.size() + suffix.size() + 3);
  if (has_tag || key.find('}') != std::string_view::npos) {
    k += key;
  } else {
    k += '{';
    k += key;
    k += '}';
  }
  k += ':';
  k += suffix;
  return k;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
