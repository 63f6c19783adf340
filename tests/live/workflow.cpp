// Fitting into workflow apps: tasks as callables, copies sharing connections, configs from
// JSON, run hooks (that never see a value or a password), and a timeout for a whole run.
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::fixture;

namespace {

// Collects run events, copying what the views point at.
struct recorded {
  std::string task, key, command, endpoint, error_type, error;
  int attempt;
  bool ok, will_retry;
  std::size_t batch_size;
};

struct recorder {
  std::mutex m;
  std::vector<recorded> events;
  redis_tasks::run_hook hook() {
    return [this](const redis_tasks::run_event& e) {
      std::lock_guard<std::mutex> lock(m);
      events.push_back({std::string(e.task), std::string(e.key), std::string(e.command),
                        std::string(e.endpoint), std::string(e.error_type), std::string(e.error),
                        e.attempt, e.ok, e.will_retry, e.batch_size});
    };
  }
};

}  // namespace

TEST_CASE("tasks are callables: std::function, std::async, thread pools") {
  const int port = fixture("plain").port;
  auto sc = test_support::config_for<RedisSet<long long>>(port);
  sc.redis_key = test_support::unique_key("callable");
  auto gc = test_support::config_for<RedisGet<long long>>(port);
  gc.redis_key = sc.redis_key;
  RedisSet<long long> set(sc);
  RedisGet<long long> get(gc);

  std::function<bool(const RedisSet<long long>::overrides&)> store = set;
  CHECK(store({.redis_val = 41}));
  std::function<std::optional<long long>()> load = [&get] { return get(); };
  CHECK(load() == 41);

  // Fan out with std::async: each future runs a copy of the task (copies share the pool).
  std::vector<std::future<bool>> futures;
  for (long long i = 0; i < 8; ++i) {
    futures.push_back(
        std::async(std::launch::async, set,
                   RedisSet<long long>::overrides{
                       .redis_key = *sc.redis_key + ":" + std::to_string(i), .redis_val = i * i}));
  }
  for (auto& f : futures)
    CHECK(f.get());
  for (long long i = 0; i < 8; ++i) {
    CHECK(get({.redis_key = *sc.redis_key + ":" + std::to_string(i)}) == i * i);
  }
}

TEST_CASE("copies of a task share its connections") {
  const int port = fixture("plain").port;
  const std::string name = "copies" + std::to_string(::getpid());
  auto gc = test_support::config_for<RedisGet<>>(port);
  gc.redis_key = test_support::unique_key("copies");
  gc.redis_connection_params.client_name = name;
  gc.redis_connection_params.shared_pool = false;  // only copies may share
  RedisGet<> original(gc);
  RedisGet<> copy = original;
  RedisGet<> moved = std::move(copy);
  for (int i = 0; i < 10; ++i) {
    REQUIRE_FALSE(original.run());
    REQUIRE_FALSE(moved.run());
  }
  CHECK(test_support::clients_named(port, name) == 1);
  CHECK(original.name() == "RedisGet(" + *gc.redis_key + ")");
}

TEST_CASE("configs load from JSON with Prefect's names") {
  const auto set_cfg =
      nlohmann::json{
          {"host", "cache.internal"},
          {"port", 6380},
          {"db", 2},
          {"password_secret", "MY_SECRET"},
          {"redis_connection_params", {{"socket_timeout", 1.5}, {"client_name", "etl"}}},
          {"redis_key", "k"},
          {"redis_val", {1, 2, 3}},
          {"px", 1500},
          {"nx", true},
          {"task", {{"name", "store"}, {"max_retries", 3}, {"retry_delay", 0.25}, {"timeout", 5}}}}
          .get<RedisSet<std::vector<int>>::config>();
  CHECK(set_cfg.host == "cache.internal");
  CHECK(set_cfg.port == 6380);
  CHECK(set_cfg.db == 2);
  CHECK(set_cfg.password_secret == "MY_SECRET");
  CHECK(set_cfg.redis_connection_params.socket_timeout == 1500ms);
  CHECK(set_cfg.redis_connection_params.client_name == "etl");
  CHECK(set_cfg.redis_key == "k");
  CHECK(set_cfg.redis_val == std::vector<int>{1, 2, 3});
  CHECK(set_cfg.px == 1500ms);
  CHECK(set_cfg.nx);
  CHECK(set_cfg.task.name == "store");
  CHECK(set_cfg.task.max_retries == 3);
  CHECK(set_cfg.task.retry_delay == 250ms);
  CHECK(set_cfg.task.timeout == 5000ms);

  const auto exec_line = nlohmann::json{
      {"redis_cmd", "INCRBY \"a b\" 5"},
      {"password_secret",
       nullptr}}.get<RedisExecute<>::config>();
  CHECK(exec_line.redis_cmd->args() == std::vector<std::string>{"INCRBY", "a b", "5"});
  CHECK_FALSE(exec_line.password_secret);
  const auto exec_argv =
      nlohmann::json{{"redis_cmd", {"SET", "k", "v w"}}}.get<RedisExecute<>::config>();
  CHECK(exec_argv.redis_cmd->args() == std::vector<std::string>{"SET", "k", "v w"});
  const auto from_url =
      nlohmann::json{{"url", "redis://h:7000/3"}, {"redis_key", "x"}}.get<RedisGet<>::config>();
  CHECK(from_url.host == "h");
  CHECK(from_url.port == 7000);
  CHECK(from_url.db == 3);

  const auto zset = nlohmann::json{{"redis_val", {{"a", 1.5}, {"b", 2}}}}
                        .get<RedisSet<redis_tasks::sorted_set<std::string>>::config>();
  CHECK(zset.redis_val == redis_tasks::sorted_set<std::string>{{"a", 1.5}, {"b", 2.0}});
}

