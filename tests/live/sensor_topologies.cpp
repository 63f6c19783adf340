// The sensors and RedisPublish on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel
// (a master, a replica and three sentinels), all started here. A key sensor listens to its
// key's keyspace events on the node that owns the key (the events are not sent cluster-wide)
// and moves its subscription when a resharding moves the key's slot; pub/sub sensors receive
// cluster-wide PUBLISH, and sharded pub/sub (SSUBSCRIBE/SPUBLISH) on the node of the channels'
// slot, following the slot when it moves; behind Sentinel, subscribers follow a failover to the
// new master. Each test looks at the servers (PUBSUB NUMSUB / SHARDNUMSUB) to see where a
// subscriber is, and a key sensor polls only every 10 minutes, so only an event can wake it.
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisKeySensor;
using redis_tasks::RedisPublish;
using redis_tasks::RedisPubSubSensor;
using redis_tasks::RedisSet;
using test_support::redis_cli;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::test_cluster;
using test_support::wait_until;

namespace {

using Sensor = RedisKeySensor<std::string>;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

// What PUBSUB NUMSUB (or SHARDNUMSUB) says of `channel` on the server at `port`: its
// subscribers there; -1 when the answer is not one ("channel\ncount\n").
long long subscribers(int port, const std::string& channel, const char* which = "NUMSUB") {
  const std::string out = redis_cli(port, {"PUBSUB", which, channel});
  const auto nl = out.find('\n');
  if (out.compare(0, nl, channel) != 0 || nl + 1 >= out.size()) return -1;
  return std::atoll(out.c_str() + nl + 1);
}

std::string keyspace_channel(const std::string& key) {
  return "__keyspace@0__:" + key;
}

// ---------------------------------------------------------------------------------------------
// The two topologies (as in coordination_topologies.cpp).

struct cluster_topology {
  test_cluster cluster;

  cluster_topology() {
    for (auto* n : cluster.nodes())
      REQUIRE(trimmed(redis_cli(n->port(), {"CONFIG", "SET", "notify-keyspace-events", "KA"})) ==
              "OK");
  }

  template <class Task>
  typename Task::config config() const {
    auto c = test_support::config_for<Task>(cluster.seed_port());
    c.redis_connection_params.cluster.enabled = true;
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    return c;
  }

  // The nodes (masters and replicas) on which `channel` has `n` subscribers.
  std::vector<int> nodes_with(const std::string& channel, long long n,
                              const char* which = "NUMSUB") {
    std::vector<int> out;
    for (auto* node : cluster.nodes()) {
      if (subscribers(node->port(), channel, which) == n) out.push_back(node->port());
    }
    return out;
  }

  // True when the node on `port` is the only one where `channel` has a subscriber (one).
  bool only_subscriber_on(int port, const std::string& channel, const char* which = "NUMSUB") {
    return nodes_with(channel, 1, which) == std::vector<int>{port} &&
           nodes_with(channel, 0, which).size() == cluster.nodes().size() - 1;
  }

  // Another master than the one on `port`.
  int other_master(int port) {
    for (int p : cluster.master_ports()) {
      if (p != port) return p;
    }
    throw std::runtime_error("the cluster has a single master");
  }

  // Moves `slot`, which holds no key, from the master on `source` to the one on `target`, as
  // a resharding does (IMPORTING, MIGRATING, then NODE on the target, the source and the other
  // masters), and waits until every node names the target.
  void move_slot(int slot, int source, int target) {
    const std::string s = std::to_string(slot);
    const std::string source_id = cluster.node_id(source);
    const std::string target_id = cluster.node_id(target);
    REQUIRE(trimmed(redis_cli(source, {"CLUSTER", "COUNTKEYSINSLOT", s})) == "0");
    REQUIRE(trimmed(redis_cli(target, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id})) == "OK");
    REQUIRE(trimmed(redis_cli(source, {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id})) == "OK");
    REQUIRE(trimmed(redis_cli(target, {"CLUSTER", "SETSLOT", s, "NODE", target_id})) == "OK");
    REQUIRE(trimmed(redis_cli(source, {"CLUSTER", "SETSLOT", s, "NODE", target_id})) == "OK");
    for (int p : cluster.master_ports()) {
      if (p != source && p != target) redis_cli(p, {"CLUSTER", "SETSLOT", s, "NODE", target_id});
    }
    wait_until(
        [&] {
          for (auto* node : cluster.nodes()) {
            if (test_cluster::master_of_slot_seen_by(node->port(), slot) != target) return false;
          }
          return true;
        },
        30s, "every node to see slot " + s + " served by " + std::to_string(target));
  }
};

