// The bodies of command_policy.hpp (see ../command_policy.hpp): included by that header, or
// compiled once by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../command_policy.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const char* refused_command_hint(const command& cmd) {
  const std::string name = cmd.name();
  std::string sub;
  if (cmd.args().size() > 1) sub = command_word(cmd.args()[1]);
  if (name == "SELECT") return "set the task's `db` field instead";
  if (name == "AUTH") return "put the password in the secret named by `password_secret` instead";
  if (name == "HELLO") return "the protocol and credentials are set by the connection settings";
  if (name == "MULTI" || name == "EXEC" || name == "DISCARD" || name == "WATCH" ||
      name == "UNWATCH") {
    return "a transaction cannot span runs on a shared connection; RedisSet writes collections "
           "atomically, and a batch of commands belongs in one Lua script (EVAL)";
  }
  if (name == "SUBSCRIBE" || name == "PSUBSCRIBE" || name == "SSUBSCRIBE" ||
      name == "UNSUBSCRIBE" || name == "PUNSUBSCRIBE" || name == "SUNSUBSCRIBE") {
    return "a subscription needs a dedicated connection; tasks can PUBLISH, and hiredis's own "
           "API serves subscribers";
  }
  if (name == "MONITOR" || name == "SYNC" || name == "PSYNC") {
    return "it turns the connection into an endless stream; use redis-cli for it";
  }
  if (name == "QUIT" || name == "RESET") {
    return "connections are opened, reset and closed by the library";
  }
  if (name == "ASKING" || name == "READONLY" || name == "READWRITE") {
    return "cluster redirections and replica reads are handled by the library";
  }
  if (name == "CLIENT" && sub == "SETNAME")
    return "set redis_connection_params.client_name instead";
  if (name == "CLIENT" && (sub == "REPLY" || sub == "TRACKING" || sub == "CACHING")) {
    return "it changes how the shared connection answers later commands";
  }
  if (name == "SCRIPT" && sub == "DEBUG") {
    return "it attaches the Lua debugger to the connection (and SYNC mode blocks the server); "
           "use redis-cli --ldb for it";
  }
  if (name == "CLIENT" && (sub == "NO-EVICT" || sub == "NO-TOUCH")) {
    return "it changes how the server treats the shared connection for every later run";
  }
  return nullptr;
}

REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> block_time(const command& cmd) {
  const auto& a = cmd.args();
  const std::string name_text = cmd.name();
  // Compared as a view: lengths first, inline; every run of RedisExecute asks.
  const std::string_view name = name_text;
  // Beyond this a wait is as good as endless; capping also keeps `block + socket_timeout` from
  // overflowing.
  constexpr long long endless_ms = 1'000'000'000'000LL;  // ~31 years
  auto seconds_at = [&](std::size_t i) -> std::optional<std::chrono::milliseconds> {
    if (i >= a.size() || a[i].empty()) return std::nullopt;
    const char* first = a[i].data();
    const char* last = first + a[i].size();
    if (*first == '+' && last - first > 1 && first[1] != '-') ++first;
    double s = 0;
    std::from_chars_result res{};
    if (last - first > 2 && first[0] == '0' && (first[1] == 'x' || first[1] == 'X')) {
      res = std::from_chars(first + 2, last, s, std::chars_format::hex);
    } else {
      res = std::from_chars(first, last, s);
    }
    if (res.ptr != last || (res.ec != std::errc() && res.ec != std::errc::result_out_of_range) ||
        !(s >= 0) || std::isinf(s)) {
      return std::nullopt;  // the server answers "timeout is not a float" or "negative" at once
    }
    const double ms = std::ceil(s * 1000.0);
    if (res.ec == std::errc::result_out_of_range || ms >= static_cast<double>(endless_ms)) {
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<long long>(ms));
  };
  auto ms_at = [&](std::size_t i) -> std::optional<std::chrono::milliseconds> {
    if (i >= a.size()) return std::nullopt;
    long long ms = 0;
    auto res = std::from_chars(a[i].data(), a[i].data() + a[i].size(), ms);
    if (res.ec != std::errc() || res.ptr != a[i].data() + a[i].size() || ms < 0)
      return std::nullopt;
    return std::chrono::milliseconds(ms >= endless_ms ? 0 : ms);
  };
  if (name == "BLPOP" || name == "BRPOP" || name == "BRPOPLPUSH" || name == "BLMOVE" ||
      name == "BZPOPMIN" || name == "BZPOPMAX") {
    return seconds_at(a.size() - 1);
  }
  if (name == "BLMPOP" || name == "BZMPOP") return seconds_at(1);
  if (name == "WAIT") return ms_at(2);
  if (name == "WAITAOF") return ms_at(3);
  if (name == "XREAD" || name == "XREADGROUP") {
    // XREADGROUP GROUP <group> <consumer>: a group or consumer named "block" is not the option.
    std::size_t i = name == "XREADGROUP" && a.size() > 1 && command_word(a[1]) == "GROUP" ? 4 : 1;
    for (; i + 1 < a.size(); ++i) {
      const std::string w = command_word(a[i]);
      if (w == "STREAMS") break;
      if (w == "BLOCK") return ms_at(i + 1);
    }
  }
  return std::nullopt;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
