// RedisKeySensor, RedisPubSubSensor and RedisPublish on private servers. Nothing here waits for
// a guessed time: a key sensor polls every 10 minutes where only a keyspace event may wake it
// (the test gives it 30 s, then makes its predicate refuse everything: a missed event fails),
// writes are made from the run hook right after a chosen check, and the servers are asked
// (PUBSUB NUMSUB, CLIENT LIST, INFO commandstats) whether a subscriber is there, or has read
// everything, before the test goes on. Forked children never use Catch2: they report lines
// through a pipe and end with _exit.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::config_error;
using redis_tasks::pubsub_message;
using redis_tasks::RedisKeySensor;
using redis_tasks::RedisPublish;
using redis_tasks::RedisPubSubSensor;
using redis_tasks::run_event;
using redis_tasks::timeout_error;
using redis_tasks::type_error;
using test_support::at_scope_exit;
using test_support::child_channel;
using test_support::child_process;
using test_support::redis_cli;
using test_support::redis_process;
using test_support::thrown;
using test_support::unique_key;
using test_support::wait_until;

namespace sensors_test {

/// A value_traits type stored as a string: published as its storage form.
struct celsius {
  double degrees = 0;
};

/// A JSON type (nlohmann to_json/from_json): published as its JSON text.
struct order {
  int id = 0;
  std::string state;
};
inline void to_json(nlohmann::json& j, const order& o) {
  j = nlohmann::json{{"id", o.id}, {"state", o.state}};
}
inline void from_json(const nlohmann::json& j, order& o) {
  j.at("id").get_to(o.id);
  j.at("state").get_to(o.state);
}

/// A value_traits type whose from_storage refuses some stored values (as a user's may).
struct positive {
  int n = 0;
};

}  // namespace sensors_test

template <>
struct redis_tasks::value_traits<sensors_test::celsius> {
  using storage_type = std::string;
  static storage_type to_storage(const sensors_test::celsius& c) {
    return std::to_string(static_cast<int>(c.degrees)) + "C";
  }
  static sensors_test::celsius from_storage(const storage_type& s) {
    return {static_cast<double>(std::stoi(s))};
  }
};

template <>
struct redis_tasks::value_traits<sensors_test::positive> {
  using storage_type = int;
  static storage_type to_storage(const sensors_test::positive& p) { return p.n; }
  static sensors_test::positive from_storage(storage_type n) {
    if (n <= 0) throw redis_tasks::type_error("a positive must be above 0");
    return {n};
  }
};

namespace {

using sensors_test::celsius;
using sensors_test::order;
using sensors_test::positive;

// redis-cli's answer without its trailing newline.
std::string cli(int port, std::vector<std::string> args) {
  std::string out = redis_cli(port, std::move(args));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

// The lines of a redis-cli answer.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return lines;
}

// PUBSUB NUMSUB (or SHARDNUMSUB) of one channel: its subscribers; -1 when the answer is not one.
long long numsub(int port, const std::string& channel, const char* which = "NUMSUB") {
  const auto lines = lines_of(redis_cli(port, {"PUBSUB", which, channel}));
  if (lines.size() < 2 || lines[0] != channel) return -1;
  return std::atoll(lines[1].c_str());
}

// PUBSUB NUMPAT: how many pattern subscriptions the server has.
long long numpat(int port) {
  return std::atoll(cli(port, {"PUBSUB", "NUMPAT"}).c_str());
}

std::string keyspace_channel(const std::string& key) {
  return "__keyspace@0__:" + key;
}

// The ids of the clients in subscriber mode (CLIENT LIST TYPE pubsub).
std::vector<std::string> pubsub_client_ids(int port) {
  std::vector<std::string> ids;
  for (const auto& line : lines_of(redis_cli(port, {"CLIENT", "LIST", "TYPE", "pubsub"}))) {
    if (line.rfind("id=", 0) == 0) ids.push_back(line.substr(3, line.find(' ') - 3));
  }
  return ids;
}

// How many PING commands the server has run (INFO commandstats).
long long ping_calls(int port) {
  const std::string info = redis_cli(port, {"INFO", "commandstats"});
  const std::string field = "cmdstat_ping:calls=";
  const auto at = info.find(field);
  if (at == std::string::npos) return 0;
  return std::atoll(info.c_str() + at + field.size());
}

void notifications(int port, const std::string& flags) {
  REQUIRE(cli(port, {"CONFIG", "SET", "notify-keyspace-events", flags}) == "OK");
}

// A loopback port where nothing listens (a task that did any I/O there would fail with a
// connection_error, not a config_error).
int dead_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

template <class T = std::string>
typename RedisKeySensor<T>::config key_config(int port, const std::string& key) {
  auto c = test_support::config_for<RedisKeySensor<T>>(port);
  c.redis_key = key;
  return c;
}

RedisPubSubSensor::config sensor_config(int port, std::vector<std::string> channels,
                                        std::vector<std::string> patterns = {}) {
  auto c = test_support::config_for<RedisPubSubSensor>(port);
  c.channels = std::move(channels);
  c.patterns = std::move(patterns);
  c.timeout = 10s;  // a message that never comes fails the run (and the test) after 10 s
  return c;
}

template <class T = std::string>
typename RedisPublish<T>::config publish_config(int port, const std::string& channel) {
  auto c = test_support::config_for<RedisPublish<T>>(port);
  c.channel = channel;
  return c;
}

// Publishes `data` on `channel` with a one-off RedisPublish; the number of receivers.
long long publish(int port, const std::string& channel, const std::string& data) {
  return RedisPublish<std::string>(publish_config(port, channel)).run({.message = data});
}

// A run that takes only what has arrived: subscribes at the first run, never waits.
const RedisPubSubSensor::overrides now_only{.timeout = 0ms, .soft_fail = true};

// A poke interval that no test lasts: only a keyspace event can end such a wait.
constexpr auto never = std::chrono::minutes(10);

// The checks of a key sensor's run, as its run hook is told of them.
struct check_log {
  std::vector<std::string> commands;
  std::size_t count() const { return commands.size(); }
};

// Gives a key sensor's run 30 s of the test's time, where only the event (or the poke) under
// test can end it sooner: with poke_interval `never`, a run still waiting then has missed its
// event. A short run timeout alone would not show that: the run checks once more at its timeout
// and would find the value without having heard anything. So the run gets a timeout of 40 s
// with soft_fail, and a predicate that refuses every value once the 30 s are up: a run that
// missed the write ends at its timeout with nothing, and the test fails.
template <class T>
class budget {
 public:
  /// Sets the timeout and soft_fail of `c`, and wraps its predicate.
  void bound(typename RedisKeySensor<T>::config& c) {
    c.timeout = 40s;
    c.soft_fail = true;
    c.predicate = [this, inner = std::move(c.predicate)](const T& v) {
      return !expired_.load() && (!inner || inner(v));
    };
  }
  /// Runs `run` on a thread of its own; its result, or a failed test after 30 s.
  template <class F>
  std::optional<T> run(F&& run) {
    auto result = std::async(std::launch::async, std::forward<F>(run));
    if (result.wait_for(30s) != std::future_status::ready) {
      expired_.store(true);
      result.wait();  // at its timeout, with nothing
      FAIL("the run was still waiting after 30 s: it missed the write");
    }
    return result.get();
  }

