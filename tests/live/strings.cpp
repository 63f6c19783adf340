// RedisSet/RedisGet/RedisExecute with string values against a real server: Prefect's rules,
// precedence of run() over config, TTLs, NX/XX, binary safety, db isolation, connection reuse.
#include <chrono>
#include <string>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::config_for;
using test_support::fixture;
using test_support::unique_key;

namespace {

long long pttl(int port, const std::string& key) {
  return RedisExecute<long long>([&] {
           auto c = config_for<RedisExecute<long long>>(port);
           c.redis_cmd = redis_tasks::command{std::vector<std::string>{"PTTL", key}};
           return c;
         }())
      .run();
}

std::optional<std::string> get(int port, const std::string& key, int db = 0) {
  auto c = config_for<RedisGet<>>(port);
  c.redis_key = key;
  c.db = db;
  return RedisGet<>(c).run();
}

}  // namespace

TEST_CASE("set then get a string, and a missing key is nullopt") {
  const int port = fixture("plain").port;
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = unique_key("greeting");
  sc.redis_val = "hello";
  CHECK(RedisSet<>(sc).run());
  CHECK(get(port, *sc.redis_key) == "hello");
  CHECK(get(port, unique_key("never-set")) == std::nullopt);
}

TEST_CASE("run() values win over config values, field by field") {
  const int port = fixture("plain").port;
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = unique_key("cfg-key");
  sc.redis_val = "cfg-val";
  RedisSet<> task(sc);

  const std::string run_key = unique_key("run-key");
  CHECK(task.run({.redis_key = run_key}));
  CHECK(get(port, run_key) == "cfg-val");  // value from config
  CHECK(task.run({.redis_val = "run-val"}));
  CHECK(get(port, *sc.redis_key) == "run-val");  // key from config
  CHECK(task.run({.redis_key = run_key, .redis_val = "both"}));
  CHECK(get(port, run_key) == "both");

  auto gc = config_for<RedisGet<>>(port);
  gc.redis_key = *sc.redis_key;
  RedisGet<> getter(gc);
  CHECK(getter.run() == "run-val");
  CHECK(getter.run({.redis_key = run_key}) == "both");
}

TEST_CASE("ex and px set the TTL, and a run's expiry replaces the config's") {
  const int port = fixture("plain").port;
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = unique_key("ttl");
  sc.redis_val = "v";
  sc.ex = 100s;
  RedisSet<> task(sc);
  REQUIRE(task.run());
  const auto from_ex = pttl(port, *sc.redis_key);
  CHECK(from_ex > 95000);
  CHECK(from_ex <= 100000);

  REQUIRE(task.run({.px = 50000ms}));  // px at run time replaces the config's ex
  const auto from_px = pttl(port, *sc.redis_key);
  CHECK(from_px > 40000);  // seconds of room for a loaded machine
  CHECK(from_px <= 50000);

  REQUIRE(task.run({.ex = 30s}));
  const auto from_run_ex = pttl(port, *sc.redis_key);
  CHECK(from_run_ex > 25000);
  CHECK(from_run_ex <= 30000);  // the run's ex replaced the earlier px

  auto plain = config_for<RedisSet<>>(port);
  plain.redis_key = sc.redis_key;
  plain.redis_val = "v";
  REQUIRE(RedisSet<>(plain).run());  // like SET: a write without expiry clears the TTL
  CHECK(pttl(port, *sc.redis_key) == -1);
}

TEST_CASE("nx and xx return false when they prevent the write") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("cond");
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = key;
  sc.redis_val = "first";
  sc.nx = true;
  RedisSet<> nx_task(sc);
  CHECK(nx_task.run());
  CHECK_FALSE(nx_task.run({.redis_val = "second"}));
  CHECK(get(port, key) == "first");

  // A run's xx replaces the config's nx.
  CHECK(nx_task.run({.redis_val = "third", .xx = true}));
  CHECK(get(port, key) == "third");
  CHECK_FALSE(nx_task.run({.redis_key = unique_key("cond-absent"), .xx = true}));
  CHECK(get(port, unique_key("cond-absent")) == std::nullopt);
  // A run's nx = false lifts the config's condition.
  CHECK(nx_task.run({.redis_val = "fourth", .nx = false}));
  CHECK(get(port, key) == "fourth");
}

