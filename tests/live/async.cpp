// Asynchronous runs: run_async returns a future, or calls back with a batch_result, after a run
// that is run() in every way (merging, validation, retries, hooks, errors). Every server here is
// a private one started by the test.
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <redis_tasks/detail/executor.hpp>  // async_executor: its threads go idle

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::batch_result;
using redis_tasks::command;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::redis_process;

namespace {

template <class Config>
Config config_for(int port, bool multiplex) {
  Config c;
  c.host = "127.0.0.1";
  c.port = port;
  c.password_secret = std::nullopt;
  c.redis_connection_params.multiplex.enabled = multiplex;
  return c;
}

}  // namespace

TEST_CASE("run_async: futures carry each run's own result, pooled or multiplexed") {
  redis_process server;
  const bool multiplex = GENERATE(false, true);
  RedisSet<std::string> set(config_for<RedisSet<std::string>::config>(server.port(), multiplex));
  RedisGet<std::string> get(config_for<RedisGet<std::string>::config>(server.port(), multiplex));
  std::vector<std::future<bool>> writes;
  for (int i = 0; i < 256; ++i) {
    writes.push_back(
        set.run_async({.redis_key = test_support::unique_key("async:" + std::to_string(i)),
                       .redis_val = "v" + std::to_string(i)}));
  }
  for (auto& w : writes)
    CHECK(w.get());
  std::vector<std::future<std::optional<std::string>>> reads;
  for (int i = 0; i < 256; ++i) {
    reads.push_back(
        get.run_async({.redis_key = test_support::unique_key("async:" + std::to_string(i))}));
  }
  for (int i = 0; i < 256; ++i)
    CHECK(reads[static_cast<std::size_t>(i)].get() == "v" + std::to_string(i));
}

TEST_CASE("run_async: errors, validation and hooks are those of run()") {
  redis_process server;
  auto cfg = config_for<RedisGet<std::string>::config>(server.port(), true);
  std::atomic<int> events{0};
  std::atomic<int> failed_events{0};
  cfg.task.on_run = [&](const redis_tasks::run_event& ev) {
    events++;
    if (!ev.ok) failed_events++;
  };
  RedisGet<std::string> get(cfg);
  // No key anywhere: the config_error run() throws, through the future.
  auto missing = get.run_async();
  CHECK_THAT(test_support::thrown<redis_tasks::config_error>([&] { missing.get(); }),
             Contains("redis_key is missing"));
  // A list where a string is wanted: run()'s type_error.
  const std::string list = test_support::unique_key("async:list");
  test_support::redis_cli(server.port(), {"RPUSH", list, "x"});
  auto wrong = get.run_async({.redis_key = list});
  CHECK_THROWS_AS(wrong.get(), redis_tasks::type_error);
  CHECK(events == 1);  // the hook is told of runs that reach the server, as run() tells it
  CHECK(failed_events == 1);
  // A retry after a connection error, as run() retries: the server comes back in between.
  auto rcfg = config_for<RedisExecute<>::config>(server.port(), true);
  rcfg.task.max_retries = 50;
  rcfg.task.retry_delay = 20ms;
  rcfg.redis_connection_params.connect_timeout = 200ms;
  RedisExecute<> exec(rcfg);
  CHECK(exec.run_async({.redis_cmd = command{"PING"}}).get().str() == "PONG");
  server.stop();
  auto later = exec.run_async({.redis_cmd = command{"PING"}});
  server.restart();
  CHECK(later.get().str() == "PONG");
}

