// The bodies of keys.hpp (see ../keys.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../keys.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string companion_key(std::string_view key, std::string_view suffix) {
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
