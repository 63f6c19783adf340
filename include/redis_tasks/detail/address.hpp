// Server addresses as Redis writes them: "host:port" settings and the targets of MOVED/ASK
// redirections. Pure functions, shared by the cluster and sentinel code.
#pragma once

#include "../version.hpp"

#include <string>
#include <string_view>
#include <utility>

#include "../errors.hpp"
#include "keys.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Splits "host:port" (or "[v6]:port", or an unbracketed "::1:port" as Redis writes IPv6
/// nodes: split at the last ':'); throws config_error naming `what`.
REDIS_TASKS_DECL std::pair<std::string, int> split_host_port(std::string_view hp,
                                                             std::string_view what);

/// Parses "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" into the slot and the node.
/// A node without a host (":6381", a node that does not know its own address) is on
/// `from_host`, the host of the node that sent the redirection; "::1:6381" is IPv6 loopback.
REDIS_TASKS_DECL bool parse_redirect(const std::string& msg, int& slot, std::string& node,
                                     std::string_view from_host);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/address.ipp"
#endif
