// RedisLock and lease on a private server, with real processes: forked holders and waiters,
// holders paused with SIGSTOP past their ttl and killed with SIGKILL, fencing tokens checked by
// RedisSet, auto-renewal, the wake-up of waiters, and WAIT against a real replica. Every server
// here is started by the test. Children never use Catch2: they report lines through a pipe and
// end with _exit.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::lease;
using redis_tasks::lease_lost_error;
using redis_tasks::RedisExecute;
using redis_tasks::RedisLock;
using redis_tasks::RedisSet;
using test_support::redis_process;
using test_support::unique_key;
using test_support::wait_until;

namespace {

using steady = std::chrono::steady_clock;

using test_support::child_channel;
using test_support::child_process;

// ---------------------------------------------------------------------------------------------
// Configs and an independent look at the server (redis-cli, a client we did not write).

RedisLock::config lock_config(int port, const std::string& key) {
  auto c = test_support::config_for<RedisLock>(port);
  c.redis_key = key;
  return c;
}

// redis-cli's answer without its trailing newline.
std::string cli(int port, std::vector<std::string> args) {
  std::string out = test_support::redis_cli(port, std::move(args));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

bool key_exists(int port, const std::string& key) {
  return cli(port, {"EXISTS", key}) == "1";
}

long long pttl(int port, const std::string& key) {
  return std::stoll(cli(port, {"PTTL", key}));
}

// A fenced RedisSet<std::string> write of `value` at `key` with `token`.
bool fenced_put(int port, const std::string& key, const std::string& value, std::uint64_t token) {
  auto c = test_support::config_for<RedisSet<std::string>>(port);
  c.redis_key = key;
  c.redis_val = value;
  c.fence_token = token;
  return RedisSet<std::string>(c).run();
}

// The message of the lease_lost_error that `f` throws, or a text saying what happened instead.
template <class F>
std::string lease_lost_message(F&& f) {
  try {
    f();
  } catch (const lease_lost_error& e) {
    return std::string("lease_lost_error: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("another exception: ") + e.what();
  }
  return "no exception";
}

// The clients blocked in a command (flags with 'b') on the server at `port`.
std::size_t blocked_clients(int port) {
  const std::string list = test_support::redis_cli(port, {"CLIENT", "LIST"});
  std::size_t n = 0;
  std::istringstream in(list);
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find(" flags=");
    if (at == std::string::npos) continue;
    const auto start = at + 7;
    const std::string flags = line.substr(start, line.find(' ', start) - start);
    if (flags.find('b') != std::string::npos) ++n;
  }
  return n;
}

std::uint64_t parse_token(const std::string& text) {
  return static_cast<std::uint64_t>(std::stoull(text));
}

// "word rest" → rest, when `line` starts with `word `; else nullopt.
std::optional<std::string> after(const std::string& line, const std::string& word) {
  if (line.rfind(word + " ", 0) != 0) return std::nullopt;
  return line.substr(word.size() + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fencing tokens under contention.

TEST_CASE("1000 acquisitions of one key by 4 processes give strictly increasing tokens") {
  redis_process server;
  const std::string key = unique_key("lock:contended");
  const std::string order = unique_key("lock:contended:order");
  const std::string inside = unique_key("lock:contended:inside");
  constexpr int processes = 4;
  constexpr int per_process = 250;

  std::vector<std::unique_ptr<child_process>> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(std::make_unique<child_process>([&](const child_channel& ch) {
      auto c = lock_config(server.port(), key);
      c.ttl = 10s;
      c.wait = 60s;
      c.auto_renew = false;
      const RedisLock lock(c);
      const RedisExecute<long long> exec(
          test_support::config_for<RedisExecute<long long>>(server.port()));
      auto cmd = [](std::vector<std::string> args) {
        return RedisExecute<long long>::overrides{.redis_cmd = redis_tasks::command{args}};
      };
      std::vector<std::uint64_t> tokens;
      ch.say("ready");
      if (ch.hear() != "go") return 4;  // all four start together
      for (int i = 0; i < per_process; ++i) {
        auto l = lock.run();
        if (!l) {
          ch.say("error: not acquired within the wait");
          return 1;
        }
        // While it holds the lock, nobody else is inside, and its token goes to the shared
        // list: the list's order is the order of the holds.
        if (exec.run(cmd({"INCR", inside})) != 1) {
          ch.say("error: two holders at once");
          return 2;
        }
        exec.run(cmd({"RPUSH", order, std::to_string(l->token())}));
        exec.run(cmd({"DECR", inside}));
        tokens.push_back(l->token());
        if (!l->release()) {
          ch.say("error: release() of a held lock returned false");
          return 3;
        }
      }
      for (const auto t : tokens)
        ch.say("token " + std::to_string(t));
      ch.say("done");
      return 0;
    }));
  }

  for (auto& child : children)
    REQUIRE(child->receive(30s) == "ready");
  for (auto& child : children)
    child->send("go");

  std::set<std::uint64_t> all;
  for (int p = 0; p < processes; ++p) {
    std::vector<std::uint64_t> mine;
    for (;;) {
      const std::string line = children[p]->receive(120s);
      if (const auto t = after(line, "token")) {
        mine.push_back(parse_token(*t));
        continue;
      }
      INFO("process " << p);
      CHECK(line == "done");
      break;
    }
    INFO("process " << p);
    CHECK(children[p]->wait(30s) == 0);
    CHECK(mine.size() == static_cast<std::size_t>(per_process));
    CHECK(std::adjacent_find(mine.begin(), mine.end(), [](std::uint64_t a, std::uint64_t b) {
            return a >= b;
          }) == mine.end());
    all.insert(mine.begin(), mine.end());
  }
  CHECK(all.size() == static_cast<std::size_t>(processes * per_process));

  // The order in which the holds happened (each pushed while holding): strictly increasing.
  const auto list = test_support::get<std::vector<std::string>>(server.port(), order);
  REQUIRE(list);
  REQUIRE(list->size() == static_cast<std::size_t>(processes * per_process));
  std::vector<std::uint64_t> in_order;
  for (const auto& s : *list)
    in_order.push_back(parse_token(s));
  CHECK(std::adjacent_find(in_order.begin(), in_order.end(), [](std::uint64_t a, std::uint64_t b) {
          return a >= b;
        }) == in_order.end());
  CHECK(std::set<std::uint64_t>(in_order.begin(), in_order.end()) == all);
  CHECK_FALSE(key_exists(server.port(), key));  // the last release freed it
}

// ---------------------------------------------------------------------------------------------
// A paused holder cannot overwrite the work of the holder after it.

TEST_CASE("a holder stopped past its ttl loses the lease and its fenced write is refused") {
  redis_process server;
  const std::string key = unique_key("lock:paused");
  const std::string data = unique_key("lock:paused:data");

  child_process holder([&](const child_channel& ch) {
    auto c = lock_config(server.port(), key);
    c.ttl = 500ms;  // auto_renew (the default) keeps it while the process runs
    const RedisLock l_lock(c);
    auto l = l_lock.run();
    if (!l) {
      ch.say("error: not acquired");
      return 1;
    }
    auto sc = test_support::config_for<RedisSet<std::string>>(server.port());
    sc.redis_key = data;
    sc.fence_token = l->token();
    const RedisSet<std::string> set(sc);
    if (!set.run({.redis_val = "written by the first holder"})) return 2;
    ch.say("token " + std::to_string(l->token()));
    if (ch.hear() != "go") return 3;  // stopped here, then continued
    ch.say(std::string("held ") + (l->held() ? "true" : "false"));
    try {
      l->check();
      ch.say("check passed");
    } catch (const lease_lost_error&) {
      ch.say("check lease_lost_error");
    }
    try {
      set.run({.redis_val = "written by the paused holder"});
      ch.say("write done");
    } catch (const lease_lost_error& e) {
      ch.say(std::string("write lease_lost_error ") + e.what());
    } catch (const std::exception& e) {
      ch.say(std::string("write other error ") + e.what());
    }
    ch.say(std::string("release ") + (l->release() ? "true" : "false"));
    return 0;
  });

  const std::string first = holder.receive(10s);
  const auto first_token = after(first, "token");
  REQUIRE(first_token);
  const std::uint64_t old_token = parse_token(*first_token);

  // Its process (auto-renew thread included) stops; its lock expires on the server.
  REQUIRE(holder.stop());
  wait_until([&] { return !key_exists(server.port(), key); }, 10s,
             "the stopped holder's lock to expire");

  auto c = lock_config(server.port(), key);
  c.ttl = 30s;
  const RedisLock l_lock(c);
  auto l = l_lock.run();
  REQUIRE(l);
  CHECK(l->token() > old_token);
  REQUIRE(fenced_put(server.port(), data, "written by the second holder", l->token()));

  holder.resume();
  holder.send("go");
  CHECK(holder.receive(10s) == "held false");
  CHECK(holder.receive(10s) == "check lease_lost_error");
  const std::string write = holder.receive(10s);
  CHECK_THAT(write, Contains("write lease_lost_error"));
  // The message names the key and both tokens.
  CHECK_THAT(write, Contains(data));
  CHECK_THAT(write, Contains(std::to_string(old_token)));
  CHECK_THAT(write, Contains(std::to_string(l->token())));
  CHECK(holder.receive(10s) == "release false");
  CHECK(holder.wait(10s) == 0);

  CHECK(cli(server.port(), {"GET", data}) == "written by the second holder");
  CHECK(l->held());
  CHECK(cli(server.port(), {"GET", key}) == l->holder());
  CHECK(l->release());
}

// ---------------------------------------------------------------------------------------------
// A dead holder's lock frees itself.

TEST_CASE("a holder killed with SIGKILL frees the lock within its ttl with no help") {
  redis_process server;
  const std::string key = unique_key("lock:killed");
  constexpr auto ttl = 1000ms;

  child_process holder([&](const child_channel& ch) {
    auto c = lock_config(server.port(), key);
    c.ttl = ttl;  // auto-renewed while it lives
    const RedisLock l_lock(c);
    auto l = l_lock.run();
    if (!l) {
      ch.say("error: not acquired");
      return 1;
    }
    ch.say("token " + std::to_string(l->token()));
    ch.hear();  // holds until killed
    return 0;
  });
  const auto line = holder.receive(10s);
  const auto token = after(line, "token");
  REQUIRE(token);

  auto c = lock_config(server.port(), key);
  const RedisLock lock(c);
  CHECK_FALSE(lock.run());  // one try: it is held
  CHECK(pttl(server.port(), key) > 0);
  CHECK(pttl(server.port(), key) <= ttl.count());

  holder.kill();
  // A waiter that waits the ttl and a margin gets it; nobody deleted the key for it.
  auto l = lock.run({.wait = ttl + 4s});
  REQUIRE(l);
  CHECK(l->token() > parse_token(*token));
  CHECK(cli(server.port(), {"GET", key}) == l->holder());
}

TEST_CASE("an acquisition answered after its ttl ran out is void: no lease, the key given back") {
  redis_process server;
  const std::string key = unique_key("lock:late");
  constexpr auto ttl = 200ms;
  auto c = lock_config(server.port(), key);
  c.ttl = ttl;
  c.auto_renew = false;
  const RedisLock lock(c);
  {
    auto warm = lock.run();  // the pooled connection is open before the server stops
    REQUIRE(warm);
  }
  REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
  std::atomic<bool> started{false};
  std::optional<lease> got;
  std::thread runner([&] {
    started = true;
    got = lock.run();
  });
  // The server answers only after it is continued, well past the ttl of the request, which was
  // sent after `started` was set.
  wait_until([&] { return started.load(); }, 10s, "the run to start");
  const auto continue_at = steady::now() + 5 * ttl;
  wait_until([&] { return steady::now() >= continue_at; }, 10s, "the ttl to pass");
  REQUIRE(::kill(server.pid(), SIGCONT) == 0);
  runner.join();
  CHECK_FALSE(got);                                   // wait 0: one try, and it came too late
  CHECK(cli(server.port(), {"EXISTS", key}) == "0");  // given back, not left to expire
  auto after_it = lock.run();                         // the next try is an ordinary one
  REQUIRE(after_it);
  CHECK(after_it->held());
}

// ---------------------------------------------------------------------------------------------
// release() is compare-and-delete.

TEST_CASE("release() and the destructor never delete another holder's lock") {
  redis_process server;
  const std::string key = unique_key("lock:cad");
  auto c = lock_config(server.port(), key);
  c.ttl = 200ms;
  c.auto_renew = false;
  const RedisLock lock(c);

  auto first = lock.run();
  REQUIRE(first);
  CHECK(first->held());
  wait_until([&] { return !key_exists(server.port(), key); }, 10s, "the first lease to expire");

  auto second = lock.run({.ttl = 30s});
  REQUIRE(second);
  CHECK(second->token() > first->token());
  CHECK(second->holder() != first->holder());

  CHECK_FALSE(first->held());
  CHECK_THROWS_AS(first->check(), lease_lost_error);
  CHECK_FALSE(first->extend(30s));
  CHECK_FALSE(first->release());
  CHECK(cli(server.port(), {"GET", key}) == second->holder());
  first.reset();  // its destructor
  CHECK(cli(server.port(), {"GET", key}) == second->holder());
  CHECK(pttl(server.port(), key) > 1000);  // the failed extend did not touch the other's expiry

  CHECK(second->held());
  CHECK(second->release());
  CHECK_FALSE(key_exists(server.port(), key));
  CHECK_FALSE(second->held());
  CHECK_FALSE(second->release());  // once only
}

// ---------------------------------------------------------------------------------------------
// Auto-renewal.

TEST_CASE("auto_renew keeps a lease held through 10 times its ttl") {
  redis_process server;
  const std::string key = unique_key("lock:renewed");
  constexpr auto ttl = 300ms;
  auto c = lock_config(server.port(), key);
  c.ttl = ttl;

  const RedisLock l_lock(c);

  auto l = l_lock.run();
  REQUIRE(l);
  const auto until = steady::now() + 10 * ttl;
  std::string problem;
  int looks = 0;
  wait_until(
      [&] {
        ++looks;
        if (!l->held()) {
          problem = "held() became false";
        } else if (cli(server.port(), {"GET", key}) != l->holder()) {
          problem = "the key no longer names this holder";
        } else if (const auto left = pttl(server.port(), key); left <= 0 || left > ttl.count()) {
          problem = "the key's PTTL is " + std::to_string(left);
        }
        return !problem.empty() || steady::now() >= until;
      },
      30s, "10 ttls to pass");
  CHECK(problem == "");
  CHECK(looks > 1);
  CHECK(l->held());
  CHECK_NOTHROW(l->check());
  CHECK(l->release());
  CHECK_FALSE(key_exists(server.port(), key));

  // Without auto_renew the same lease is lost within those 10 ttls: renewal did the work above.
  c.auto_renew = false;
  const RedisLock unrenewed_lock(c);
  auto unrenewed = unrenewed_lock.run();
  REQUIRE(unrenewed);
  wait_until([&] { return !unrenewed->held(); }, 10 * ttl + 5s,
             "a lease without auto_renew to be lost");
  CHECK_THROWS_AS(unrenewed->check(), lease_lost_error);
}

TEST_CASE("a renewal that finds the lock taken marks the lease lost and leaves the lock alone") {
  redis_process server;
  const std::string key = unique_key("lock:taken");
  auto c = lock_config(server.port(), key);
  c.ttl = 900ms;  // renewed every 300 ms
  const RedisLock lock(c);
  auto l = lock.run();
  REQUIRE(l);
  // Someone takes the key behind the lease's back.
  REQUIRE(cli(server.port(), {"SET", key, "intruder", "PX", "60000"}) == "OK");
  wait_until([&] { return !l->held(); }, 10s, "the lease to notice it lost the lock");
  CHECK_THROWS_AS(l->check(), lease_lost_error);
  CHECK(cli(server.port(), {"GET", key}) == "intruder");
  CHECK(pttl(server.port(), key) > 30000);  // no renewal touched the other's expiry
  CHECK_FALSE(l->release());
  l.reset();
  CHECK(cli(server.port(), {"GET", key}) == "intruder");
}

TEST_CASE("extend() sets a new expiry, and auto-renewal goes on with the new ttl") {
  redis_process server;
  SECTION("without auto_renew: the lease outlives its first ttl") {
    const std::string key = unique_key("lock:extend");
    auto c = lock_config(server.port(), key);
    c.ttl = 300ms;
    c.auto_renew = false;
    const RedisLock l_lock(c);
    auto l = l_lock.run();
    REQUIRE(l);
    const auto start = steady::now();
    CHECK(l->extend(30s));
    CHECK(pttl(server.port(), key) > 10000);
    wait_until([&] { return steady::now() - start > 3 * c.ttl; }, 10s,
               "three of the first ttls to pass");
    CHECK(l->held());
    CHECK(cli(server.port(), {"GET", key}) == l->holder());
    CHECK(l->release());
  }
  SECTION("with auto_renew: renewals use the ttl given to extend()") {
    const std::string key = unique_key("lock:extend-renew");
    auto c = lock_config(server.port(), key);
    c.ttl = 30s;
    const RedisLock l_lock(c);
    auto l = l_lock.run();
    REQUIRE(l);
    CHECK(pttl(server.port(), key) > 10000);
    CHECK(l->extend(300ms));
    CHECK(pttl(server.port(), key) <= 300);
    // Were renewals still due every 10 s (a third of 30 s), the key would be gone after 300 ms.
    const auto until = steady::now() + 3s;
    std::string problem;
    wait_until(
        [&] {
          if (!l->held()) {
            problem = "held() became false";
          } else if (cli(server.port(), {"GET", key}) != l->holder()) {
            problem = "the key no longer names this holder";
          } else if (const auto left = pttl(server.port(), key); left <= 0 || left > 300) {
            problem = "the key's PTTL is " + std::to_string(left);
          }
          return !problem.empty() || steady::now() >= until;
        },
        30s, "3 s to pass");
    CHECK(problem == "");
    CHECK(l->release());
  }
}

// ---------------------------------------------------------------------------------------------
// Waiters wake on release.

TEST_CASE("a waiting acquirer is woken by the release, long before the holder's ttl") {
  redis_process server;
  const std::string key = unique_key("lock:wake");
  const std::string signal = "{" + key + "}:signal";  // where releases wake waiters
  auto c = lock_config(server.port(), key);
  c.ttl = 60s;
  c.auto_renew = false;
  const RedisLock lock(c);
  auto held = lock.run();
  REQUIRE(held);

  child_process waiter([&](const child_channel& ch) {
    auto wc = lock_config(server.port(), key);
    wc.wait = 30s;
    wc.ttl = 30s;
    const RedisLock waiting(wc);
    ch.say("waiting");
    auto l = waiting.run();
    if (!l) {
      ch.say("not acquired");
      return 1;
    }
    ch.say("acquired " + std::to_string(l->token()) + " " + l->holder());
    ch.hear();  // keeps the lease until the parent has looked
    return 0;
  });
  REQUIRE(waiter.receive(10s) == "waiting");

  // With nobody waiting, a release leaves no wake-up behind; while a waiter's flag says someone
  // waits, it leaves one in the list, for a waiter between two tries.
  {
    const std::string lonely = unique_key("lock:wake:lonely");
    auto l = lock.run({.redis_key = lonely});
    REQUIRE(l);
    REQUIRE(l->release());
    CHECK(cli(server.port(), {"LLEN", "{" + lonely + "}:signal"}) == "0");
    l = lock.run({.redis_key = lonely});
    REQUIRE(l);
    CHECK(cli(server.port(), {"SET", "{" + lonely + "}:waiters", "1", "PX", "60000"}) == "OK");
    REQUIRE(l->release());
    CHECK(cli(server.port(), {"LLEN", "{" + lonely + "}:signal"}) == "1");
  }

  // The release must reach a waiter that is blocked on the server. The waiter is frozen
  // (SIGSTOP) while it waits there, so it cannot poll: if the release's signal is gone from
  // the list at once, the server handed it to the waiter's blocked pop. A waiter caught
  // between two pops leaves the signal in the list; then the lock is taken back (which clears
  // the signal) and the waiter is let go to block again.
  bool handed_over = false;
  for (int attempt = 0; attempt < 20 && !handed_over; ++attempt) {
    wait_until([&] { return blocked_clients(server.port()) >= 1; }, 10s,
               "the waiter to block on the server");
    REQUIRE(waiter.stop());
    CHECK(cli(server.port(), {"GET", key}) == held->holder());  // still ours
    REQUIRE(held->release());
    handed_over = cli(server.port(), {"LLEN", signal}) == "0";
    if (!handed_over) {
      held = lock.run();  // the frozen waiter cannot take it meanwhile
      REQUIRE(held);
    }
    waiter.resume();
  }
  REQUIRE(handed_over);

  // The holder's ttl was 60 s and the waiter waits 30 s at most: it acquires at once.
  const std::string line = waiter.receive(25s);
  const auto got = after(line, "acquired");
  REQUIRE(got);
  const auto space = got->find(' ');
  REQUIRE(space != std::string::npos);
  CHECK(parse_token(got->substr(0, space)) > held->token());
  CHECK(cli(server.port(), {"GET", key}) == got->substr(space + 1));
  CHECK(pttl(server.port(), key) > 10000);
  waiter.send("done");
  CHECK(waiter.wait(10s) == 0);
}

TEST_CASE("a wait that outlasts task.timeout ends with std::nullopt, not a timeout_error") {
  // Redis ends a BLPOP at its next timer tick, up to 100 ms late: near the run's deadline the
  // waiter must stop blocking on the server, so that the run ends with "not acquired" before
  // the deadline. Five runs, each waiting until shortly before its deadline.
  redis_process server;
  const std::string key = unique_key("lock:deadline");
  auto c = lock_config(server.port(), key);
  c.ttl = 60s;
  c.auto_renew = false;
  const RedisLock lock(c);
  auto held = lock.run();
  REQUIRE(held);

  auto wc = lock_config(server.port(), key);
  wc.wait = 30s;
  wc.task.timeout = 500ms;
  const RedisLock waiting(wc);
  test_support::check_wait_ends_at_deadline(waiting);
  CHECK(held->held());
}

// ---------------------------------------------------------------------------------------------
// Configuration.

TEST_CASE("lock settings: a bad ttl or a missing key is a config_error before any I/O") {
  // Port 1: nothing listens there, so any I/O would be a connection_error instead.
  const std::string key = unique_key("lock:config");
  auto c = lock_config(1, key);
  c.task.max_retries = 0;
  c.redis_connection_params.connect_timeout = 2000ms;

  auto zero = c;
  zero.ttl = 0ms;
  CHECK_THROWS_AS(RedisLock(zero).run(), redis_tasks::config_error);
  auto negative = c;
  negative.ttl = -5ms;
  CHECK_THROWS_AS(RedisLock(negative).run(), redis_tasks::config_error);
  auto no_key = c;
  no_key.redis_key = std::nullopt;
  CHECK_THROWS_AS(RedisLock(no_key).run(), redis_tasks::config_error);

  const RedisLock lock(c);
  CHECK_THROWS_AS(lock.run({.ttl = 0ms}), redis_tasks::config_error);
  CHECK_THROWS_AS(lock.run({.ttl = -1ms}), redis_tasks::config_error);
  // The same lock with valid settings does reach for the network.
  CHECK_THROWS_AS(lock.run(), redis_tasks::connection_error);
  CHECK_THROWS_AS(RedisLock(no_key).run({.redis_key = key}), redis_tasks::connection_error);
}

TEST_CASE("a RedisLock config loads from JSON with its field names, durations in seconds") {
  redis_process server;
  const std::string key = unique_key("lock:json");
  const auto c = nlohmann::json{{"host", "127.0.0.1"},
                                {"port", server.port()},
                                {"password_secret", nullptr},
                                {"redis_key", key},
                                {"ttl", 2.5},
                                {"wait", 0.25},
                                {"holder", "json-holder"},
                                {"auto_renew", false},
                                {"wait_replicas", 0},
                                {"wait_replicas_timeout", 0.5},
                                {"task", {{"name", "nightly lock"}}}}
                     .get<RedisLock::config>();
  CHECK(c.redis_key == key);
  CHECK(c.ttl == 2500ms);
  CHECK(c.wait == 250ms);
  CHECK(c.holder == "json-holder");
  CHECK_FALSE(c.auto_renew);
  CHECK(c.wait_replicas == 0);
  CHECK(c.wait_replicas_timeout == 500ms);
  CHECK(c.task.name == "nightly lock");

  const RedisLock l_lock(c);

  auto l = l_lock.run();
  REQUIRE(l);
  CHECK(l->key() == key);
  CHECK(l->holder() == "json-holder");
  // A configured holder is stored with a unique id of the acquisition after it.
  CHECK(cli(server.port(), {"GET", key}).rfind("json-holder/", 0) == 0);
  CHECK(pttl(server.port(), key) > 0);
  CHECK(pttl(server.port(), key) <= 2500);
  CHECK(l->release());

  // Misspelt fields and wrong types name the field.
  CHECK_THROWS_AS((nlohmann::json{{"redis_key", key}, {"ttll", 1}}.get<RedisLock::config>()),
                  redis_tasks::config_error);
  CHECK_THROWS_WITH((nlohmann::json{{"redis_key", key}, {"ttl", "30s"}}.get<RedisLock::config>()),
                    Contains("ttl"));
  CHECK_THROWS_AS((nlohmann::json{{"auto_renew", "yes"}}.get<RedisLock::config>()),
                  redis_tasks::config_error);

  // RedisSet's fence_token loads too.
  const auto sc =
      nlohmann::json{{"redis_key", "k"}, {"fence_token", 42}}.get<RedisSet<std::string>::config>();
  CHECK(sc.fence_token == std::optional<std::uint64_t>(42));
}

TEST_CASE("holders: a unique default per lease, the config's, or the override's") {
  redis_process server;
  const std::string key = unique_key("lock:holders");
  const RedisLock lock(lock_config(server.port(), key));

  auto a = lock.run();
  REQUIRE(a);
  CHECK(a->key() == key);
  CHECK_FALSE(a->holder().empty());
  CHECK(cli(server.port(), {"GET", key}) == a->holder());
  CHECK_FALSE(lock.run());  // one try while it is held
  CHECK(a->release());
  auto b = lock.run();
  REQUIRE(b);
  CHECK(b->holder() != a->holder());
  CHECK(b->token() > a->token());
  CHECK(b->release());

  auto c = lock_config(server.port(), key);
  c.holder = "worker-7";
  const RedisLock named(c);
  auto n = named.run();
  REQUIRE(n);
  CHECK(n->holder() == "worker-7");
  CHECK(cli(server.port(), {"GET", key}).rfind("worker-7/", 0) == 0);
  CHECK(n->release());
  auto o = named.run({.holder = "worker-8"});
  REQUIRE(o);
  CHECK(o->holder() == "worker-8");
  CHECK(cli(server.port(), {"GET", key}).rfind("worker-8/", 0) == 0);
  CHECK(o->release());

  // An override of the key locks that key instead.
  const std::string other = unique_key("lock:holders:other");
  auto p = lock.run({.redis_key = other});
  REQUIRE(p);
  CHECK(p->key() == other);
  CHECK(key_exists(server.port(), other));
  CHECK_FALSE(key_exists(server.port(), key));
}

// ---------------------------------------------------------------------------------------------
// The lease object.

TEST_CASE("a lease moves but does not copy, and moving never releases") {
  static_assert(!std::is_copy_constructible_v<lease>);
  static_assert(!std::is_copy_assignable_v<lease>);
  static_assert(std::is_move_constructible_v<lease>);
  static_assert(std::is_move_assignable_v<lease>);
  static_assert(std::is_base_of_v<redis_tasks::error, lease_lost_error>);

  redis_process server;
  const std::string key_a = unique_key("lock:move:a");
  const std::string key_b = unique_key("lock:move:b");
  auto c = lock_config(server.port(), key_a);
  c.ttl = 600ms;  // auto-renewed: the renewal must follow the lease to its new home
  const RedisLock lock(c);

  std::optional<lease> moved;
  std::uint64_t token = 0;
  std::string holder;
  {
    auto a = lock.run();
    REQUIRE(a);
    token = a->token();
    holder = a->holder();
    lease inner(std::move(*a));  // move construction
    a.reset();                   // the moved-from lease's destructor
    CHECK(inner.held());
    CHECK(cli(server.port(), {"GET", key_a}) == holder);
    moved.emplace(std::move(inner));
  }  // `inner`, moved from, is destroyed here
  REQUIRE(moved);
  CHECK(moved->held());
  CHECK(moved->token() == token);
  CHECK(moved->holder() == holder);
  CHECK(moved->key() == key_a);
  CHECK(cli(server.port(), {"GET", key_a}) == holder);
  // Auto-renewal carries on for the moved lease: it stays held past several ttls.
  const auto start = steady::now();
  wait_until([&] { return steady::now() - start > 3 * c.ttl || !moved->held(); }, 10s,
             "three ttls to pass");
  CHECK(moved->held());
  CHECK(cli(server.port(), {"GET", key_a}) == holder);

  // Move assignment over a lease that holds another lock releases that one (as
  // std::unique_lock does) and takes over the moved one.
  auto b = lock.run({.redis_key = key_b});
  REQUIRE(b);
  CHECK(key_exists(server.port(), key_b));
  *b = std::move(*moved);
  CHECK_FALSE(key_exists(server.port(), key_b));
  CHECK(b->key() == key_a);
  CHECK(b->token() == token);
  CHECK(b->held());
  moved.reset();
  CHECK(cli(server.port(), {"GET", key_a}) == holder);

  // The destructor releases at once: the key is gone when it returns.
  b.reset();
  CHECK_FALSE(key_exists(server.port(), key_a));
}

TEST_CASE("a lease outlives the RedisLock that made it, renewals included") {
  redis_process server;
  const std::string key = unique_key("lock:outlives");
  auto c = lock_config(server.port(), key);
  c.ttl = 300ms;
  std::optional<lease> l;
  {
    const RedisLock lock(c);
    l = lock.run();
  }  // the task is gone; its lease lives on
  REQUIRE(l);
  const auto start = steady::now();
  wait_until([&] { return steady::now() - start > 5 * c.ttl || !l->held(); }, 10s,
             "five ttls to pass");
  CHECK(l->held());
  CHECK(cli(server.port(), {"GET", key}) == l->holder());
  CHECK(l->extend(20s));
  CHECK(pttl(server.port(), key) > 10000);
  CHECK(l->release());
  CHECK_FALSE(key_exists(server.port(), key));
}

TEST_CASE("check() throws lease_lost_error once local time passes the ttl without renewal") {
  redis_process server;
  const std::string key = unique_key("lock:check");
  auto c = lock_config(server.port(), key);
  c.ttl = 300ms;
  c.auto_renew = false;
  const RedisLock l_lock(c);
  auto l = l_lock.run();
  REQUIRE(l);
  CHECK_NOTHROW(l->check());
  // Even if the key stayed on the server, the lease cannot know it still holds: local time
  // decides.
  REQUIRE(cli(server.port(), {"PERSIST", key}) == "1");
  wait_until([&] { return !l->held(); }, 10s, "the lease to count itself lost");
  CHECK_THROWS_AS(l->check(), lease_lost_error);
  CHECK_THROWS_AS(l->check(), redis_tasks::error);

  // And a released lease is not held either.
  const RedisLock m_lock(c);
  auto m = m_lock.run({.redis_key = unique_key("lock:check:2")});
  REQUIRE(m);
  CHECK(m->release());
  CHECK_FALSE(m->held());
  CHECK_THROWS_AS(m->check(), lease_lost_error);
  CHECK_FALSE(m->extend(10s));
}

// ---------------------------------------------------------------------------------------------
// Fenced writes.

TEST_CASE("fenced RedisSet: an equal or larger token writes, a smaller one is refused") {
  redis_process server;
  const int port = server.port();
  const std::string key = unique_key("fence:value");

  CHECK(fenced_put(port, key, "five", 5));
  CHECK(cli(port, {"GET", key}) == "five");
  CHECK(fenced_put(port, key, "five again", 5));
  CHECK(cli(port, {"GET", key}) == "five again");
  CHECK(fenced_put(port, key, "seven", 7));
  CHECK(cli(port, {"GET", key}) == "seven");

  const std::string refused = lease_lost_message([&] { fenced_put(port, key, "six", 6); });
  CHECK_THAT(refused, Contains("lease_lost_error"));
  CHECK_THAT(refused, Contains(key));
  CHECK_THAT(refused, Contains("6"));
  CHECK_THAT(refused, Contains("7"));
  CHECK(cli(port, {"GET", key}) == "seven");  // nothing written
  CHECK(key_exists(port, "{" + key + "}:fence"));

  // The token as an override, on a task whose config has a larger one.
  auto sc = test_support::config_for<RedisSet<std::string>>(port);
  sc.redis_key = key;
  sc.fence_token = 9;
  int attempts = 0;
  std::string error_type;
  sc.task.max_retries = 3;
  sc.task.on_run = [&](const redis_tasks::run_event& e) {
    ++attempts;
    error_type = std::string(e.error_type);
  };
  const RedisSet<std::string> set(sc);
  CHECK(set.run({.redis_val = "nine"}));
  CHECK(cli(port, {"GET", key}) == "nine");
  attempts = 0;
  CHECK_THROWS_AS(set.run({.redis_val = "three", .fence_token = 3}), lease_lost_error);
  CHECK(attempts == 1);  // never retried
  CHECK(error_type == "lease_lost_error");
  CHECK(cli(port, {"GET", key}) == "nine");

  // A collection write refused by its fence leaves the old collection whole.
  const std::string list = unique_key("fence:list");
  const std::vector<std::string> first{"a", "b", "c"};
  CHECK(test_support::put<std::vector<std::string>>(port, list, first, {.fence_token = 10}));
  CHECK_THROWS_AS(
      test_support::put<std::vector<std::string>>(port, list, {"x"}, {.fence_token = 8}),
      lease_lost_error);
  CHECK(test_support::get<std::vector<std::string>>(port, list) == first);
  CHECK(test_support::put<std::vector<std::string>>(port, list, {"y"}, {.fence_token = 11}));
  CHECK(test_support::get<std::vector<std::string>>(port, list) == std::vector<std::string>{"y"});

  // Tokens from real leases: the later holder's write stands.
  const std::string lock_key = unique_key("fence:lock");
  const std::string guarded = unique_key("fence:guarded");
  auto c = lock_config(port, lock_key);
  c.ttl = 200ms;
  c.auto_renew = false;
  const RedisLock old_lease_lock(c);
  auto old_lease = old_lease_lock.run();
  REQUIRE(old_lease);
  wait_until([&] { return !key_exists(port, lock_key); }, 10s, "the first lease to expire");
  const RedisLock new_lease_lock(c);
  auto new_lease = new_lease_lock.run({.ttl = 30s});
  REQUIRE(new_lease);
  CHECK(fenced_put(port, guarded, "new", new_lease->token()));
  CHECK_THROWS_AS(fenced_put(port, guarded, "old", old_lease->token()), lease_lost_error);
  CHECK(cli(port, {"GET", guarded}) == "new");
}

// ---------------------------------------------------------------------------------------------
// fork().

TEST_CASE("a fork child's copy of a lease does nothing to the server") {
  redis_process server;
  const std::string key = unique_key("lock:fork");
  auto c = lock_config(server.port(), key);
  c.ttl = 600ms;  // auto-renewed in the parent, by a thread the child does not have
  const RedisLock l_lock(c);
  auto l = l_lock.run();
  REQUIRE(l);

  SECTION("the child releases it") {
    child_process child([&](const child_channel& ch) {
      ch.say(std::string("held ") + (l->held() ? "true" : "false"));
      ch.say(std::string("release ") + (l->release() ? "true" : "false"));
      ch.say(std::string("extend ") + (l->extend(10ms) ? "true" : "false"));
      l.reset();  // and destroys it
      ch.say("destroyed");
      return 0;
    });
    CHECK(child.receive(10s) == "held false");
    CHECK(child.receive(10s) == "release false");
    CHECK(child.receive(10s) == "extend false");
    CHECK(child.receive(10s) == "destroyed");
    CHECK(child.wait(10s) == 0);
  }
  SECTION("the child only destroys it") {
    child_process child([&](const child_channel& ch) {
      l.reset();
      ch.say("destroyed");
      return 0;
    });
    CHECK(child.receive(10s) == "destroyed");
    CHECK(child.wait(10s) == 0);
  }
  CHECK(l->held());
  CHECK(cli(server.port(), {"GET", key}) == l->holder());
  CHECK(pttl(server.port(), key) > 0);
  // The parent's renewals go on: still held after several ttls.
  const auto start = steady::now();
  wait_until([&] { return steady::now() - start > 3 * c.ttl || !l->held(); }, 10s,
             "three ttls to pass");
  CHECK(l->held());
  CHECK(cli(server.port(), {"GET", key}) == l->holder());
  CHECK(l->release());
  CHECK_FALSE(key_exists(server.port(), key));
}

// ---------------------------------------------------------------------------------------------
// WAIT for replicas.

TEST_CASE("wait_replicas: acknowledged by the replica, or a connection_error and a free lock") {
  redis_process master({"--repl-diskless-sync-delay", "0"});
  redis_process replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  wait_until(
      [&] {
        return test_support::info_field(cli(replica.port(), {"INFO", "replication"}),
                                        "master_link_status") == "up" &&
               test_support::info_field(cli(master.port(), {"INFO", "replication"}),
                                        "connected_slaves") == "1";
      },
      30s, "the replica to sync");
  const std::string key = unique_key("lock:replicas");

  auto c = lock_config(master.port(), key);
  c.wait_replicas = 1;
  c.wait_replicas_timeout = 5000ms;
  const RedisLock l_lock(c);
  auto l = l_lock.run();
  REQUIRE(l);
  // WAIT returned with the replica's acknowledgement: the replica has the lock already.
  CHECK(cli(replica.port(), {"GET", key}) == l->holder());
  CHECK(l->release());

  auto two = c;
  two.wait_replicas = 2;
  two.wait_replicas_timeout = 300ms;
  CHECK_THROWS_AS(RedisLock(two).run(), redis_tasks::connection_error);
  CHECK_FALSE(key_exists(master.port(), key));
  auto plain = c;
  plain.wait_replicas = 0;
  const RedisLock after_failure_lock(plain);
  auto after_failure = after_failure_lock.run();
  CHECK(after_failure);  // one try: nobody holds it
}

// ---------------------------------------------------------------------------------------------
// Review findings: shared holder names, racing extensions, batches after SCRIPT FLUSH.

TEST_CASE("two processes given the same holder never both hold the lock") {
  redis_process server;
  const std::string key = unique_key("lock:same-holder");
  auto c = lock_config(server.port(), key);
  c.holder = "etl-worker";
  c.auto_renew = false;
  const RedisLock lock(c);
  auto a = lock.run();
  REQUIRE(a);
  CHECK(a->holder() == "etl-worker");
  child_process other([&](const child_channel& ch) {
    const RedisLock same(c);
    auto b = same.run();
    ch.say(b ? "acquired" : "refused");
    return 0;
  });
  CHECK(other.receive(10s) == "refused");
  CHECK(other.wait(10s) == 0);
  // A second lease of the same holder in this process cannot release the first one's either.
  CHECK_FALSE(lock.run());
  CHECK(a->held());
  CHECK(a->release());
}

TEST_CASE("an extension and a renewal never leave held() true for a lock the server dropped") {
  redis_process server;
  const std::string key = unique_key("lock:extend-race");
  auto c = lock_config(server.port(), key);
  c.ttl = 30ms;  // renewals every 10 ms, racing the extensions below
  const RedisLock lock(c);
  for (int i = 0; i < 30; ++i) {
    auto l = lock.run();
    REQUIRE(l);
    if (!l->extend(60s)) continue;  // lost before the extension: nothing to check
    // Once the extension returned, no renewal may shorten the lock to 30 ms again.
    const auto start = steady::now();
    wait_until([&] { return steady::now() - start > 90ms; }, 5s, "three short ttls to pass");
    INFO("iteration " << i);
    CHECK(l->held());
    CHECK(cli(server.port(), {"GET", key}) == l->holder());
    CHECK(l->release());
  }
}

TEST_CASE("fenced writes in a batch keep their order after the server forgot the script") {
  redis_process server;
  const std::string key = unique_key("fence:batch-order");
  auto c = test_support::config_for<RedisSet<std::string>>(server.port());
  c.redis_key = key;
  const RedisSet<std::string> set(c);
  REQUIRE(set.run({.redis_val = "warm", .fence_token = 1}));  // the script is cached now
  CHECK(cli(server.port(), {"SCRIPT", "FLUSH"}) == "OK");
  const auto results = set.run_many({{.redis_val = "first", .fence_token = 2},
                                     {.redis_val = "second"},
                                     {.redis_val = "third", .fence_token = 3}});
  REQUIRE(results.size() == 3);
  for (const auto& r : results)
    CHECK(r.ok());
  CHECK(cli(server.port(), {"GET", key}) == "third");
  CHECK(cli(server.port(), {"GET", "{" + key + "}:fence"}) == "3");
}

TEST_CASE("lease::extend refuses a ttl that is not positive or longer than 30 years") {
  redis_process server;
  const RedisLock lock(lock_config(server.port(), unique_key("lock:extend-bounds")));
  auto l = lock.run();
  REQUIRE(l);
  CHECK_THROWS_AS(l->extend(0ms), redis_tasks::config_error);
  CHECK_THROWS_AS(l->extend(std::chrono::hours(24) * 365 * 31), redis_tasks::config_error);
  CHECK(l->held());
  CHECK(l->extend(60s));
}
