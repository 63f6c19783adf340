// How tasks reach Redis: connection parameters (with redis-py's names in JSON), task options,
// and `redis://` URLs.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "errors.hpp"
#include "observe.hpp"

namespace redis_tasks {

/// How strictly a TLS client checks the server's certificate (redis-py's `ssl_cert_reqs`).
enum class tls_verify {
  required,  ///< the certificate must chain to a trusted CA (the default)
  optional,  ///< as `required`: a TLS server always presents a certificate (as in Python's ssl)
  none,      ///< no check at all: encrypts, but anyone can pretend to be the server
};

/// TLS settings; `enabled` turns TLS on (a `rediss://` URL does too).
struct tls_params {
  /// Speak TLS on the connection (redis-py `ssl`).
  bool enabled = false;
  /// PEM file of CA certificates to trust (`ssl_ca_certs`); with neither this nor `ca_path`,
  /// the system's default CAs are trusted.
  std::string ca_certs{};
  /// Folder of hashed CA certificates, as `c_rehash` makes them (`ssl_ca_path`).
  std::string ca_path{};
  /// Client certificate chain (PEM) for mutual TLS (`ssl_certfile`).
  std::string certfile{};
  /// Private key (PEM, unencrypted) of the client certificate (`ssl_keyfile`).
  std::string keyfile{};
  /// How strictly the server's certificate is checked (`ssl_cert_reqs`).
  tls_verify cert_reqs = tls_verify::required;
  /// Check that the certificate names the host we connect to (`ssl_check_hostname`).
  bool check_hostname = true;
  /// Name sent as SNI and checked against the certificate instead of `host`, for connecting by
  /// IP address or through a tunnel (`ssl_server_hostname`).
  std::string server_hostname{};
};

/// Redis Cluster: the task's host and port are one seed node, `seeds` adds more.
struct cluster_params {
  /// Route by key slot across a Redis Cluster (redis-py `RedisCluster`).
  bool enabled = false;
  /// More seed nodes as "host:port", tried when the task's own host does not answer.
  std::vector<std::string> seeds{};
  /// The most MOVED/ASK redirections one run follows before giving up.
  int max_redirects = 5;
};

/// Redis Sentinel: the master is looked up by name from the sentinels on every (re)connect.
struct sentinel_params {
  /// Sentinel addresses as "host:port"; non-empty turns sentinel mode on.
  std::vector<std::string> sentinels{};
  /// The name the sentinels know the master by (`sentinel monitor <name> …`).
  std::string master_name{};
  /// Secret holding the sentinels' own password, if they have one (looked up by name through
  /// the task's SecretProvider); the data nodes keep using `password_secret`.
  std::optional<std::string> password_secret{};
  /// ACL user for the sentinels; empty: the default user.
  std::string username{};
};

/// Everything about a connection beyond host, port, db and password. An aggregate: set the
/// fields you need (C++20: designated initializers), or load redis-py's names with `from_json`.
struct connection_params {
  /// ACL user name for `AUTH username password` (Redis 6+); empty: the default user.
  std::string username{};
  /// How long connecting (TCP/unix connect plus AUTH/SELECT/CLIENT SETNAME) may take; 0: no limit.
  std::chrono::milliseconds connect_timeout{5000};
  /// How long one read or write on an open connection may wait; 0: no limit.
  std::chrono::milliseconds socket_timeout{10000};
  /// Path of a unix socket; when set, it is used instead of host and port.
  std::string unix_socket{};
  /// Name given with CLIENT SETNAME on each new connection (shows in CLIENT LIST); empty: none.
  std::string client_name{};
  /// Turn on TCP keepalive probes, so a dead peer is noticed on idle connections.
  bool keepalive = true;
  /// Idle time before the first keepalive probe, and between probes.
  std::chrono::seconds keepalive_interval{15};
  /// The most connections the task's pool opens to this endpoint at once.
  std::size_t pool_size = 8;
  /// How long a run waits for a free pooled connection before `timeout_error`; 0: no limit.
  std::chrono::milliseconds pool_wait_timeout{5000};
  /// Share one pool among all tasks with the same endpoint, db, user and secret (the default);
  /// false gives this task a pool of its own.
  bool shared_pool = true;
  /// A pooled connection idle for longer than this is checked with PING before it is used.
  std::chrono::milliseconds health_check_interval{30000};
  /// TLS (off by default).
  tls_params tls{};
  /// Redis Cluster (off by default).
  cluster_params cluster{};
  /// Redis Sentinel (off unless `sentinel.sentinels` is set).
  sentinel_params sentinel{};

