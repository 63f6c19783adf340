// How tasks reach Redis: connection parameters (with redis-py's names in JSON), task options,
// and `redis://` URLs.
#pragma once

#include "version.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detail/json.hpp"
#include "errors.hpp"
#include "observe.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

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

/// Multiplexing: runs of every task that shares the pool are written together on a few shared
/// connections per server, and replies are matched to callers in order (off by default).
/// Commands that carry connection state (MULTI/EXEC, blocking commands, SELECT, CLIENT, ...)
/// still take a pooled connection of their own.
struct multiplex_params {
  /// Turn multiplexing on.
  bool enabled = false;
  /// Shared connections per server (per node on a Redis Cluster), 1 to 64.
  std::size_t connections = 2;
  /// The most requests written or waiting to be written at once, per server. A run that finds
  /// the cap reached waits (up to `pool_wait_timeout` and the run's own deadline) and then gets
  /// a `timeout_error`.
  std::size_t max_in_flight = 4096;
  /// The most request bytes written or waiting to be written at once, per server; waits as
  /// `max_in_flight` does. A single request larger than this takes a pooled connection.
  std::size_t max_bytes_in_flight = std::size_t{64} << 20;
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
  /// Multiplexing on a few shared connections per server (off by default).
  multiplex_params multiplex{};

  /// Loads redis-py's `redis.Redis` keyword names from a JSON object: `socket_timeout` and
  /// `socket_connect_timeout` (seconds, number or null for no limit), `socket_keepalive` (bool),
  /// `username`, `client_name`, `unix_socket_path`, `health_check_interval` (seconds),
  /// `max_connections` (pool size, 1 to 100000), the TLS settings `ssl` (bool), `ssl_ca_certs`,
  /// `ssl_ca_path`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs` ("required", "optional"
  /// or "none"; empty or null is an error), `ssl_check_hostname` (bool) and `ssl_server_hostname`,
  /// Redis Cluster's `cluster` (bool), `cluster_nodes` (["host:port", …], turns cluster on) and
  /// `max_redirects` (0 to 100), Redis Sentinel's `sentinels` (["host:port", …]), `sentinel_master`
  /// (or redis-py's `service_name`), `sentinel_password_secret` and `sentinel_username`, plus this
  /// library's `pool_wait_timeout` (seconds), `keepalive_interval` (seconds), `shared_pool`
  /// (bool), `multiplex` (bool), `multiplex_connections` (1 to 64, turns multiplexing on),
  /// `multiplex_max_in_flight` and `multiplex_max_bytes_in_flight`. Seconds may be fractional, from
  /// 0 to 1e9: they are rounded to the nearest millisecond, but a positive value under 1 ms becomes
  /// 1 ms, never 0 ("no limit"). Throws `config_error` on an unknown name (listing the accepted
  /// ones), a wrong type or an out-of-range number.
  REDIS_TASKS_DECL static connection_params from_json(const nlohmann::json& j);
};

/// Settings of the task itself, as Prefect's Task base took them.
struct task_options {
  /// The task's name, as `name()` returns it and run hooks see it (and quoted in messages after
  /// the class). Empty: the class and what the config is about, `RedisSet(greeting)` (the
  /// config's key) or `RedisExecute(INCRBY)` (its command), or just the class when the config
  /// names no key or command.
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

REDIS_TASKS_DECL const char* json_kind(const nlohmann::json& v);

/// The longest duration JSON may give, in seconds (about 31 years): far from where
/// milliseconds, or a clock's time point plus the duration, could overflow.
inline constexpr double max_json_seconds = 1e9;

/// A JSON number as written, for messages (JSON has no NaN or infinity, but a json value built
/// in C++ may hold them).
REDIS_TASKS_DECL std::string json_number_text(const nlohmann::json& v);

/// `s` seconds as whole milliseconds, rounded to the nearest one, except that a positive value
/// under 1 ms becomes 1 ms rather than 0 (which means "no limit"). nullopt when `s` is negative,
/// NaN, or larger than `max_json_seconds`.
REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> milliseconds_from_seconds(double s);

/// A whole JSON number within [lo, hi], or nullopt (not a whole number, or out of range; an
/// unsigned number above the range is never wrapped around).
REDIS_TASKS_DECL std::optional<long long> whole_number_in(const nlohmann::json& v, long long lo,
                                                          long long hi);

[[noreturn]] REDIS_TASKS_DECL void bad_param(std::string_view name, std::string_view want,
                                             const nlohmann::json& got);

REDIS_TASKS_DECL std::chrono::milliseconds seconds_param(std::string_view name,
                                                         const nlohmann::json& v);

REDIS_TASKS_DECL std::string string_param(std::string_view name, const nlohmann::json& v);

REDIS_TASKS_DECL bool bool_param(std::string_view name, const nlohmann::json& v);

REDIS_TASKS_DECL long long int_param(std::string_view name, const nlohmann::json& v, long long lo,
                                     long long hi);

REDIS_TASKS_DECL std::vector<std::string> host_ports_param(std::string_view name,
                                                           const nlohmann::json& v);

/// One name `redis_connection_params` accepts in JSON, and how it sets the params.
struct param_rule {
  const char* name;
  void (*apply)(connection_params& p, std::string_view name, const nlohmann::json& v);
};

/// Every accepted name: what `apply_params` sets and what its unknown-name error lists, from this
/// one table so that the two cannot disagree.
REDIS_TASKS_DECL const std::vector<param_rule>& param_rules();

/// The accepted names, comma-separated, in the table's order.
REDIS_TASKS_DECL std::string accepted_param_names();

/// Sets the fields named in `j` (redis-py names, as `from_json` takes them) and keeps the rest.
REDIS_TASKS_DECL void apply_params(connection_params& p, const nlohmann::json& j);
}  // namespace detail

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/connection.ipp"
#endif
