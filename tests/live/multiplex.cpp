// Multiplexing: runs of many threads share a few connections per server, and every caller gets
// its own reply, whatever happens to the connections (CLIENT KILL, a stopped server, a reply
// nobody asked for, timeouts). Every server here is a private one started by the test.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::command;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::redis_process;

namespace {

// Multiplexed settings for the server on `port`, its connections named `name`.
template <class Config>
Config mux_config(int port, const std::string& name, std::size_t links = 2) {
  Config c;
  c.host = "127.0.0.1";
  c.port = port;
  c.password_secret = std::nullopt;
  c.redis_connection_params.client_name = name;
  c.redis_connection_params.multiplex.enabled = true;
  c.redis_connection_params.multiplex.connections = links;
  return c;
}

// The ids of the clients named `name` (CLIENT LIST).
std::vector<std::string> client_ids(int port, const std::string& name) {
  std::vector<std::string> ids;
  for (const auto& line : test_support::client_lines(port, name)) {
    if (line.rfind("id=", 0) == 0) ids.push_back(line.substr(3, line.find(' ') - 3));
  }
  return ids;
}

// A unique value for key `k`: its own name, then `size` bytes in total.
std::string value_for(const std::string& k, std::size_t size) {
  std::string v = "value-of:" + k + ":";
  while (v.size() < size)
    v += static_cast<char>('a' + v.size() % 26);
  return v;
}

}  // namespace

TEST_CASE("multiplexed runs of many threads share at most multiplex.connections connections") {
  redis_process server;
  const std::string name = "mux-share";
  RedisSet<std::string> set(mux_config<RedisSet<std::string>::config>(server.port(), name));
  RedisGet<std::string> get(mux_config<RedisGet<std::string>::config>(server.port(), name));
  std::atomic<int> wrong{0};
  std::atomic<int> right{0};
  std::atomic<std::size_t> most_clients{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 24; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string k =
            test_support::unique_key("share:" + std::to_string(t) + ":" + std::to_string(i % 7));
        const std::string v = value_for(k, 16 + static_cast<std::size_t>(i % 5) * 100);
        set.run({.redis_key = k, .redis_val = v});
        const auto got = get.run({.redis_key = k});
        (got && *got == v ? right : wrong)++;
      }
    });
  }
  // Counted while the threads run: never more shared connections than the setting.
  while (right + wrong < 24 * 300) {
    const std::size_t n = test_support::clients_named(server.port(), name);
    if (n > most_clients) most_clients = n;
    if (right + wrong >= 24 * 300) break;
    std::this_thread::yield();
  }
  for (auto& th : threads)
    th.join();
  done = true;
  CHECK(wrong == 0);
  CHECK(right == 24 * 300);
  CHECK(most_clients <= 2);
  CHECK(test_support::clients_named(server.port(), name) >= 1);
  CHECK(test_support::clients_named(server.port(), name) <= 2);
}