  /// Loads redis-py's `redis.Redis` keyword names from a JSON object: `socket_timeout` and
  /// `socket_connect_timeout` (seconds, number or null for no limit), `socket_keepalive` (bool),
  /// `username`, `client_name`, `unix_socket_path`, `health_check_interval` (seconds),
  /// `max_connections` (pool size), the TLS settings `ssl` (bool), `ssl_ca_certs`,
  /// `ssl_ca_path`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs` ("required", "optional",
  /// "none" or null), `ssl_check_hostname` (bool) and `ssl_server_hostname`, plus this library's
  /// `pool_wait_timeout` (seconds), `keepalive_interval` (seconds) and `shared_pool` (bool).
  /// Throws `config_error` on an unknown name (listing the accepted ones) or a wrong type.
  static connection_params from_json(const nlohmann::json& j);
};

/// Settings of the task itself, as Prefect's Task base took them.
struct task_options {
  /// Name used in messages and logs; empty: the class name.
  std::string name{};
  /// How many times a run is repeated after a `connection_error` (including `timeout_error`).
  /// Never after `config_error`, `reply_error`, `type_error` or `auth_error`.
  int max_retries = 0;
  /// Pause before each retry.
  std::chrono::milliseconds retry_delay{0};
  /// Bounds a whole run, retries and their delays included: no retry starts after it, and each
  /// read and write waits at most what is left of it (connecting keeps `connect_timeout`).
  /// A run that runs out of it is a `timeout_error`. 0: no bound.
  std::chrono::milliseconds timeout{0};
  /// Told of every attempt of every run of this task; empty: the global hook, if any.
  run_hook on_run{};
};

namespace detail {

inline const char* json_kind(const nlohmann::json& v) {
  return v.type_name();
}

[[noreturn]] inline void bad_param(std::string_view name, std::string_view want,
                                   const nlohmann::json& got) {
  throw config_error("redis_connection_params: `" + std::string(name) + "` must be " +
                     std::string(want) + ", got " + json_kind(got));
}

inline std::chrono::milliseconds seconds_param(std::string_view name, const nlohmann::json& v) {
  if (v.is_null()) return std::chrono::milliseconds(0);
  if (!v.is_number()) bad_param(name, "a number of seconds or null", v);
  const double s = v.get<double>();
  if (!(s >= 0) || !std::isfinite(s) || s > 1e9) {
    throw config_error("redis_connection_params: `" + std::string(name) +
                       "` must be a non-negative number of seconds");
  }
  return std::chrono::milliseconds(static_cast<long long>(std::llround(s * 1000.0)));
}

}  // namespace detail

namespace detail {
inline void apply_params(connection_params& p, const nlohmann::json& j);
}  // namespace detail

inline connection_params connection_params::from_json(const nlohmann::json& j) {
  connection_params p;
  detail::apply_params(p, j);
  return p;
}

/// Sets the fields named in `j` (redis-py names, as `from_json` takes them) and keeps the rest.
inline void detail::apply_params(connection_params& p, const nlohmann::json& j) {
  static constexpr const char* accepted =
      "socket_timeout, socket_connect_timeout, socket_keepalive, username, client_name, "
      "unix_socket_path, health_check_interval, max_connections, pool_wait_timeout, "
      "keepalive_interval, shared_pool, ssl, ssl_ca_certs, ssl_ca_path, ssl_certfile, "
      "ssl_keyfile, ssl_cert_reqs, ssl_check_hostname, ssl_server_hostname, cluster, "
      "cluster_nodes, max_redirects, sentinels, sentinel_master, sentinel_password_secret, "
      "sentinel_username";
  if (j.is_null()) return;
  if (!j.is_object()) {
    throw config_error(std::string("redis_connection_params must be a JSON object, got ") +
                       j.type_name());
  }
  for (const auto& item : j.items()) {
    const std::string& name = item.key();
    const nlohmann::json& v = item.value();
    auto want_string = [&]() -> std::string {
      if (v.is_null()) return {};
      if (!v.is_string()) detail::bad_param(name, "a string", v);
      return v.get<std::string>();
    };
    auto want_bool = [&]() -> bool {
      if (!v.is_boolean()) detail::bad_param(name, "true or false", v);
      return v.get<bool>();
    };
    if (name == "socket_timeout") {
      p.socket_timeout = detail::seconds_param(name, v);
    } else if (name == "socket_connect_timeout") {
      p.connect_timeout = detail::seconds_param(name, v);
    } else if (name == "socket_keepalive") {
      p.keepalive = want_bool();
    } else if (name == "username") {
      p.username = want_string();
    } else if (name == "client_name") {
      p.client_name = want_string();
    } else if (name == "unix_socket_path") {
      p.unix_socket = want_string();
    } else if (name == "health_check_interval") {
      p.health_check_interval = detail::seconds_param(name, v);
    } else if (name == "pool_wait_timeout") {
      p.pool_wait_timeout = detail::seconds_param(name, v);
    } else if (name == "keepalive_interval") {
      p.keepalive_interval =
          std::chrono::duration_cast<std::chrono::seconds>(detail::seconds_param(name, v));
    } else if (name == "max_connections") {
      if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > 100000) {
        detail::bad_param(name, "a whole number from 1 to 100000", v);
      }
      p.pool_size = v.get<std::size_t>();
    } else if (name == "shared_pool") {
      p.shared_pool = want_bool();
    } else if (name == "ssl") {
      p.tls.enabled = want_bool();
    } else if (name == "ssl_ca_certs") {
      p.tls.ca_certs = want_string();
    } else if (name == "ssl_ca_path") {
      p.tls.ca_path = want_string();
    } else if (name == "ssl_certfile") {
      p.tls.certfile = want_string();
    } else if (name == "ssl_keyfile") {
      p.tls.keyfile = want_string();
    } else if (name == "ssl_cert_reqs") {
      const std::string r = want_string();
      if (r == "required") {
        p.tls.cert_reqs = tls_verify::required;
      } else if (r == "optional") {
        p.tls.cert_reqs = tls_verify::optional;
      } else if (r == "none" || r.empty()) {
        p.tls.cert_reqs = tls_verify::none;
      } else {
        throw config_error(
            "redis_connection_params: `ssl_cert_reqs` must be \"required\", "
            "\"optional\" or \"none\", got \"" +
            r + "\"");
      }
    } else if (name == "cluster") {
      p.cluster.enabled = want_bool();
    } else if (name == "cluster_nodes" || name == "sentinels") {
      if (!v.is_array()) bad_param(name, "an array of \"host:port\" strings", v);
      std::vector<std::string> list;
      for (const auto& e : v) {
        if (!e.is_string()) bad_param(name, "an array of \"host:port\" strings", v);
        list.push_back(e.get<std::string>());
      }
      if (name == "cluster_nodes") {
        p.cluster.enabled = true;
        p.cluster.seeds = std::move(list);
      } else {
        p.sentinel.sentinels = std::move(list);
      }
    } else if (name == "max_redirects") {
      if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > 100) {
        bad_param(name, "a whole number from 0 to 100", v);
      }
      p.cluster.max_redirects = v.get<int>();
    } else if (name == "sentinel_master" || name == "service_name") {
      p.sentinel.master_name = want_string();
    } else if (name == "sentinel_password_secret") {
      const std::string s = want_string();
      p.sentinel.password_secret = s.empty() ? std::nullopt : std::optional<std::string>(s);
    } else if (name == "sentinel_username") {
      p.sentinel.username = want_string();
    } else if (name == "ssl_check_hostname") {
      p.tls.check_hostname = want_bool();
    } else if (name == "ssl_server_hostname") {
      p.tls.server_hostname = want_string();
    } else {
      throw config_error("redis_connection_params: unknown parameter `" + name +
                         "`; accepted: " + accepted);
    }
  }
}

}  // namespace redis_tasks
