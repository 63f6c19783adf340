// RedisCache<T> on a private server, with real processes: 16 callers in 4 forked processes of
// which one computes, a computing process killed with SIGKILL or stopped with SIGSTOP past its
// lock_ttl (a waiter takes over; the stalled one's late write is refused by its fencing token),
// an fn that throws (its lock goes at once, and a waiter computes without waiting for
// lock_ttl), the entry key's identity, TTLs of the entry and its companion keys, every kind of
// storable T, and JSON configs. Children never use Catch2: they report lines through a pipe
// and end with _exit. fn calls are counted by INCR on a test key, across processes.
//
// ThreadSanitizer cannot follow a forked child that starts threads when its parent had threads
// at the fork; a RedisCache starts the lease renewal thread of its process. So every test forks
// its children before the parent runs anything that starts a thread.
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::cache_result;
using redis_tasks::RedisCache;
using redis_tasks::RedisExecute;
using test_support::child_channel;
using test_support::child_process;
using test_support::redis_process;
using test_support::unique_key;
using test_support::wait_until;

namespace cache_test {

/// A JSON type (stored as JSON text).
struct report {
  std::string region;
  double revenue = 0;
  std::vector<int> weeks;
  bool operator==(const report& o) const {
    return region == o.region && revenue == o.revenue && weeks == o.weeks;
  }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(report, region, revenue, weeks)

/// A user type stored as a hash through value_traits.
struct point {
  double x = 0;
  double y = 0;
  bool operator==(const point& o) const { return x == o.x && y == o.y; }
};

/// What a failing step throws: its own type, so the test sees that exact exception arrive.
struct step_failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace cache_test

template <>
struct redis_tasks::value_traits<cache_test::point> {
  using storage_type = std::map<std::string, double>;
  static storage_type to_storage(const cache_test::point& p) { return {{"x", p.x}, {"y", p.y}}; }
  static cache_test::point from_storage(storage_type s) {
    if (s.size() != 2 || !s.count("x") || !s.count("y")) {
      throw redis_tasks::type_error("a point needs exactly the fields x and y");
    }
    return {s["x"], s["y"]};
  }
};

namespace {

using Cache = RedisCache<std::string>;

template <class T>
typename RedisCache<T>::config cache_config(int port, const std::string& ns) {
  auto c = test_support::config_for<RedisCache<T>>(port);
  c.redis_key = ns;
  c.ttl = 1h;
  return c;
}

// redis-cli's answer without its trailing newline.
std::string cli(int port, std::vector<std::string> args) {
  std::string out = test_support::redis_cli(port, std::move(args));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

long long pttl(int port, const std::string& key) {
  return std::stoll(cli(port, {"PTTL", key}));
}

bool exists(int port, const std::string& key) {
  return cli(port, {"EXISTS", key}) == "1";
}

// The companion keys of an entry without a hash tag (COORDINATION.md: `{key}:suffix`).
std::string lock_key(const std::string& entry) {
  return "{" + entry + "}:lock";
}
std::string token_key(const std::string& entry) {
  return "{" + entry + "}:lock:token";
}
std::string fence_key(const std::string& entry) {
  return "{" + entry + "}:fence";
}
std::string done_channel(const std::string& entry) {
  return "{" + entry + "}:done";
}

// How many clients are subscribed to `channel` (PUBSUB NUMSUB): the callers waiting for an
// entry's result, each on a subscribed connection of its own.
long long subscribers(int port, const std::string& channel) {
  const std::string out = cli(port, {"PUBSUB", "NUMSUB", channel});
  const auto nl = out.find('\n');
  return nl == std::string::npos ? -1 : std::stoll(out.substr(nl + 1));
}

// A counter of fn calls on the server, shared by every process.
struct call_counter {
  int port;
  std::string key;
  void count() const {
    auto c = test_support::config_for<RedisExecute<long long>>(port);
    c.redis_cmd = redis_tasks::command{std::vector<std::string>{"INCR", key}};
    (void)RedisExecute<long long>(c).run();
  }
  long long calls() const {
    const std::string v = cli(port, {"GET", key});
    return v.empty() ? 0 : std::stoll(v);
  }
};

// "word rest" → rest, when `line` starts with `word `; else nullopt.
std::optional<std::string> after(const std::string& line, const std::string& word) {
  if (line.rfind(word + " ", 0) != 0) return std::nullopt;
  return line.substr(word.size() + 1);
}

// A child's report of its run: "result hit <value>", "result miss <value>".
std::string result_line(const cache_result<std::string>& r) {
  return std::string("result ") + (r.hit ? "hit " : "miss ") + r.value;
}

// A caller in a child process: told "go", it runs the cache once and reports the result (or
// the exception). `fn` is what it computes, given the channel.
template <class Fn>
int one_caller(const child_channel& ch, const Cache::config& c, Fn fn) {
  const Cache cache(c);
  ch.say("ready");
  if (ch.hear() != "go") return 4;
  try {
    ch.say(result_line(cache.run([&] { return fn(ch); })));
  } catch (const cache_test::step_failed& e) {
    ch.say(std::string("threw step_failed ") + e.what());
  } catch (const std::exception& e) {
    ch.say(std::string("threw ") + e.what());
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Single flight across processes.

TEST_CASE("16 callers in 4 processes: fn runs once, every caller gets its value, 15 hits") {
  redis_process server;
  const std::string ns = unique_key("cache:flight");
  const call_counter counter{server.port(), unique_key("cache:flight:calls")};
  constexpr int processes = 4;
  constexpr int per_process = 4;
  auto c = cache_config<std::string>(server.port(), ns);
  c.inputs = {{"report", "north"}, {"week", 7}};
  c.lock_ttl = 10s;
  c.wait = 60s;

  std::vector<std::unique_ptr<child_process>> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(std::make_unique<child_process>([&](const child_channel& ch) {
      const Cache cache(c);
      ch.say("ready");
      if (ch.hear() != "go") return 4;
      std::vector<std::string> lines(per_process);
      std::vector<std::thread> callers;
      for (int i = 0; i < per_process; ++i) {
        callers.emplace_back([&, i] {
          try {
            lines[i] = result_line(cache.run([&] {
              counter.count();
              ch.say("computing");
              // The computation stays open until the test has seen every other caller wait.
              if (ch.hear() != "finish") throw std::runtime_error("not told to finish");
              return "computed in process " + std::to_string(::getpid());
            }));
          } catch (const std::exception& e) {
            lines[i] = std::string("threw ") + e.what();
          }
        });
      }
      for (auto& t : callers)
        t.join();
      for (const auto& line : lines)
        ch.say(line);
      ch.say("done");
      return 0;
    }));
  }
  for (auto& child : children)
    REQUIRE(child->receive(30s) == "ready");
  const std::string entry = Cache(c).entry_key();
  for (auto& child : children)
    child->send("go");

  // One caller computes, and holds its computation open.
  child_process* computing = nullptr;
  std::string unexpected;
  wait_until(
      [&] {
        for (auto& child : children) {
          const std::string line = child->receive(20ms);
          if (line == "computing") {
            computing = child.get();
          } else if (line != "(timeout)") {
            unexpected = line;
          }
        }
        return computing != nullptr || !unexpected.empty();
      },
      30s, "a caller to start computing");
  INFO("unexpected line: " << unexpected);
  REQUIRE(computing != nullptr);
  REQUIRE(unexpected.empty());

  // The 15 others all wait for its result, each subscribed to the entry's channel, while it
  // holds the entry's lock and nothing is stored yet.
  wait_until([&] { return subscribers(server.port(), done_channel(entry)) == 15; }, 30s,
             "15 callers to wait for the result");
  CHECK(exists(server.port(), lock_key(entry)));
  CHECK_FALSE(exists(server.port(), entry));
  CHECK(counter.calls() == 1);
  computing->send("finish");

  const std::string expected = "computed in process " + std::to_string(computing->pid());
  int hits = 0;
  int misses = 0;
  int extra_computations = 0;
  for (auto& child : children) {
    for (;;) {
      const std::string line = child->receive(60s);
      if (line == "done") break;
      if (line == "computing") {  // a second fn call: let it end, and count it
        ++extra_computations;
        child->send("finish");
        continue;
      }
      if (const auto hit = after(line, "result hit")) {
        ++hits;
        CHECK(*hit == expected);
      } else if (const auto miss = after(line, "result miss")) {
        ++misses;
        CHECK(*miss == expected);
        CHECK(child.get() == computing);
      } else {
        FAIL("a caller reported: " << line);
      }
    }
    CHECK(child->wait(30s) == 0);
  }
  CHECK(extra_computations == 0);
  CHECK(misses == 1);
  CHECK(hits == 15);
  CHECK(counter.calls() == 1);
  CHECK(cli(server.port(), {"GET", entry}) == expected);
  // The lock went with the computation; nobody waits any more.
  CHECK_FALSE(exists(server.port(), lock_key(entry)));
  CHECK(subscribers(server.port(), done_channel(entry)) == 0);
}

TEST_CASE("the computing process killed: a waiter takes over after lock_ttl, fn runs twice") {
  redis_process server;
  const std::string ns = unique_key("cache:killed");
  const call_counter counter{server.port(), unique_key("cache:killed:calls")};
  auto c = cache_config<std::string>(server.port(), ns);
  c.inputs = {{"job", "killed"}};
  c.lock_ttl = 2s;  // renewed while the computing process lives
  c.wait = 60s;

  child_process first([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel& in) -> std::string {
      counter.count();
      in.say("computing");
      in.hear();  // until killed
      return "never returned";
    });
  });
  auto takeover = [&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel&) {
      counter.count();
      return "computed by " + std::to_string(::getpid());
    });
  };
  child_process second(takeover);
  child_process third(takeover);
  REQUIRE(first.receive(30s) == "ready");
  REQUIRE(second.receive(30s) == "ready");
  REQUIRE(third.receive(30s) == "ready");
  const std::string entry = Cache(c).entry_key();

