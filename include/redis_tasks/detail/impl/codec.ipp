// The bodies of codec.hpp (see ../codec.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../codec.hpp"

#include <cmath>
#include <cstring>
#include <locale>
#include <sstream>
#include <system_error>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL void parse_json(std::string_view text, nlohmann::json& out) {
  out = nlohmann::json::parse(text.begin(), text.end());
}

// A stream in the classic locale reads below-normal numbers exactly (it uses `strtod` in the
// "C" locale, whatever the program's locale is); overflow still fails.
template <class N>
bool parse_below_normal_range_as(const char* first, const char* last, N& out) {
  std::istringstream in(std::string(first, last));
  in.imbue(std::locale::classic());
  N v{};
  in >> v;
  if (in.fail() || in.peek() != std::char_traits<char>::eof()) return false;
  if (!(std::fabs(v) < std::numeric_limits<N>::min())) return false;  // not an underflow
  out = v;
  return true;
}

REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last, float& out) {
  return parse_below_normal_range_as(first, last, out);
}
REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last, double& out) {
  return parse_below_normal_range_as(first, last, out);
}
REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last,
                                               long double& out) {
  return parse_below_normal_range_as(first, last, out);
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
