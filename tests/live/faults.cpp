// Connections that survive: server restarts, killed clients, idle timeouts, servers that stop
// answering or hang up mid-reply, password rotation, and many threads on shared tasks.
// Every server here is a private redis-server (or a fake one) started by the test.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::config_for;
using test_support::redis_process;
using test_support::wait_until;

namespace {

template <class Task>
typename Task::config private_config(const redis_process& server, const std::string& name = "") {
  auto c = config_for<Task>(server.port());
  c.redis_connection_params.client_name = name;
  c.redis_connection_params.shared_pool = false;
  c.redis_connection_params.connect_timeout = 1000ms;
  c.redis_connection_params.socket_timeout = 2000ms;
  return c;
}

// Stress sizes: 8 threads x 20k runs, fewer under sanitizers (REDIS_TASKS_STRESS_RUNS).
int stress_runs() {
  const char* v = std::getenv("REDIS_TASKS_STRESS_RUNS");
  return v != nullptr ? std::atoi(v) : 20000;
}

}  // namespace

TEST_CASE("a server restart between runs is invisible to the next run") {
  redis_process server;
  auto sc = private_config<RedisSet<>>(server);
  sc.redis_key = "k";
  sc.redis_val = "v";
  RedisSet<> set(sc);
  auto gc = private_config<RedisGet<>>(server);
  gc.redis_key = "k";
  RedisGet<> get(gc);
  REQUIRE(set.run());
  REQUIRE(get.run() == "v");

  server.restart();  // polite shutdown: clients see the connection closed
  CHECK(set.run());  // no task retries configured: the stale connection is replaced up front
  CHECK(get.run() == "v");

  server.kill();  // SIGKILL: the kernel closes the sockets
  server.restart();
  CHECK(set.run({.redis_val = "after-kill"}));
  CHECK(get.run() == "after-kill");
}

TEST_CASE("a connection the server dropped while idle is replaced before writing") {
  // The server closes clients idle for 2 s: long enough that the pooled connection is surely
  // seen before it goes, even on a loaded machine.
  redis_process server({"--timeout", "2"});
  auto ec = private_config<RedisExecute<long long>>(server, "idle");
  ec.redis_cmd = "INCR counter";
  RedisExecute<long long> incr(ec);
  for (long long n = 1; n <= 3; ++n) {
    CHECK(incr.run() == n);  // counted once: a dead connection is never written to
    REQUIRE(test_support::clients_named(server.port(), "idle") == 1);  // pooled, idle
    wait_until([&] { return test_support::clients_named(server.port(), "idle") == 0; }, 10s,
               "the server to close the idle pooled connection (--timeout 2)");
  }
}

TEST_CASE("CLIENT KILL of every client: next runs succeed, nothing counts twice") {
  redis_process server;
  auto ec = private_config<RedisExecute<long long>>(server, "killme");
  ec.redis_cmd = "INCR counter";
  ec.redis_connection_params.pool_size = 4;
  RedisExecute<long long> incr(ec);

  std::atomic<long long> ok{0};
  std::atomic<long long> failed{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 3000; ++i) {
        try {
          incr.run();
          ++ok;
        } catch (const redis_tasks::connection_error&) {
          ++failed;  // a command in flight when its connection died: it may or may not have run
        }
      }
    });
  }
  std::thread killer([&] {
    while (!done) {
      test_support::redis_cli(server.port(), {"CLIENT", "KILL", "TYPE", "normal"});
      std::this_thread::sleep_for(20ms);
    }
  });
  for (auto& w : workers)
    w.join();
  done = true;
  killer.join();

  RedisExecute<long long> read(private_config<RedisExecute<long long>>(server));
  const long long counter = read.run({.redis_cmd = "GET counter"});
  CHECK(ok + failed == 12000);
  CHECK(failed > 0);  // the killer did hit runs in flight
  CHECK(counter >= ok.load());
  CHECK(counter <= ok.load() + failed.load());  // never a silent second INCR
  // And the task is healthy afterwards.
  const long long before = counter;
  CHECK(incr.run() == before + 1);
}