TEST_CASE(
    "multiplexing: every reply a caller receives is its own, through 1 MiB values, "
    "timeouts and CLIENT KILLs at random") {
  redis_process server;
  const std::string name = "mux-property";
  constexpr int callers = 64;
  constexpr int keys_each = 4;
  constexpr int big_callers = 4;  // their keys hold 1 MiB values
  std::map<std::string, std::string> values;
  {
    RedisSet<std::string>::config sc;
    sc.host = "127.0.0.1";
    sc.port = server.port();
    sc.password_secret = std::nullopt;
    RedisSet<std::string> setup(sc);
    for (int c = 0; c < callers; ++c) {
      for (int j = 0; j < keys_each; ++j) {
        const std::string k =
            test_support::unique_key("prop:" + std::to_string(c) + ":" + std::to_string(j));
        values[k] = value_for(k, c < big_callers ? std::size_t{1} << 20 : 32 + 8 * j);
        setup.run({.redis_key = k, .redis_val = values[k]});
      }
    }
  }
  auto patient_cfg = mux_config<RedisGet<std::string>::config>(server.port(), name);
  patient_cfg.task.timeout = 20s;
  auto hurried_cfg = patient_cfg;
  hurried_cfg.task.timeout = 1ms;  // times out at random: its request keeps its place
  const RedisGet<std::string> patient(patient_cfg);
  const RedisGet<std::string> hurried(hurried_cfg);

  std::atomic<int> wrong{0};
  std::atomic<int> right{0};
  std::atomic<int> connection_errors{0};
  std::atomic<int> timeouts{0};
  std::atomic<int> other_errors{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c) * 7919U + 17U);
      const int rounds = c < big_callers ? 40 : 250;
      for (int i = 0; i < rounds; ++i) {
        const std::string k = test_support::unique_key("prop:" + std::to_string(c) + ":" +
                                                       std::to_string(rng() % keys_each));
        const bool hurry = rng() % 8 == 0;
        try {
          const auto got = (hurry ? hurried : patient).run({.redis_key = k});
          (got && *got == values.at(k) ? right : wrong)++;
        } catch (const redis_tasks::timeout_error&) {
          timeouts++;
        } catch (const redis_tasks::connection_error&) {
          connection_errors++;
        } catch (...) {
          other_errors++;
        }
      }
      finished++;
    });
  }
  // CLIENT KILL the shared connections at random moments while the callers run.
  RedisExecute<>::config kc;
  kc.host = "127.0.0.1";
  kc.port = server.port();
  kc.password_secret = std::nullopt;
  const RedisExecute<> killer(kc);
  std::mt19937 rng(4242);
  int kills = 0;
  while (finished < callers) {
    const int before = right + wrong + timeouts + connection_errors;
    const int wait_for = 200 + static_cast<int>(rng() % 800);
    while (finished < callers && right + wrong + timeouts + connection_errors < before + wait_for)
      std::this_thread::yield();
    if (finished >= callers) break;
    const auto ids = client_ids(server.port(), name);
    CHECK(ids.size() <= 2);
    for (const auto& id : ids) {
      killer.run({.redis_cmd = command{"CLIENT", "KILL", "ID", id}});
      ++kills;
    }
  }
  for (auto& th : threads)
    th.join();
  INFO("right " << right << ", timeouts " << timeouts << ", connection errors " << connection_errors
                << ", kills " << kills);
  CHECK(wrong == 0);
  CHECK(other_errors == 0);
  CHECK(right > 0);
  CHECK(kills > 0);
  // After the storm, every key still reads as its own.
  for (const auto& [k, v] : values) {
    const auto got = patient.run({.redis_key = k});
    REQUIRE(got);
    CHECK(*got == v);
  }
}

TEST_CASE(
    "multiplexing: a run that needs connection state takes a pooled connection and "
    "holds up no one") {
  redis_process server;
  const std::string name = "mux-state";
  auto ec = mux_config<RedisExecute<>::config>(server.port(), name);
  const RedisExecute<> exec(ec);
  auto gc = mux_config<RedisGet<std::string>::config>(server.port(), name);
  gc.task.timeout = 10s;
  const RedisGet<std::string> get(gc);
  RedisSet<std::string> set(mux_config<RedisSet<std::string>::config>(server.port(), name));
  const std::string list = test_support::unique_key("state:list");
  const std::string k = test_support::unique_key("state:k");
  set.run({.redis_key = k, .redis_val = "mine"});

  // BLPOP blocks forever: on a shared connection it would hold up every later request.
  std::atomic<bool> popped{false};
  std::thread blocker([&] {
    const auto r = exec.run({.redis_cmd = command{"BLPOP", list, "0"}});
    popped = r.elements().size() == 2 && r.elements()[1].str() == "x";
  });
  test_support::at_scope_exit release([&] {
    test_support::redis_cli(server.port(), {"RPUSH", list, "x"});
    blocker.join();
  });
  test_support::wait_until(
      [&] { return !test_support::blocked_client_ids(server.port(), name).empty(); }, 10s,
      "BLPOP to block on the server");
  // A GET goes out on a shared connection meanwhile (the bound is task.timeout: behind the
  // BLPOP it could never be answered).
  CHECK(get.run({.redis_key = k}) == std::optional<std::string>("mine"));
  test_support::redis_cli(server.port(), {"RPUSH", list, "x"});
  test_support::wait_until([&] { return popped.load(); }, 10s, "BLPOP to return its element");

  // A collection is written with MULTI/EXEC: on a pooled connection too.
  RedisSet<std::vector<std::string>> set_list(
      mux_config<RedisSet<std::vector<std::string>>::config>(server.port(), name));
  const std::string coll = test_support::unique_key("state:coll");
  set_list.run({.redis_key = coll, .redis_val = std::vector<std::string>{"a", "b", "c"}});
  CHECK(test_support::redis_cli(server.port(), {"LRANGE", coll, "0", "-1"}) == "a\nb\nc\n");
}

