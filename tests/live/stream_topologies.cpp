// Work queues on Redis Streams on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel
// (a master, a replica and three sentinels), all started here: adds (pipelined, scripted with
// trimming and idempotency keys), consuming, acknowledging, claiming, poison entries and
// entries that make no T to the dead letters, deleted entries reported, a consumer in another
// process woken by an add, on stream keys with and without hash tags. A stream's dead-letter
// stream and idempotency records must share its slot, or the cluster refuses the scripts.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "topologies.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisStreamAdd;
using redis_tasks::RedisStreamConsumer;
using redis_tasks::stream_message;
using test_support::child_channel;
using test_support::child_process;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::test_cluster;
using test_support::wait_until;

namespace {

using steady = std::chrono::steady_clock;
using job = std::map<std::string, std::string>;

using test_support::trimmed;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const auto at = text.find(sep, pos);
    out.push_back(text.substr(pos, at - pos));
    if (at == std::string::npos) return out;
    pos = at + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// The two topologies: how tasks reach them and how the test looks at them with redis-cli.

struct cluster_topology : test_support::cluster_setup {
  // The port of the node that serves `key`.
  int node_for(const std::string& key) {
    return cluster.master_of_slot(redis_tasks::detail::key_slot(key));
  }
};

struct sentinel_topology : test_support::sentinel_setup {
  // The port of the node that serves `key`: the master.
  int node_for(const std::string&) const { return master.port(); }
};

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
  keys.push_back("{" + stem + ":job-7}:queue");
  keys.push_back("a{" + stem + "}c");
  return keys;
}

// ---------------------------------------------------------------------------------------------
// What the test reads from the server, through redis-cli.

struct entry {
  std::string id;
  std::map<std::string, std::string> fields;
};