TEST_CASE("a wrong JSON field name or type is a config_error naming the field") {
  using redis_tasks::config_error;
  using json = nlohmann::json;
  auto get_cfg = [](const json& j) { return j.get<RedisGet<>::config>(); };
  auto set_int_cfg = [](const json& j) { return j.get<RedisSet<int>::config>(); };
  auto exec_cfg = [](const json& j) { return j.get<RedisExecute<>::config>(); };
  const json misspelt = {{"redis_kye", "k"}};
  CHECK_THROWS_WITH(get_cfg(misspelt), Contains("unknown field `redis_kye`") &&
                                           Contains("accepted:") && Contains("redis_key"));
  const json port_text = {{"port", "6379"}};
  CHECK_THROWS_WITH(get_cfg(port_text), Contains("config.port") && Contains("whole number"));
  const json text_for_int = {{"redis_val", "x"}};
  CHECK_THROWS_WITH(set_int_cfg(text_for_int), Contains("config.redis_val"));
  CHECK_THROWS_AS(get_cfg(text_for_int), config_error);  // RedisGet has no redis_val
  const json numeric_cmd = {{"redis_cmd", 5}};
  CHECK_THROWS_AS(exec_cfg(numeric_cmd), config_error);
  const json bad_task = {{"task", {{"retries", 1}}}};
  CHECK_THROWS_AS(get_cfg(bad_task), config_error);
  const json bad_params = {{"redis_connection_params", {{"nope", 1}}}};
  CHECK_THROWS_AS(get_cfg(bad_params), config_error);

  char tmpl[] = "/tmp/redis_tasks_json.XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  const std::string text = "{\n  \"redis_key\": \"k\",\n  \"port\": 63 79\n}\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  CHECK_THROWS_WITH(redis_tasks::load_json_file(tmpl), Contains("line 3"));
  ::unlink(tmpl);
}

TEST_CASE("run hooks hear of every attempt, with names and outcomes but no values or passwords") {
  const int port = fixture("plain").port;
  recorder per_task;
  const std::string secret_value = "VALUE-THAT-MUST-NOT-LEAK";
  auto sc = test_support::config_for<RedisSet<>>(port);
  sc.redis_key = test_support::unique_key("hooked");
  sc.task.on_run = per_task.hook();
  RedisSet<> set(sc);
  REQUIRE(set.run({.redis_val = secret_value}));

  auto ec = test_support::config_for<RedisExecute<>>(port);
  ec.task.on_run = per_task.hook();
  ec.task.name = "bad-command";
  RedisExecute<> exec(ec);
  CHECK_THROWS_AS(exec.run({.redis_cmd = "INCR " + *sc.redis_key}), redis_tasks::reply_error);

  REQUIRE(per_task.events.size() == 2);
  const auto& ok = per_task.events[0];
  CHECK(ok.task == "RedisSet(" + *sc.redis_key + ")");
  CHECK(ok.key == *sc.redis_key);
  CHECK(ok.command == "SET");
  CHECK(ok.endpoint == "127.0.0.1:" + std::to_string(port));
  CHECK(ok.ok);
  CHECK(ok.attempt == 1);
  const auto& bad = per_task.events[1];
  CHECK(bad.task == "bad-command");
  CHECK(bad.command == "INCR");
  CHECK_FALSE(bad.ok);
  CHECK(bad.error_type == "reply_error");
  CHECK_THAT(bad.error, Contains("ERR"));

  // A global hook hears tasks without their own; a wrong password and retries are reported
  // attempt by attempt, and neither the password nor any value shows up anywhere.
  recorder global;
  redis_tasks::set_global_run_hook(global.hook());
  const std::string password = "PASSWORD-THAT-MUST-NOT-LEAK";
  auto gc = test_support::config_for<RedisGet<>>(fixture("auth").port);
  gc.password_secret = "P";
  gc.secrets = std::make_shared<redis_tasks::MapSecretProvider>(
      std::map<std::string, std::string>{{"P", password}});
  gc.redis_key = *sc.redis_key;
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::auth_error);
  auto down = test_support::config_for<RedisGet<>>(1);
  down.redis_key = "k";
  down.task.max_retries = 2;
  CHECK_THROWS_AS(RedisGet<>(down).run(), redis_tasks::connection_error);
  redis_tasks::set_global_run_hook(nullptr);
  CHECK_THROWS_AS(RedisGet<>(down).run(), redis_tasks::connection_error);  // not recorded

  REQUIRE(global.events.size() == 4);
  CHECK(global.events[0].error_type == "auth_error");
  for (int i = 1; i <= 3; ++i) {
    CHECK(global.events[i].attempt == i);
    CHECK(global.events[i].error_type == "connection_error");
    CHECK(global.events[i].will_retry == (i < 3));
  }
  for (const auto* list : {&per_task.events, &global.events}) {
    for (const auto& e : *list) {
      for (const std::string* field : {&e.task, &e.key, &e.command, &e.endpoint, &e.error}) {
        CHECK(field->find(secret_value) == std::string::npos);
        CHECK(field->find(password) == std::string::npos);
      }
    }
  }
}

