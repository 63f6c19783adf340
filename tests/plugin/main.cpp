// Two plugins built with -fvisibility=hidden (plugin_a.cpp, plugin_b.cpp), loaded with dlopen:
// given one connection_handle they share its connections; without one, each plugin's copy of
// the library keeps its own registry of pools, so each opens connections of its own.
#include <dlfcn.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "catch.hpp"
#include "test_support.hpp"

using redis_tasks::connection_handle;
using test_support::clients_named;
using test_support::redis_cli;
using test_support::redis_process;

namespace {

/// A plugin loaded with dlopen (RTLD_LOCAL: nothing of it is seen by the others), and its two
/// functions. Unloaded when destroyed.
class plugin {
 public:
  using run_fn = int (*)(const std::shared_ptr<connection_handle>*, const char*);
  using run_default_fn = int (*)(const char*, int, const char*, const char*);

  plugin(const char* path, const std::string& name) : lib_(::dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
    if (lib_ == nullptr) throw std::runtime_error(std::string("dlopen: ") + ::dlerror());
    run = symbol<run_fn>(name + "_run");
    run_default = symbol<run_default_fn>(name + "_run_default");
  }
  plugin(const plugin&) = delete;
  plugin& operator=(const plugin&) = delete;
  ~plugin() { ::dlclose(lib_); }

  run_fn run = nullptr;                  ///< sets a key on the handle it is given
  run_default_fn run_default = nullptr;  ///< sets a key with tasks of its own (no handle)

 private:
  template <class F>
  F symbol(const std::string& name) {
    void* p = ::dlsym(lib_, name.c_str());
    if (p == nullptr) throw std::runtime_error("dlsym " + name + ": not exported");
    F f;
    static_assert(sizeof f == sizeof p);
    std::memcpy(&f, &p, sizeof f);  // object to function pointer, as POSIX allows
    return f;
  }

  void* lib_;
};

}  // namespace

TEST_CASE("hidden-visibility plugins given one handle share its connection") {
  redis_process server;
  plugin a(PLUGIN_A_PATH, "plugin_a");
  plugin b(PLUGIN_B_PATH, "plugin_b");
  redis_tasks::connection_params params;
  params.client_name = "shared-handle";
  params.pool_size = 1;
  const auto handle = connection_handle::make({.host = "127.0.0.1",
                                               .port = server.port(),
                                               .password_secret = std::nullopt,
                                               .redis_connection_params = params});

  for (int i = 0; i < 5; ++i) {
    REQUIRE(a.run(&handle, "key-a") == 0);
    REQUIRE(b.run(&handle, "key-b") == 0);
  }
  CHECK(redis_cli(server.port(), {"GET", "key-a"}) == "a\n");
  CHECK(redis_cli(server.port(), {"GET", "key-b"}) == "b\n");
  // Both plugins, each with its own copy of the library, ran on the handle's one connection.
  CHECK(clients_named(server.port(), "shared-handle") == 1);

  // The program's own tasks on the handle use it too.
  redis_tasks::RedisGet<std::string>::config gc;
  gc.connection = handle;
  gc.redis_key = "key-a";
  CHECK(redis_tasks::RedisGet<std::string>(gc).run() == "a");
  CHECK(clients_named(server.port(), "shared-handle") == 1);
}

TEST_CASE("without a handle, each hidden-visibility plugin opens connections of its own") {
  redis_process server;
  plugin a(PLUGIN_A_PATH, "plugin_a");
  plugin b(PLUGIN_B_PATH, "plugin_b");
  for (int i = 0; i < 5; ++i) {
    REQUIRE(a.run_default("127.0.0.1", server.port(), "no-handle", "key-a") == 0);
    REQUIRE(b.run_default("127.0.0.1", server.port(), "no-handle", "key-b") == 0);
  }
  CHECK(redis_cli(server.port(), {"GET", "key-a"}) == "a\n");
  CHECK(redis_cli(server.port(), {"GET", "key-b"}) == "b\n");
  // Within a plugin, its RedisSet and RedisGet (equal settings, at most one connection each
  // pool) share one pool through that plugin's registry; the two plugins' registries are apart.
  // (Built with default visibility, the registry's function-local statics are STB_GNU_UNIQUE
  // symbols, which the dynamic linker merges even across RTLD_LOCAL: there would be 1 here.)
  CHECK(clients_named(server.port(), "no-handle") == 2);

  // The program's own task with the same settings finds neither plugin's pool: a third.
  auto c = test_support::config_for<redis_tasks::RedisGet<std::string>>(server.port());
  c.redis_connection_params.client_name = "no-handle";
  c.redis_connection_params.pool_size = 1;
  c.redis_key = "key-b";
  const redis_tasks::RedisGet<std::string> get(c);
  CHECK(get.run() == "b");
  CHECK(clients_named(server.port(), "no-handle") == 3);
}