// Every entry of `stream`, oldest first.
template <class Topology>
std::vector<entry> entries_of(const Topology& t, const std::string& stream) {
  const char* script = R"lua(
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local parts = {e[1]}
  for _, v in ipairs(e[2]) do parts[#parts + 1] = v end
  out[#out + 1] = table.concat(parts, '\31')
end
return out
)lua";
  std::vector<entry> out;
  for (const auto& line : lines_of(t.cli({"EVAL", script, "1", stream}))) {
    const auto parts = split(line, '\x1f');
    entry e;
    e.id = parts[0];
    for (std::size_t i = 1; i + 1 < parts.size(); i += 2)
      e.fields[parts[i]] = parts[i + 1];
    out.push_back(std::move(e));
  }
  return out;
}

template <class Topology>
long long pending_count(const Topology& t, const std::string& stream, const std::string& group) {
  return std::stoll(
      t.cli({"EVAL", "return redis.call('XPENDING', KEYS[1], ARGV[1])[1]", "1", stream, group}));
}

template <class Topology>
long long xlen(const Topology& t, const std::string& stream) {
  return std::stoll(t.cli({"XLEN", stream}));
}

// ---------------------------------------------------------------------------------------------
// The checks, the same on both topologies.

// Adds (one at a time, pipelined, scripted), consuming and acknowledging, a poison entry to
// the dead letters after max_deliveries, and an entry deleted while pending.
template <class Topology>
void check_queue(const Topology& t, const std::string& stem) {
  for (const auto& key : keys_for(stem)) {
    INFO("stream " << key);
    auto ac = t.template config<RedisStreamAdd<job>>();
    ac.redis_key = key;
    const RedisStreamAdd<job> add(ac);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i)
      ids.push_back(add.run({.redis_val = job{{"i", std::to_string(i)}}}));
    const auto many = add.run_many({{.redis_val = job{{"i", "3"}}},
                                    {.redis_val = job{}},  // fails alone
                                    {.redis_val = job{{"i", "4"}}}});
    REQUIRE(many.size() == 3);
    REQUIRE(many[0].ok());
    CHECK_FALSE(many[1].ok());
    REQUIRE(many[2].ok());
    ids.push_back(many[0].value());
    ids.push_back(many[2].value());
    // An idempotency key and trimming: the scripted add, its record in the stream's slot.
    auto ic = ac;
    ic.idempotency_key = "once";
    ic.maxlen = 1000;
    const RedisStreamAdd<job> once(ic);
    ids.push_back(once.run({.redis_val = job{{"i", "5"}}}));
    CHECK(once.run({.redis_val = job{{"i", "not added"}}}) == ids.back());
    const std::string poison = add.run({.redis_val = job{{"i", "poison"}}});
    ids.push_back(poison);
    CHECK(xlen(t, key) == 7);
    const auto es = entries_of(t, key);
    REQUIRE(es.size() == 7);
    for (std::size_t k = 0; k < es.size(); ++k)
      CHECK(es[k].id == ids[k]);

    auto cc = t.template config<RedisStreamConsumer<job>>();
    cc.redis_key = key;
    cc.group = "workers";
    cc.min_idle = 200ms;
    cc.max_deliveries = 1;
    const RedisStreamConsumer<job> in(cc);
    const std::string dead = in.dead_letter_key();
    CHECK(redis_tasks::detail::key_slot(dead) == redis_tasks::detail::key_slot(key));
    const auto b = in.run();
    REQUIRE(b.messages.size() == 7);
    for (std::size_t k = 0; k < 7; ++k) {
      CHECK(b.messages[k].id == ids[k]);
      CHECK(b.messages[k].deliveries == 1);
      if (b.messages[k].id != poison) CHECK(in.ack(b.messages[k].id));
    }
    CHECK(b.messages[5].value == job{{"i", "5"}});
    CHECK(pending_count(t, key, "workers") == 1);
    // Not acknowledged: claimed again after min_idle, its second delivery is one too many.
    wait_until(
        [&] {
          const auto r = in.run();
          CHECK(r.messages.empty());
          CHECK(r.deleted.empty());
          return xlen(t, dead) == 1;
        },
        30s, "the poison entry to reach the dead letters");
    CHECK(pending_count(t, key, "workers") == 0);
    const auto letters = entries_of(t, dead);
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].fields.at("id") == poison);
    CHECK(letters[0].fields.at("group") == "workers");
    CHECK(letters[0].fields.at("deliveries") == "2");
    CHECK_THAT(letters[0].fields.at("reason"), Contains("max_deliveries"));
    CHECK(letters[0].fields.at("i") == "poison");

    // Entries that make no long long go to the same dead letters at once, from another group.
    auto lc = t.template config<RedisStreamConsumer<long long>>();
    lc.redis_key = key;
    lc.group = "numbers";
    const RedisStreamConsumer<long long> numbers(lc);
    CHECK(numbers.dead_letter_key() == dead);
    const auto nb = numbers.run();
    CHECK(nb.messages.empty());
    CHECK(xlen(t, dead) == 8);
    CHECK(pending_count(t, key, "numbers") == 0);
    auto nac = t.template config<RedisStreamAdd<long long>>();
    nac.redis_key = key;
    const std::string forty_two = RedisStreamAdd<long long>(nac).run({.redis_val = 42});
    const auto nb2 = numbers.run();
    REQUIRE(nb2.messages.size() == 1);
    CHECK(nb2.messages[0].id == forty_two);
    CHECK(nb2.messages[0].value == 42);
    CHECK(numbers.ack(nb2) == 1);

    // Deleted while pending: reported by the next claim scan.
    const auto held = in.run();  // the new entry, for the first group
    REQUIRE(held.messages.size() == 1);
    CHECK(t.cli({"XDEL", key, forty_two}) == "1");
    std::vector<std::string> deleted;
    wait_until(
        [&] {
          const auto r = in.run();
          CHECK(r.messages.empty());
          deleted.insert(deleted.end(), r.deleted.begin(), r.deleted.end());
          return !deleted.empty();
        },
        30s, "the deleted entry to be reported");
    CHECK(deleted == std::vector<std::string>{forty_two});
    CHECK(pending_count(t, key, "workers") == 0);
  }
}