TEST_CASE("run_async: a callback that blocks or throws holds up no other caller") {
  redis_process server;
  RedisExecute<> exec(config_for<RedisExecute<>::config>(server.port(), true));
  // What the blocking callback waits on: shared with it, since it wakes after the test ends.
  struct gate {
    std::mutex m;
    std::condition_variable cv;
    bool released = false;
    std::atomic<bool> called{false};
  };
  const auto blocker = std::make_shared<gate>();
  exec.run_async({.redis_cmd = command{"PING"}}, [blocker](batch_result<redis_tasks::reply> r) {
    blocker->called = r.ok();
    std::unique_lock<std::mutex> lk(blocker->m);
    blocker->cv.wait(lk, [&] { return blocker->released; });
  });
  test_support::at_scope_exit release([blocker] {
    {
      const std::lock_guard<std::mutex> g(blocker->m);
      blocker->released = true;
    }
    blocker->cv.notify_all();
  });
  test_support::wait_until([&] { return blocker->called.load(); }, 10s,
                           "the blocking callback to be called");
  for (int i = 0; i < 4; ++i) {
    exec.run_async({.redis_cmd = command{"PING"}},
                   [](const batch_result<redis_tasks::reply>&) { throw std::runtime_error("x"); });
  }
  std::atomic<int> answered{0};
  for (int i = 0; i < 64; ++i) {
    exec.run_async({.redis_cmd = command{"ECHO", std::to_string(i)}},
                   [&, i](batch_result<redis_tasks::reply> r) {
                     if (r.ok() && r.value().str() == std::to_string(i)) answered++;
                   });
  }
  // Every other callback runs while the first one still blocks.
  test_support::wait_until([&] { return answered == 64; }, 20s, "64 callbacks");
  CHECK(exec.run_async({.redis_cmd = command{"PING"}}).get().str() == "PONG");
}

TEST_CASE("run_async: the task may be destroyed while its run is in flight") {
  redis_process server;
  std::future<std::optional<std::string>> f;
  const std::string k = test_support::unique_key("async:gone");
  test_support::redis_cli(server.port(), {"SET", k, "still here"});
  {
    RedisGet<std::string> get(config_for<RedisGet<std::string>::config>(server.port(), true));
    f = get.run_async({.redis_key = k});
  }
  CHECK(f.get() == std::optional<std::string>("still here"));
}

TEST_CASE(
    "run_async: a run of several round trips goes on reply by reply, each request sent "
    "once") {
  redis_process server;
  const std::string h = test_support::unique_key("async:hash");
  test_support::redis_cli(server.port(), {"HSET", h, "f", "v", "g", "w"});
  // RedisGet<value> asks TYPE, then reads the key as what it holds: two round trips.
  auto cfg = config_for<RedisGet<redis_tasks::value>::config>(server.port(), true);
  std::atomic<int> events{0};
  cfg.task.on_run = [&](const redis_tasks::run_event& ev) {
    if (ev.ok) events++;
  };
  const RedisGet<redis_tasks::value> get(cfg);
  const long long before = std::stoll(test_support::info_field(
      test_support::redis_cli(server.port(), {"INFO", "stats"}), "total_commands_processed"));
  std::vector<std::future<std::optional<redis_tasks::value>>> runs;
  for (int i = 0; i < 20; ++i)
    runs.push_back(get.run_async({.redis_key = h}));
  for (auto& r : runs) {
    CHECK(r.get() ==
          redis_tasks::value{std::map<std::string, std::string>{{"f", "v"}, {"g", "w"}}});
  }
  CHECK(events == 20);  // the hook hears of each run once
  const long long after = std::stoll(test_support::info_field(
      test_support::redis_cli(server.port(), {"INFO", "stats"}), "total_commands_processed"));
  // 2 commands per run (TYPE, HGETALL), plus the INFO of the line above: nothing sent twice.
  CHECK(after - before == 20 * 2 + 1);
}