  first.send("go");
  REQUIRE(first.receive(30s) == "computing");
  const std::uint64_t first_token = std::stoull(cli(server.port(), {"GET", token_key(entry)}));
  CHECK(exists(server.port(), lock_key(entry)));
  CHECK(pttl(server.port(), lock_key(entry)) <= 2000);

  second.send("go");
  third.send("go");
  wait_until([&] { return subscribers(server.port(), done_channel(entry)) == 2; }, 30s,
             "the two others to wait for the result");
  CHECK(counter.calls() == 1);

  // Killed mid-computation: its lease is no longer renewed and expires after lock_ttl.
  first.kill();
  const std::string r2 = second.receive(30s);
  const std::string r3 = third.receive(30s);
  INFO("second: " << r2 << "; third: " << r3);
  const bool second_computed = after(r2, "result miss").has_value();
  const bool third_computed = after(r3, "result miss").has_value();
  CHECK(second_computed != third_computed);  // exactly one took over
  const std::string value =
      "computed by " + std::to_string(second_computed ? second.pid() : third.pid());
  CHECK(r2 == std::string("result ") + (second_computed ? "miss " : "hit ") + value);
  CHECK(r3 == std::string("result ") + (third_computed ? "miss " : "hit ") + value);
  CHECK(second.wait(10s) == 0);
  CHECK(third.wait(10s) == 0);

