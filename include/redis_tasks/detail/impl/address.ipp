// The bodies of address.hpp (see ../address.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../address.hpp"

#include <charconv>
#include <cstdlib>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::pair<std::string, int> split_host_port(std::string_view hp,
                                                             std::string_view what) {
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

REDIS_TASKS_DECL bool parse_redirect(const std::string& msg, int& slot, std::string& node,
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
