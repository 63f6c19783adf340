// Redis URLs: `redis://`, `rediss://` and `unix://` fill a task config's host, port, db and
// connection parameters in one string, as redis-py's `from_url` does.
#pragma once

#include "version.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "detail/json.hpp"
#include "errors.hpp"
#include "secret_provider.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// What a Redis URL says. `password` is kept apart so it can go into a secret provider.
struct redis_url {
  std::string host = "localhost";       ///< host name or address (brackets removed for IPv6)
  int port = 6379;                      ///< TCP port
  int db = 0;                           ///< database from the path or `?db=`
  connection_params params;             ///< username, TLS, unix socket and query options
  std::optional<std::string> password;  ///< the password, if the URL has one
};

namespace detail {

REDIS_TASKS_DECL std::string percent_decode(std::string_view s, std::string_view what);

// A query value as JSON: true/false/null and numbers as such, anything else as a string.
// (Not for `ssl_cert_reqs`, which parse_redis_url passes on as written.)
REDIS_TASKS_DECL nlohmann::json query_value(const std::string& v);

/// The provider that serves a URL's password as the secret `name`, and in front of `base` when
/// a config has its own provider. Configs given equal URL credentials (and the same `base`)
/// get the same provider object while one of them is alive, so their tasks share a connection
/// pool: pools are keyed by the provider's address. Entries are weak, so a provider lives only
/// as long as the configs and tasks that hold it; dead entries are dropped on the next call.
/// The registry keeps no copy of a password: a live provider is asked for its own.
REDIS_TASKS_DECL std::shared_ptr<const SecretProvider> url_secrets(
    const std::string& name, const std::string& password,
    const std::shared_ptr<const SecretProvider>& base);

REDIS_TASKS_DECL int parse_int(std::string_view s, std::string_view what);

}  // namespace detail

/// Parses `redis://[[user][:password]@]host[:port][/db][?option=value&…]`, the same with
/// `rediss://` (TLS on), `unix://[[user][:password]@]/path/to/socket[?db=N&…]`,
/// `redis+cluster://[cred@]host:port,host:port,…[?…]` (Redis Cluster, every host a seed) and
/// `redis+sentinel://[cred@]host:26379,host:26379,…/master_name[/db][?…]` (Redis Sentinel; the
/// credentials are the data nodes'). `rediss+cluster` and `rediss+sentinel` add TLS. Options are
/// the redis-py names that `connection_params::from_json` accepts (`socket_timeout=2.5`,
/// `ssl_cert_reqs=none`, `client_name=etl`, …) plus `db`; `ssl_cert_reqs` takes exactly
/// `required`, `optional` or `none` (an empty value is an error). Throws `config_error` (which
/// never quotes the password) on anything else. The URL's parameters are applied onto `base`.
REDIS_TASKS_DECL redis_url parse_redis_url(std::string_view url, connection_params base = {});

/// Points a task config at the server a URL names: sets `host`, `port`, `db` and the URL's
/// connection parameters (other fields of `redis_connection_params` are kept). A password in
/// the URL is served only to configs given that URL, as the secret named by `password_secret`
/// (default "REDIS_PASSWORD"), ahead of the config's own provider; it never appears in a
/// message. Configs given the same URL password (and the same own provider) get the same
/// provider object, so their tasks share connection pools as tasks with equal settings do.
template <class Config>
Config& apply_url(Config& cfg, std::string_view url) {
  redis_url u = parse_redis_url(url, cfg.redis_connection_params);
  cfg.host = std::move(u.host);
  cfg.port = u.port;
  cfg.db = u.db;
  cfg.redis_connection_params = std::move(u.params);
  if (u.password) {
    const std::string name = cfg.password_secret.value_or("REDIS_PASSWORD");
    cfg.password_secret = name;
    cfg.secrets = detail::url_secrets(name, *u.password, cfg.secrets);
  }
  return cfg;
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/url.ipp"
#endif