TEST_CASE("runs stream through server restarts with task retries") {
  redis_process server;
  auto sc = private_config<RedisSet<>>(server);
  sc.task.max_retries = 1000;  // 20 s of retries: far longer than a restart takes
  sc.task.retry_delay = 20ms;
  std::atomic<int> retries{0};
  sc.task.on_run = [&](const redis_tasks::run_event& e) {
    if (e.will_retry) ++retries;
  };
  RedisSet<> set(sc);
  std::atomic<int> done_runs{0};
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
  std::atomic<int> last_ok{-1};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      try {
        set.run({.redis_key = "key" + std::to_string(i), .redis_val = "v"});
        ++done_runs;
        last_ok = i;
      } catch (const redis_tasks::error&) {
        ++errors;
      }
    }
  });
  test_support::at_scope_exit stop_writer([&] {
    stop = true;
    if (writer.joinable()) writer.join();
  });
  // Each step waits until the writer got through the previous one.
  const auto more_runs = [&](const std::string& when) {
    const int target = done_runs + 20;
    wait_until([&] { return done_runs >= target || errors > 0; }, 30s, "20 runs " + when);
    REQUIRE(errors == 0);
  };
  more_runs("before the first restart");
  server.restart();
  more_runs("after a polite restart");
  server.kill();
  // Down for a while: runs retry until it is back.
  const int retries_before = retries;
  wait_until([&] { return retries >= retries_before + 3 || errors > 0; }, 30s,
             "runs to retry against the killed server");
  server.restart();
  more_runs("after the killed server came back");
  stop = true;
  writer.join();
  CHECK(errors == 0);
  // The last write (after the final restart) is on the server.
  auto gc = private_config<RedisGet<>>(server);
  CHECK(RedisGet<>(gc).run({.redis_key = "key" + std::to_string(last_ok.load())}) == "v");
}

TEST_CASE("retries: only after connection errors, with the delay") {
  redis_process server;
  const int port = server.port();
  server.kill();  // nothing listens on the port now

  auto gc = config_for<RedisGet<>>(port);
  gc.redis_key = "k";
  gc.redis_connection_params.shared_pool = false;
  gc.redis_connection_params.connect_timeout = 500ms;
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::connection_error);  // no retries

  // Every attempt, as the run hook reports it.
  struct attempt {
    std::chrono::steady_clock::time_point at;
    bool ok;
    bool will_retry;
    std::string error_type;
  };
  std::mutex m;
  std::vector<attempt> attempts;
  const auto attempts_made = [&] {
    std::lock_guard<std::mutex> lock(m);
    return attempts.size();
  };
  const auto record = [&](const redis_tasks::run_event& e) {
    std::lock_guard<std::mutex> lock(m);
    attempts.push_back(
        {std::chrono::steady_clock::now(), e.ok, e.will_retry, std::string(e.error_type)});
  };

  gc.task.max_retries = 300;  // 30 s: far longer than the restart below takes
  gc.task.retry_delay = 100ms;
  gc.task.on_run = record;
  RedisGet<> patient(gc);
  auto result = std::async(std::launch::async, [&] { return patient.run(); });
  // The server comes back only once the run has retried a few times; if the wait fails, the
  // restart still ends the run, so the test does not wait out its 300 retries.
  test_support::at_scope_exit restart([&] {
    if (!server.running()) server.restart();
  });
  wait_until([&] { return attempts_made() >= 3; }, 30s, "the run to retry a stopped server");
  server.restart();
  CHECK(result.get() == std::nullopt);  // succeeded once the server came back
  {
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(attempts.size() >= 4);
    CHECK(attempts.back().ok);
    for (std::size_t i = 0; i + 1 < attempts.size(); ++i) {
      INFO("attempt " << i + 1);
      CHECK_FALSE(attempts[i].ok);
      CHECK(attempts[i].will_retry);
      CHECK(attempts[i].error_type == "connection_error");
      // A sleep is never shorter than asked for: each retry comes a whole delay later.
      CHECK(attempts[i + 1].at - attempts[i].at >= gc.task.retry_delay);
    }
    attempts.clear();
  }

  // A reply_error is not retried: with a long delay the run still fails at once.
  auto ec = private_config<RedisExecute<>>(server);
  ec.task.max_retries = 5;
  ec.task.retry_delay = 5s;
  ec.task.on_run = record;
  RedisExecute<> bad(ec);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(bad.run({.redis_cmd = "NOSUCHCOMMAND"}), redis_tasks::reply_error);
  CHECK(std::chrono::steady_clock::now() - t0 < ec.task.retry_delay);
  REQUIRE(attempts_made() == 1);
  CHECK_FALSE(attempts[0].will_retry);
  CHECK(attempts[0].error_type == "reply_error");
}