TEST_CASE(
    "multiplexing: a request written to a shared connection that then fails is a "
    "connection_error and is never sent again") {
  std::atomic<int> requests_seen{0};
  test_support::fake_server silent([&](int fd) {
    // Reads one GET, then closes without answering.
    const std::string got = test_support::read_until(fd, "mux-written\r\n");
    if (got.find("mux-written") != std::string::npos) requests_seen++;
  });
  auto gc = mux_config<RedisGet<std::string>::config>(silent.port(), "");
  gc.task.max_retries = 0;
  const RedisGet<std::string> get(gc);
  const std::string msg = test_support::thrown<redis_tasks::connection_error>(
      [&] { get.run({.redis_key = "mux-written"}); });
  CHECK_THAT(msg, Contains("whether it ran is unknown"));
  CHECK(requests_seen == 1);
}

TEST_CASE(
    "multiplexing: a shared connection retired by READONLY is closed once no caller needs "
    "it, even with a timed-out request left on it") {
  std::atomic<bool> client_closed{false};
  test_support::fake_server demoted([&](int fd) {
    // Both writes of the batch arrive together: the first is refused as a demoted master
    // refuses it, the second is never answered. Then it waits for the client to hang up.
    const std::string got = test_support::read_until(fd, "retire-second");
    if (got.find("retire-second") == std::string::npos) return;
    const std::string refusal = "-READONLY You can't write against a read only replica.\r\n";
    if (::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(refusal.size())) {
      return;
    }
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    char buf[4096];
    while (std::chrono::steady_clock::now() < give_up) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) {
        client_closed = true;
        return;
      }
      if (n < 0 && errno != EINTR) return;
    }
  });
  auto sc = mux_config<RedisSet<std::string>::config>(demoted.port(), "", 1);
  sc.task.max_retries = 0;
  sc.task.timeout = 2s;  // room to read the refusal first, which retires the connection
  const RedisSet<std::string> set(sc);
  std::string second_outcome;
  try {
    const auto results = set.run_many({{.redis_key = "retire-first", .redis_val = "v"},
                                       {.redis_key = "retire-second", .redis_val = "v"}});
    REQUIRE(results.size() == 2);
    CHECK_FALSE(results[0].ok());
    second_outcome = results[1].ok() ? "answered" : "failed";
  } catch (const redis_tasks::timeout_error&) {
    second_outcome = "timed out";
  }
  CHECK(second_outcome != "answered");
  // No caller needs the connection any more, and no reply on it will ever be read: it closes
  // (it used to stay open for good, held by the timed-out request's place).
  test_support::wait_until([&] { return client_closed.load(); }, 10s,
                           "the retired shared connection to close");
}