  CHECK(counter.calls() == 2);
  CHECK(cli(server.port(), {"GET", entry}) == value);
  // Written with the takeover's lease, whose token is larger than the killed one's.
  CHECK(std::stoull(cli(server.port(), {"GET", fence_key(entry)})) > first_token);
  CHECK_FALSE(exists(server.port(), lock_key(entry)));
}

TEST_CASE("a computing process stopped past lock_ttl: its late write is refused by its token") {
  redis_process server;
  const std::string ns = unique_key("cache:stalled");
  const call_counter counter{server.port(), unique_key("cache:stalled:calls")};
  auto c = cache_config<std::string>(server.port(), ns);
  c.inputs = {{"job", "stalled"}};
  c.lock_ttl = 2s;
  c.wait = 60s;

  child_process stalled([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel& in) -> std::string {
      counter.count();
      in.say("computing");
      if (in.hear() != "finish") return "not told to finish";
      return "the stalled process's value";
    });
  });
  child_process takeover([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel&) {
      counter.count();
      return std::string("the takeover's value");
    });
  });
  REQUIRE(stalled.receive(30s) == "ready");
  REQUIRE(takeover.receive(30s) == "ready");
  const std::string entry = Cache(c).entry_key();

  stalled.send("go");
  REQUIRE(stalled.receive(30s) == "computing");
  const std::uint64_t stalled_token = std::stoull(cli(server.port(), {"GET", token_key(entry)}));
  takeover.send("go");
  wait_until([&] { return subscribers(server.port(), done_channel(entry)) == 1; }, 30s,
             "the other caller to wait for the result");

  // Stopped (its renewal thread too) mid-computation: its lease expires after lock_ttl, and
  // the waiter takes over and stores its own result.
  REQUIRE(stalled.stop());
  CHECK(takeover.receive(30s) == "result miss the takeover's value");
  CHECK(takeover.wait(10s) == 0);
  CHECK(cli(server.port(), {"GET", entry}) == "the takeover's value");
  const std::string takeover_token = cli(server.port(), {"GET", fence_key(entry)});
  CHECK(std::stoull(takeover_token) > stalled_token);

  // Continued, the stalled process finishes its computation late: its write is refused by its
  // token, and its run returns the takeover's value, as a hit.
  stalled.resume();
  stalled.send("finish");
  CHECK(stalled.receive(30s) == "result hit the takeover's value");
  CHECK(stalled.wait(10s) == 0);
  CHECK(cli(server.port(), {"GET", entry}) == "the takeover's value");
  CHECK(cli(server.port(), {"GET", fence_key(entry)}) == takeover_token);
  CHECK(counter.calls() == 2);
  CHECK(pttl(server.port(), entry) > 0);
}

// ---------------------------------------------------------------------------------------------
// A failing computation.

