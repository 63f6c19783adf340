// The bodies of config_json.hpp (see ../config_json.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../config_json.hpp"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL nlohmann::json load_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error("cannot read JSON file '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw config_error("JSON file '" + path + "', line " + std::to_string(line) + ", column " +
                       std::to_string(column) + ": not valid JSON");
  }
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL auto json_fields::field_error(const std::string& name, const std::string& want,
                                               const nlohmann::json& got) const -> config_error {
  return config_error(where + "." + name + ": must be " + want + ", got " + got.type_name());
}

REDIS_TASKS_DECL std::string json_fields::string(const std::string& name,
                                                 const nlohmann::json& v) const {
  if (!v.is_string()) throw field_error(name, "a string", v);
  return v.get<std::string>();
}

REDIS_TASKS_DECL long long json_fields::whole(const std::string& name, const nlohmann::json& v,
                                              long long lo, long long hi) const {
  if (!v.is_number_integer()) throw field_error(name, "a whole number", v);
  if (const auto n = whole_number_in(v, lo, hi)) return *n;
  throw config_error(where + "." + name + ": must be a whole number from " + std::to_string(lo) +
                     " to " + std::to_string(hi) + ", got " + json_number_text(v));
}

REDIS_TASKS_DECL bool json_fields::boolean(const std::string& name, const nlohmann::json& v) const {
  if (!v.is_boolean()) throw field_error(name, "true or false", v);
  return v.get<bool>();
}

REDIS_TASKS_DECL std::chrono::milliseconds json_fields::seconds(const std::string& name,
                                                                const nlohmann::json& v) const {
  if (!v.is_number()) throw field_error(name, "a number of seconds", v);
  if (const auto ms = milliseconds_from_seconds(v.get<double>())) return *ms;
  throw config_error(where + "." + name +
                     ": must be a number of seconds from 0 to 1000000000 (0: none), got " +
                     json_number_text(v));
}

REDIS_TASKS_DECL std::optional<std::string> json_fields::optional_string(
    const std::string& name, const nlohmann::json& v) const {
  if (v.is_null()) return std::nullopt;
  return string(name, v);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