TEST_CASE("a server that accepts and never answers gives timeout_error, not a hang") {
  test_support::fake_server silent([](int fd) { test_support::read_until(fd, "never"); });
  auto gc = config_for<RedisGet<>>(silent.port());
  gc.redis_key = "k";
  gc.redis_connection_params.socket_timeout = 300ms;
  gc.redis_connection_params.shared_pool = false;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::timeout_error);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 250ms);
  CHECK(took < 300ms + 5s);  // bounded (the fake server would wait forever), with room for load

  // With a password, the handshake itself is bounded by connect_timeout.
  gc.password_secret = "P";
  gc.secrets = std::make_shared<redis_tasks::MapSecretProvider>(
      std::map<std::string, std::string>{{"P", "pw"}});
  gc.redis_connection_params.connect_timeout = 300ms;
  gc.redis_connection_params.socket_timeout = 10s;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::timeout_error);
  // Half of the socket_timeout that must not apply: plenty of room for a loaded machine.
  CHECK(std::chrono::steady_clock::now() - t0 < gc.redis_connection_params.socket_timeout / 2);
}

TEST_CASE("a server that hangs up mid-reply gives connection_error") {
  test_support::fake_server rude([](int fd) {
    test_support::read_until(fd, "\r\n$1\r\nk\r\n");
    const std::string partial = "$10\r\nhello";  // promises 10 bytes, sends 5, hangs up
    ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
  });
  auto gc = config_for<RedisGet<>>(rude.port());
  gc.redis_key = "k";
  gc.redis_connection_params.shared_pool = false;
  try {
    RedisGet<>(gc).run();
    FAIL("expected connection_error");
  } catch (const redis_tasks::timeout_error&) {
    FAIL("a closed connection must not look like a timeout");
  } catch (const redis_tasks::connection_error& e) {
    CHECK(std::string(e.what()).find("closed") != std::string::npos);
  }
}

TEST_CASE("a large bulk reply in any pieces is read whole, and the reply after it too") {
  // Bulk strings longer than the read buffer bypass hiredis's buffer (read_large_bulk): the
  // header, the data, the CR LF and the next reply may each arrive split or together.
  std::string body(300000, '\0');
  for (std::size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<char>(i * 131 % 251);
  const std::string header = "$" + std::to_string(body.size()) + "\r\n";
  test_support::fake_server server([&](int fd) {
    auto send = [fd](const std::string& s) {
      ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      std::this_thread::sleep_for(20ms);  // so that the client reads this piece on its own
    };
    test_support::read_until(fd, "PING\r\n");  // pieces; the CR LF split; PONG after the LF
    send(header + body.substr(0, 1000));
    send(body.substr(1000, 200000));
    send(body.substr(201000) + "\r");
    send("\n+PONG\r\n");
    test_support::read_until(fd, "PING\r\n");  // all at once, PONG right behind
    send(header + body + "\r\n+PONG\r\n");
    test_support::read_until(fd, "PING\r\n");  // the header itself split: hiredis reads it
    send(header.substr(0, 3));
    send(header.substr(3) + body + "\r\n+PONG\r\n");
  });
  redis_tasks::detail::endpoint_settings s;
  s.host = "127.0.0.1";
  s.port = server.port();
  redis_tasks::detail::connection c(s);
  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    c.begin_request();
    c.append({"GET", "big"});
    c.append({"PING"});
    c.flush();
    const redis_tasks::reply big = c.read();
    CHECK(big.type() == redis_tasks::reply_type::string);
    CHECK(big.str() == body);
    CHECK(c.read() == redis_tasks::reply::make_status("PONG"));
    CHECK_FALSE(c.broken());
  }
}

