// The coordination tasks on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel (a
// master, a replica and three sentinels), all started here: locks (tokens, release, stale
// holders, a waiter in another process woken by the release), fenced writes, semaphores and
// rate limits, on keys with and without hash tags. A task's companion keys (token counter,
// release signal, fence record) must share its key's slot, or the cluster refuses the script.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "topologies.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::lease;
using redis_tasks::lease_lost_error;
using redis_tasks::RedisLock;
using redis_tasks::RedisRateLimit;
using redis_tasks::RedisSemaphore;
using redis_tasks::RedisSet;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::test_cluster;
using test_support::wait_until;

namespace {

using steady = std::chrono::steady_clock;

using test_support::child_channel;
using test_support::child_process;

std::optional<std::string> after(const std::string& line, const std::string& word) {
  if (line.rfind(word + " ", 0) != 0) return std::nullopt;
  return line.substr(word.size() + 1);
}

using test_support::trimmed;

// ---------------------------------------------------------------------------------------------
// The two topologies: how tasks reach them and how the test looks at them with redis-cli.

using cluster_topology = test_support::cluster_setup;
using sentinel_topology = test_support::sentinel_setup;

// Keys named `stem:<n>` whose slots fall in each third of the slot space (one per master of
// the test cluster), then keys with hash tags.
std::vector<std::string> keys_for(const std::string& stem) {
  std::vector<std::string> keys;
  bool seen[3] = {false, false, false};
  for (int i = 0; !(seen[0] && seen[1] && seen[2]); ++i) {
    std::string k = stem + ":" + std::to_string(i);
    const int third = redis_tasks::detail::key_slot(k) * 3 / 16384;
    if (seen[third]) continue;
    seen[third] = true;
    keys.push_back(std::move(k));
  }
  keys.push_back("{" + stem + ":tagged}");
  keys.push_back("{" + stem + ":job-7}:lock");
  keys.push_back("a{" + stem + "}c");
  return keys;
}

// ---------------------------------------------------------------------------------------------
// The checks, the same on both topologies.

// Tokens, one try while held, extend, release, a stale holder's release and fenced write.
template <class Topology>
void check_locks(const Topology& t, const std::string& stem) {
  const RedisLock lock(t.template config<RedisLock>());
  auto unrenewed = t.template config<RedisLock>();
  unrenewed.auto_renew = false;
  const RedisLock expiring(unrenewed);
  for (const auto& key : keys_for(stem)) {
    INFO("lock key " << key);
    auto a = lock.run({.redis_key = key});
    REQUIRE(a);
    CHECK(a->held());
    CHECK(t.cli({"GET", key}) == a->holder());
    CHECK_FALSE(lock.run({.redis_key = key}));
    CHECK(a->extend(20s));
    CHECK(std::stoll(t.cli({"PTTL", key})) > 10000);
    const std::uint64_t first = a->token();
    CHECK(a->release());
    CHECK(t.cli({"EXISTS", key}) == "0");
    CHECK_FALSE(a->release());

    // A holder that lets its lease expire: the next one gets a larger token, the stale one
    // neither releases the new lock nor writes over the new holder's work.
    auto stale = expiring.run({.redis_key = key, .ttl = 200ms});
    REQUIRE(stale);
    CHECK(stale->token() > first);
    wait_until([&] { return t.cli({"EXISTS", key}) == "0"; }, 10s, "the stale lease to expire");
    auto fresh = lock.run({.redis_key = key, .ttl = 30s});
    REQUIRE(fresh);
    CHECK(fresh->token() > stale->token());
    CHECK_FALSE(stale->held());
    CHECK_THROWS_AS(stale->check(), lease_lost_error);
    CHECK_FALSE(stale->release());
    CHECK(t.cli({"GET", key}) == fresh->holder());

    // The guarded data shares the lock's hash tag where it has one, or lives in any slot.
    const std::string data = key + ":data";
    auto sc = t.template config<RedisSet<std::string>>();
    sc.redis_key = data;
    const RedisSet<std::string> set(sc);
    CHECK(set.run({.redis_val = "fresh", .fence_token = fresh->token()}));
    CHECK_THROWS_AS(set.run({.redis_val = "stale", .fence_token = stale->token()}),
                    lease_lost_error);
    CHECK(t.cli({"GET", data}) == "fresh");
    CHECK(fresh->release());
  }
}

// Fenced writes on their own: equal and larger tokens write, a smaller one writes nothing.
template <class Topology>
void check_fenced_writes(const Topology& t, const std::string& stem) {
  auto sc = t.template config<RedisSet<std::string>>();
  const RedisSet<std::string> set(sc);
  auto lc = t.template config<RedisSet<std::vector<std::string>>>();
  const RedisSet<std::vector<std::string>> set_list(lc);
  for (const auto& key : keys_for(stem)) {
    INFO("data key " << key);
    CHECK(set.run({.redis_key = key, .redis_val = "five", .fence_token = 5}));
    CHECK(set.run({.redis_key = key, .redis_val = "five again", .fence_token = 5}));
    CHECK(set.run({.redis_key = key, .redis_val = "seven", .fence_token = 7}));
    try {
      set.run({.redis_key = key, .redis_val = "six", .fence_token = 6});
      FAIL("a write with token 6 after token 7 was accepted");
    } catch (const lease_lost_error& e) {
      CHECK_THAT(e.what(), Contains(key));
    }
    CHECK(t.cli({"GET", key}) == "seven");

    const std::string list = key + ":list";
    const std::vector<std::string> items{"a", "b", "c"};
    CHECK(set_list.run({.redis_key = list, .redis_val = items, .fence_token = 3}));
    CHECK_THROWS_AS(
        set_list.run(
            {.redis_key = list, .redis_val = std::vector<std::string>{"x"}, .fence_token = 2}),
        lease_lost_error);
    CHECK(t.cli({"LRANGE", list, "0", "-1"}) == "a\nb\nc");
  }
}

// A waiter in another process, waiting on a lock held with a long ttl, acquires after the
// release: only the release can have let it in before that ttl.
template <class Topology>
void check_waiter_wakes(const Topology& t, const std::string& key) {
  INFO("lock key " << key);
  auto c = t.template config<RedisLock>();
  c.redis_key = key;
  c.ttl = 60s;
  c.auto_renew = false;
  const RedisLock lock(c);
  auto held = lock.run();
  REQUIRE(held);
  child_process waiter([&](const child_channel& ch) {
    auto wc = t.template config<RedisLock>();
    wc.redis_key = key;
    wc.wait = 30s;
    // No renewal thread in the child: this parent has threads, and ThreadSanitizer cannot follow
    // a child of a multi-threaded parent that starts threads of its own.
    wc.auto_renew = false;
    const RedisLock waiting(wc);
    ch.say("waiting");
    auto l = waiting.run();
    if (!l) {
      ch.say("not acquired");
      return 1;
    }
    ch.say("acquired " + std::to_string(l->token()));
    ch.hear();
    return 0;
  });
  REQUIRE(waiter.receive(10s) == "waiting");
  CHECK(t.cli({"GET", key}) == held->holder());
  REQUIRE(held->release());
  const auto got = after(waiter.receive(25s), "acquired");
  REQUIRE(got);
  CHECK(std::stoull(*got) > held->token());
  CHECK(t.cli({"EXISTS", key}) == "1");
  waiter.send("done");
  CHECK(waiter.wait(10s) == 0);
}

// The live permits of a semaphore by the server's clock (the observer of the API notes).
template <class Topology>
long long live_permits(const Topology& t, const std::string& key) {
  return std::stoll(
      t.cli({"EVAL",
             "local t=redis.call('TIME'); local now=t[1]*1000+math.floor(t[2]/1000); return "
             "redis.call('ZCOUNT', KEYS[1], '('..now, '+inf')",
             "1", key}));
}

template <class Topology>
void check_semaphores(const Topology& t, const std::string& stem) {
  for (const auto& key : keys_for(stem)) {
    INFO("semaphore key " << key);
    auto c = t.template config<RedisSemaphore>();
    c.redis_key = key;
    c.limit = 2;
    const RedisSemaphore sem(c);
    auto p1 = sem.run();
    auto p2 = sem.run();
    REQUIRE(p1);
    REQUIRE(p2);
    CHECK(p1->token() != p2->token());
    CHECK(p1->holder() != p2->holder());
    CHECK_FALSE(sem.run());  // the limit
    CHECK(live_permits(t, key) == 2);
    CHECK(p1->release());
    CHECK(live_permits(t, key) == 1);
    auto p3 = sem.run();
    REQUIRE(p3);
    CHECK(p3->token() != p2->token());
    CHECK_FALSE(sem.run());
    CHECK(p2->release());
    CHECK(p3->release());
    CHECK(live_permits(t, key) == 0);
  }
}

template <class Topology>
void check_rate_limits(const Topology& t, const std::string& stem) {
  for (const auto& key : keys_for(stem)) {
    INFO("rate limit key " << key);
    auto c = t.template config<RedisRateLimit>();
    c.redis_key = key;
    c.rate = 3;
    c.period = 60s;  // burst unset: 3 at once, then one per 20 s
    const RedisRateLimit limit(c);
    const auto first = limit.run();
    CHECK(first.allowed);
    CHECK(first.remaining == 2);
    CHECK(limit.run().allowed);
    const auto third = limit.run();
    CHECK(third.allowed);
    CHECK(third.remaining == 0);
    for (int i = 0; i < 2; ++i) {
      const auto refused = limit.run();
      CHECK_FALSE(refused.allowed);
      CHECK(refused.retry_after > 0ms);
      CHECK(refused.retry_after <= 60s);
      CHECK(refused.remaining == 0);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

TEST_CASE("cluster: locks and fenced writes on keys across slots and with hash tags") {
  cluster_topology t;
  check_locks(t, "lock");
  check_fenced_writes(t, "fenced");
  check_waiter_wakes(t, "{wake}:lock");
  check_waiter_wakes(t, "wake:plain");
  // A '}' with no hash tag before it: the companion keys could not share the key's slot, so
  // the lock refuses the key before any I/O rather than bouncing between nodes.
  auto odd = t.config<RedisLock>();
  odd.redis_key = "jobs:{}:lock";
  CHECK_THROWS_MATCHES(
      RedisLock(odd).run(), redis_tasks::config_error,
      Catch::Matchers::Predicate<redis_tasks::config_error>([](const redis_tasks::config_error& e) {
        return std::string(e.what()).find("cannot share its slot") != std::string::npos;
      }));
}

TEST_CASE("cluster: semaphores and rate limits on keys across slots and with hash tags") {
  cluster_topology t;
  check_semaphores(t, "sem");
  check_rate_limits(t, "rate");
}

// ---------------------------------------------------------------------------------------------
// Sentinel.

TEST_CASE("sentinel: locks and fenced writes on the master found through the sentinels") {
  sentinel_topology t;
  check_locks(t, "lock");
  check_fenced_writes(t, "fenced");
  check_waiter_wakes(t, "{wake}:lock");

  // wait_replicas: the one replica acknowledges, and has the lock when run() returns.
  auto c = t.config<RedisLock>();
  c.redis_key = "lock:replicated";
  c.wait_replicas = 1;
  c.wait_replicas_timeout = 5000ms;
  const RedisLock replicated(c);
  auto l = replicated.run();
  REQUIRE(l);
  CHECK(trimmed(test_support::redis_cli(t.replica.port(), {"GET", "lock:replicated"})) ==
        l->holder());
  CHECK(l->release());
  c.wait_replicas = 2;
  c.wait_replicas_timeout = 300ms;
  CHECK_THROWS_AS(RedisLock(c).run(), redis_tasks::connection_error);
  CHECK(t.cli({"EXISTS", "lock:replicated"}) == "0");
}

TEST_CASE("sentinel: semaphores and rate limits on the master found through the sentinels") {
  sentinel_topology t;
  check_semaphores(t, "sem");
  check_rate_limits(t, "rate");
}

TEST_CASE("sentinel: after a failover, a lock's tokens go on growing on the new master") {
  sentinel_topology t;
  auto c = t.config<RedisLock>();
  c.redis_key = "lock:failover";
  c.wait_replicas = 1;  // the acquisition, token counter included, reached the replica
  c.wait_replicas_timeout = 5000ms;
  const RedisLock replicated(c);
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto l = replicated.run();
    REQUIRE(l);
    CHECK(l->token() > last);
    last = l->token();
    CHECK(l->release());
  }

  // The last release reached the replica too: the lock is free there.
  wait_until(
      [&] {
        return trimmed(test_support::redis_cli(t.replica.port(), {"EXISTS", "lock:failover"})) ==
               "0";
      },
      10s, "the replica to see the release");

  t.master.kill();
  auto after_failover = t.config<RedisLock>();
  after_failover.redis_key = "lock:failover";
  after_failover.task.max_retries = 300;
  after_failover.task.retry_delay = 100ms;
  const RedisLock lock(after_failover);
  auto l = lock.run();  // retries until a master is found again
  REQUIRE(l);
  CHECK(l->token() > last);
  CHECK(trimmed(test_support::redis_cli(t.replica.port(), {"GET", "lock:failover"})) ==
        l->holder());
  CHECK(test_support::info_field(test_support::redis_cli(t.replica.port(), {"INFO", "replication"}),
                                 "role") == "master");
}