TEST_CASE(
    "multiplexing: a shared connection the server closed while idle is replaced before "
    "a request is written to it") {
  redis_process server;
  const std::string name = "mux-idle";
  auto gc = mux_config<RedisGet<std::string>::config>(server.port(), name, 1);
  gc.task.max_retries = 0;  // no task retry hides a failure
  const RedisGet<std::string> get(gc);
  const std::string k = test_support::unique_key("idle:k");
  test_support::redis_cli(server.port(), {"SET", k, "v1"});
  CHECK(get.run({.redis_key = k}) == std::optional<std::string>("v1"));
  const auto before = client_ids(server.port(), name);
  REQUIRE(before.size() == 1);
  test_support::redis_cli(server.port(), {"CLIENT", "KILL", "ID", before[0]});
  test_support::wait_until([&] { return client_ids(server.port(), name).empty(); }, 10s,
                           "the killed connection to go");
  CHECK(get.run({.redis_key = k}) == std::optional<std::string>("v1"));
  const auto after = client_ids(server.port(), name);
  REQUIRE(after.size() == 1);
  CHECK(after[0] != before[0]);
}

TEST_CASE(
    "multiplexing: a timed-out request keeps its place, and its reply goes to no one "
    "else") {
  redis_process server;
  const std::string name = "mux-timeout";
  auto quick_cfg = mux_config<RedisGet<std::string>::config>(server.port(), name, 1);
  quick_cfg.task.timeout = 300ms;
  auto slow_cfg = quick_cfg;
  slow_cfg.task.timeout = 30s;
  const RedisGet<std::string> quick(quick_cfg);
  const RedisGet<std::string> slow(slow_cfg);
  const std::string k1 = test_support::unique_key("timeout:k1");
  const std::string k2 = test_support::unique_key("timeout:k2");
  test_support::redis_cli(server.port(), {"SET", k1, "one"});
  test_support::redis_cli(server.port(), {"SET", k2, "two"});
  CHECK(slow.run({.redis_key = k2}) == std::optional<std::string>("two"));  // the link is open

  REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  bool continued = false;
  test_support::at_scope_exit resume([&] {
    if (!continued) ::kill(server.pid(), SIGCONT);
  });
  CHECK_THROWS_AS(quick.run({.redis_key = k1}), redis_tasks::timeout_error);
  std::optional<std::string> got;
  std::thread waiter([&] { got = slow.run({.redis_key = k2}); });
  REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  continued = true;
  waiter.join();
  CHECK(got == std::optional<std::string>("two"));  // not "one", the reply of the timed-out GET
  CHECK(quick.run({.redis_key = k1}) == std::optional<std::string>("one"));
  CHECK(client_ids(server.port(), name).size() == 1);  // the same link served them all
}