TEST_CASE("a rotated password is picked up at the next connection") {
  redis_process server({"--requirepass", "old-secret"});
  auto secret = std::make_shared<test_support::mutable_secret>("old-secret");
  auto gc = private_config<RedisGet<>>(server);
  gc.password_secret = "REDIS_PASSWORD";
  gc.secrets = secret;
  gc.redis_key = "k";
  RedisGet<> get(gc);
  REQUIRE(get.run() == std::nullopt);

  test_support::redis_cli(server.port(), {"-a", "old-secret", "--no-auth-warning", "CONFIG", "SET",
                                          "requirepass", "new-secret"});
  secret->set("new-secret");
  test_support::redis_cli(
      server.port(), {"-a", "new-secret", "--no-auth-warning", "CLIENT", "KILL", "TYPE", "normal"});
  CHECK(get.run() == std::nullopt);  // reconnected with the new password, nothing restarted
}

TEST_CASE("a full pool makes a run wait, then time out") {
  redis_process server;
  auto ec = private_config<RedisExecute<>>(server, "pool");
  ec.redis_connection_params.pool_size = 1;
  ec.redis_connection_params.pool_wait_timeout = 200ms;
  RedisExecute<> task(ec);
  // Holds the only connection until the test pushes to the list (or for 30 s).
  auto holder =
      std::async(std::launch::async, [&] { return task.run({.redis_cmd = "BLPOP list 30"}); });
  bool released = false;
  const auto release = [&] {
    if (!released) test_support::redis_cli(server.port(), {"RPUSH", "list", "released"});
    released = true;
  };
  test_support::at_scope_exit release_on_failure(release);
  wait_until([&] { return test_support::blocked_client_ids(server.port(), "pool").size() == 1; },
             10s, "the holder's BLPOP to block on the server");
  try {
    task.run({.redis_cmd = "PING"});
    FAIL("expected timeout_error");
  } catch (const redis_tasks::timeout_error& e) {
    CHECK(std::string(e.what()).find("pool_size") != std::string::npos);
  }
  release();
  CHECK(holder.get().to_json() == nlohmann::json::array({"list", "released"}));
  CHECK(task.run({.redis_cmd = "PING"}).to_string() == "PONG");  // free again
}

