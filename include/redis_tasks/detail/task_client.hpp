// The client a task runs on: its `connection` handle's, or one made from its own connection
// fields.
#pragma once

#include "../version.hpp"

#include <memory>
#include <optional>
#include <string>

#include "../connection.hpp"
#include "../connection_handle.hpp"
#include "../errors.hpp"
#include "client.hpp"
#include "settings.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Throws `config_error` when a task's state is gone because the task was moved from (`state`
/// is its client or context): a clear error instead of a null pointer. `kind` is the class.
REDIS_TASKS_DECL void check_live(const void* state, const char* kind);

/// The client a task runs on: its handle's, or one for its own connection fields.
/// A config with a `connection` may not also set connection fields of its own: they would be
/// silently ignored (a `db` of 5 writing to the handle's db 0).
template <class Config>
std::shared_ptr<client> client_for(const Config& c, const std::string& label) {
  if (!c.connection) return std::make_shared<client>(settings_of(c, label));
  const connection_params defaults{};
  const auto& p = c.redis_connection_params;
  std::string set;
  auto note = [&set](bool differs, const char* name) {
    if (differs) set += set.empty() ? name : std::string(", ") + name;
  };
  note(c.host != "localhost", "host");
  note(c.port != 6379, "port");
  note(c.db != 0, "db");
  note(c.password_secret != std::optional<std::string>("REDIS_PASSWORD"), "password_secret");
  note(c.secrets != nullptr, "secrets");
  note(p.username != defaults.username || p.client_name != defaults.client_name ||
           p.unix_socket != defaults.unix_socket || p.tls.enabled != defaults.tls.enabled ||
           p.cluster.enabled != defaults.cluster.enabled || !p.sentinel.sentinels.empty() ||
           p.connect_timeout != defaults.connect_timeout ||
           p.socket_timeout != defaults.socket_timeout || p.pool_size != defaults.pool_size ||
           p.multiplex.enabled != defaults.multiplex.enabled,
       "redis_connection_params");
  if (!set.empty()) {
    throw config_error(label + ": the config has a `connection` handle and also sets " + set +
                       ", which the handle decides; set them in connection_handle::settings");
  }
  return c.connection->client();
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/task_client.ipp"
#endif