 private:
  std::atomic<bool> expired_{false};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// RedisKeySensor with keyspace notifications on: it subscribes, then checks, then waits.

TEST_CASE("key sensor: a write right after the check that follows subscribing wakes it") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:event");
  check_log log;
  long long subscribed_at_second_check = -1;
  budget<std::string> b;
  auto c = key_config(server.port(), key);
  c.poke_interval = never;
  c.task.on_run = [&](const run_event& ev) {
    log.commands.emplace_back(ev.command);
    if (log.count() == 2) {
      // The second check, after subscribing: the subscription must be there already, and a
      // write now can only be heard as an event (the next poke is 10 minutes away).
      subscribed_at_second_check = numsub(server.port(), keyspace_channel(key));
      cli(server.port(), {"SET", key, "ready"});
    }
  };
  b.bound(c);
  const RedisKeySensor<std::string> sensor(c);
  const auto v = b.run([&] { return sensor.run(); });
  REQUIRE(v);
  CHECK(*v == "ready");
  CHECK(subscribed_at_second_check == 1);
  CHECK(log.commands == std::vector<std::string>{"GET", "GET", "GET"});
  // The run's subscription ends with the run.
  wait_until([&] { return numsub(server.port(), keyspace_channel(key)) == 0; }, 10s,
             "the key sensor's subscription to end after its run");
}

TEST_CASE("key sensor: a write between the first check and subscribing is not missed") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:between");
  check_log log;
  budget<std::string> b;
  auto c = key_config(server.port(), key);
  c.poke_interval = never;
  c.task.on_run = [&](const run_event& ev) {
    log.commands.emplace_back(ev.command);
    // Right after the first check, before the sensor subscribes: no event will be heard for
    // this write, so the check after subscribing must see it.
    if (log.count() == 1) cli(server.port(), {"SET", key, "early"});
  };
  b.bound(c);
  const RedisKeySensor<std::string> sensor(c);
  const auto v = b.run([&] { return sensor.run(); });
  REQUIRE(v);
  CHECK(*v == "early");
  CHECK(log.count() == 2);
}

TEST_CASE("key sensor: a killed subscription is made again and still hears the write") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:killed");
  check_log log;
  long long subscribed_at_third_check = -1;
  budget<std::string> b;
  auto c = key_config(server.port(), key);
  c.poke_interval = never;
  c.task.on_run = [&](const run_event& ev) {
    log.commands.emplace_back(ev.command);
    // After the check that follows subscribing, the subscription is killed: the sensor must
    // notice, subscribe again, and check again (the third check) before it waits.
    if (log.count() == 2) cli(server.port(), {"CLIENT", "KILL", "TYPE", "pubsub"});
    if (log.count() == 3) {
      subscribed_at_third_check = numsub(server.port(), keyspace_channel(key));
      cli(server.port(), {"SET", key, "heard"});
    }
  };
  b.bound(c);
  const auto v = b.run([&] { return RedisKeySensor<std::string>(c).run(); });
  REQUIRE(v);
  CHECK(*v == "heard");
  CHECK(subscribed_at_third_check == 1);
  CHECK(log.count() == 4);
}

TEST_CASE("key sensor: on another db it listens to that db's keyspace channel") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:db2");
  int checks = 0;
  long long subscribed = -1;
  budget<std::string> b;
  auto c = key_config(server.port(), key);
  c.db = 2;
  c.poke_interval = never;
  c.task.on_run = [&](const run_event&) {
    if (++checks != 2) return;
    subscribed = numsub(server.port(), "__keyspace@2__:" + key);
    cli(server.port(), {"-n", "2", "SET", key, "db2"});
  };
  b.bound(c);
  const auto v = b.run([&] { return RedisKeySensor<std::string>(c).run(); });
  REQUIRE(v);
  CHECK(*v == "db2");
  CHECK(subscribed == 1);
}

TEST_CASE("key sensor: a present key is returned by the first check") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:present");
  REQUIRE(cli(server.port(), {"SET", key, "there"}) == "OK");
  check_log log;
  auto c = key_config(server.port(), key);
  c.poke_interval = never;
  c.timeout = 30s;
  c.task.on_run = [&](const run_event& ev) { log.commands.emplace_back(ev.command); };
  const auto v = RedisKeySensor<std::string>(c).run();
  REQUIRE(v);
  CHECK(*v == "there");
  CHECK(log.count() == 1);
}

TEST_CASE("key sensor over a hash: the predicate sees each written state until one fits") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:hash");
  using Hash = std::map<std::string, std::string>;
  check_log log;
  std::vector<std::string> seen;  // the states the predicate was shown
  budget<Hash> b;
  auto c = key_config<Hash>(server.port(), key);
  c.poke_interval = never;
  c.predicate = [&](const Hash& h) {
    const auto it = h.find("state");
    seen.push_back(it == h.end() ? "(none)" : it->second);
    return it != h.end() && it->second == "done";
  };
  c.task.on_run = [&](const run_event& ev) {
    log.commands.emplace_back(ev.command);
    // Each write comes right after a check: only its keyspace event can start the next one.
    if (log.count() == 2) cli(server.port(), {"HSET", key, "state", "running", "owner", "w1"});
    if (log.count() == 3) cli(server.port(), {"HSET", key, "state", "done"});
  };
  b.bound(c);
  const auto v = b.run([&] { return RedisKeySensor<Hash>(c).run(); });
  REQUIRE(v);
  CHECK(*v == Hash{{"owner", "w1"}, {"state", "done"}});
  CHECK(seen == std::vector<std::string>{"running", "done"});
  CHECK(log.commands == std::vector<std::string>{"HGETALL", "HGETALL", "HGETALL", "HGETALL"});
}

TEST_CASE("key sensor over a number: the first value that satisfies the predicate is returned") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:counter");
  std::vector<long long> seen;
  std::vector<std::string> commands;
  budget<long long> b;
  auto c = key_config<long long>(server.port(), key);
  c.poke_interval = never;
  c.predicate = [&](const long long& n) {
    seen.push_back(n);
    return n >= 3;
  };
  // Every check is followed by an INCR: the sensor reads 1, 2, 3 and stops at 3, woken each
  // time by the INCR's event.
  c.task.on_run = [&](const run_event& ev) {
    commands.emplace_back(ev.command);
    cli(server.port(), {"INCR", key});
  };
  b.bound(c);
  const auto v = b.run([&] { return RedisKeySensor<long long>(c).run(); });
  REQUIRE(v);
  CHECK(*v == 3);
  CHECK(seen == std::vector<long long>{1, 2, 3});
  CHECK(commands == std::vector<std::string>{"GET", "GET", "GET", "GET"});
}

TEST_CASE("key sensor: the value read as T goes through the codecs (value_traits and JSON)") {
  redis_process server;
  notifications(server.port(), "KA");
  SECTION("a value_traits type") {
    const std::string key = unique_key("ks:celsius");
    budget<celsius> b;
    auto c = key_config<celsius>(server.port(), key);
    c.poke_interval = never;
    c.predicate = [](const celsius& t) { return t.degrees > 20; };
    int checks = 0;
    c.task.on_run = [&](const run_event&) {
      ++checks;
      if (checks == 2) cli(server.port(), {"SET", key, "12C"});
      if (checks == 3) cli(server.port(), {"SET", key, "25C"});
    };
    b.bound(c);
    const auto v = b.run([&] { return RedisKeySensor<celsius>(c).run(); });
    REQUIRE(v);
    CHECK(v->degrees == 25);
    CHECK(checks == 4);
  }
  SECTION("a JSON type") {
    const std::string key = unique_key("ks:order");
    budget<order> b;
    auto c = key_config<order>(server.port(), key);
    c.poke_interval = never;
    c.predicate = [](const order& o) { return o.state == "shipped"; };
    int checks = 0;
    c.task.on_run = [&](const run_event&) {
      ++checks;
      if (checks == 2) cli(server.port(), {"SET", key, R"({"id":7,"state":"packed"})"});
      if (checks == 3) cli(server.port(), {"SET", key, R"({"id":7,"state":"shipped"})"});
    };
    b.bound(c);
    const auto v = b.run([&] { return RedisKeySensor<order>(c).run(); });
    REQUIRE(v);
    CHECK(v->id == 7);
    CHECK(v->state == "shipped");
    CHECK(checks == 4);
  }
}