TEST_CASE("multiplexing: a reply nobody asked for closes the shared connection") {
  std::atomic<int> connections{0};
  test_support::fake_server chatty([&](int fd) {
    const int n = ++connections;
    std::string got;
    char buf[4096];
    while (true) {
      const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r <= 0) return;
      got.append(buf, static_cast<std::size_t>(r));
      for (std::size_t end; (end = got.find("\r\n", got.find("GET"))) != std::string::npos;) {
        const std::size_t key_end = got.find("\r\n", end + 2);
        const std::size_t key_at = got.find("\r\n", key_end + 2);
        if (key_at == std::string::npos) break;
        const std::string key = got.substr(key_end + 2, key_at - key_end - 2);
        got.erase(0, key_at + 2);
        // The first connection answers its first GET twice.
        std::string reply = "$" + std::to_string(key.size() + 4) + "\r\nval-" + key + "\r\n";
        if (n == 1) reply += "$5\r\nstray\r\n";
        (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
    }
  });
  auto gc = mux_config<RedisGet<std::string>::config>(chatty.port(), "", 1);
  const RedisGet<std::string> get(gc);
  CHECK(get.run({.redis_key = "a"}) == std::optional<std::string>("val-a"));
  // The stray reply is never taken for the next GET's: that one goes on a new connection.
  CHECK(get.run({.redis_key = "b"}) == std::optional<std::string>("val-b"));
  CHECK(connections == 2);
}

TEST_CASE(
    "multiplexing: a full cap on requests in flight is a bounded wait, then a clear "
    "timeout_error") {
  redis_process server;
  const std::string name = "mux-cap";
  auto gc = mux_config<RedisGet<std::string>::config>(server.port(), name, 1);
  gc.redis_connection_params.multiplex.max_in_flight = 1;
  gc.redis_connection_params.pool_wait_timeout = 200ms;
  gc.task.timeout = 30s;
  auto quick_cfg = gc;
  quick_cfg.task.timeout = 100ms;
  const RedisGet<std::string> get(gc);
  const RedisGet<std::string> quick(quick_cfg);
  const std::string k = test_support::unique_key("cap:k");
  CHECK_FALSE(get.run({.redis_key = k}));  // the link is open
  REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  bool continued = false;
  test_support::at_scope_exit resume([&] {
    if (!continued) ::kill(server.pid(), SIGCONT);
  });
  // The timed-out GET keeps the only place until its reply is read.
  CHECK_THROWS_AS(quick.run({.redis_key = k}), redis_tasks::timeout_error);
  CHECK_THAT(test_support::thrown<redis_tasks::timeout_error>([&] { get.run({.redis_key = k}); }),
             Contains("multiplex.max_in_flight 1") && Contains("pool_wait_timeout 200 ms"));
  REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  continued = true;
  // The next run reads the reply nobody waits for, and so finds room.
  CHECK_FALSE(get.run({.redis_key = k}));
}

TEST_CASE("multiplexing: after fork, parent and child each use shared connections of their own") {
  redis_process server;
  const std::string name = "mux-fork";
  RedisSet<std::string> set(mux_config<RedisSet<std::string>::config>(server.port(), name));
  RedisGet<std::string> get(mux_config<RedisGet<std::string>::config>(server.port(), name));
  const std::string kp = test_support::unique_key("fork:parent");
  const std::string kc = test_support::unique_key("fork:child");
  set.run({.redis_key = kp, .redis_val = "parent"});
  set.run({.redis_key = kc, .redis_val = "child"});
  REQUIRE(get.run({.redis_key = kp}) == std::optional<std::string>("parent"));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int bad = 0;
    for (int i = 0; i < 2000; ++i) {
      if (get.run({.redis_key = kc}) != std::optional<std::string>("child")) ++bad;
    }
    ::_exit(bad == 0 ? 0 : 1);
  }
  int bad = 0;
  for (int i = 0; i < 2000; ++i) {
    if (get.run({.redis_key = kp}) != std::optional<std::string>("parent")) ++bad;
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(bad == 0);
}

namespace {

// The sockets of this process connected to 127.0.0.1:`port`, by inode ("socket:[N]"), which
// stays the same in a child after fork() while descriptor numbers may be reused.
std::vector<std::string> sockets_to(int port) {
  std::vector<std::string> found;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return found;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
      continue;
    }
    char target[64] = {};
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    if (::readlink(link.c_str(), target, sizeof target - 1) > 0) found.emplace_back(target);
  }
  ::closedir(dir);
  return found;
}

}  // namespace

