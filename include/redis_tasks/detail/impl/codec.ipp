// The bodies of codec.hpp (see ../codec.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../codec.hpp"

#include <cmath>
#include <cstring>
#include <locale>
#include <sstream>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL nlohmann::json parse_json(std::string_view text) {
  return nlohmann::json::parse(text.begin(), text.end());
}

REDIS_TASKS_DECL const char* kind_name(redis_kind k) {
  switch (k) {
    case redis_kind::string:
      return "string";
    case redis_kind::list:
      return "list";
    case redis_kind::set:
      return "set";
    case redis_kind::hash:
      return "hash";
    case redis_kind::zset:
      return "zset";
  }
  return "unknown";
}

REDIS_TASKS_DECL std::string quote_for_message(std::string_view s) {
  std::string out;
  const bool cut = s.size() > 80;
  append_quoted(out, cut ? s.substr(0, 80) : s);
  if (cut) out.insert(out.size() - 1, "...");
  return out;
}

REDIS_TASKS_DECL const char* category_description(category c) {
  switch (c) {
    case category::string:
      return "a string";
    case category::number:
      return "a string holding a number";
    case category::bytes:
      return "a string (its bytes)";
    case category::list:
      return "a list";
    case category::set:
      return "a set";
    case category::hash:
      return "a hash";
    case category::zset:
      return "a sorted set (zset)";
    case category::json:
      return "a string holding JSON";
    case category::any:
      return "any of string, list, set, hash, zset";
    default:
      return "a storable value";
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