TEST_CASE("fn throws: its caller gets the exception, nothing is written, a waiter computes") {
  redis_process server;
  const std::string ns = unique_key("cache:throws");
  const call_counter counter{server.port(), unique_key("cache:throws:calls")};
  auto c = cache_config<std::string>(server.port(), ns);
  c.inputs = {{"job", "throws"}};
  // Far beyond the test's timeout: the waiter can only compute because the lock was freed.
  c.lock_ttl = 10min;
  c.wait = 10min;

  child_process thrower([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel& in) -> std::string {
      counter.count();
      in.say("computing");
      if (in.hear() == "throw") throw cache_test::step_failed("the step failed");
      return "not told to throw";
    });
  });
  child_process waiter([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel& in) -> std::string {
      counter.count();
      in.say("computing");
      if (in.hear() != "finish") return "not told to finish";
      return "the waiter's value";
    });
  });
  REQUIRE(thrower.receive(30s) == "ready");
  REQUIRE(waiter.receive(30s) == "ready");
  const std::string entry = Cache(c).entry_key();

  thrower.send("go");
  REQUIRE(thrower.receive(30s) == "computing");
  const std::uint64_t thrower_token = std::stoull(cli(server.port(), {"GET", token_key(entry)}));
  CHECK(pttl(server.port(), lock_key(entry)) > 60000);  // the lease is good for 10 min
  waiter.send("go");
  wait_until([&] { return subscribers(server.port(), done_channel(entry)) == 1; }, 30s,
             "the other caller to wait for the result");

  thrower.send("throw");
  CHECK(thrower.receive(30s) == "threw step_failed the step failed");
  CHECK(thrower.wait(10s) == 0);
  // The waiter computes now, though the thrower's lease had 10 minutes to go: the lock was
  // released at once. Nothing was written meanwhile.
  REQUIRE(waiter.receive(60s) == "computing");
  CHECK_FALSE(exists(server.port(), entry));
  CHECK_FALSE(exists(server.port(), fence_key(entry)));
  CHECK(exists(server.port(), lock_key(entry)));
  CHECK(std::stoull(cli(server.port(), {"GET", token_key(entry)})) > thrower_token);
  waiter.send("finish");
  CHECK(waiter.receive(30s) == "result miss the waiter's value");
  CHECK(waiter.wait(10s) == 0);
  CHECK(counter.calls() == 2);
  CHECK(cli(server.port(), {"GET", entry}) == "the waiter's value");
  CHECK_FALSE(exists(server.port(), lock_key(entry)));
}

TEST_CASE(
    "fn throws with nobody waiting: nothing is stored, the lock is free, the next run computes") {
  redis_process server;
  auto c = cache_config<std::string>(server.port(), unique_key("cache:throws:alone"));
  c.lock_ttl = 10min;
  const Cache cache(c);
  const Cache::overrides o{.inputs = {{"job", "alone"}}};
  const std::string entry = cache.entry_key(o);
  int calls = 0;

  try {
    (void)cache.run(o, [&]() -> std::string {
      ++calls;
      throw cache_test::step_failed("the step failed");
    });
    FAIL("run() returned although fn threw");
  } catch (const cache_test::step_failed& e) {
    CHECK(std::string(e.what()) == "the step failed");
  }
  CHECK(calls == 1);
  CHECK_FALSE(exists(server.port(), entry));
  CHECK_FALSE(exists(server.port(), fence_key(entry)));
  CHECK_FALSE(exists(server.port(), lock_key(entry)));  // released at once, not in 10 min

  const auto computed = cache.run(o, [&] {
    ++calls;
    return std::string("second try");
  });
  CHECK_FALSE(computed.hit);
  CHECK(computed.value == "second try");
  const auto hit = cache.run(o, [&] {
    ++calls;
    return std::string("not called");
  });
  CHECK(hit.hit);
  CHECK(hit.value == "second try");
  CHECK(calls == 2);
}

TEST_CASE("a waiter gives up with timeout_error after wait, and never computes meanwhile") {
  redis_process server;
  auto c = cache_config<std::string>(server.port(), unique_key("cache:wait"));
  c.inputs = {{"job", "slow"}};
  c.lock_ttl = 10min;
  child_process computing([&](const child_channel& ch) {
    return one_caller(ch, c, [&](const child_channel& in) -> std::string {
      in.say("computing");
      if (in.hear() != "finish") return "not told to finish";
      return "the slow value";
    });
  });
  REQUIRE(computing.receive(30s) == "ready");
  computing.send("go");
  REQUIRE(computing.receive(30s) == "computing");

  int calls = 0;
  auto fn = [&] {
    ++calls;
    return std::string("computed by the impatient caller");
  };
  auto impatient = c;
  impatient.wait = 0ms;
  CHECK_THROWS_AS(Cache(impatient).run(fn), redis_tasks::timeout_error);
  impatient.wait = 300ms;
  CHECK_THROWS_AS(Cache(impatient).run(fn), redis_tasks::timeout_error);
  CHECK(calls == 0);

  computing.send("finish");
  CHECK(computing.receive(30s) == "result miss the slow value");
  CHECK(computing.wait(10s) == 0);
  const auto r = Cache(impatient).run(fn);
  CHECK(r.hit);
  CHECK(r.value == "the slow value");
  CHECK(calls == 0);
}

// ---------------------------------------------------------------------------------------------
// The entry key.