TEST_CASE("key sensor: a key of another type is a type_error") {
  redis_process server;
  const std::string key = unique_key("ks:wrongtype");
  REQUIRE(cli(server.port(), {"SET", key, "plain"}) == "OK");
  auto c = key_config<std::map<std::string, std::string>>(server.port(), key);
  c.timeout = 5s;
  const RedisKeySensor<std::map<std::string, std::string>> sensor(c);
  CHECK_THAT(thrown<type_error>([&] { sensor.run(); }), Contains(key));
}

// ---------------------------------------------------------------------------------------------
// RedisKeySensor without notifications: it polls.

TEST_CASE("key sensor with notifications off polls every poke_interval") {
  redis_process server;  // notify-keyspace-events is "" by default
  const std::string key = unique_key("ks:poll");
  check_log log;
  budget<std::string> b;
  auto c = key_config(server.port(), key);
  c.poke_interval = 50ms;  // within the 30 s of the budget, only a poke can end the run
  c.task.on_run = [&](const run_event& ev) {
    log.commands.emplace_back(ev.command);
    if (log.count() == 1) cli(server.port(), {"SET", key, "polled"});
  };
  b.bound(c);
  const auto v = b.run([&] { return RedisKeySensor<std::string>(c).run(); });
  REQUIRE(v);
  CHECK(*v == "polled");
  // No subscription: the second check is the first poke, which found it.
  CHECK(log.count() == 2);
}

TEST_CASE("key sensor: notifications of other classes than the key's type mean polling") {
  redis_process server;
  const std::string key = unique_key("ks:classes");
  SECTION("hash events only: a string key is polled") {
    notifications(server.port(), "Kh");
    auto c = key_config(server.port(), key);
    c.poke_interval = 50ms;
    c.timeout = 300ms;
    CHECK_THAT(thrown<timeout_error>([&] { RedisKeySensor<std::string>(c).run(); }),
               Contains("polled"));
  }
  SECTION("string events: a string key is not polled") {
    notifications(server.port(), "K$");
    auto c = key_config(server.port(), key);
    c.poke_interval = 50ms;
    c.timeout = 300ms;
    const std::string msg = thrown<timeout_error>([&] { RedisKeySensor<std::string>(c).run(); });
    CHECK_THAT(msg, Contains("did not appear"));
    CHECK_THAT(msg, !Contains("polled"));
  }
  SECTION("keyevent notifications only (E, no K): polled") {
    notifications(server.port(), "EA");
    auto c = key_config(server.port(), key);
    c.poke_interval = 50ms;
    c.timeout = 300ms;
    CHECK_THAT(thrown<timeout_error>([&] { RedisKeySensor<std::string>(c).run(); }),
               Contains("polled"));
  }
}

TEST_CASE("key sensor: exponential_backoff makes far fewer checks than a fixed interval") {
  redis_process server;  // notifications off: the sensor polls
  const std::string key = unique_key("ks:backoff");
  auto checks_in_run = [&](bool backoff) {
    std::size_t checks = 0;
    auto c = key_config(server.port(), key);
    c.poke_interval = 20ms;
    c.timeout = 1500ms;
    c.soft_fail = true;
    c.exponential_backoff = backoff;
    c.task.on_run = [&](const run_event&) { ++checks; };
    CHECK_FALSE(RedisKeySensor<std::string>(c).run());
    return checks;
  };
  // With backoff the pauses are 20, 40, 80, 160, 320, 640 ms (sum 1260), then 1280 ms, cut by
  // the timeout: at most 1 + 7 checks however slow the machine (a slow check only delays the
  // next). Without backoff, 1.5 s at 20 ms makes about 75 checks; 17 need only a check every
  // 88 ms.
  const std::size_t with_backoff = checks_in_run(true);
  const std::size_t without = checks_in_run(false);
  INFO("checks with backoff " << with_backoff << ", without " << without);
  CHECK(with_backoff >= 2);
  CHECK(with_backoff <= 8);
  CHECK(without > 2 * 8);
}

// ---------------------------------------------------------------------------------------------
// RedisKeySensor: timeout, soft_fail, overrides and settings.

TEST_CASE("key sensor: timeout_error names the key, soft_fail returns nullopt") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:absent");
  auto c = key_config(server.port(), key);
  c.poke_interval = 50ms;
  c.timeout = 200ms;
  SECTION("no key: timeout_error") {
    const std::string msg = thrown<timeout_error>([&] { RedisKeySensor<std::string>(c).run(); });
    CHECK_THAT(msg, Contains(key));
    CHECK_THAT(msg, Contains("did not appear"));
  }
  SECTION("a value that never satisfies the predicate: timeout_error saying so") {
    REQUIRE(cli(server.port(), {"SET", key, "pending"}) == "OK");
    c.predicate = [](const std::string& s) { return s == "done"; };
    const std::string msg = thrown<timeout_error>([&] { RedisKeySensor<std::string>(c).run(); });
    CHECK_THAT(msg, Contains(key));
    CHECK_THAT(msg, Contains("predicate"));
  }
  SECTION("soft_fail") {
    c.soft_fail = true;
    CHECK_FALSE(RedisKeySensor<std::string>(c).run());
  }
  SECTION("soft_fail as an override") {
    CHECK_FALSE(RedisKeySensor<std::string>(c).run({.soft_fail = true}));
  }
}

TEST_CASE("key sensor: timeout 0 checks once") {
  redis_process server;
  notifications(server.port(), "KA");
  const std::string key = unique_key("ks:once");
  std::size_t checks = 0;
  auto c = key_config(server.port(), key);
  c.poke_interval = 10ms;
  c.timeout = 0ms;
  c.task.on_run = [&](const run_event&) { ++checks; };
  const RedisKeySensor<std::string> sensor(c);
  SECTION("absent, soft_fail") {
    CHECK_FALSE(sensor.run({.soft_fail = true}));
    CHECK(checks == 1);
  }
  SECTION("absent: timeout_error") {
    CHECK_THAT(thrown<timeout_error>([&] { sensor.run(); }), Contains(key));
    CHECK(checks == 1);
  }
  SECTION("present") {
    REQUIRE(cli(server.port(), {"SET", key, "v"}) == "OK");
    CHECK(sensor.run() == std::optional<std::string>("v"));
    CHECK(checks == 1);
  }
  SECTION("a timeout of 0 as an override") {
    auto c2 = c;
    c2.timeout = 1h;
    CHECK_FALSE(RedisKeySensor<std::string>(c2).run({.timeout = 0ms, .soft_fail = true}));
    CHECK(checks == 1);
  }
}

TEST_CASE("key sensor: overrides of key and predicate win for one run") {
  redis_process server;
  const std::string a = unique_key("ks:ov:a");
  const std::string b = unique_key("ks:ov:b");
  REQUIRE(cli(server.port(), {"SET", b, "from-b"}) == "OK");
  auto c = key_config(server.port(), a);
  c.timeout = 0ms;
  c.soft_fail = true;
  c.predicate = [](const std::string&) { return false; };
  const RedisKeySensor<std::string> sensor(c);
  CHECK_FALSE(sensor.run());
  CHECK_FALSE(sensor.run({.redis_key = b}));  // the config's predicate refuses everything
  CHECK(sensor.run({.redis_key = b, .predicate = [](const std::string& s) {
                      return s == "from-b";
                    }}) == std::optional<std::string>("from-b"));
}

