// Config merging and validation: every mistake is a config_error raised before any I/O.
// The tasks point at a port where nothing listens, so a connection attempt would show up as a
// connection_error instead.
#include <chrono>
#include <filesystem>
#include <fstream>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::config_error;

namespace {
constexpr int closed_port = 1;  // privileged and unused: connecting would fail, not hang

template <class Task>
typename Task::config cfg() {
  typename Task::config c;
  c.host = "127.0.0.1";
  c.port = closed_port;
  c.password_secret = std::nullopt;
  return c;
}
}  // namespace

TEST_CASE("RedisSet without key or value is a config_error before any I/O") {
  using Set = redis_tasks::RedisSet<std::string>;
  Set no_key(cfg<Set>());
  CHECK_THROWS_AS(no_key.run({.redis_val = "v"}), config_error);
  CHECK_THROWS_WITH(no_key.run({.redis_val = "v"}), Contains("redis_key is missing"));
  auto c = cfg<Set>();
  c.redis_key = "k";
  Set no_val(c);
  CHECK_THROWS_WITH(no_val.run(), Contains("redis_val is missing"));
  // With both given the task does try to connect: proof that the checks above ran first.
  CHECK_THROWS_AS(no_val.run({.redis_val = "v"}), redis_tasks::connection_error);
}

TEST_CASE("RedisGet and RedisExecute without key or command are config errors") {
  using Get = redis_tasks::RedisGet<std::string>;
  CHECK_THROWS_WITH(Get(cfg<Get>()).run(), Contains("redis_key is missing"));
  using Exec = redis_tasks::RedisExecute<>;
  CHECK_THROWS_WITH(Exec(cfg<Exec>()).run(), Contains("redis_cmd is missing"));
  CHECK_THROWS_WITH(Exec(cfg<Exec>()).run({.redis_cmd = "   "}), Contains("redis_cmd is empty"));
  CHECK_THROWS_AS(Exec(cfg<Exec>()).run({.redis_cmd = "SET k \"open"}), config_error);
}

TEST_CASE("ex with px, nx with xx, and non-positive expiries are config errors") {
  using Set = redis_tasks::RedisSet<std::string>;
  auto both_expiry = cfg<Set>();
  both_expiry.ex = 10s;
  both_expiry.px = 500ms;
  CHECK_THROWS_WITH(Set(both_expiry), Contains("both ex and px"));
  auto both_cond = cfg<Set>();
  both_cond.nx = true;
  both_cond.xx = true;
  CHECK_THROWS_WITH(Set(both_cond), Contains("both nx and xx"));
  auto zero = cfg<Set>();
  zero.ex = 0s;
  CHECK_THROWS_WITH(Set(zero), Contains("ex must be positive"));
  auto negative = cfg<Set>();
  negative.px = -5ms;
  CHECK_THROWS_WITH(Set(negative), Contains("px must be positive"));

  auto ok = cfg<Set>();
  ok.redis_key = "k";
  ok.redis_val = "v";
  Set task(ok);
  CHECK_THROWS_WITH(task.run({.ex = 1s, .px = 1ms}), Contains("both ex and px"));
  CHECK_THROWS_WITH(task.run({.nx = true, .xx = true}), Contains("both nx and xx"));
  CHECK_THROWS_WITH(task.run({.ex = -1s}), Contains("ex must be positive"));
  CHECK_THROWS_WITH(task.run({.px = 0ms}), Contains("px must be positive"));
  // One spelling per run is fine (and then the task tries the network).
  CHECK_THROWS_AS(task.run({.px = 5ms, .nx = true, .xx = false}), redis_tasks::connection_error);
}

TEST_CASE("bad connection settings are config errors when the task is built") {
  using Get = redis_tasks::RedisGet<std::string>;
  auto port = cfg<Get>();
  port.port = 70000;
  CHECK_THROWS_WITH(Get(port), Contains("port 70000"));
  auto db = cfg<Get>();
  db.db = -1;
  CHECK_THROWS_WITH(Get(db), Contains("db -1"));
  auto host = cfg<Get>();
  host.host.clear();
  CHECK_THROWS_AS(Get(host), config_error);
  auto timeout = cfg<Get>();
  timeout.redis_connection_params.socket_timeout = -1ms;
  CHECK_THROWS_AS(Get(timeout), config_error);
  auto pool = cfg<Get>();
  pool.redis_connection_params.pool_size = 0;
  CHECK_THROWS_AS(Get(pool), config_error);
  auto name = cfg<Get>();
  name.redis_connection_params.client_name = "two words";
  CHECK_THROWS_AS(Get(name), config_error);
  auto retries = cfg<Get>();
  retries.task.max_retries = -1;
  CHECK_THROWS_AS(Get(retries), config_error);
  auto secret = cfg<Get>();
  secret.password_secret = "";
  CHECK_THROWS_AS(Get(secret), config_error);
}