TEST_CASE(
    "inputs in any key order are one entry, and a new version, namespace or input is another") {
  redis_process server;
  const std::string ns = unique_key("cache:identity");
  auto c = cache_config<std::string>(server.port(), ns);
  c.version = "v1";
  const Cache cache(c);
  const auto ab = nlohmann::json::parse(R"({"a":1,"b":2})");
  const auto ba = nlohmann::json::parse(R"({"b":2,"a":1})");
  int calls = 0;
  auto returning = [&](std::string v) {
    return [&calls, v] {
      ++calls;
      return v;
    };
  };

  // The key, computed independently: SHA-256 of the version's length, ':', the version and
  // the canonical JSON (keys sorted, no spaces).
  const auto sum =
      test_support::run_process({"sha256sum"}, std::string("2:v1") + R"({"a":1,"b":2})");
  REQUIRE(sum.exit_code == 0);
  CHECK(cache.entry_key({.inputs = ab}) == ns + ":" + sum.out.substr(0, 64));
  CHECK(cache.entry_key({.inputs = ab}) == cache.entry_key({.inputs = ba}));
  CHECK(cache.entry_key({.inputs = {{"outer", {{"y", 1}, {"x", 2}}}}}) ==
        cache.entry_key({.inputs = nlohmann::json::parse(R"({"outer":{"x":2,"y":1}})")}));

  const auto first = cache.run({.inputs = ab}, returning("first"));
  CHECK_FALSE(first.hit);
  CHECK(first.value == "first");
  const auto second = cache.run({.inputs = ba}, returning("second"));
  CHECK(second.hit);
  CHECK(second.value == "first");
  CHECK(calls == 1);
  CHECK(cli(server.port(), {"GET", cache.entry_key({.inputs = ab})}) == "first");

  // A new version is a miss, and leaves the old version's entry alone.
  auto c2 = c;
  c2.version = "v2";
  const Cache cache2(c2);
  CHECK(cache2.entry_key({.inputs = ab}) != cache.entry_key({.inputs = ab}));
  const auto v2 = cache2.run({.inputs = ba}, returning("v2 value"));
  CHECK_FALSE(v2.hit);
  CHECK(v2.value == "v2 value");
  CHECK(calls == 2);
  CHECK(cache.run({.inputs = ab}, returning("unused")).value == "first");
  CHECK(calls == 2);

  // Other inputs (1.0 is not 1), and another namespace, are other entries.
  CHECK(cache.entry_key({.inputs = {{"a", 1.0}, {"b", 2}}}) != cache.entry_key({.inputs = ab}));
  const auto other = cache.run({.inputs = {{"a", 1}, {"b", 3}}}, returning("b is 3"));
  CHECK_FALSE(other.hit);
  CHECK(other.value == "b is 3");
  const std::string ns2 = unique_key("cache:identity:other");
  CHECK(cache.entry_key({.redis_key = ns2, .inputs = ab}).rfind(ns2 + ":", 0) == 0);
  const auto elsewhere = cache.run({.redis_key = ns2, .inputs = ab}, returning("elsewhere"));
  CHECK_FALSE(elsewhere.hit);
  CHECK(calls == 4);

  // run(fn) uses the config's inputs: the same entry as the override with those inputs.
  auto with_inputs = c;
  with_inputs.inputs = ba;
  const Cache configured(with_inputs);
  CHECK(configured.entry_key() == cache.entry_key({.inputs = ab}));
  const auto from_config = configured.run(returning("unused"));
  CHECK(from_config.hit);
  CHECK(from_config.value == "first");
  CHECK(calls == 4);
}

// ---------------------------------------------------------------------------------------------
// Settings.

TEST_CASE("cache settings: a missing ttl and other bad settings are a config_error before I/O") {
  // Port 1: nothing listens there, so any I/O would be a connection_error instead.
  auto c = cache_config<std::string>(1, unique_key("cache:config"));
  c.task.max_retries = 0;
  c.redis_connection_params.connect_timeout = 2000ms;
  auto fn = [] { return std::string("unused"); };

  auto no_ttl = c;
  no_ttl.ttl = std::nullopt;
  CHECK_THROWS_MATCHES(
      Cache(no_ttl), redis_tasks::config_error,
      Catch::Matchers::Predicate<redis_tasks::config_error>([](const redis_tasks::config_error& e) {
        return std::string(e.what()).find("ttl") != std::string::npos;
      }));
  auto both = c;
  both.no_expiry = true;
  CHECK_THROWS_AS(Cache(both), redis_tasks::config_error);
  auto zero_ttl = c;
  zero_ttl.ttl = 0ms;
  CHECK_THROWS_AS(Cache(zero_ttl), redis_tasks::config_error);
  auto negative_ttl = c;
  negative_ttl.ttl = -1ms;
  CHECK_THROWS_AS(Cache(negative_ttl), redis_tasks::config_error);
  auto negative_wait = c;
  negative_wait.wait = -1ms;
  CHECK_THROWS_AS(Cache(negative_wait), redis_tasks::config_error);
  auto zero_lock_ttl = c;
  zero_lock_ttl.lock_ttl = 0ms;
  CHECK_THROWS_AS(Cache(zero_lock_ttl), redis_tasks::config_error);
  auto negative_lock_ttl = c;
  negative_lock_ttl.lock_ttl = -5ms;
  CHECK_THROWS_AS(Cache(negative_lock_ttl), redis_tasks::config_error);
  auto empty_ns = c;
  empty_ns.redis_key = "";
  CHECK_THROWS_AS(Cache(empty_ns), redis_tasks::config_error);

  // No namespace in the config nor in the run.
  auto no_ns = c;
  no_ns.redis_key = std::nullopt;
  const Cache nameless(no_ns);
  CHECK_THROWS_AS(nameless.run(fn), redis_tasks::config_error);
  CHECK_THROWS_AS(nameless.entry_key(), redis_tasks::config_error);
  CHECK_THROWS_AS(nameless.run({.redis_key = unique_key("cache:config")}, fn),
                  redis_tasks::connection_error);

  // Inputs that cannot be written as JSON (a string that is not UTF-8).
  const Cache cache(c);
  CHECK_THROWS_AS(cache.run({.inputs = {{"x", std::string("\xff\xfe")}}}, fn),
                  redis_tasks::config_error);

  // no_expiry without a ttl is valid; valid settings do reach for the network.
  auto forever = c;
  forever.ttl = std::nullopt;
  forever.no_expiry = true;
  CHECK_THROWS_AS(Cache(forever).run(fn), redis_tasks::connection_error);
  CHECK_THROWS_AS(cache.run(fn), redis_tasks::connection_error);
}

