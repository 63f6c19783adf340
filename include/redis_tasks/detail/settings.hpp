// The connection fields of a task config (host, port, db, password_secret,
// redis_connection_params, secrets) checked and turned into what a client connects with.
#pragma once

#include "../version.hpp"

#include <string>

#include "../errors.hpp"
#include "connection.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The connection settings shared by every config (and connection_handle::settings), checked
/// before any I/O; `task` names the task in messages.
template <class Config>
endpoint_settings settings_of(const Config& c, const std::string& task) {
  const auto& p = c.redis_connection_params;
  auto fail = [&](const std::string& what) { throw config_error(task + ": " + what); };
  if (p.unix_socket.empty()) {
    if (c.host.empty()) fail("host is empty; give a host name or address, or a unix_socket");
    if (c.port < 1 || c.port > 65535) {
      fail("port " + std::to_string(c.port) + " is out of range 1..65535");
    }
  }
  if (c.db < 0) fail("db " + std::to_string(c.db) + " is negative; databases are numbered from 0");
  if (p.connect_timeout.count() < 0 || p.socket_timeout.count() < 0 ||
      p.pool_wait_timeout.count() < 0 || p.health_check_interval.count() < 0 ||
      p.keepalive_interval.count() < 0) {
    fail("redis_connection_params has a negative duration; use 0 for no limit");
  }
  if (p.pool_size < 1) fail("redis_connection_params.pool_size must be at least 1");
  if (p.multiplex.enabled) {
    if (p.multiplex.connections < 1 || p.multiplex.connections > 64) {
      fail("multiplex.connections is " + std::to_string(p.multiplex.connections) +
           "; give 1 to 64 shared connections per server");
    }
    if (p.multiplex.max_in_flight < 1) fail("multiplex.max_in_flight must be at least 1");
    if (p.multiplex.max_bytes_in_flight < 1024) {
      fail("multiplex.max_bytes_in_flight must be at least 1024 bytes");
    }
  }
  if (p.client_name.find_first_of(" \n\r\t") != std::string::npos) {
    fail("client_name may not contain spaces or line breaks");
  }
  if (c.password_secret && c.password_secret->empty()) {
    fail("password_secret is an empty name; use std::nullopt for no password");
  }
  endpoint_settings s;
  s.host = c.host;
  s.port = c.port;
  s.db = c.db;
  s.password_secret = c.password_secret;
  s.secrets = c.secrets;
  s.params = p;
  return s;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
