// The bodies of keys.hpp (see ../keys.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../keys.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (char ch : data) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(ch) << 8);
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

REDIS_TASKS_DECL int key_slot(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) & (cluster_slots - 1);
}

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