TEST_CASE("a RedisCache config loads from JSON (seconds), and a wrong type names the field") {
  const auto c = nlohmann::json{{"redis_key", "c"},     {"ttl", 3600},   {"version", "v1"},
                                {"inputs", {{"x", 1}}}, {"lock_ttl", 5}, {"wait", 2}}
                     .get<Cache::config>();
  CHECK(c.redis_key == std::optional<std::string>("c"));
  CHECK(c.ttl == std::optional<std::chrono::milliseconds>(3600s));
  CHECK(c.version == "v1");
  CHECK(c.inputs == nlohmann::json{{"x", 1}});
  CHECK(c.lock_ttl == 5s);
  CHECK(c.wait == 2s);
  CHECK_FALSE(c.no_expiry);

  const auto forever = nlohmann::json{
      {"redis_key", "c"},
      {"no_expiry", true},
      {"ttl", nullptr}}.get<Cache::config>();
  CHECK(forever.no_expiry);
  CHECK_FALSE(forever.ttl);

  auto names = [](const nlohmann::json& j, const std::string& field) {
    try {
      (void)j.get<Cache::config>();
    } catch (const redis_tasks::config_error& e) {
      return std::string(e.what()).find(field) != std::string::npos;
    }
    return false;
  };
  CHECK(names({{"redis_key", "c"}, {"ttl", "an hour"}}, "ttl"));
  CHECK(names({{"redis_key", "c"}, {"ttl", 60}, {"version", 2}}, "version"));
  CHECK(names({{"redis_key", "c"}, {"ttl", 60}, {"no_expiry", "yes"}}, "no_expiry"));
  CHECK(names({{"redis_key", "c"}, {"ttl", 60}, {"lock_ttl", {1, 2}}}, "lock_ttl"));
  CHECK(names({{"redis_key", "c"}, {"ttl", 60}, {"wait", "soon"}}, "wait"));
  CHECK(names({{"redis_key", 5}, {"ttl", 60}}, "redis_key"));
  CHECK(names({{"redis_key", "c"}, {"tll", 60}}, "tll"));

  // A loaded config runs: the first run computes, the second hits.
  redis_process server;
  auto loaded =
      nlohmann::json{{"host", "127.0.0.1"},  {"port", server.port()}, {"password_secret", nullptr},
                     {"redis_key", "c"},     {"ttl", 3600},           {"version", "v1"},
                     {"inputs", {{"x", 1}}}, {"lock_ttl", 5},         {"wait", 2}}
          .get<Cache::config>();
  const Cache cache(loaded);
  CHECK(cache.entry_key().rfind("c:", 0) == 0);
  CHECK_FALSE(cache.run([] { return std::string("from json"); }).hit);
  const auto hit = cache.run([] { return std::string("unused"); });
  CHECK(hit.hit);
  CHECK(hit.value == "from json");
  CHECK(pttl(server.port(), cache.entry_key()) > 3000000);
}

// ---------------------------------------------------------------------------------------------
// Expiry.