struct sentinel_topology {
  redis_process master{{"--repl-diskless-sync-delay", "0", "--notify-keyspace-events", "KA"}};
  redis_process replica{{"--replicaof", "127.0.0.1", std::to_string(master.port()),
                         "--notify-keyspace-events", "KA"}};
  sentinel_process s1{master.port()}, s2{master.port()}, s3{master.port()};

  sentinel_topology() {
    // The replica synced, and the sentinels found it and each other.
    wait_until(
        [&] {
          const std::string others = redis_cli(s1.port(), {"SENTINEL", "SENTINELS", "mymaster"});
          return test_support::info_field(redis_cli(replica.port(), {"INFO", "replication"}),
                                          "master_link_status") == "up" &&
                 redis_cli(s1.port(), {"SENTINEL", "REPLICAS", "mymaster"})
                         .find(std::to_string(replica.port())) != std::string::npos &&
                 others.find(std::to_string(s2.port())) != std::string::npos &&
                 others.find(std::to_string(s3.port())) != std::string::npos;
        },
        30s, "the replica to sync and the sentinels to know it and each other");
  }

  template <class Task>
  typename Task::config config() const {
    auto c = test_support::config_for<Task>(1);  // only the sentinels are asked
    c.redis_connection_params.sentinel.sentinels = {s1.address(), s2.address(), s3.address()};
    c.redis_connection_params.sentinel.master_name = "mymaster";
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    // Runs during a failover meet a killed connection or a master not yet named again.
    c.task.max_retries = 100;
    c.task.retry_delay = 100ms;
    return c;
  }

  // A graceful failover (the master stays up and is demoted to a replica of the replica);
  // waits until the roles have swapped.
  void fail_over() {
    wait_until(
        [&] {
          return trimmed(redis_cli(s1.port(), {"SENTINEL", "FAILOVER", "mymaster"})) == "OK";
        },
        30s, "a sentinel to accept SENTINEL FAILOVER");
    wait_until(
        [&] {
          return role(replica) == "master" && role(master) == "slave" &&
                 test_support::info_field(redis_cli(master.port(), {"INFO", "replication"}),
                                          "master_link_status") == "up";
        },
        30s, "the replica to become the master and the old master its synced replica");
  }

  static std::string role(const redis_process& server) {
    return test_support::info_field(redis_cli(server.port(), {"INFO", "replication"}), "role");
  }
};

// A key sensor's run on a thread of its own, while the test's thread watches the servers and
// writes. A run whose result the test did not take (it failed before) is woken at the end of
// the scope by writing its key, so that it does not outlast the test by its timeout.
struct background_wait {
  std::future<std::optional<std::string>> run;
  test_support::at_scope_exit release;

  background_wait(const Sensor& sensor, std::function<void()> write_key)
      : run(std::async(std::launch::async,
                       [&sensor] {
                         // A run checks once more at its timeout, which would find the value
                         // even if its event went unheard. Values it sees after 75 s are
                         // refused, so a missed event fails the test (with nullopt at 90 s)
                         // instead of passing slowly.
                         const auto refuse_after = std::chrono::steady_clock::now() + 75s;
                         Sensor::overrides o;
                         o.timeout = 90s;
                         o.soft_fail = true;
                         o.predicate = [refuse_after](const std::string&) {
                           return std::chrono::steady_clock::now() < refuse_after;
                         };
                         return sensor.run(o);
                       })),
        release([this, write_key = std::move(write_key)] {
          if (!run.valid()) return;
          write_key();
          run.wait();
        }) {}
};

// Waits for a key with a 10-minute poke interval: only its keyspace event can end the wait
// (see background_wait for the final check at the timeout).
Sensor event_only_sensor(Sensor::config c, const std::string& key) {
  c.redis_key = key;
  c.poke_interval = 10min;
  c.timeout = 30s;
  return Sensor(std::move(c));
}