TEST_CASE(
    "multiplexing: a child after fork closes its copy of a shared connection the parent has a "
    "request in flight on") {
  std::atomic<int> connections{0};
  std::atomic<bool> parent_request_seen{false};
  std::atomic<bool> end_parent_connection{false};
  test_support::fake_server server([&](int fd) {
    if (connections.fetch_add(1) == 0) {
      // The parent's shared connection: its requests are never answered, until the test ends it.
      if (test_support::read_until(fd, "fork-inflight-parent-").find("fork-inflight-parent-") ==
          std::string::npos) {
        return;
      }
      parent_request_seen = true;
      while (!end_parent_connection)
        std::this_thread::sleep_for(5ms);
      return;
    }
    // Any later connection (the child's own, or the parent's retry of its request that was
    // never written): every GET finds nothing.
    std::string got;
    std::size_t answered = 0;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      got.append(buf, static_cast<std::size_t>(n));
      std::size_t gets = 0;
      for (std::size_t at = got.find("\r\nGET\r\n"); at != std::string::npos;
           at = got.find("\r\nGET\r\n", at + 1)) {
        ++gets;
      }
      for (; answered < gets; ++answered)
        ::send(fd, "$-1\r\n", 5, MSG_NOSIGNAL);
    }
  });
  auto gc = mux_config<RedisGet<std::string>::config>(server.port(), "", 1);
  gc.task.max_retries = 0;
  gc.task.timeout = 60s;
  const RedisGet<std::string> get(gc);
  // Two runs on the one shared connection: the first written waits for its reply, reading; the
  // other's request waits to be written after that reply, and its thread (usually, by the fork)
  // on its condition variable, which the child must neither signal nor destroy (glibc would
  // block there).
  std::vector<std::thread> parent_runs;
  std::atomic<int> parent_runs_started{0};
  for (const char* key : {"fork-inflight-parent-1", "fork-inflight-parent-2"}) {
    parent_runs.emplace_back([&get, &parent_runs_started, key] {
      ++parent_runs_started;
      try {
        (void)get.run({.redis_key = key});
      } catch (const redis_tasks::connection_error&) {  // the test ends the connection
      }
    });
  }
  test_support::wait_until([&] { return parent_request_seen.load(); }, 10s,
                           "the parent's first request to reach the server");
  test_support::wait_until([&] { return parent_runs_started.load() == 2; }, 10s,
                           "the parent's second run to start");
  const auto parent_link = sockets_to(server.port());
  REQUIRE(parent_link.size() == 1);
  const pid_t test_process = ::getpid();
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    test_support::die_with_parent(test_process);
    const auto held = [&] {
      const auto now = sockets_to(server.port());
      return std::find(now.begin(), now.end(), parent_link[0]) != now.end();
    };
    if (!held()) ::_exit(2);  // the inherited copy is open before the child runs
    std::optional<std::string> got;
    try {
      got = get.run({.redis_key = "fork-inflight-child"});
    } catch (...) {
      ::_exit(3);
    }
    if (got) ::_exit(4);
    ::_exit(held() ? 5 : 0);  // 5: the child kept the parent's socket open
  }
  const int code = test_support::wait_child(child, 60s);
  end_parent_connection = true;
  for (auto& t : parent_runs)
    t.join();
  CHECK(code == 0);
}

TEST_CASE(
    "multiplexing: a request larger than max_bytes_in_flight goes whole on a pooled "
    "connection, each command once") {
  redis_process server;
  auto ec = mux_config<RedisExecute<long long>::config>(server.port(), "mux-big");
  ec.redis_connection_params.multiplex.max_bytes_in_flight = 4096;
  const RedisExecute<long long> exec(ec);
  const std::string counter = test_support::unique_key("big:counter");
  std::vector<RedisExecute<long long>::overrides> items(2000);
  for (auto& item : items)
    item.redis_cmd = command{"INCR", counter};
  std::size_t ok = 0;
  for (const auto& r : exec.run_many(items))
    ok += r.ok() ? 1 : 0;
  CHECK(ok == items.size());
  CHECK(test_support::redis_cli(server.port(), {"GET", counter}) == "2000\n");
  // A value larger than the cap, too.
  auto sc = mux_config<RedisSet<std::string>::config>(server.port(), "mux-big");
  sc.redis_connection_params.multiplex.max_bytes_in_flight = 4096;
  const RedisSet<std::string> set(sc);
  const std::string k = test_support::unique_key("big:value");
  const std::string big(100000, 'b');
  CHECK(set.run({.redis_key = k, .redis_val = big}));
  CHECK(test_support::redis_cli(server.port(), {"STRLEN", k}) == "100000\n");
}
