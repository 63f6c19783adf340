// SHA-256 (FIPS 180-4), for the names of cache entries: the same in every build, with or
// without OpenSSL.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The lowercase hex SHA-256 of `text` (64 characters).
REDIS_TASKS_DECL std::string sha256_hex(std::string_view text);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/sha256.ipp"
#endif
