// The pure pieces of the coordination tasks: script hashes, companion key names, and their
// settings, every mistake a config_error raised before any I/O (the tasks point at a port where
// nothing listens, so a connection attempt would show up as a connection_error instead).
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::config_error;
using test_support::thrown;

namespace {
using test_support::closed_port;

template <class Task>
typename Task::config keyed_cfg() {
  typename Task::config c;
  c.host = "127.0.0.1";
  c.port = closed_port;
  c.password_secret = std::nullopt;
  c.redis_key = "k";
  return c;
}
}  // namespace

TEST_CASE("sha1_hex gives the digests of FIPS 180 and of lengths around a block boundary") {
  using redis_tasks::detail::sha1_hex;
  CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  // 55 and 56 bytes: the length fits in the last block, or needs one more.
  CHECK(sha1_hex(std::string(55, 'a')) == "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  CHECK(sha1_hex(std::string(56, 'a')) == "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  CHECK(sha1_hex(std::string(1000000, 'a')) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("companion keys share the key's cluster slot") {
  using redis_tasks::detail::companion_key;
  using redis_tasks::detail::key_slot;
  CHECK(companion_key("locks:etl", "token") == "{locks:etl}:token");
  CHECK(companion_key("a{b}c", "token") == "a{b}c:token");
  for (const std::string key : {"locks:etl", "a{b}c", "{user:1}:lock", "x{y}{z}", "k"}) {
    for (const char* suffix : {"token", "signal", "fence"}) {
      INFO(key << " " << suffix);
      CHECK(key_slot(companion_key(key, suffix)) == key_slot(key));
    }
  }
  // A '}' without a hash tag before it cannot be wrapped in one: such a key is kept as it is,
  // and on a Redis Cluster its companions land elsewhere (the server says CROSSSLOT).
  CHECK(companion_key("a{}c", "fence") == "a{}c:fence");
}

TEST_CASE("BLPOP wait steps are written in seconds with milliseconds") {
  using redis_tasks::detail::seconds_text;
  CHECK(seconds_text(1ms) == "0.001");
  CHECK(seconds_text(250ms) == "0.250");
  CHECK(seconds_text(12345ms) == "12.345");
}

TEST_CASE("RedisLock settings are checked when it is built and when it runs") {
  using redis_tasks::RedisLock;
  auto c = keyed_cfg<RedisLock>();
  c.ttl = 0ms;
  CHECK_THAT(thrown<config_error>([&] { RedisLock{c}; }), Contains("ttl must be positive"));
  c = keyed_cfg<RedisLock>();
  c.wait = -1ms;
  CHECK_THAT(thrown<config_error>([&] { RedisLock{c}; }), Contains("wait must not be negative"));
  c = keyed_cfg<RedisLock>();
  c.holder = "";
  CHECK_THAT(thrown<config_error>([&] { RedisLock{c}; }), Contains("holder is empty"));
  c = keyed_cfg<RedisLock>();
  c.wait_replicas = 1;
  c.wait_replicas_timeout = 0ms;
  CHECK_THAT(thrown<config_error>([&] { RedisLock{c}; }), Contains("wait_replicas_timeout"));
  c = keyed_cfg<RedisLock>();
  c.redis_key.reset();
  const RedisLock lock(c);
  CHECK_THAT(thrown<config_error>([&] { (void)lock.run(); }), Contains("redis_key is missing"));
  CHECK_THAT(thrown<config_error>([&] { (void)lock.run({.redis_key = "k", .ttl = -5ms}); }),
             Contains("ttl must be positive"));
}

TEST_CASE("RedisSemaphore and RedisRateLimit settings are checked before any I/O") {
  using redis_tasks::RedisRateLimit;
  using redis_tasks::RedisSemaphore;
  auto s = keyed_cfg<RedisSemaphore>();
  CHECK_THAT(thrown<config_error>([&] { RedisSemaphore{s}; }),
             Contains("limit must be at least 1"));
  s.limit = 4;
  s.ttl = 0ms;
  CHECK_THAT(thrown<config_error>([&] { RedisSemaphore{s}; }), Contains("ttl must be positive"));

  auto r = keyed_cfg<RedisRateLimit>();
  CHECK_THAT(thrown<config_error>([&] { RedisRateLimit{r}; }), Contains("rate must be at least 1"));
  r.rate = 10;
  r.period = 0ms;
  CHECK_THAT(thrown<config_error>([&] { RedisRateLimit{r}; }), Contains("period must be positive"));
  r.period = 1s;
  r.burst = 2;
  r.cost = 3;
  CHECK_THAT(thrown<config_error>([&] { RedisRateLimit{r}; }), Contains("more than burst 2"));
  r.cost = 1;
  const RedisRateLimit limit(r);
  CHECK_THAT(thrown<config_error>([&] { (void)limit.run({.cost = 3}); }),
             Contains("more than burst 2"));
  CHECK_THAT(thrown<config_error>([&] { (void)limit.run({.cost = -1}); }),
             Contains("must not be negative"));
}

TEST_CASE("coordination configs load from JSON with durations in seconds") {
  using redis_tasks::RedisLock;
  using redis_tasks::RedisRateLimit;
  using redis_tasks::RedisSemaphore;
  const auto lock =
      nlohmann::json{{"port", 7000},       {"redis_key", "locks:etl"},     {"ttl", 12.5},
                     {"wait", 2},          {"holder", "worker-7"},         {"auto_renew", false},
                     {"wait_replicas", 1}, {"wait_replicas_timeout", 0.25}}
          .get<RedisLock::config>();
  CHECK(lock.port == 7000);
  CHECK(lock.redis_key == "locks:etl");
  CHECK(lock.ttl == 12500ms);
  CHECK(lock.wait == 2000ms);
  CHECK(lock.holder == "worker-7");
  CHECK_FALSE(lock.auto_renew);
  CHECK(lock.wait_replicas == 1);
  CHECK(lock.wait_replicas_timeout == 250ms);

  const auto sem =
      nlohmann::json{{"redis_key", "s"}, {"limit", 4}, {"ttl", 1}}.get<RedisSemaphore::config>();
  CHECK(sem.limit == 4);
  CHECK(sem.ttl == 1000ms);

  const auto rate = nlohmann::json{{"redis_key", "r"}, {"rate", 100}, {"period", 60},
                                   {"burst", 20},      {"cost", 2},   {"wait", 0.5}}
                        .get<RedisRateLimit::config>();
  CHECK(rate.rate == 100);
  CHECK(rate.period == 60000ms);
  CHECK(rate.burst == 20);
  CHECK(rate.cost == 2);
  CHECK(rate.wait == 500ms);

  const auto set = nlohmann::json{{"redis_key", "k"}, {"fence_token", 42}}
                       .get<redis_tasks::RedisSet<std::string>::config>();
  CHECK(set.fence_token == 42u);

  CHECK_THAT(thrown<config_error>([] {
               (void)nlohmann::json{{"limit", "four"}}.get<RedisSemaphore::config>();
             }),
             Contains("config.limit: must be a whole number"));
  CHECK_THAT(thrown<config_error>([] {
               (void)nlohmann::json{{"ttl", "30s"}}.get<RedisLock::config>();
             }),
             Contains("config.ttl: must be a number of seconds"));
  CHECK_THAT(thrown<config_error>([] {
               (void)nlohmann::json{{"rate", 0}}.get<RedisRateLimit::config>();
             }),
             Contains("config.rate: must be a whole number from 1"));
  CHECK_THAT(
      thrown<config_error>([] {
        (void)nlohmann::json{{"limit", 2}}.get<RedisLock::config>();
      }),
      Contains("unknown field `limit` for RedisLock; accepted:") && Contains("wait_replicas"));
}

TEST_CASE("the key sensor listens only where keyspace events of its type are on") {
  using redis_tasks::detail::keyspace_event_classes;
  using redis_tasks::detail::keyspace_events_on;
  const auto string_classes = keyspace_event_classes<std::string>();
  const auto hash_classes = keyspace_event_classes<std::map<std::string, std::string>>();
  CHECK(keyspace_events_on("KA", string_classes));
  CHECK(keyspace_events_on("K$", string_classes));
  CHECK(keyspace_events_on("AK", hash_classes));
  CHECK(keyspace_events_on("Kh", hash_classes));
  CHECK_FALSE(keyspace_events_on("Kh", string_classes));  // hash events say nothing of strings
  CHECK_FALSE(keyspace_events_on("EA", string_classes));  // keyevent channels only
  CHECK_FALSE(keyspace_events_on("", string_classes));    // off (the default)
  CHECK_FALSE(keyspace_events_on("K", string_classes));   // no class of events
  CHECK(keyspace_events_on("Kz", keyspace_event_classes<redis_tasks::value>()));
}
