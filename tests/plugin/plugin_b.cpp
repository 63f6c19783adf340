// Test plugin B: see plugin.hpp. Built with -fvisibility=hidden -fvisibility-inlines-hidden,
// so the two functions below are all it exports; the library's code in it is hidden.
#include "plugin.hpp"

/// Sets `key` to "b" and reads it back on the program's handle `*h`; 0 on success.
extern "C" __attribute__((visibility("default"))) int plugin_b_run(
    const std::shared_ptr<redis_tasks::connection_handle>* h, const char* key) {
  return plugin::run_on_handle(*h, key, "b");
}

/// Sets `key` to "b" and reads it back with the plugin's own tasks for host:port (no handle),
/// their connections named `client_name`; 0 on success.
extern "C" __attribute__((visibility("default"))) int plugin_b_run_default(const char* host,
                                                                           int port,
                                                                           const char* client_name,
                                                                           const char* key) {
  return plugin::run_without_handle(host, port, client_name, key, "b");
}