TEST_CASE("key sensor: invalid settings are config errors before any I/O") {
  const int port = dead_port();
  auto c = key_config(port, unique_key("ks:cfg"));
  SECTION("poke_interval 0") {
    c.poke_interval = 0ms;
    CHECK_THAT(thrown<config_error>([&] { RedisKeySensor<std::string>{c}; }),
               Contains("poke_interval"));
  }
  SECTION("negative timeout") {
    c.timeout = -1ms;
    CHECK_THAT(thrown<config_error>([&] { RedisKeySensor<std::string>{c}; }), Contains("timeout"));
  }
  SECTION("negative timeout as an override") {
    const RedisKeySensor<std::string> sensor(c);
    CHECK_THAT(thrown<config_error>([&] { sensor.run({.timeout = -5ms}); }), Contains("timeout"));
  }
  SECTION("an empty key") {
    c.redis_key = "";
    CHECK_THAT(thrown<config_error>([&] { RedisKeySensor<std::string>{c}; }),
               Contains("redis_key"));
  }
  SECTION("no key in the config nor the run") {
    c.redis_key = std::nullopt;
    const RedisKeySensor<std::string> sensor(c);
    CHECK_THAT(thrown<config_error>([&] { sensor.run(); }), Contains("redis_key"));
  }
}

TEST_CASE("key sensor: its own fields load from JSON") {
  const nlohmann::json j = {
      {"host", "127.0.0.1"},   {"port", 7001},  {"redis_key", "jobs:42:done"},
      {"poke_interval", 0.25}, {"timeout", 90}, {"exponential_backoff", true},
      {"soft_fail", true},
  };
  const auto c = j.get<RedisKeySensor<std::string>::config>();
  CHECK(c.port == 7001);
  CHECK(c.redis_key == std::optional<std::string>("jobs:42:done"));
  CHECK(c.poke_interval == 250ms);
  CHECK(c.timeout == 90s);
  CHECK(c.exponential_backoff);
  CHECK(c.soft_fail);
  const auto defaults = nlohmann::json::object().get<RedisKeySensor<std::string>::config>();
  CHECK(defaults.poke_interval == 1s);
  CHECK(defaults.timeout == 1h);
  CHECK_FALSE(defaults.exponential_backoff);
  CHECK_FALSE(defaults.soft_fail);
  auto load = [](nlohmann::json j) {
    return thrown<config_error>([&] { (void)j.get<RedisKeySensor<std::string>::config>(); });
  };
  CHECK_THAT(load({{"poke_interval", "fast"}}), Contains("poke_interval"));
  CHECK_THAT(load({{"timeout", -1}}), Contains("timeout"));
  CHECK_THAT(load({{"exponential_backoff", 1}}), Contains("exponential_backoff"));
  CHECK_THAT(load({{"soft_fail", "yes"}}), Contains("soft_fail"));
  CHECK_THAT(load({{"poke", 1}}), Contains("poke"));
}

TEST_CASE("key sensor from a JSON config runs against the server") {
  redis_process server;
  const std::string key = unique_key("ks:json");
  REQUIRE(cli(server.port(), {"SET", key, "42"}) == "OK");
  const nlohmann::json j = {
      {"host", "127.0.0.1"}, {"port", server.port()}, {"password_secret", nullptr},
      {"redis_key", key},    {"timeout", 0},
  };
  const auto c = j.get<RedisKeySensor<int>::config>();
  CHECK(RedisKeySensor<int>(c).run() == std::optional<int>(42));
}

// ---------------------------------------------------------------------------------------------
// RedisPubSubSensor: every message, in order, between runs too.

TEST_CASE("pub/sub sensor: 1000 messages published at random moments all come out in order") {
  redis_process server;
  const std::string channel = unique_key("ps:stream");
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));  // subscribes; nothing published yet
  REQUIRE(numsub(server.port(), channel) == 1);

  // Jitter, not synchronisation: publisher and consumer drift against each other, so messages
  // land while a run waits, between runs, and in bursts of several between two runs.
  auto jitter = [](std::mt19937& rng) {
    switch (rng() % 4) {
      case 0:
        std::this_thread::yield();
        break;
      case 1:
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
        break;
      default:
        break;
    }
  };
  constexpr int total = 1000;
  long long wrong_receivers = 0;  // the publisher's alone until it is joined
  std::string publish_error;
  std::thread publisher([&, pseed = seed + 1] {
    std::mt19937 rng(pseed);
    const RedisPublish<std::string> pub(publish_config(server.port(), channel));
    try {
      for (int i = 0; i < total; ++i) {
        jitter(rng);
        if (pub.run({.message = "m" + std::to_string(i)}) != 1) ++wrong_receivers;
      }
    } catch (const std::exception& e) {
      publish_error = e.what();
    }
  });
  at_scope_exit join([&] {
    if (publisher.joinable()) publisher.join();
  });

  std::mt19937 rng(seed);
  std::vector<pubsub_message> got;
  int runs = 0;
  while (got.size() < static_cast<std::size_t>(total)) {
    jitter(rng);
    ++runs;
    // A quarter of the runs take only what has arrived (and may find nothing); the others wait.
    auto m = rng() % 4 == 0 ? sensor.run(now_only) : sensor.run();
    if (m) got.push_back(std::move(*m));
  }
  publisher.join();
  INFO("runs " << runs);
  CHECK(publish_error.empty());
  CHECK(wrong_receivers == 0);
  int first_wrong = -1;
  for (int i = 0; i < total; ++i) {
    const auto& m = got[i];
    if (m.data != "m" + std::to_string(i) || m.channel != channel || !m.pattern.empty() ||
        m.gap_before) {
      first_wrong = i;
      break;
    }
  }
  if (first_wrong >= 0) {
    const auto& m = got[first_wrong];
    INFO("message " << first_wrong << ": data " << m.data << ", channel " << m.channel
                    << ", pattern '" << m.pattern << "', gap_before " << m.gap_before);
    CHECK(first_wrong == -1);
  }
  CHECK_FALSE(sensor.run(now_only));  // nothing more, nothing twice
}

TEST_CASE("pub/sub sensor: concurrent runs of one task each get different messages") {
  redis_process server;
  const std::string channel = unique_key("ps:shared");
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  constexpr int total = 300;
  std::vector<int> got[2];
  std::string errors[2];
  auto consume = [&](int who) {
    try {
      for (;;) {
        auto m = sensor.run();
        if (!m) return;
        if (m->data == "end") return;
        got[who].push_back(std::stoi(m->data));
      }
    } catch (const std::exception& e) {
      errors[who] = e.what();
    }
  };
  std::thread a(consume, 0);
  std::thread b(consume, 1);
  at_scope_exit join([&] {
    if (a.joinable()) a.join();
    if (b.joinable()) b.join();
  });
  const RedisPublish<int> pub(publish_config<int>(server.port(), channel));
  for (int i = 0; i < total; ++i)
    CHECK(pub.run({.message = i}) == 1);
  // One end marker each: a consumer stops at its first, so the other gets the second.
  CHECK(publish(server.port(), channel, "end") == 1);
  CHECK(publish(server.port(), channel, "end") == 1);
  a.join();
  b.join();
  CHECK(errors[0].empty());
  CHECK(errors[1].empty());
  for (const auto& g : got)
    CHECK(std::is_sorted(g.begin(), g.end()));
  std::vector<int> all(got[0]);
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::sort(all.begin(), all.end());
  std::vector<int> expected(total);
  for (int i = 0; i < total; ++i)
    expected[i] = i;
  CHECK(all == expected);
}