// Channel names `stem:<n>` whose slots fall in each third of the slot space (one per master of
// the test cluster).
std::vector<std::string> channels_across_masters(const std::string& stem) {
  std::vector<std::string> out;
  bool seen[3] = {false, false, false};
  for (int i = 0; !(seen[0] && seen[1] && seen[2]); ++i) {
    std::string c = stem + ":" + std::to_string(i);
    const int third = redis_tasks::detail::key_slot(c) * 3 / 16384;
    if (seen[third]) continue;
    seen[third] = true;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

TEST_CASE("cluster: a key sensor listens on the node of its key and wakes on the write") {
  cluster_topology t;
  auto sc = t.config<RedisSet<std::string>>();
  const RedisSet<std::string> set(sc);
  for (const std::string key : {"sensor:plain", "{sensor}:ready"}) {
    INFO("key " << key);
    const int owner = t.cluster.master_of_slot(redis_tasks::detail::key_slot(key));
    const Sensor sensor = event_only_sensor(t.config<Sensor>(), key);
    background_wait w(sensor, [&] { set.run({.redis_key = key, .redis_val = "released"}); });
    // Keyspace events stay on the node where the write happens: the sensor listens there.
    wait_until([&] { return t.only_subscriber_on(owner, keyspace_channel(key)); }, 30s,
               "the sensor to subscribe to " + keyspace_channel(key) + " on its owner " +
                   std::to_string(owner) + " alone");
    CHECK(set.run({.redis_key = key, .redis_val = "ready"}));
    CHECK(w.run.get() == "ready");
    // The run's subscription ends with it.
    wait_until([&] { return subscribers(owner, keyspace_channel(key)) == 0; }, 30s,
               "the finished run's subscription to end");
  }
}

TEST_CASE("cluster: a key sensor follows its key's slot to another node") {
  cluster_topology t;
  const std::string key = "{resharded}:ready";
  const int slot = redis_tasks::detail::key_slot(key);
  const int source = t.cluster.master_of_slot(slot);
  const int target = t.other_master(source);
  auto sc = t.config<RedisSet<std::string>>();
  const RedisSet<std::string> set(sc);
  auto c = t.config<Sensor>();
  c.redis_key = key;
  c.poke_interval = 200ms;  // a poke meets the MOVED that tells of the new node
  c.timeout = 60s;
  const Sensor sensor(c);
  background_wait w(sensor, [&] { set.run({.redis_key = key, .redis_val = "released"}); });
  wait_until([&] { return t.only_subscriber_on(source, keyspace_channel(key)); }, 30s,
             "the sensor to subscribe on the key's node " + std::to_string(source));

  t.move_slot(slot, source, target);
  // The old node would never report the write: the sensor listens on the new one instead.
  wait_until([&] { return t.only_subscriber_on(target, keyspace_channel(key)); }, 30s,
             "the sensor to move its subscription to the key's new node " + std::to_string(target));
  CHECK(set.run({.redis_key = key, .redis_val = "moved"}));
  CHECK(w.run.get() == "moved");
  CHECK(trimmed(redis_cli(target, {"GET", key})) == "moved");
}

TEST_CASE("cluster: a pub/sub sensor receives what is published through any node") {
  cluster_topology t;
  const auto channels = channels_across_masters("news");
  auto c = t.config<RedisPubSubSensor>();
  c.channels = channels;
  c.timeout = 0ms;  // the first run subscribes and returns what has arrived: nothing
  c.soft_fail = true;
  const RedisPubSubSensor sensor(c);
  CHECK_FALSE(sensor.run());

  // One subscriber, on one node; PUBLISH on a cluster reaches every node.
  const auto where = t.nodes_with(channels.front(), 1);
  REQUIRE(where.size() == 1);
  const int node = where.front();
  for (const auto& ch : channels)
    CHECK(t.only_subscriber_on(node, ch));

  auto pc = t.config<RedisPublish<std::string>>();
  const RedisPublish<std::string> publish(pc);
  int published_elsewhere = 0;
  for (const auto& ch : channels) {
    INFO("channel " << ch << ", subscriber on " << node);
    // Sent to the node of the channel's slot, which counts only its own subscribers.
    const int sent_to = t.cluster.master_of_slot(redis_tasks::detail::key_slot(ch));
    if (sent_to != node) ++published_elsewhere;
    CHECK(publish.run({.channel = ch, .message = "hello " + ch}) == (sent_to == node ? 1 : 0));
    const auto m = sensor.run({.timeout = 10s});
    REQUIRE(m);
    CHECK(m->channel == ch);
    CHECK(m->data == "hello " + ch);
    CHECK(m->pattern.empty());
    CHECK_FALSE(m->gap_before);
  }
  CHECK(published_elsewhere >= 2);  // three masters, one subscriber's node
}

TEST_CASE("cluster: sharded pub/sub on the node of the channels' slot, following the slot") {
  cluster_topology t;
  const std::vector<std::string> channels{"{orders}:new", "{orders}:done"};
  const int slot = redis_tasks::detail::key_slot("orders");
  const int owner = t.cluster.master_of_slot(slot);
  auto c = t.config<RedisPubSubSensor>();
  c.channels = channels;
  c.sharded = true;
  c.timeout = 0ms;
  c.soft_fail = true;
  const RedisPubSubSensor sensor(c);
  CHECK_FALSE(sensor.run());  // subscribes
  for (const auto& ch : channels) {
    INFO("channel " << ch);
    CHECK(t.only_subscriber_on(owner, ch, "SHARDNUMSUB"));
    CHECK(subscribers(owner, ch) == 0);  // not a plain subscription
  }

  auto pc = t.config<RedisPublish<std::string>>();
  pc.sharded = true;
  const RedisPublish<std::string> publish(pc);
  CHECK(publish.run({.channel = "{orders}:new", .message = "order 1"}) == 1);
  CHECK(publish.run({.channel = "{orders}:done", .message = "order 1"}) == 1);
  const auto first = sensor.run({.timeout = 10s});
  const auto second = sensor.run({.timeout = 10s});
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->channel == "{orders}:new");
  CHECK(first->data == "order 1");
  CHECK_FALSE(first->gap_before);
  CHECK(second->channel == "{orders}:done");
  CHECK(second->data == "order 1");
  CHECK_FALSE(second->gap_before);
  CHECK_FALSE(sensor.run());  // each message once

  // The slot moves: the old node ends the sharded subscription (sunsubscribe), and the
  // sensor's thread subscribes again on the new node.
  const int target = t.other_master(owner);
  t.move_slot(slot, owner, target);
  for (const auto& ch : channels) {
    wait_until([&] { return t.only_subscriber_on(target, ch, "SHARDNUMSUB"); }, 30s,
               "the sharded subscription to " + ch + " to move to " + std::to_string(target));
  }
  CHECK(publish.run({.channel = "{orders}:done", .message = "order 2"}) == 1);
  const auto after = sensor.run({.timeout = 10s});
  REQUIRE(after);
  CHECK(after->channel == "{orders}:done");
  CHECK(after->data == "order 2");
  CHECK(after->gap_before);  // nothing told the sensor what was published while it moved
}

// ---------------------------------------------------------------------------------------------
// Sentinel.

TEST_CASE("sentinel: a pub/sub sensor follows a failover to the new master") {
  sentinel_topology t;
  auto c = t.config<RedisPubSubSensor>();
  c.channels = {"events"};
  c.timeout = 0ms;
  c.soft_fail = true;
  const RedisPubSubSensor sensor(c);
  CHECK_FALSE(sensor.run());  // subscribes, on the master
  CHECK(subscribers(t.master.port(), "events") == 1);
  CHECK(subscribers(t.replica.port(), "events") == 0);

  auto pc = t.config<RedisPublish<std::string>>();
  pc.channel = "events";
  const RedisPublish<std::string> publish(pc);
  CHECK(publish.run({.message = "before"}) == 1);
  const auto before = sensor.run({.timeout = 10s});
  REQUIRE(before);
  CHECK(before->data == "before");
  CHECK_FALSE(before->gap_before);

  t.fail_over();
  // The demoted master dropped its subscribers; the sensor's thread asked the sentinels again.
  wait_until(
      [&] {
        return subscribers(t.replica.port(), "events") == 1 &&
               subscribers(t.master.port(), "events") == 0;
      },
      30s, "the subscriber to move to the new master");
  CHECK(publish.run({.message = "after"}) == 1);  // on the new master, to the sensor
  const auto after = sensor.run({.timeout = 10s});
  REQUIRE(after);
  CHECK(after->channel == "events");
  CHECK(after->data == "after");
  CHECK(after->gap_before);
}

TEST_CASE("sentinel: a key sensor listens on the master, and on the new one after a failover") {
  sentinel_topology t;
  auto sc = t.config<RedisSet<std::string>>();
  const RedisSet<std::string> set(sc);
  const Sensor sensor = event_only_sensor(t.config<Sensor>(), "job:ready");
  const std::string channel = keyspace_channel("job:ready");
  {
    background_wait w(sensor, [&] { set.run({.redis_key = "job:ready", .redis_val = "x"}); });
    wait_until([&] { return subscribers(t.master.port(), channel) == 1; }, 30s,
               "the sensor to subscribe on the master");
    CHECK(subscribers(t.replica.port(), channel) == 0);
    CHECK(set.run({.redis_key = "job:ready", .redis_val = "first"}));
    CHECK(w.run.get() == "first");
  }
  CHECK(trimmed(redis_cli(t.master.port(), {"DEL", "job:ready"})) == "1");
  wait_until(
      [&] {
        return trimmed(redis_cli(t.replica.port(), {"EXISTS", "job:ready"})) == "0";
      },
      30s, "the replica to see the key deleted");

  // A run waiting across a failover: its subscription is dropped with the demoted master's
  // clients, and it listens on the new master instead (still no poke for 10 minutes).
  background_wait w(sensor, [&] { set.run({.redis_key = "job:ready", .redis_val = "x"}); });
  wait_until([&] { return subscribers(t.master.port(), channel) == 1; }, 30s,
             "the second run to subscribe on the master");
  t.fail_over();
  wait_until(
      [&] {
        return subscribers(t.replica.port(), channel) == 1 &&
               subscribers(t.master.port(), channel) == 0;
      },
      30s, "the sensor to listen on the new master");
  CHECK(set.run({.redis_key = "job:ready", .redis_val = "second"}));
  CHECK(trimmed(redis_cli(t.replica.port(), {"GET", "job:ready"})) == "second");
  CHECK(w.run.get() == "second");
}

TEST_CASE("sentinel: a pub/sub sensor reconnects to the promoted replica when the master dies") {
  sentinel_topology t;
  auto c = t.config<RedisPubSubSensor>();
  c.channels = {"events"};
  c.timeout = 0ms;
  c.soft_fail = true;
  const RedisPubSubSensor sensor(c);
  CHECK_FALSE(sensor.run());
  CHECK(subscribers(t.master.port(), "events") == 1);

  t.master.kill();
  wait_until([&] { return subscribers(t.replica.port(), "events") == 1; }, 60s,
             "the subscriber to reconnect to the promoted replica");
  CHECK(sentinel_topology::role(t.replica) == "master");
  auto pc = t.config<RedisPublish<std::string>>();
  pc.channel = "events";
  CHECK(RedisPublish<std::string>(pc).run({.message = "after"}) == 1);
  const auto after = sensor.run({.timeout = 10s});
  REQUIRE(after);
  CHECK(after->data == "after");
  CHECK(after->gap_before);
}

TEST_CASE("sentinel: a key sensor listens on the promoted replica when the master dies") {
  sentinel_topology t;
  auto sc = t.config<RedisSet<std::string>>();
  const RedisSet<std::string> set(sc);
  const Sensor sensor = event_only_sensor(t.config<Sensor>(), "job:ready");
  const std::string channel = keyspace_channel("job:ready");
  background_wait w(sensor, [&] { set.run({.redis_key = "job:ready", .redis_val = "x"}); });
  wait_until([&] { return subscribers(t.master.port(), channel) == 1; }, 30s,
             "the run to subscribe on the master");
  // The subscription breaks at once, but the sentinels name the promoted replica only after
  // down-after-milliseconds and an election: the run must keep trying to listen meanwhile.
  t.master.kill();
  wait_until([&] { return subscribers(t.replica.port(), channel) == 1; }, 30s,
             "the sensor to listen on the promoted replica");
  CHECK(sentinel_topology::role(t.replica) == "master");
  CHECK(set.run({.redis_key = "job:ready", .redis_val = "after"}));
  CHECK(w.run.get() == "after");
}
