// The body of the test plugins (plugin_a.cpp, plugin_b.cpp), each built as a shared object with
// -fvisibility=hidden: its copy of the library's inline code, the registry of shared pools
// included, is its own. A plugin runs tasks on a connection_handle the program hands it, and
// (to show the default) tasks of its own that name the server by host and port.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <redis_tasks/redis_tasks.hpp>

namespace plugin {

/// Sets `key` to `value` and reads it back with a RedisSet and a RedisGet built for this call
/// on the handle `h`; 0 when both worked.
inline int run_on_handle(const std::shared_ptr<redis_tasks::connection_handle>& h, const char* key,
                         const char* value) {
  try {
    redis_tasks::RedisSet<std::string>::config sc;
    sc.connection = h;
    sc.redis_key = key;
    sc.redis_val = value;
    redis_tasks::RedisGet<std::string>::config gc;
    gc.connection = h;
    gc.redis_key = key;
    if (!redis_tasks::RedisSet<std::string>(sc).run()) return 1;
    return redis_tasks::RedisGet<std::string>(gc).run() == std::optional<std::string>(value) ? 0
                                                                                             : 2;
  } catch (...) {
    return 3;
  }
}

/// The connection fields of a task for host:port without a handle: named `client_name`, one
/// pooled connection at most.
template <class Config>
Config without_handle(const char* host, int port, const char* client_name) {
  Config c;
  c.host = host;
  c.port = port;
  c.password_secret = std::nullopt;
  c.redis_connection_params.client_name = client_name;
  c.redis_connection_params.pool_size = 1;
  return c;
}

/// Sets `key` to `value` and reads it back with the plugin's own tasks for host:port, built
/// on the first call. They live as long as the plugin, as a plugin's tasks do, so their pool
/// stays open between calls. 0 when both worked.
inline int run_without_handle(const char* host, int port, const char* client_name, const char* key,
                              const char* value) {
  using set_t = redis_tasks::RedisSet<std::string>;
  using get_t = redis_tasks::RedisGet<std::string>;
  try {
    static const set_t set(without_handle<set_t::config>(host, port, client_name));
    static const get_t get(without_handle<get_t::config>(host, port, client_name));
    if (!set.run({.redis_key = key, .redis_val = value})) return 1;
    return get.run({.redis_key = key}) == std::optional<std::string>(value) ? 0 : 2;
  } catch (...) {
    return 3;
  }
}

}  // namespace plugin
