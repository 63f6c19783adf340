// SHA-1 (FIPS 180-4), for the names Redis gives scripts: EVALSHA takes the hex SHA-1 of a
// script's text, computed here once per script so that no SCRIPT LOAD round trip is needed.
// Not used for anything that needs collision resistance.
#pragma once

#include "../version.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The lowercase hex SHA-1 of `text` (40 characters), as Redis names a script.
REDIS_TASKS_DECL std::string sha1_hex(std::string_view text);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/sha1.ipp"
#endif