TEST_CASE("pub/sub sensor: patterns fill `pattern` and channels leave it empty") {
  redis_process server;
  const std::string prefix = unique_key("ps:pat:");
  const std::string direct = unique_key("ps:direct");
  const RedisPubSubSensor sensor(sensor_config(server.port(), {direct}, {prefix + "*"}));
  const long long patterns_before = numpat(server.port());
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(numpat(server.port()) == patterns_before + 1);
  CHECK(numsub(server.port(), direct) == 1);

  CHECK(publish(server.port(), unique_key("ps:other"), "not for us") == 0);
  CHECK(publish(server.port(), prefix + "a", "one") == 1);
  CHECK(publish(server.port(), direct, "two") == 1);
  CHECK(publish(server.port(), prefix + "b", "three") == 1);
  auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->channel == prefix + "a");
  CHECK(m->pattern == prefix + "*");
  CHECK(m->data == "one");
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->channel == direct);
  CHECK(m->pattern.empty());
  CHECK(m->data == "two");
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->channel == prefix + "b");
  CHECK(m->pattern == prefix + "*");
  CHECK(m->data == "three");
  CHECK_FALSE(sensor.run(now_only));
}

TEST_CASE("pub/sub sensor: messages are binary-safe") {
  redis_process server;
  const std::string channel = unique_key("ps:binary");
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  const std::string data("a\0b\r\n$3\r\n\xff", 11);
  CHECK(publish(server.port(), channel, data) == 1);
  CHECK(publish(server.port(), channel, "") == 1);
  auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == data);
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->data.empty());
}

TEST_CASE("pub/sub sensor: the predicate skips messages and carries their gap") {
  redis_process server;
  const std::string channel = unique_key("ps:pred");
  auto c = sensor_config(server.port(), {channel});
  c.predicate = [](const pubsub_message& m) { return m.data.rfind("keep", 0) == 0; };
  const RedisPubSubSensor sensor(c);
  REQUIRE_FALSE(sensor.run(now_only));
  for (const char* d : {"skip1", "keep1", "skip2", "skip3", "keep2", "skip4", "keep3"})
    CHECK(publish(server.port(), channel, d) == 1);
  for (const char* want : {"keep1", "keep2", "keep3"}) {
    const auto m = sensor.run();
    REQUIRE(m);
    CHECK(m->data == want);
    CHECK_FALSE(m->gap_before);
  }
  CHECK_FALSE(sensor.run(now_only));  // the skipped ones are gone
  // An override predicate wins for one run.
  CHECK(publish(server.port(), channel, "skip5") == 1);
  auto m = sensor.run({.predicate = [](const pubsub_message&) { return true; }});
  REQUIRE(m);
  CHECK(m->data == "skip5");
  CHECK_FALSE(m->gap_before);

  // A gap before a skipped message is reported on the next message returned.
  const auto ids = pubsub_client_ids(server.port());
  REQUIRE(ids.size() == 1);
  CHECK(cli(server.port(), {"CLIENT", "KILL", "TYPE", "pubsub"}) == "1");
  wait_until(
      [&] {
        const auto now = pubsub_client_ids(server.port());
        return now.size() == 1 && now[0] != ids[0] && numsub(server.port(), channel) == 1;
      },
      20s, "the sensor to subscribe again on a new connection");
  CHECK(publish(server.port(), channel, "skip6") == 1);
  CHECK(publish(server.port(), channel, "keep4") == 1);
  CHECK(publish(server.port(), channel, "keep5") == 1);
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "keep4");
  CHECK(m->gap_before);
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "keep5");
  CHECK_FALSE(m->gap_before);

  // A predicate that throws: the run ends with its exception, the message it judged is gone,
  // and the next message returned says so.
  CHECK(publish(server.port(), channel, "boom") == 1);
  CHECK(publish(server.port(), channel, "keep6") == 1);
  CHECK_THROWS_WITH(sensor.run({.predicate = [](const pubsub_message& msg) -> bool {
    if (msg.data == "boom") throw std::runtime_error("bad data");
    return true;
  }}),
                    "bad data");
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "keep6");
  CHECK(m->gap_before);
}

// ---------------------------------------------------------------------------------------------
// RedisPubSubSensor: gaps.

TEST_CASE("pub/sub sensor: after CLIENT KILL of the subscriber the next message has gap_before") {
  redis_process server;
  const std::string channel = unique_key("ps:kill");
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(publish(server.port(), channel, "before") == 1);
  auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "before");
  CHECK_FALSE(m->gap_before);

  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    const auto ids = pubsub_client_ids(server.port());
    REQUIRE(ids.size() == 1);
    CHECK(cli(server.port(), {"CLIENT", "KILL", "TYPE", "pubsub"}) == "1");
    // The listener subscribes again by itself, on a new connection.
    wait_until(
        [&] {
          const auto now = pubsub_client_ids(server.port());
          return now.size() == 1 && now[0] != ids[0] && numsub(server.port(), channel) == 1;
        },
        20s, "the sensor to subscribe again on a new connection");
    CHECK(publish(server.port(), channel, "after" + std::to_string(round)) == 1);
    CHECK(publish(server.port(), channel, "next" + std::to_string(round)) == 1);
    m = sensor.run();
    REQUIRE(m);
    CHECK(m->data == "after" + std::to_string(round));
    CHECK(m->gap_before);
    m = sensor.run();
    REQUIRE(m);
    CHECK(m->data == "next" + std::to_string(round));
    CHECK_FALSE(m->gap_before);
  }
}

TEST_CASE("pub/sub sensor: a restart is a gap and runs meanwhile say the subscription is down") {
  redis_process server;
  const std::string channel = unique_key("ps:restart");
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  server.stop();
  std::string msg;
  wait_until(
      [&] {
        msg = thrown<timeout_error>([&] { sensor.run({.timeout = 0ms}); });
        return msg.find("subscription is down") != std::string::npos;
      },
      20s, "a run to report the subscription down");
  CHECK_THAT(msg, Contains(channel));
  server.restart();
  wait_until([&] { return numsub(server.port(), channel) == 1; }, 30s,
             "the sensor to subscribe again after the restart");
  CHECK(publish(server.port(), channel, "back") == 1);
  const auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "back");
  CHECK(m->gap_before);
  CHECK(thrown<timeout_error>([&] { sensor.run({.timeout = 0ms}); }).find("subscription is down") ==
        std::string::npos);
}

TEST_CASE("pub/sub sensor: a sensor destroyed while its server is down ends at once") {
  auto server = std::make_unique<redis_process>();
  const std::string channel = unique_key("ps:down");
  auto sensor = std::make_unique<RedisPubSubSensor>(sensor_config(server->port(), {channel}));
  REQUIRE_FALSE(sensor->run(now_only));
  server->kill();
  wait_until(
      [&] {
        return thrown<timeout_error>([&] {
                 sensor->run({.timeout = 0ms});
               }).find("subscription is down") != std::string::npos;
      },
      20s, "the listener to notice the server is gone");
  sensor.reset();  // stops the reconnecting thread (a hang here fails the test's time limit)
  SUCCEED("destroyed");
}