// A consumer in another process blocks for new entries and gets the one added here; one that
// held entries and was killed leaves them to another, with the server's delivery count.
template <class Topology>
void check_processes(Topology& t, const std::string& key) {
  INFO("stream " << key);
  auto cc = t.template config<RedisStreamConsumer<std::string>>();
  cc.redis_key = key;
  cc.group = "g";
  cc.min_idle = 300ms;
  auto ac = t.template config<RedisStreamAdd<std::string>>();
  ac.redis_key = key;
  const RedisStreamAdd<std::string> add(ac);

  child_process reader([&](const child_channel& ch) {
    auto c = cc;
    c.consumer = "reader";
    c.redis_connection_params.client_name = "stream-reader";
    const RedisStreamConsumer<std::string> in(c);
    const auto first = in.run();  // makes the group; nothing there yet
    ch.say("waiting " + std::to_string(first.messages.size()));
    const auto b = in.run({.block = 20s});
    if (b.messages.size() != 1) {
      ch.say("got " + std::to_string(b.messages.size()));
      return 1;
    }
    ch.say("got " + b.messages[0].id + " " + b.messages[0].value);
    ch.hear();  // killed here, holding it
    return 0;
  });
  REQUIRE(reader.receive(30s) == "waiting 0");
  const int node = t.node_for(key);
  wait_until([&] { return !test_support::blocked_client_ids(node, "stream-reader").empty(); }, 30s,
             "the reader to block in XREADGROUP on the stream's node");
  const std::string id = add.run({.redis_val = "wake"});
  CHECK(reader.receive(30s) == "got " + id + " wake");
  reader.kill();

  auto c = cc;
  c.consumer = "rescuer";
  const RedisStreamConsumer<std::string> rescuer(c);
  std::optional<stream_message<std::string>> got;
  wait_until(
      [&] {
        for (auto& m : rescuer.run().messages)
          got = m;
        return got.has_value();
      },
      30s, "the killed reader's entry to be claimed");
  CHECK(got->id == id);
  CHECK(got->value == "wake");
  CHECK(got->deliveries == 2);
  CHECK(rescuer.ack(id));
  CHECK(pending_count(t, key, "g") == 0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

TEST_CASE("cluster: streams are produced, consumed, acknowledged and dead-lettered across slots") {
  cluster_topology t;
  check_queue(t, "queue");
  check_processes(t, "{proc}:queue");
  check_processes(t, "proc:plain");
}

TEST_CASE(
    "cluster: a stream whose dead letters or idempotency records cannot share its slot is a "
    "config_error, not a CROSSSLOT at every run") {
  cluster_topology t;
  // A '}' with no hash tag before it: the companion keys ("<key>:dead", "<key>:idem:…") hash
  // elsewhere, as RedisLock refuses such a key (coordination_topologies.cpp).
  const std::string odd = "jobs:{}:queue";
  auto cc = t.config<RedisStreamConsumer<job>>();
  cc.redis_key = odd;
  cc.group = "g";
  CHECK_THROWS_AS(RedisStreamConsumer<job>(cc).run(), redis_tasks::config_error);
  auto ac = t.config<RedisStreamAdd<job>>();
  ac.redis_key = odd;
  ac.idempotency_key = "once";
  CHECK_THROWS_AS(RedisStreamAdd<job>(ac).run({.redis_val = job{{"a", "1"}}}),
                  redis_tasks::config_error);
  // A dead-letter stream of one's own in another slot than the stream.
  auto dc = t.config<RedisStreamConsumer<job>>();
  dc.redis_key = "queue:plain";
  dc.dead_letter_key = "dead:elsewhere";
  REQUIRE(redis_tasks::detail::key_slot("queue:plain") !=
          redis_tasks::detail::key_slot("dead:elsewhere"));
  dc.group = "g";
  CHECK_THROWS_AS(RedisStreamConsumer<job>(dc).run(), redis_tasks::config_error);
}

// ---------------------------------------------------------------------------------------------
// Sentinel.

TEST_CASE(
    "sentinel: streams are produced, consumed, acknowledged and dead-lettered on the master") {
  sentinel_topology t;
  check_queue(t, "queue");
  check_processes(t, "{proc}:queue");
  // The entries reached the replica as well.
  wait_until(
      [&] {
        return trimmed(test_support::redis_cli(t.replica.port(), {"XLEN", "{proc}:queue"})) == "1";
      },
      30s, "the replica to have the stream");
}
