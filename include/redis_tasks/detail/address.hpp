// Server addresses as Redis writes them: "host:port" settings and the targets of MOVED/ASK
// redirections. Pure functions, shared by the cluster and sentinel code.
#pragma once

#include "../version.hpp"

#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "../errors.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Number of hash slots in a Redis Cluster.
inline constexpr int cluster_slots = 16384;

/// Splits "host:port" (or "[v6]:port", or an unbracketed "::1:port" as Redis writes IPv6
/// nodes: split at the last ':'); throws config_error naming `what`.
inline std::pair<std::string, int> split_host_port(std::string_view hp, std::string_view what) {
  auto fail = [&]() -> std::pair<std::string, int> {
    throw config_error(std::string(what) + ": '" + std::string(hp) +
                       "' is not host:port (e.g. 10.0.0.5:6379)");
  };
  const auto colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return fail();
  std::string_view host = hp.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  const auto p = hp.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || ptr != p.data() + p.size() || port < 1 || port > 65535) return fail();
  return {std::string(host), port};
}

/// Parses "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" into the slot and the node.
/// A node without a host (":6381", a node that does not know its own address) is on
/// `from_host`, the host of the node that sent the redirection; "::1:6381" is IPv6 loopback.
inline bool parse_redirect(const std::string& msg, int& slot, std::string& node,
                           std::string_view from_host) {
  const auto a = msg.find(' ');
  const auto b = msg.find(' ', a + 1);
  if (a == std::string::npos || b == std::string::npos) return false;
  const std::string_view digits = std::string_view(msg).substr(a + 1, b - a - 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), slot);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
  node = msg.substr(b + 1);
  // Only a node with one ':' (the port's) and nothing before it lacks its host; an IPv6
  // address such as "::1" starts with ':' too.
  if (!node.empty() && node.front() == ':' && node.find(':', 1) == std::string::npos) {
    node.insert(0, from_host);  // unbracketed, as Redis writes IPv6 nodes (see split_host_port)
  }
  return slot >= 0 && slot < cluster_slots && node.size() > 1;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