TEST_CASE("pub/sub sensor: a full buffer drops the oldest messages and flags the gap") {
  redis_process server;
  const std::string channel = unique_key("ps:overflow");
  auto c = sensor_config(server.port(), {channel});
  c.buffer_size = 5;
  // The idle listener PINGs every 250 ms: how the test learns that it has read everything.
  c.redis_connection_params.health_check_interval = 250ms;
  const RedisPubSubSensor sensor(c);
  REQUIRE_FALSE(sensor.run(now_only));
  const auto ids = pubsub_client_ids(server.port());
  REQUIRE(ids.size() == 1);

  const RedisPublish<int> pub(publish_config<int>(server.port(), channel));
  for (int i = 1; i <= 200; ++i)
    REQUIRE(pub.run({.message = i}) == 1);
  // Nobody else sends PING. A PING the server runs after the last PUBLISH (count > p0) is
  // answered after all 200 messages on the subscriber's connection; the listener sends its next
  // PING only once it has read that answer (else it reconnects), and it reads in order, keeping
  // every message before reading on. So a second PING (count >= p0 + 2) on the same connection
  // means all 200 are in the buffer, and no run has taken any: exactly the last 5 are kept.
  const long long p0 = ping_calls(server.port());
  wait_until([&] { return ping_calls(server.port()) >= p0 + 2; }, 20s,
             "two PINGs of the idle listener");
  REQUIRE(pubsub_client_ids(server.port()) == ids);  // no reconnect in between

  std::vector<int> data;
  std::vector<bool> gaps;
  for (int i = 0; i < 5; ++i) {
    const auto m = sensor.run();
    REQUIRE(m);
    data.push_back(std::stoi(m->data));
    gaps.push_back(m->gap_before);
  }
  CHECK(data == std::vector<int>{196, 197, 198, 199, 200});
  CHECK(gaps == std::vector<bool>{true, false, false, false, false});
  CHECK_FALSE(sensor.run(now_only));
  // The gap was reported once: the next message has none.
  REQUIRE(pub.run({.message = 201}) == 1);
  const auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "201");
  CHECK_FALSE(m->gap_before);
}

TEST_CASE("pub/sub sensor: overflow while runs take messages keeps order and flags each drop") {
  redis_process server;
  const std::string channel = unique_key("ps:overflow2");
  auto c = sensor_config(server.port(), {channel});
  c.buffer_size = 3;
  const RedisPubSubSensor sensor(c);
  REQUIRE_FALSE(sensor.run(now_only));
  constexpr int total = 500;
  std::string publish_error;
  std::thread publisher([&] {
    try {
      const RedisPublish<int> pub(publish_config<int>(server.port(), channel));
      for (int i = 1; i <= total; ++i)
        pub.run({.message = i});
    } catch (const std::exception& e) {
      publish_error = e.what();
    }
  });
  at_scope_exit join([&] { publisher.join(); });
  // Whatever the timing: increasing numbers ending with the last, a gap flagged exactly where
  // numbers are missing, and none where none are.
  std::vector<pubsub_message> got;
  while (got.empty() || got.back().data != std::to_string(total)) {
    auto m = sensor.run();
    REQUIRE(m);
    got.push_back(std::move(*m));
  }
  int previous = 0;
  int wrong = 0;
  for (const auto& m : got) {
    const int n = std::stoi(m.data);
    const bool missing = n != previous + 1;
    if (n <= previous || missing != m.gap_before) {
      ++wrong;
      INFO("message " << n << " after " << previous << ", gap_before " << m.gap_before);
      CHECK(wrong == 0);
    }
    previous = n;
  }
  CHECK(wrong == 0);
}

// ---------------------------------------------------------------------------------------------
// RedisPubSubSensor: subscriptions come and go with the tasks.

TEST_CASE("pub/sub sensor: copies subscribe on their own, and nothing outlives the tasks") {
  redis_process server;
  const std::string channel = unique_key("ps:leak");
  const int port = server.port();
  {
    const RedisPubSubSensor first(sensor_config(port, {channel}));
    CHECK(numsub(port, channel) == 0);  // built, never run: nothing subscribed
    {
      const RedisPubSubSensor never_run(first);
      CHECK(numsub(port, channel) == 0);
    }
    REQUIRE_FALSE(first.run(now_only));
    CHECK(numsub(port, channel) == 1);
    {
      const RedisPubSubSensor copy(first);
      CHECK(numsub(port, channel) == 1);  // a copy subscribes at its own first run
      REQUIRE_FALSE(copy.run(now_only));
      CHECK(numsub(port, channel) == 2);
      CHECK(publish(port, channel, "both") == 2);
      auto a = first.run();
      auto b = copy.run();
      REQUIRE(a);
      REQUIRE(b);
      CHECK(a->data == "both");
      CHECK(b->data == "both");
    }
    wait_until([&] { return numsub(port, channel) == 1; }, 10s,
               "the copy's subscription to end with it");

    // Copy assignment: the assigned-to task's own subscription ends; it subscribes anew.
    RedisPubSubSensor other(sensor_config(port, {channel}));
    REQUIRE_FALSE(other.run(now_only));
    CHECK(numsub(port, channel) == 2);
    other = first;
    wait_until([&] { return numsub(port, channel) == 1; }, 10s,
               "the assigned-to task's old subscription to end");
    REQUIRE_FALSE(other.run(now_only));
    CHECK(numsub(port, channel) == 2);

    // A move takes the subscription and its buffered messages along.
    CHECK(publish(port, channel, "moved") == 2);
    RedisPubSubSensor moved(std::move(other));
    CHECK(numsub(port, channel) == 2);
    auto m = moved.run();
    REQUIRE(m);
    CHECK(m->data == "moved");
    m = first.run();
    REQUIRE(m);
    CHECK(m->data == "moved");
  }
  wait_until([&] { return numsub(port, channel) == 0; }, 10s,
             "every subscription to end with its task");
}

#if !defined(__SANITIZE_THREAD__)
// ThreadSanitizer ends a forked child of a multi-threaded parent when the child starts a
// thread; the parent here has a listener thread before it forks.
TEST_CASE("pub/sub sensor: a fork child of a subscribed parent gets a subscription of its own") {
  redis_process server;
  const int port = server.port();
  const std::string channel = unique_key("ps:fork:subscribed");
  const RedisPubSubSensor sensor(sensor_config(port, {channel}));
  REQUIRE_FALSE(sensor.run(now_only));  // the parent subscribes first
  REQUIRE(numsub(port, channel) == 1);
  CHECK(publish(port, channel, "before-fork") == 1);  // for the parent's buffer only
  child_process child([&](const child_channel& ch) {
    // The task the child inherited: its listener (and thread) are the parent's, not here.
    const auto first = sensor.run(now_only);
    if (first) {
      ch.say("error: the child got " + first->data);
      return 1;
    }
    ch.say("subscribed");
    const auto m = sensor.run();
    ch.say("got " + m->data + (m->gap_before ? " gap" : ""));
    return 0;
  });
  REQUIRE(child.receive(20s) == "subscribed");
  CHECK(numsub(port, channel) == 2);
  CHECK(publish(port, channel, "after-fork") == 2);
  CHECK(child.receive(20s) == "got after-fork");
  CHECK(child.wait(20s) == 0);
  auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "before-fork");
  m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "after-fork");
  wait_until([&] { return numsub(port, channel) == 1; }, 10s,
             "the child's subscription to end with it");
}
#endif