TEST_CASE(
    "run_async: a run whose deadline passes first is a timeout_error, and its reply goes "
    "to no one") {
  redis_process server;
  auto quick_cfg = config_for<RedisGet<std::string>::config>(server.port(), true);
  quick_cfg.redis_connection_params.multiplex.connections = 1;
  quick_cfg.task.timeout = 300ms;
  auto slow_cfg = quick_cfg;
  slow_cfg.task.timeout = 30s;
  const RedisGet<std::string> quick(quick_cfg);
  const RedisGet<std::string> slow(slow_cfg);
  const std::string k1 = test_support::unique_key("async:t1");
  const std::string k2 = test_support::unique_key("async:t2");
  test_support::redis_cli(server.port(), {"SET", k1, "one"});
  test_support::redis_cli(server.port(), {"SET", k2, "two"});
  CHECK(slow.run({.redis_key = k2}) == std::optional<std::string>("two"));
  REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  bool continued = false;
  test_support::at_scope_exit resume([&] {
    if (!continued) ::kill(server.pid(), SIGCONT);
  });
  auto late = quick.run_async({.redis_key = k1});
  CHECK_THROWS_AS(late.get(), redis_tasks::timeout_error);
  auto on_time = slow.run_async({.redis_key = k2});
  REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  continued = true;
  CHECK(on_time.get() == std::optional<std::string>("two"));
  CHECK(quick.run_async({.redis_key = k1}).get() == std::optional<std::string>("one"));
}

TEST_CASE(
    "run_async: once every asynchronous run on a silent server is out of time, no library "
    "thread is left waiting for its replies") {
  std::atomic<bool> request_seen{false};
  std::atomic<bool> end_connection{false};
  test_support::fake_server silent([&](int fd) {
    test_support::read_until(fd, "silent-async");
    request_seen = true;
    while (!end_connection)
      std::this_thread::sleep_for(5ms);
  });
  test_support::at_scope_exit end([&] { end_connection = true; });
  auto cfg = config_for<RedisGet<std::string>::config>(silent.port(), true);
  cfg.task.max_retries = 0;
  cfg.task.timeout = 5s;  // room to connect and write on a loaded machine
  const RedisGet<std::string> get(cfg);
  auto late = get.run_async({.redis_key = "silent-async"});
  test_support::wait_until([&] { return request_seen.load(); }, 10s,
                           "the request to reach the server");
  CHECK_THROWS_AS(late.get(), redis_tasks::timeout_error);
  // The thread that read replies for the run stops once nobody waits for them (it used to wait
  // for bytes with no deadline, and a server that never answers held it for good). The count is
  // of the whole program's library threads: no other test's run may still be going on.
  test_support::wait_until(
      [] { return redis_tasks::detail::async_executor::instance().busy_threads() == 0; }, 10s,
      "the library's asynchronous threads to be idle");
}

TEST_CASE("run_async: a blocking command waits on a connection of its own") {
  redis_process server;
  const RedisExecute<> exec(config_for<RedisExecute<>::config>(server.port(), true));
  const std::string list = test_support::unique_key("async:list");
  auto popped = exec.run_async({.redis_cmd = command{"BLPOP", list, "0"}});
  test_support::at_scope_exit release([&] {
    test_support::redis_cli(server.port(), {"RPUSH", list, "late"});
  });
  test_support::wait_until(
      [&] {
        return test_support::info_field(test_support::redis_cli(server.port(), {"INFO", "clients"}),
                                        "blocked_clients") == "1";
      },
      10s, "BLPOP to block on the server");
  // Meanwhile other runs go on the shared connections.
  CHECK(exec.run_async({.redis_cmd = command{"ECHO", "meanwhile"}}).get().str() == "meanwhile");
  test_support::redis_cli(server.port(), {"RPUSH", list, "x"});
  const auto r = popped.get();
  REQUIRE(r.elements().size() == 2);
  CHECK(r.elements()[1].str() == "x");
}

TEST_CASE("run_async: replies read by a type of the user's wait the same way") {
  redis_process server;
  const std::string l = test_support::unique_key("async:l");
  test_support::redis_cli(server.port(), {"RPUSH", l, "a", "b"});
  // A vector is read by from_reply, which a program may specialise: such a run stops where it
  // waits by an exception rather than with a stand-in reply.
  const RedisExecute<std::vector<std::string>> exec(
      config_for<RedisExecute<std::vector<std::string>>::config>(server.port(), true));
  std::vector<std::future<std::vector<std::string>>> runs;
  for (int i = 0; i < 16; ++i)
    runs.push_back(exec.run_async({.redis_cmd = command{"LRANGE", l, "0", "-1"}}));
  for (auto& r : runs)
    CHECK(r.get() == std::vector<std::string>{"a", "b"});
}
