// RedisCache<T> on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel (a master, a
// replica and three sentinels), all started here. On the cluster, entries of several
// namespaces, with and without hash tags, land on every master; an entry's lock, token counter,
// fence record and channel must share its slot (or the cluster refuses the scripts), and its
// waiters must hear the computing caller's message on the entry's node. On each entry, 8
// threads ask at once: one computes, 7 wait subscribed and then hit.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"
#include "topologies.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisCache;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::test_cluster;
using test_support::wait_until;

namespace {

using steady = std::chrono::steady_clock;
using Cache = RedisCache<std::string>;

using test_support::trimmed;

// The subscribers of `channel` on the server at `port` (PUBSUB NUMSUB).
long long subscribers_on(int port, const std::string& channel) {
  const std::string out = trimmed(test_support::redis_cli(port, {"PUBSUB", "NUMSUB", channel}));
  const auto nl = out.find('\n');
  return nl == std::string::npos ? -1 : std::stoll(out.substr(nl + 1));
}

// ---------------------------------------------------------------------------------------------
// The two topologies: how tasks reach them and how the test looks at them with redis-cli.

struct cluster_topology : test_support::cluster_setup {
  // Subscribers of `channel` on all nodes (each node counts its own).
  long long subscribers(const std::string& channel) {
    long long n = 0;
    for (auto* node : cluster.nodes())
      n += subscribers_on(node->port(), channel);
    return n;
  }
};

struct sentinel_topology : test_support::sentinel_setup {
  long long subscribers(const std::string& channel) const {
    return subscribers_on(master.port(), channel);
  }
};

// An entry's companion key (COORDINATION.md): `{entry}:suffix`, or `entry:suffix` when the
// entry has a hash tag of its own (its namespace had one).
std::string companion(const std::string& entry, const std::string& suffix) {
  const auto open = entry.find('{');
  const auto close = open == std::string::npos ? open : entry.find('}', open + 1);
  const bool tagged = close != std::string::npos && close > open + 1;
  return (tagged ? entry : "{" + entry + "}") + ":" + suffix;
}

struct cache_entry {
  std::string ns;
  nlohmann::json inputs;
};

// Entries whose slots fall in each third of the slot space (one per master of the test
// cluster): of a namespace without a hash tag (the inputs choose the slot), of namespaces with
// a hash tag (the tag chooses it), and of a namespace with a tag inside it.
std::vector<cache_entry> entries_for(const std::string& stem) {
  std::vector<cache_entry> out;
  auto key_of = [](const cache_entry& e) {
    auto c = test_support::config_for<Cache>(1);
    c.ttl = 1h;
    return Cache(c).entry_key({.redis_key = e.ns, .inputs = e.inputs});
  };
  bool plain[3] = {false, false, false};
  for (int i = 0; !(plain[0] && plain[1] && plain[2]); ++i) {
    cache_entry e{stem + ":plain", {{"n", i}, {"stem", stem}}};
    const int third = redis_tasks::detail::key_slot(key_of(e)) * 3 / 16384;
    if (plain[third]) continue;
    plain[third] = true;
    out.push_back(std::move(e));
  }
  bool tagged[3] = {false, false, false};
  for (int i = 0; !(tagged[0] && tagged[1] && tagged[2]); ++i) {
    cache_entry e{"{" + stem + "-" + std::to_string(i) + "}", {{"n", 1}}};
    const int third = redis_tasks::detail::key_slot(key_of(e)) * 3 / 16384;
    if (tagged[third]) continue;
    tagged[third] = true;
    out.push_back(std::move(e));
  }
  out.push_back({"cache:{" + stem + "}:reports", {{"region", "north"}}});
  return out;
}

// ---------------------------------------------------------------------------------------------
// The checks, the same on both topologies.

// 8 threads ask for one entry at once: the one that computes holds its computation open until
// the 7 others are seen waiting (subscribed to the entry's channel); then fn has run once,
// every caller has its value, 7 are hits, and a later run is a hit.
template <class Topology>
void check_single_flight(Topology& t, const cache_entry& e) {
  constexpr int callers = 8;
  auto c = t.template config<Cache>();
  c.redis_key = e.ns;
  c.ttl = 1h;
  c.lock_ttl = 10s;
  c.wait = 60s;
  const Cache cache(c);
  const Cache::overrides o{.inputs = e.inputs};
  const std::string entry = cache.entry_key(o);
  INFO("entry " << entry << " in slot " << redis_tasks::detail::key_slot(entry));

  std::mutex m;
  std::condition_variable cv;
  bool computing = false;
  bool finish = false;
  std::atomic<int> calls{0};
  std::vector<std::string> results(callers);
  std::vector<std::thread> threads;
  auto let_go = [&] {
    {
      const std::lock_guard<std::mutex> g(m);
      finish = true;
    }
    cv.notify_all();
    for (auto& th : threads) {
      if (th.joinable()) th.join();
    }
  };
  const test_support::at_scope_exit release(let_go);
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      try {
        const auto r = cache.run(o, [&] {
          ++calls;
          std::unique_lock<std::mutex> g(m);
          computing = true;
          cv.notify_all();
          cv.wait(g, [&] { return finish; });
          return "computed for " + entry;
        });
        results[i] = std::string(r.hit ? "hit " : "miss ") + r.value;
      } catch (const std::exception& ex) {
        results[i] = std::string("threw ") + ex.what();
      }
    });
  }
  wait_until(
      [&] {
        const std::lock_guard<std::mutex> g(m);
        return computing;
      },
      30s, "a caller to start computing");
  wait_until([&] { return t.subscribers(companion(entry, "done")) == callers - 1; }, 30s,
             "the other callers to wait for the result");
  CHECK(t.cli({"EXISTS", companion(entry, "lock")}) == "1");
  CHECK(t.cli({"EXISTS", entry}) == "0");
  let_go();

  int hits = 0;
  for (const auto& r : results) {
    INFO("a caller's result: " << r);
    if (r == "hit computed for " + entry) {
      ++hits;
    } else {
      CHECK(r == "miss computed for " + entry);
    }
  }
  CHECK(hits == callers - 1);
  CHECK(calls == 1);
  CHECK(t.cli({"GET", entry}) == "computed for " + entry);
  const long long ttl = std::stoll(t.cli({"PTTL", entry}));
  CHECK(ttl > 3540000);
  CHECK(ttl <= 3600000);
  // The companions share the entry's slot and expire a lock_ttl after it.
  for (const char* suffix : {"lock:token", "fence"}) {
    INFO("companion " << companion(entry, suffix));
    const long long companion_ttl = std::stoll(t.cli({"PTTL", companion(entry, suffix)}));
    CHECK(companion_ttl > 3540000);
    CHECK(companion_ttl <= 3610000);
  }
  CHECK(t.cli({"EXISTS", companion(entry, "lock")}) == "0");

  // Later runs hit, from this task and from a new one.
  auto unused = [&] {
    ++calls;
    return std::string("unused");
  };
  const auto again = cache.run(o, unused);
  CHECK(again.hit);
  CHECK(again.value == "computed for " + entry);
  const auto fresh = Cache(c).run(o, unused);
  CHECK(fresh.hit);
  CHECK(fresh.value == "computed for " + entry);
  CHECK(calls == 1);
}

