// An explicit, shareable connection: the pools (or cluster and sentinel routers) of one server
// set, handed to every task that should share them.
#pragma once

#include "version.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "connection.hpp"
#include "detail/client.hpp"
#include "detail/settings.hpp"
#include "secret_provider.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// One Redis server set (a server, a Redis Cluster or a Sentinel group) and the connections to
/// it, shared on purpose by every task given the handle (`config.connection`).
///
/// Without a handle, tasks whose connection settings are equal share pools through a registry
/// of this copy of the library. That registry is one per program image: a plugin built with
/// `-fvisibility=hidden` (or any shared object that does not export the library's inline
/// functions) has its own, so its tasks open their own connections. A handle made once and
/// passed to the app's tasks and to every plugin makes them share connections whatever the
/// visibility, and never depends on comparing settings.
///
/// Connections are opened on first use. Thread-safe; works across fork() like every task (the
/// child opens connections of its own).
class connection_handle {
 public:
  /// The connection fields of a task config, with the same names, defaults and meanings.
  struct settings {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};      ///< timeouts, user, TLS, pool…
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
  };

  /// A handle for `s`. Throws `config_error` on invalid settings (nothing is opened yet).
  REDIS_TASKS_DECL static std::shared_ptr<connection_handle> make(settings s);

  /// The server set, for messages: "host:port", "cluster host:port" or the sentinel master.
  const std::string& endpoint() const noexcept { return client_->endpoint(); }

  /// The settings the handle was made with.
  const settings& config() const noexcept { return settings_; }

  /// The client every task given this handle runs on (internal).
  const std::shared_ptr<detail::client>& client() const noexcept { return client_; }

 private:
  REDIS_TASKS_DECL explicit connection_handle(settings s);

  settings settings_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/connection_handle.ipp"
#endif