TEST_CASE("pub/sub sensor: a fork child running a copy subscribes for itself") {
  redis_process server;
  const int port = server.port();
  const std::string channel = unique_key("ps:fork");
  // No thread before the fork (see above): the parent builds the task but does not run it.
  const RedisPubSubSensor sensor(sensor_config(port, {channel}));
  child_process child([&](const child_channel& ch) {
    const RedisPubSubSensor mine(sensor);
    if (mine.run(now_only)) {
      ch.say("error: a message before any was published");
      return 1;
    }
    ch.say("subscribed");
    for (int i = 0; i < 2; ++i) {
      const auto m = mine.run();
      ch.say("got " + m->data + (m->gap_before ? " gap" : ""));
      if (i == 0 && ch.hear() != "next") return 2;
    }
    return 0;
  });
  REQUIRE(child.receive(20s) == "subscribed");
  CHECK(numsub(port, channel) == 1);  // the child's
  CHECK(publish(port, channel, "one") == 1);
  CHECK(child.receive(20s) == "got one");
  // Now the parent subscribes too: two subscriptions, each receives.
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(numsub(port, channel) == 2);
  CHECK(publish(port, channel, "two") == 2);
  const auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "two");
  CHECK_FALSE(m->gap_before);
  child.send("next");
  CHECK(child.receive(20s) == "got two");
  CHECK(child.wait(20s) == 0);
  wait_until([&] { return numsub(port, channel) == 1; }, 10s,
             "the child's subscription to end with it");
}

// ---------------------------------------------------------------------------------------------
// RedisPubSubSensor: timeout, soft_fail, settings.

TEST_CASE("pub/sub sensor: timeout_error names what it listens to, soft_fail returns nullopt") {
  redis_process server;
  const std::string channel = unique_key("ps:quiet");
  const std::string pattern = unique_key("ps:quiet:*");
  auto c = sensor_config(server.port(), {channel}, {pattern});
  c.timeout = 100ms;
  const RedisPubSubSensor sensor(c);
  const std::string msg = thrown<timeout_error>([&] { sensor.run(); });
  CHECK_THAT(msg, Contains(channel));
  CHECK_THAT(msg, Contains(pattern));
  CHECK_FALSE(sensor.run({.soft_fail = true}));
  auto soft = c;
  soft.soft_fail = true;
  CHECK_FALSE(RedisPubSubSensor(soft).run());
  // A run waits for a message published while it waits.
  const RedisPubSubSensor waiting(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(waiting.run(now_only));
  std::thread later([&] {
    // Not synchronised with the run below, which must get the message either way.
    try {
      publish(server.port(), channel, "late");
    } catch (const std::exception&) {  // the run then times out and fails the test
    }
  });
  at_scope_exit join([&] { later.join(); });
  const auto m = waiting.run();
  REQUIRE(m);
  CHECK(m->data == "late");
}

TEST_CASE("pub/sub sensor: subscribing errors reach the run") {
  SECTION("no server: connection_error") {
    const RedisPubSubSensor sensor(sensor_config(dead_port(), {"a"}));
    CHECK_THROWS_AS(sensor.run(now_only), redis_tasks::connection_error);
    CHECK_THROWS_AS(sensor.run(now_only), redis_tasks::connection_error);  // tried again
  }
  SECTION("a channel the ACL user may not use: reply_error, and nothing leaks") {
    redis_process server;
    REQUIRE(cli(server.port(), {"ACL", "SETUSER", "bob", "on", ">bob-pass", "~*", "resetchannels",
                                "&allowed:*", "+@all"}) == "OK");
    auto c = sensor_config(server.port(), {"denied:x"});
    c.redis_connection_params.username = "bob";
    c.password_secret = "BOB_PASSWORD";
    c.secrets = std::make_shared<test_support::mutable_secret>("bob-pass");
    const RedisPubSubSensor denied(c);
    CHECK_THAT(thrown<redis_tasks::reply_error>([&] { denied.run(now_only); }), Contains("NOPERM"));
    // Its connection is closed: the only client left is the redis-cli that asks.
    wait_until(
        [&] {
          return test_support::info_field(redis_cli(server.port(), {"INFO", "clients"}),
                                          "connected_clients") == "1";
        },
        10s, "the refused subscriber's connection to close");
    c.channels = {"allowed:x"};
    const RedisPubSubSensor allowed(c);
    REQUIRE_FALSE(allowed.run(now_only));
    CHECK(publish(server.port(), "allowed:x", "ok") == 1);
    const auto m = allowed.run();
    REQUIRE(m);
    CHECK(m->data == "ok");
  }
}

TEST_CASE("pub/sub sensor: invalid settings are config errors before any I/O") {
  const int port = dead_port();
  auto c = sensor_config(port, {"a"});
  auto error_of = [](const RedisPubSubSensor::config& cfg) {
    return thrown<config_error>([&] { RedisPubSubSensor{cfg}; });
  };
  SECTION("no channels and no patterns") {
    c.channels.clear();
    CHECK_THAT(error_of(c), Contains("no channels"));
  }
  SECTION("an empty channel name") {
    c.channels = {"a", ""};
    CHECK_THAT(error_of(c), Contains("empty"));
  }
  SECTION("sharded with patterns") {
    c.sharded = true;
    c.patterns = {"p*"};
    CHECK_THAT(error_of(c), Contains("pattern"));
  }
  SECTION("sharded channels in different slots") {
    c.sharded = true;
    c.channels = {"{a}x", "{b}y"};
    const std::string msg = error_of(c);
    CHECK_THAT(msg, Contains("{a}x"));
    CHECK_THAT(msg, Contains("{b}y"));
    CHECK_THAT(msg, Contains("slot"));
  }
  SECTION("sharded channels with one hash tag are fine") {
    c.sharded = true;
    c.channels = {"{a}x", "{a}y"};
    CHECK(error_of(c) == "no exception");
  }
  SECTION("negative timeout") {
    c.timeout = -1ms;
    CHECK_THAT(error_of(c), Contains("timeout"));
  }
  SECTION("negative timeout as an override") {
    const RedisPubSubSensor sensor(c);
    CHECK_THAT(thrown<config_error>([&] { sensor.run({.timeout = -1ms}); }), Contains("timeout"));
  }
  SECTION("buffer_size 0") {
    c.buffer_size = 0;
    CHECK_THAT(error_of(c), Contains("buffer_size"));
  }
}

TEST_CASE("pub/sub sensor: its own fields load from JSON") {
  const nlohmann::json j = {
      {"host", "127.0.0.1"},     {"port", 7002},     {"channels", {"orders:new", "orders:done"}},
      {"patterns", {"audit:*"}}, {"timeout", 2.5},   {"soft_fail", true},
      {"buffer_size", 10},       {"sharded", false},
  };
  const auto c = j.get<RedisPubSubSensor::config>();
  CHECK(c.port == 7002);
  CHECK(c.channels == std::vector<std::string>{"orders:new", "orders:done"});
  CHECK(c.patterns == std::vector<std::string>{"audit:*"});
  CHECK(c.timeout == 2500ms);
  CHECK(c.soft_fail);
  CHECK(c.buffer_size == 10);
  CHECK_FALSE(c.sharded);
  const auto defaults = nlohmann::json::object().get<RedisPubSubSensor::config>();
  CHECK(defaults.buffer_size == 1000);
  CHECK(defaults.timeout == 1h);
  auto load = [](nlohmann::json j) {
    return thrown<config_error>([&] { (void)j.get<RedisPubSubSensor::config>(); });
  };
  CHECK_THAT(load({{"channels", "orders:new"}}), Contains("channels"));
  CHECK_THAT(load({{"channels", {"a", 1}}}), Contains("channels"));
  CHECK_THAT(load({{"patterns", {{"x", 1}}}}), Contains("patterns"));
  CHECK_THAT(load({{"timeout", "soon"}}), Contains("timeout"));
  CHECK_THAT(load({{"buffer_size", 0}}), Contains("buffer_size"));
  CHECK_THAT(load({{"buffer_size", 1.5}}), Contains("buffer_size"));
  CHECK_THAT(load({{"soft_fail", 0}}), Contains("soft_fail"));
  CHECK_THAT(load({{"sharded", "no"}}), Contains("sharded"));
  CHECK_THAT(load({{"channel", {"a"}}}), Contains("channel"));
}

TEST_CASE("pub/sub sensor: sharded channels on one server (SSUBSCRIBE and SPUBLISH)") {
  redis_process server;
  const std::string a = "{" + unique_key("ps:shard") + "}:new";
  const std::string b = "{" + unique_key("ps:shard") + "}:done";
  auto c = sensor_config(server.port(), {a, b});
  c.sharded = true;
  const RedisPubSubSensor sensor(c);
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(numsub(server.port(), a, "SHARDNUMSUB") == 1);
  CHECK(numsub(server.port(), b, "SHARDNUMSUB") == 1);
  CHECK(numsub(server.port(), a) == 0);  // not a plain subscription
  auto pc = publish_config(server.port(), b);
  pc.sharded = true;
  CHECK(RedisPublish<std::string>(pc).run({.message = "sharded"}) == 1);
  const auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->channel == b);
  CHECK(m->data == "sharded");
}