TEST_CASE("connection_params load redis-py names from JSON") {
  const auto p =
      redis_tasks::connection_params::from_json(nlohmann::json{{"socket_timeout", 2.5},
                                                               {"socket_connect_timeout", 1},
                                                               {"socket_keepalive", false},
                                                               {"username", "alice"},
                                                               {"client_name", "etl"},
                                                               {"unix_socket_path", "/tmp/r.sock"},
                                                               {"health_check_interval", 10},
                                                               {"max_connections", 4}});
  CHECK(p.socket_timeout == 2500ms);
  CHECK(p.connect_timeout == 1000ms);
  CHECK_FALSE(p.keepalive);
  CHECK(p.username == "alice");
  CHECK(p.client_name == "etl");
  CHECK(p.unix_socket == "/tmp/r.sock");
  CHECK(p.health_check_interval == 10000ms);
  CHECK(p.pool_size == 4);
  CHECK(redis_tasks::connection_params::from_json(nlohmann::json{{"socket_timeout", nullptr}})
            .socket_timeout == 0ms);
  CHECK(redis_tasks::connection_params::from_json(nullptr).pool_size ==
        redis_tasks::connection_params{}.pool_size);
}

TEST_CASE("unknown or mistyped connection parameters are config errors") {
  using redis_tasks::connection_params;
  CHECK_THROWS_WITH(
      connection_params::from_json(nlohmann::json{{"sockettimeout", 1}}),
      Contains("unknown parameter `sockettimeout`") && Contains("accepted: socket_timeout"));
  CHECK_THROWS_WITH(connection_params::from_json(nlohmann::json{{"socket_timeout", "1"}}),
                    Contains("`socket_timeout` must be"));
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json{{"socket_timeout", -1}}),
                  config_error);
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json{{"max_connections", 0}}),
                  config_error);
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json::array()), config_error);
}

TEST_CASE("commands that would corrupt a shared connection are refused with a hint") {
  using Exec = redis_tasks::RedisExecute<>;
  Exec task(cfg<Exec>());
  CHECK_THROWS_WITH(task.run({.redis_cmd = "select 2"}), Contains("`db` field"));
  CHECK_THROWS_WITH(task.run({.redis_cmd = "AUTH x"}), Contains("password_secret"));
  CHECK_THROWS_AS(task.run({.redis_cmd = "MULTI"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "subscribe ch"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "MONITOR"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "client reply off"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "QUIT"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "HELLO 3"}), config_error);
  auto c = cfg<Exec>();
  c.redis_cmd = "SELECT 1";
  CHECK_THROWS_AS(Exec(c), config_error);
  // An ordinary command passes the checks and reaches the network.
  CHECK_THROWS_AS(task.run({.redis_cmd = "CLIENT LIST"}), redis_tasks::connection_error);
}

TEST_CASE("secret providers") {
  redis_tasks::MapSecretProvider map({{"A", "1"}});
  CHECK(map.get("A") == "1");
  CHECK_FALSE(map.get("B"));
  ::setenv("REDIS_TASKS_TEST_SECRET", "from-env", 1);
  CHECK(redis_tasks::EnvSecretProvider().get("REDIS_TASKS_TEST_SECRET") == "from-env");
  CHECK_FALSE(redis_tasks::EnvSecretProvider().get("REDIS_TASKS_TEST_SECRET_MISSING"));

  char tmpl[] = "/tmp/redis_tasks_secrets.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::filesystem::path dir(tmpl);
  {
    std::ofstream(dir / "REDIS_PASSWORD") << "pa ss\n";
    std::ofstream(dir / "CRLF") << "x\r\n";
  }
  redis_tasks::FileSecretProvider files(dir);
  CHECK(files.get("REDIS_PASSWORD") == "pa ss");
  CHECK(files.get("CRLF") == "x");
  CHECK_FALSE(files.get("missing"));
  CHECK_FALSE(files.get("../etc/passwd"));

  auto empty =
      std::make_shared<redis_tasks::MapSecretProvider>(std::map<std::string, std::string>{});
  auto file_ptr = std::make_shared<redis_tasks::FileSecretProvider>(dir);
  redis_tasks::ChainSecretProvider chain({empty, nullptr, file_ptr});
  CHECK(chain.get("REDIS_PASSWORD") == "pa ss");
  CHECK_FALSE(chain.get("none"));
  std::filesystem::remove_all(dir);
}