// An fn that throws writes nothing and frees the lock at once (lock_ttl 10 min); the next run
// computes. A collection entry (a fenced list write) then round-trips.
template <class Topology>
void check_failure_and_collections(Topology& t, const cache_entry& e) {
  auto c = t.template config<Cache>();
  c.redis_key = e.ns;
  c.ttl = 1h;
  c.lock_ttl = 10min;
  const Cache cache(c);
  const Cache::overrides o{.inputs = {{"failing", e.inputs}}};
  const std::string entry = cache.entry_key(o);
  INFO("entry " << entry << " in slot " << redis_tasks::detail::key_slot(entry));
  CHECK_THROWS_AS(cache.run(o, []() -> std::string { throw std::domain_error("step failed"); }),
                  std::domain_error);
  CHECK(t.cli({"EXISTS", entry}) == "0");
  CHECK(t.cli({"EXISTS", companion(entry, "lock")}) == "0");
  CHECK_FALSE(cache.run(o, [] { return std::string("second try"); }).hit);
  CHECK(cache.run(o, [] { return std::string("unused"); }).value == "second try");

  using list = std::vector<std::string>;
  auto lc = t.template config<RedisCache<list>>();
  lc.redis_key = e.ns;
  lc.ttl = 1h;
  const RedisCache<list> lists(lc);
  const RedisCache<list>::overrides lo{.inputs = {{"list", e.inputs}}};
  const list items{"b", "a", "b"};
  CHECK_FALSE(lists.run(lo, [&] { return items; }).hit);
  const auto hit = lists.run(lo, [] { return list{"unused"}; });
  CHECK(hit.hit);
  CHECK(hit.value == items);
  CHECK(t.cli({"LRANGE", lists.entry_key(lo), "0", "-1"}) == "b\na\nb");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

TEST_CASE("cluster: single flight and hits for entries on every master, with and without tags") {
  cluster_topology t;
  const auto entries = entries_for("cache");
  // The entries do land on every master.
  std::set<int> masters;
  for (const auto& e : entries) {
    auto c = t.config<Cache>();
    c.ttl = 1h;
    masters.insert(t.cluster.master_of_slot(redis_tasks::detail::key_slot(
        Cache(c).entry_key({.redis_key = e.ns, .inputs = e.inputs}))));
  }
  CHECK(masters.size() == 3);
  for (const auto& e : entries)
    check_single_flight(t, e);
  for (const auto& e : entries)
    check_failure_and_collections(t, e);
}

// ---------------------------------------------------------------------------------------------
// Sentinel.

TEST_CASE("sentinel: single flight and hits on the master found through the sentinels") {
  sentinel_topology t;
  const std::vector<cache_entry> entries = {{"cache:plain", {{"n", 1}}},
                                            {"{cache-tag}", {{"n", 2}}}};
  for (const auto& e : entries)
    check_single_flight(t, e);
  for (const auto& e : entries)
    check_failure_and_collections(t, e);

  // The entry reached the replica as it is.
  auto c = t.config<Cache>();
  c.ttl = 1h;
  const std::string entry = Cache(c).entry_key({.redis_key = "cache:plain", .inputs = {{"n", 1}}});
  wait_until(
      [&] {
        return trimmed(test_support::redis_cli(t.replica.port(), {"GET", entry})) ==
               "computed for " + entry;
      },
      10s, "the replica to have the entry");
}
