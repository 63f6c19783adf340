// The bodies of cache.hpp (see ../cache.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../cache.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string cache_entry_key(const std::string& ns, const std::string& version,
                                             const nlohmann::json& inputs,
                                             const std::string& label) {
  std::string canonical;
  try {
    canonical = inputs.dump();
  } catch (const nlohmann::json::exception& e) {
    throw config_error(label + ": the inputs cannot be written as JSON (" + e.what() + ")");
  }
  return ns + ":" + sha256_hex(std::to_string(version.size()) + ":" + version + canonical);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
