// The bodies of from_reply.hpp (see ../from_reply.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../from_reply.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL void reply_to_json(const reply& r, nlohmann::json& out) {
  out = r.to_json();
}

REDIS_TASKS_DECL std::string describe_reply(const reply& r) {
  switch (r.type()) {
    case reply_type::nil:
      return "nil";
    case reply_type::array:
    case reply_type::set:
    case reply_type::push:
      return std::string(r.type() == reply_type::array ? "an " : "a ") + to_string(r.type()) +
             " of " + std::to_string(r.elements().size()) + " elements";
    case reply_type::map:
    case reply_type::attribute:
      return std::string(r.type() == reply_type::map ? "a " : "an ") + to_string(r.type()) +
             " of " + std::to_string(r.elements().size() / 2) + " entries";
    case reply_type::integer:
    case reply_type::error:
      return std::string("an ") + to_string(r.type());
    case reply_type::string:
    case reply_type::verbatim:
      return std::string("a ") + to_string(r.type()) + " of " + std::to_string(r.str().size()) +
             " bytes";
    default:
      return std::string("a ") + to_string(r.type());
  }
}

REDIS_TASKS_DECL void throw_misfit(const reply& r, const std::string& context,
                                   const std::string& wanted) {
  std::string msg = context + " was " + describe_reply(r) + ", which does not convert to " + wanted;
  if (r.is_nil()) msg += "; use std::optional<" + wanted + "> where the reply may be nil";
  throw type_error(msg);
}

REDIS_TASKS_DECL bool is_text(const reply& r) {
  return r.type() == reply_type::string || r.type() == reply_type::status ||
         r.type() == reply_type::verbatim || r.type() == reply_type::big_number ||
         r.type() == reply_type::double_value;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