TEST_CASE("entries and their companion keys carry the ttl, and no_expiry entries never expire") {
  redis_process server;
  const int port = server.port();
  constexpr long long hour = 3600000;
  constexpr long long lock_ttl = 30000;  // the default
  // Within a minute of the ttl: set just now, and counting down.
  auto close_to = [](long long v, long long target) { return v > target - 60000 && v <= target; };

  SECTION("a string entry with a ttl") {
    auto c = cache_config<std::string>(port, unique_key("cache:ttl"));
    const Cache cache(c);
    const std::string entry = cache.entry_key({.inputs = {{"n", 1}}});
    CHECK_FALSE(cache.run({.inputs = {{"n", 1}}}, [] { return std::string("v"); }).hit);
    CHECK(close_to(pttl(port, entry), hour));
    // The token counter and the fence record go a lock_ttl after the entry.
    CHECK(close_to(pttl(port, token_key(entry)), hour + lock_ttl));
    CHECK(close_to(pttl(port, fence_key(entry)), hour + lock_ttl));
    CHECK_FALSE(exists(port, lock_key(entry)));
  }
  SECTION("a list entry with a ttl") {
    auto c = cache_config<std::vector<std::string>>(port, unique_key("cache:ttl:list"));
    const RedisCache<std::vector<std::string>> cache(c);
    const std::string entry = cache.entry_key({.inputs = {{"n", 2}}});
    CHECK_FALSE(cache.run({.inputs = {{"n", 2}}},
                          [] {
                            return std::vector<std::string>{"a", "b"};
                          })
                    .hit);
    CHECK(cli(port, {"TYPE", entry}) == "list");
    CHECK(close_to(pttl(port, entry), hour));
    CHECK(close_to(pttl(port, token_key(entry)), hour + lock_ttl));
    CHECK(close_to(pttl(port, fence_key(entry)), hour + lock_ttl));
  }
  SECTION("no_expiry") {
    auto c = cache_config<std::string>(port, unique_key("cache:forever"));
    c.ttl = std::nullopt;
    c.no_expiry = true;
    const Cache cache(c);
    const std::string entry = cache.entry_key({.inputs = {{"n", 3}}});
    CHECK_FALSE(cache.run({.inputs = {{"n", 3}}}, [] { return std::string("v"); }).hit);
    CHECK(pttl(port, entry) == -1);
    CHECK(pttl(port, token_key(entry)) == -1);
    CHECK(pttl(port, fence_key(entry)) == -1);
    CHECK(cache.run({.inputs = {{"n", 3}}}, [] { return std::string("unused"); }).hit);
  }
  SECTION("an expired entry is computed again") {
    auto c = cache_config<std::string>(port, unique_key("cache:expires"));
    c.ttl = 200ms;
    const Cache cache(c);
    const std::string entry = cache.entry_key();
    CHECK_FALSE(cache.run([] { return std::string("first"); }).hit);
    CHECK(cache.run([] { return std::string("unused"); }).value == "first");
    wait_until([&] { return !exists(port, entry); }, 10s, "the entry to expire");
    const auto again = cache.run([] { return std::string("second"); });
    CHECK_FALSE(again.hit);
    CHECK(again.value == "second");
    CHECK(cli(port, {"GET", entry}) == "second");
  }
}

// ---------------------------------------------------------------------------------------------
// Every storable T.

namespace {

template <class T>
void check_round_trip(int port, const std::string& stem, const T& value,
                      const std::string& redis_type) {
  INFO("T: " << stem);
  const RedisCache<T> cache(cache_config<T>(port, unique_key("cache:types:" + stem)));
  const typename RedisCache<T>::overrides o{.inputs = {{"type", stem}}};
  int calls = 0;
  const cache_result<T> first = cache.run(o, [&] {
    ++calls;
    return value;
  });
  CHECK_FALSE(first.hit);
  CHECK(first.value == value);
  const cache_result<T> second = cache.run(o, [&] {
    ++calls;
    return T{};
  });
  CHECK(second.hit);
  CHECK(second.value == value);
  CHECK(calls == 1);
  CHECK(cli(port, {"TYPE", cache.entry_key(o)}) == redis_type);
}

}  // namespace

TEST_CASE("values of every storable T round-trip: computed once, then a hit with an equal value") {
  redis_process server;
  const int port = server.port();
  check_round_trip<std::string>(port, "string", std::string("bytes \0 and \xc3\xa9", 14), "string");
  check_round_trip<long long>(port, "long long", LLONG_MIN, "string");
  check_round_trip<double>(port, "double", 0.1 + 0.2, "string");
  check_round_trip<std::vector<std::string>>(port, "vector", {"b", "a", "b", ""}, "list");
  check_round_trip<std::map<std::string, std::string>>(
      port, "map", {{"region", "north"}, {"revenue", "12.5"}, {"empty", ""}}, "hash");
  check_round_trip<std::set<std::string>>(port, "set", {"x", "y", "z"}, "set");
  check_round_trip<cache_test::report>(port, "json struct", {"north", 1234.5, {1, 2, 3}}, "string");
  check_round_trip<nlohmann::json>(
      port, "json", nlohmann::json{{"list", {1, "two", nullptr}}, {"nested", {{"k", true}}}},
      "string");
  check_round_trip<cache_test::point>(port, "value_traits", {1.5, -2.25}, "hash");

  // JSON types are stored as their JSON text.
  const RedisCache<cache_test::report> reports(
      cache_config<cache_test::report>(port, unique_key("cache:types:report-text")));
  (void)reports.run([] { return cache_test::report{"south", 2, {7}}; });
  CHECK(nlohmann::json::parse(cli(port, {"GET", reports.entry_key()})) ==
        nlohmann::json{{"region", "south"}, {"revenue", 2.0}, {"weeks", {7}}});
}