TEST_CASE("task.timeout bounds a whole run, retries included") {
  test_support::fake_server silent([](int fd) { test_support::read_until(fd, "never"); });
  auto gc = test_support::config_for<RedisGet<>>(silent.port());
  gc.redis_key = "k";
  gc.redis_connection_params.socket_timeout = 10s;
  gc.redis_connection_params.shared_pool = false;
  gc.task.timeout = 400ms;
  gc.task.max_retries = 50;
  gc.task.retry_delay = 50ms;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::timeout_error);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 300ms);
  // Not even one socket timeout (let alone 50): the deadline cut the first attempt short. Half
  // of one leaves a loaded machine plenty of room.
  CHECK(took < gc.redis_connection_params.socket_timeout / 2);

  // A quick run is not affected, and the connection's own timeout comes back afterwards.
  const int port = fixture("plain").port;
  auto fast = test_support::config_for<RedisExecute<std::string>>(port);
  fast.task.timeout = 5s;
  fast.redis_cmd = "PING";
  RedisExecute<std::string> ping(fast);
  for (int i = 0; i < 3; ++i)
    CHECK(ping.run() == "PONG");
}

TEST_CASE("task.timeout also bounds blocking commands and the wait for a pooled connection") {
  const int port = fixture("plain").port;
  auto c = test_support::config_for<RedisExecute<redis_tasks::reply>>(port);
  c.task.timeout = 300ms;
  RedisExecute<redis_tasks::reply> exec(c);
  const std::string empty = test_support::unique_key("never-pushed");
  // 0: forever, still bounded by the run. A run that ignored its timeout would wait 30 s, so a
  // bound of 10 s tells the two apart however loaded the machine is.
  for (const std::string block : {"30", "0"}) {
    const auto start = std::chrono::steady_clock::now();
    try {
      exec.run(
          {.redis_cmd = redis_tasks::command(std::vector<std::string>{"BLPOP", empty, block})});
      FAIL("expected timeout_error");
    } catch (const redis_tasks::timeout_error& e) {
      CHECK_THAT(e.what(), Contains("task.timeout"));
    }
    CHECK(std::chrono::steady_clock::now() - start < 10s);
  }

  // One connection in the pool, held by a long BLPOP: a run with a timeout does not wait for
  // it past its deadline (the pool would make it wait 30 s, the holder holds it for 30 s).
  const std::string name = test_support::unique_key("one-conn-pool");
  const std::string held_key = test_support::unique_key("held");
  auto holder_cfg = test_support::config_for<RedisExecute<redis_tasks::reply>>(port);
  holder_cfg.redis_connection_params.client_name = name;
  holder_cfg.redis_connection_params.pool_size = 1;
  holder_cfg.redis_connection_params.pool_wait_timeout = 30s;
  auto waiter_cfg = holder_cfg;
  waiter_cfg.task.timeout = 300ms;
  RedisExecute<redis_tasks::reply> holder(holder_cfg);
  RedisExecute<redis_tasks::reply> waiter(waiter_cfg);
  auto held = std::async(std::launch::async, [&] {
    return holder.run(
        {.redis_cmd = redis_tasks::command(std::vector<std::string>{"BLPOP", held_key, "30"})});
  });
  // Pushing the key ends the BLPOP: the test never waits its 30 s, whatever fails.
  bool released = false;
  const auto release = [&] {
    if (!released) test_support::redis_cli(port, {"RPUSH", held_key, "released"});
    released = true;
  };
  test_support::at_scope_exit release_on_failure(release);
  test_support::wait_until([&] { return test_support::blocked_client_ids(port, name).size() == 1; },
                           10s, "the holder's BLPOP to block on the server");
  const auto start = std::chrono::steady_clock::now();
  try {
    waiter.run({.redis_cmd = "PING"});
    FAIL("expected timeout_error");
  } catch (const redis_tasks::timeout_error& e) {
    CHECK_THAT(e.what(), Contains("task.timeout") && Contains("busy"));
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  release();
  CHECK(held.get().to_json() == nlohmann::json::array({held_key, "released"}));
}

TEST_CASE("a batch with a blocking command gives its connection back with its socket timeout") {
  // A private server whose DEBUG SLEEP stands for a server that stops answering.
  test_support::redis_process server({"--enable-debug-command", "yes"});
  auto c = test_support::config_for<RedisExecute<redis_tasks::reply>>(server.port());
  c.redis_connection_params.socket_timeout = 500ms;
  c.redis_connection_params.pool_size = 1;
  RedisExecute<redis_tasks::reply> exec(c);
  REQUIRE(exec.run({.redis_cmd = "RPUSH q x"}).integer() == 1);
  // The BLPOP stretches the connection's timeout; the last item is refused before any I/O.
  const auto results = exec.run_many({{.redis_cmd = "BLPOP q 10"}, {.redis_cmd = "SELECT 1"}});
  REQUIRE(results.size() == 2);
  CHECK(results[0].ok());
  CHECK_FALSE(results[1].ok());
  // With the stretched 10.5 s the server would answer after its 2 s sleep: a timeout_error at
  // all shows that the 500 ms came back.
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(exec.run({.redis_cmd = "DEBUG SLEEP 2"}), redis_tasks::timeout_error);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("run hooks hear of a batch as one event") {
  const int port = fixture("plain").port;
  recorder events;
  auto c = test_support::config_for<RedisExecute<long long>>(port);
  c.task.on_run = events.hook();
  RedisExecute<long long> exec(c);
  const std::string k = test_support::unique_key("batch-hook");
  const auto results =
      exec.run_many({{.redis_cmd = redis_tasks::command(std::vector<std::string>{"INCR", k})},
                     {.redis_cmd = redis_tasks::command(std::vector<std::string>{"INCR", k})}});
  CHECK(results[1].value() == 2);
  const auto mixed = exec.run_many(
      {{.redis_cmd = redis_tasks::command(std::vector<std::string>{"INCR", k})},
       {.redis_cmd = redis_tasks::command(std::vector<std::string>{"HGET", k, "f"})}});
  CHECK_FALSE(mixed[1].ok());
  REQUIRE(events.events.size() == 2);
  CHECK(events.events[0].ok);
  CHECK(events.events[0].batch_size == 2);
  CHECK(events.events[0].command == "INCR");
  CHECK_FALSE(events.events[1].ok);
  CHECK(events.events[1].command == "various");
  CHECK(events.events[1].error_type == "reply_error");
  CHECK_THAT(events.events[1].error, Contains("item 1 of 2") && Contains("WRONGTYPE"));
}

TEST_CASE("errors name the task and its key, and leave out arguments the server echoes") {
  auto down = test_support::config_for<RedisGet<>>(1);
  down.redis_key = "the-key";
  try {
    RedisGet<>(down).run();
    FAIL("expected connection_error");
  } catch (const redis_tasks::connection_error& e) {
    CHECK_THAT(e.what(), Contains("RedisGet(the-key): "));
  }
  try {
    RedisGet<>(down).run({.redis_key = "run-key"});
    FAIL("expected connection_error");
  } catch (const redis_tasks::connection_error& e) {
    CHECK_THAT(e.what(), Contains("(key run-key)"));
  }

  const std::string secret = "SECRET-ARGUMENT-VALUE";
  RedisExecute<> exec(test_support::config_for<RedisExecute<>>(fixture("plain").port));
  try {
    exec.run(
        {.redis_cmd = redis_tasks::command(std::vector<std::string>{"NOSUCHCOMMAND", secret})});
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(std::string(e.what()).find(secret) == std::string::npos);
    CHECK_THAT(e.what(), Contains("unknown command"));
    CHECK_THAT(e.server_message(), Contains(secret));  // the raw text stays available
  }
}