TEST_CASE("keys and values are binary-safe") {
  const int port = fixture("plain").port;
  const std::string key = unique_key(std::string("sp ace\r\n\0key", 12));
  std::string value("a\0b\r\nc d\xff", 9);
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 131 % 256);

  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = key;
  RedisSet<> task(sc);
  CHECK(task.run({.redis_val = value}));
  CHECK(get(port, key) == value);
  CHECK(task.run({.redis_val = big}));
  CHECK(get(port, key) == big);
  CHECK(task.run({.redis_val = std::string()}));
  CHECK(get(port, key) == std::string());

  RedisSet<std::string_view> view_task([&] {
    auto c = config_for<RedisSet<std::string_view>>(port);
    c.redis_key = key;
    return c;
  }());
  CHECK(view_task.run({.redis_val = std::string_view(value)}));
  CHECK(get(port, key) == value);
}

TEST_CASE("db isolates keys") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("db");
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = key;
  sc.redis_val = "in-db-3";
  sc.db = 3;
  REQUIRE(RedisSet<>(sc).run());
  CHECK(get(port, key, 3) == "in-db-3");
  CHECK(get(port, key, 0) == std::nullopt);
}

TEST_CASE("a task reuses one connection across many runs") {
  const int port = fixture("plain").port;
  const std::string name = "reuse" + std::to_string(::getpid());
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = unique_key("reuse");
  sc.redis_val = "v";
  sc.redis_connection_params.client_name = name;
  sc.redis_connection_params.shared_pool = false;
  RedisSet<> task(sc);
  for (int i = 0; i < 200; ++i)
    REQUIRE(task.run());

  const std::string list = test_support::redis_cli(port, {"CLIENT", "LIST"});
  std::size_t count = 0;
  for (auto pos = list.find("name=" + name + " "); pos != std::string::npos;
       pos = list.find("name=" + name + " ", pos + 1)) {
    ++count;
  }
  CHECK(count == 1);
}

TEST_CASE("tasks with the same settings share a pool") {
  const int port = fixture("plain").port;
  const std::string name = "shared" + std::to_string(::getpid());
  auto sc = config_for<RedisSet<>>(port);
  sc.redis_key = unique_key("shared");
  sc.redis_val = "v";
  sc.redis_connection_params.client_name = name;
  auto gc = config_for<RedisGet<>>(port);
  gc.redis_key = sc.redis_key;
  gc.redis_connection_params.client_name = name;
  RedisSet<> a(sc);
  RedisSet<> b(sc);
  RedisGet<> g(gc);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(a.run());
    REQUIRE(b.run());
    REQUIRE(g.run() == "v");
  }
  const std::string list = test_support::redis_cli(port, {"CLIENT", "LIST"});
  std::size_t count = 0;
  for (auto pos = list.find("name=" + name + " "); pos != std::string::npos;
       pos = list.find("name=" + name + " ", pos + 1)) {
    ++count;
  }
  CHECK(count == 1);
}

TEST_CASE("RedisExecute runs command lines and returns replies") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("counter");
  auto ec = config_for<RedisExecute<>>(port);
  RedisExecute<> exec(ec);
  CHECK(exec.run({.redis_cmd = "INCRBY " + key + " 5"}) == redis_tasks::reply::make_integer(5));
  RedisExecute<long long> incr(config_for<RedisExecute<long long>>(port));
  CHECK(incr.run({.redis_cmd = "INCR " + key}) == 6);
  CHECK(exec.run({.redis_cmd = "PING"}).to_string() == "PONG");

  try {
    exec.run({.redis_cmd = "LPUSH " + key + " x"});
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.code() == "WRONGTYPE");
    CHECK(std::string(e.what()).find("LPUSH") != std::string::npos);
  }
  // The connection stays usable after an error reply.
  CHECK(incr.run({.redis_cmd = "INCR " + key}) == 7);
}