TEST_CASE("an empty collection result is cached too: fn runs once, and 8 threads share it") {
  redis_process server;
  const std::string ns = unique_key("cache:empty");
  auto c = cache_config<std::vector<std::string>>(server.port(), ns);
  c.ttl = 1h;
  const RedisCache<std::vector<std::string>> cache(c);
  std::atomic<int> calls{0};
  std::atomic<int> hits{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&] {
      const auto r = cache.run({.inputs = {{"n", 1}}}, [&] {
        ++calls;
        return std::vector<std::string>{};
      });
      CHECK(r.value.empty());
      if (r.hit) ++hits;
    });
  }
  for (auto& t : callers)
    t.join();
  CHECK(calls == 1);
  CHECK(hits == 7);
  const std::string entry = cache.entry_key({.inputs = {{"n", 1}}});
  CHECK(std::stoll(test_support::redis_cli(server.port(), {"EXISTS", entry})) == 0);
  const auto marker_ttl =
      std::stoll(test_support::redis_cli(server.port(), {"PTTL", "{" + entry + "}:empty"}));
  CHECK(marker_ttl > 0);
  CHECK(marker_ttl <= 3600000);
  const auto again = cache.run({.inputs = {{"n", 1}}}, [&] {
    ++calls;
    return std::vector<std::string>{"not", "empty"};
  });
  CHECK(again.hit);
  CHECK(again.value.empty());
  CHECK(calls == 1);
}

TEST_CASE("a fence record left above the token counter does not stop the cache from storing") {
  // A counter that expired (or was evicted) while its fence record lived on would start again
  // below it: the computing caller raises the counter to the record first.
  redis_process server;
  auto c = cache_config<std::string>(server.port(), unique_key("cache:stale-fence"));
  const Cache cache(c);
  const std::string entry = cache.entry_key({.inputs = {{"n", 1}}});
  test_support::redis_cli(server.port(), {"SET", "{" + entry + "}:fence", "5"});
  int calls = 0;
  auto fn = [&] {
    ++calls;
    return std::string("fresh");
  };
  CHECK_FALSE(cache.run({.inputs = {{"n", 1}}}, fn).hit);  // computed, and refused once at most
  const auto second = cache.run({.inputs = {{"n", 1}}}, fn);
  CHECK(second.value == "fresh");
  const auto third = cache.run({.inputs = {{"n", 1}}}, fn);
  CHECK(third.hit);
  CHECK(calls <= 2);
  CHECK(test_support::redis_cli(server.port(), {"GET", entry}) == "fresh\n");
}

TEST_CASE("a result JSON cannot hold is a config_error, and the lock is free at once") {
  redis_process server;
  auto c = cache_config<nlohmann::json>(server.port(), unique_key("cache:nan"));
  const RedisCache<nlohmann::json> cache(c);
  CHECK_THROWS_AS(cache.run({.inputs = 1},
                            [] {
                              return nlohmann::json{{"revenue", std::nan("")}};
                            }),
                  redis_tasks::config_error);
  const std::string entry = cache.entry_key({.inputs = 1});
  CHECK(std::stoll(test_support::redis_cli(server.port(), {"EXISTS", entry})) == 0);
  CHECK(std::stoll(test_support::redis_cli(server.port(), {"EXISTS", "{" + entry + "}:lock"})) ==
        0);
  const auto r = cache.run({.inputs = 1}, [] { return nlohmann::json{{"revenue", 1.5}}; });
  CHECK_FALSE(r.hit);
  CHECK(r.value.at("revenue") == 1.5);
}

TEST_CASE("a namespace with a '}' but no hash tag is a config_error before any I/O") {
  auto c = cache_config<std::string>(1, "a}b");
  CHECK_THROWS_AS(Cache(c), redis_tasks::config_error);
  c.redis_key = "cache:{reports}";
  const Cache tagged(c);
  CHECK_THROWS_AS(tagged.entry_key({.redis_key = std::string("x}y")}), redis_tasks::config_error);
  CHECK(tagged.entry_key().rfind("cache:{reports}:", 0) == 0);
}

TEST_CASE("a connection_error thrown by fn reaches its caller, and fn is not called again") {
  // Waiters ride out connection errors; the computing caller's own errors are not theirs.
  redis_process server;
  auto c = cache_config<std::string>(server.port(), unique_key("cache:fn-connection-error"));
  const Cache cache(c);
  int calls = 0;
  CHECK_THROWS_AS(cache.run({.inputs = 1},
                            [&]() -> std::string {
                              ++calls;
                              throw redis_tasks::connection_error("the step's own database");
                            }),
                  redis_tasks::connection_error);
  CHECK(calls == 1);
}