TEST_CASE("8 threads share tasks: every write verified, connections within the pool bound") {
  redis_process server;
  const std::size_t pool_size = 4;
  auto sc = private_config<RedisSet<>>(server, "stress");
  sc.redis_connection_params.pool_size = pool_size;
  sc.redis_connection_params.shared_pool = true;  // all three tasks share the one pool
  auto gc = private_config<RedisGet<>>(server, "stress");
  gc.redis_connection_params.pool_size = pool_size;
  gc.redis_connection_params.shared_pool = true;
  auto ec = private_config<RedisExecute<long long>>(server, "stress");
  ec.redis_connection_params.pool_size = pool_size;
  ec.redis_connection_params.shared_pool = true;
  RedisSet<> set(sc);
  RedisGet<> get(gc);
  RedisExecute<long long> incr(ec);

  constexpr int threads_n = 8;
  constexpr int keys_per_thread = 500;
  // Far longer than the test runs (sanitizer builds included), so every px key is still there
  // when it is checked.
  constexpr auto ttl = 300000ms;
  // What each thread last wrote to each of its keys. Keys are disjoint per thread, and each
  // thread fills only its own row, so the expected end state is exact.
  struct last_write {
    bool written = false;
    std::string value;
    bool with_px = false;
  };
  std::vector<std::vector<last_write>> expected(threads_n,
                                                std::vector<last_write>(keys_per_thread));
  auto key_of = [](int t, int slot) {
    return "k:" + std::to_string(t) + ":" + std::to_string(slot);
  };

  const int runs = stress_runs();
  std::atomic<int> mismatches{0};
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most_clients{0};
  std::thread watcher([&] {
    while (!done) {
      const auto n = test_support::clients_named(server.port(), "stress");
      if (n > most_clients) most_clients = n;
      std::this_thread::sleep_for(50ms);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      const std::string counter = "counter:" + std::to_string(t);
      auto& mine = expected[static_cast<std::size_t>(t)];
      for (int i = 0; i < runs; ++i) {
        const int slot = i % keys_per_thread;
        const std::string key = key_of(t, slot);
        const std::string value = std::to_string(t) + "/" + std::to_string(i);
        switch (i % 3) {
          case 0:
            if (!set.run({.redis_key = key, .redis_val = value})) ++mismatches;
            mine[static_cast<std::size_t>(slot)] = {true, value, false};
            if (get.run({.redis_key = key}) != value) ++mismatches;
            break;
          case 1:
            incr.run(
                {.redis_cmd = redis_tasks::command{std::vector<std::string>{"INCR", counter}}});
            break;
          default:
            if (!set.run({.redis_key = key, .redis_val = value, .px = ttl})) ++mismatches;
            mine[static_cast<std::size_t>(slot)] = {true, value, true};
            break;
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  done = true;
  watcher.join();

  CHECK(mismatches == 0);
  for (int t = 0; t < threads_n; ++t) {
    const long long increments = (runs + 1) / 3;  // i % 3 == 1
    CHECK(get.run({.redis_key = "counter:" + std::to_string(t)}) == std::to_string(increments));
  }

  // Every key's last write, read back twice: with the library, and with redis-cli (a client we
  // did not write) in one pipelined session of GET and PTTL per key.
  std::vector<std::pair<int, int>> written;  // (thread, slot)
  std::string cli_input;
  for (int t = 0; t < threads_n; ++t) {
    for (int slot = 0; slot < keys_per_thread; ++slot) {
      const auto& w = expected[static_cast<std::size_t>(t)][static_cast<std::size_t>(slot)];
      if (!w.written) continue;
      written.emplace_back(t, slot);
      cli_input += "GET " + key_of(t, slot) + "\nPTTL " + key_of(t, slot) + "\n";
    }
  }
  REQUIRE_FALSE(written.empty());
  // With runs >= 1500 every slot of every thread saw a SET; and the server holds exactly the
  // keys written plus the counters, nothing else.
  if (runs >= 3 * keys_per_thread)
    CHECK(written.size() == static_cast<std::size_t>(threads_n * keys_per_thread));
  CHECK(test_support::redis_cli(server.port(), {"DBSIZE"}) ==
        std::to_string(written.size() + threads_n) + "\n");
  const std::string cli_out = test_support::redis_cli(server.port(), {}, cli_input);
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos < cli_out.size();) {
    const auto nl = cli_out.find('\n', pos);
    lines.push_back(cli_out.substr(pos, nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  REQUIRE(lines.size() == 2 * written.size());

  int wrong_values = 0;
  int wrong_ttls = 0;
  std::string details;  // the first few wrong keys, for the failure message
  for (std::size_t n = 0; n < written.size(); ++n) {
    const auto [t, slot] = written[n];
    const auto& w = expected[static_cast<std::size_t>(t)][static_cast<std::size_t>(slot)];
    const std::string key = key_of(t, slot);
    const auto lib_value = get.run({.redis_key = key});
    const std::string& cli_value = lines[2 * n];
    const long long pttl = std::atoll(lines[2 * n + 1].c_str());
    // A px write leaves a TTL of at most `ttl`; a plain SET afterwards clears it (-1).
    const bool ttl_ok = w.with_px ? (pttl > 0 && pttl <= ttl.count()) : pttl == -1;
    if (lib_value != w.value || cli_value != w.value) {
      ++wrong_values;
      if (wrong_values <= 5) {
        details += key + ": expected " + w.value + ", library read " + lib_value.value_or("(nil)") +
                   ", redis-cli read " + cli_value + "\n";
      }
    }
    if (!ttl_ok) {
      ++wrong_ttls;
      if (wrong_ttls <= 5) {
        details += key + ": last write " + (w.with_px ? "with" : "without") + " px, PTTL " +
                   lines[2 * n + 1] + "\n";
      }
    }
  }
  INFO(written.size() << " keys checked\n" << details);
  CHECK(wrong_values == 0);
  CHECK(wrong_ttls == 0);

  CHECK(most_clients <= pool_size);
  CHECK(test_support::clients_named(server.port(), "stress") <= pool_size);
}