// ---------------------------------------------------------------------------------------------
// RedisPublish.

TEST_CASE("publish: the count of receivers is the number of subscribers") {
  redis_process server;
  const int port = server.port();
  const std::string channel = unique_key("pub:count");
  auto pc = publish_config(port, channel);
  pc.message = "hello";
  const RedisPublish<std::string> pub(pc);
  CHECK(pub.run() == 0);
  const RedisPubSubSensor sensor(sensor_config(port, {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(pub.run() == 1);
  const RedisPubSubSensor copy(sensor);
  REQUIRE_FALSE(copy.run(now_only));
  CHECK(pub.run() == 2);
  // A pattern subscriber counts too.
  const RedisPubSubSensor by_pattern(sensor_config(port, {}, {unique_key("pub:*")}));
  REQUIRE_FALSE(by_pattern.run(now_only));
  CHECK(pub.run() == 3);
  CHECK(pub.run({.channel = unique_key("pub:other")}) == 1);  // the pattern only
  for (const auto* s : {&sensor, &copy}) {
    for (int i = 0; i < 3 - (s == &copy ? 1 : 0); ++i) {
      const auto m = s->run();
      REQUIRE(m);
      CHECK(m->data == "hello");
    }
    CHECK_FALSE(s->run(now_only));
  }
}

TEST_CASE("publish: values are published in their stored form") {
  redis_process server;
  const int port = server.port();
  const std::string channel = unique_key("pub:forms");
  const RedisPubSubSensor sensor(sensor_config(port, {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  auto next = [&] {
    const auto m = sensor.run();
    REQUIRE(m);
    return m->data;
  };

  CHECK(RedisPublish<int>(publish_config<int>(port, channel)).run({.message = 42}) == 1);
  CHECK(next() == "42");
  CHECK(RedisPublish<long long>(publish_config<long long>(port, channel))
            .run({.message = -9000000000LL}) == 1);
  CHECK(next() == "-9000000000");
  CHECK(RedisPublish<double>(publish_config<double>(port, channel)).run({.message = 2.5}) == 1);
  CHECK(next() == "2.5");

  const nlohmann::json j = {{"id", 7}, {"tags", {"a", "b"}}, {"ok", true}};
  CHECK(RedisPublish<nlohmann::json>(publish_config<nlohmann::json>(port, channel))
            .run({.message = j}) == 1);
  const std::string json_text = next();
  CHECK(json_text == j.dump());
  CHECK(nlohmann::json::parse(json_text) == j);

  CHECK(RedisPublish<order>(publish_config<order>(port, channel))
            .run({.message = order{9, "packed"}}) == 1);
  CHECK(nlohmann::json::parse(next()) == nlohmann::json{{"id", 9}, {"state", "packed"}});

  CHECK(
      RedisPublish<celsius>(publish_config<celsius>(port, channel)).run({.message = celsius{21}}) ==
      1);
  CHECK(next() == "21C");

  CHECK(RedisPublish<positive>(publish_config<positive>(port, channel))
            .run({.message = positive{5}}) == 1);
  CHECK(next() == "5");

  // The config's message, then a run's override of channel and message.
  auto pc = publish_config<int>(port, channel);
  pc.message = 7;
  const RedisPublish<int> seven(pc);
  CHECK(seven.run() == 1);
  CHECK(next() == "7");
  CHECK(seven.run({.channel = unique_key("pub:elsewhere"), .message = 8}) == 0);
  CHECK(seven.run({.message = 9}) == 1);
  CHECK(next() == "9");
  CHECK_FALSE(sensor.run(now_only));
}

TEST_CASE("publish: missing or invalid settings are config errors before any I/O") {
  const int port = dead_port();
  auto pc = publish_config(port, "c");
  SECTION("an empty channel") {
    pc.channel = "";
    CHECK_THAT(thrown<config_error>([&] { RedisPublish<std::string>{pc}; }), Contains("channel"));
  }
  SECTION("no channel") {
    pc.channel = std::nullopt;
    pc.message = "m";
    const RedisPublish<std::string> pub(pc);
    CHECK_THAT(thrown<config_error>([&] { pub.run(); }), Contains("channel"));
  }
  SECTION("no message") {
    const RedisPublish<std::string> pub(pc);
    CHECK_THAT(thrown<config_error>([&] { pub.run(); }), Contains("message"));
  }
}

TEST_CASE("publish: its own fields load from JSON, and the task runs from them") {
  redis_process server;
  const std::string channel = unique_key("pub:json");
  const nlohmann::json j = {
      {"host", "127.0.0.1"}, {"port", server.port()}, {"password_secret", nullptr},
      {"channel", channel},  {"message", 42},
  };
  const auto c = j.get<RedisPublish<int>::config>();
  CHECK(c.channel == std::optional<std::string>(channel));
  CHECK(c.message == std::optional<int>(42));
  CHECK_FALSE(c.sharded);
  const RedisPubSubSensor sensor(sensor_config(server.port(), {channel}));
  REQUIRE_FALSE(sensor.run(now_only));
  CHECK(RedisPublish<int>(c).run() == 1);
  const auto m = sensor.run();
  REQUIRE(m);
  CHECK(m->data == "42");

  CHECK(nlohmann::json{{"sharded", true}}.get<RedisPublish<int>::config>().sharded);
  const auto obj =
      nlohmann::json{{"message", {{"id", 3}, {"state", "new"}}}}.get<RedisPublish<order>::config>();
  REQUIRE(obj.message);
  CHECK(obj.message->id == 3);
  CHECK(obj.message->state == "new");

  auto load = [](nlohmann::json j) {
    return thrown<config_error>([&] { (void)j.get<RedisPublish<int>::config>(); });
  };
  CHECK_THAT(load({{"message", "forty-two"}}), Contains("message"));
  CHECK_THAT(load({{"channel", 5}}), Contains("channel"));
  CHECK_THAT(load({{"sharded", "yes"}}), Contains("sharded"));
  CHECK_THAT(load({{"channels", {"a"}}}), Contains("channels"));
  // A value_traits type whose from_storage refuses the value: still a config_error naming the
  // field, as for RedisSet's redis_val.
  CHECK_THAT(thrown<config_error>([] {
               (void)nlohmann::json{{"message", -1}}.get<RedisPublish<positive>::config>();
             }),
             Contains("message"));
}
