// Redis Cluster (3 masters, 3 replicas, started here): the same tasks as standalone, routed by
// key slot; MOVED and ASK during a slot migration; a master killed and its replica promoted.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::test_cluster;
using test_support::wait_until;

namespace {

// A task built for standalone, pointed at the cluster by its connection parameters alone.
template <class Task>
typename Task::config cluster_config(const test_cluster& cluster) {
  auto c = test_support::config_for<Task>(cluster.seed_port());
  c.redis_connection_params.cluster.enabled = true;
  c.redis_connection_params.connect_timeout = 1000ms;
  c.redis_connection_params.socket_timeout = 2000ms;
  return c;
}

// Keys whose slots fall in each third of the slot space (one per master).
std::vector<std::string> keys_across_slots() {
  std::vector<std::string> keys;
  bool seen[3] = {false, false, false};
  for (int i = 0; keys.size() < 30 || !(seen[0] && seen[1] && seen[2]); ++i) {
    std::string k = "key:" + std::to_string(i);
    seen[redis_tasks::detail::key_slot(k) * 3 / 16384] = true;
    keys.push_back(std::move(k));
  }
  return keys;
}

// Whether the replica of the master on `master_port` holds `value` at `key`.
bool replica_holds(int master_port, const std::string& key, const std::string& value) {
  // "ip=127.0.0.1,port=…,state=online,…"
  const std::string replica = test_support::info_field(
      test_support::redis_cli(master_port, {"INFO", "replication"}), "slave0");
  const auto at = replica.find("port=");
  if (at == std::string::npos) return false;
  const int port = std::atoi(replica.c_str() + at + 5);
  // A cluster replica answers reads only after READONLY, on the same connection.
  return test_support::redis_cli(port, {}, "READONLY\nGET " + key + "\n") == "OK\n" + value + "\n";
}

}  // namespace

TEST_CASE("key slots follow CRC16 and hash tags, as the server computes them") {
  test_cluster cluster;
  for (const std::string key : {"foo", "bar", "{user1000}.following", "{user1000}.followers", "{}",
                                "{}x", "a{b}c", "a{}b{c}", "\xff\x00z"}) {
    const std::string out =
        test_support::redis_cli(cluster.seed_port(), {"CLUSTER", "KEYSLOT", key});
    CHECK(redis_tasks::detail::key_slot(key) == std::atoi(out.c_str()));
  }
  CHECK(redis_tasks::detail::crc16("123456789") == 0x31C3);
}

TEST_CASE("all three tasks work across every slot range of a cluster") {
  test_cluster cluster;
  RedisSet<std::string> set(cluster_config<RedisSet<std::string>>(cluster));
  RedisGet<std::string> get(cluster_config<RedisGet<std::string>>(cluster));
  RedisExecute<long long> exec(cluster_config<RedisExecute<long long>>(cluster));
  const auto keys = keys_across_slots();
  for (const auto& k : keys)
    REQUIRE(set.run({.redis_key = k, .redis_val = "v:" + k}));
  for (const auto& k : keys)
    CHECK(get.run({.redis_key = k}) == "v:" + k);
  for (const auto& k : keys) {
    CHECK(exec.run({.redis_cmd = redis_tasks::command{std::vector<std::string>{"STRLEN", k}}}) ==
          static_cast<long long>(2 + k.size()));
  }
  // Collections stay atomic on one node: a list written and read through the cluster.
  RedisSet<std::vector<std::string>> set_list(
      cluster_config<RedisSet<std::vector<std::string>>>(cluster));
  RedisGet<std::vector<std::string>> get_list(
      cluster_config<RedisGet<std::vector<std::string>>>(cluster));
  const std::vector<std::string> items{"a", "b", "c"};
  for (const auto& k : keys)
    REQUIRE(set_list.run({.redis_key = k + ":list", .redis_val = items, .nx = true}));
  for (const auto& k : keys)
    CHECK(get_list.run({.redis_key = k + ":list"}) == items);

  // Keyless commands go to any node; multi-key commands in one slot work; across slots the
  // server's CROSSSLOT error comes back as a reply_error.
  CHECK(RedisExecute<std::string>(cluster_config<RedisExecute<std::string>>(cluster))
            .run({.redis_cmd = "PING"}) == "PONG");
  RedisExecute<redis_tasks::reply> any(cluster_config<RedisExecute<redis_tasks::reply>>(cluster));
  CHECK_NOTHROW(any.run({.redis_cmd = "MSET {t}a 1 {t}b 2"}));
  CHECK(any.run({.redis_cmd = "MGET {t}a {t}b"}).to_json() == nlohmann::json::array({"1", "2"}));
  try {
    any.run({.redis_cmd = "MSET key:0 1 key:1 2"});
    if (redis_tasks::detail::key_slot("key:0") != redis_tasks::detail::key_slot("key:1")) {
      FAIL("expected CROSSSLOT");
    }
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.code() == "CROSSSLOT");
  }
  // A script's keys move with its arguments: routed by COMMAND GETKEYS.
  CHECK(any.run({.redis_cmd = "EVAL \"return redis.call('GET', KEYS[1])\" 1 key:7"}).str() ==
        "v:key:7");

  // Multiplexed: the same runs from 8 threads at once on at most 2 shared connections per
  // node (a node may also hold the pooled connection the slot map was read on).
  auto msc = cluster_config<RedisSet<std::string>>(cluster);
  msc.redis_connection_params.multiplex.enabled = true;
  msc.redis_connection_params.client_name = "mux-cluster";
  auto mgc = cluster_config<RedisGet<std::string>>(cluster);
  mgc.redis_connection_params.multiplex.enabled = true;
  mgc.redis_connection_params.client_name = "mux-cluster";
  const RedisSet<std::string> mux_set(msc);
  const RedisGet<std::string> mux_get(mgc);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (const auto& k : keys) {
          const std::string key = k + ":mux:" + std::to_string(t);
          const std::string v = key + ":" + std::to_string(round);
          if (!mux_set.run({.redis_key = key, .redis_val = v}) ||
              mux_get.run({.redis_key = key}) != v) {
            ++wrong;
          }
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(wrong == 0);
  for (const int port : cluster.master_ports())
    CHECK(test_support::clients_named(port, "mux-cluster") <= 3);

  // db other than 0 does not exist in a cluster.
  auto bad = cluster_config<RedisGet<std::string>>(cluster);
  bad.db = 1;
  CHECK_THROWS_AS(RedisGet<std::string>(bad), redis_tasks::config_error);
}

TEST_CASE("a slot migrated while runs stream: ASK, then MOVED") {
  test_cluster cluster;
  const std::string tag = "{mig}";
  const int slot = redis_tasks::detail::key_slot(tag);
  const int source = cluster.master_of_slot(slot);
  int target = 0;
  for (int p : cluster.master_ports()) {
    if (p != source) target = p;
  }
  REQUIRE(target != 0);

  RedisSet<std::string> set(cluster_config<RedisSet<std::string>>(cluster));
  RedisGet<std::string> get(cluster_config<RedisGet<std::string>>(cluster));
  const int n = 40;
  for (int i = 0; i < n; ++i)
    REQUIRE(set.run({.redis_key = tag + std::to_string(i), .redis_val = std::to_string(i)}));

  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<int> errors{0};
  std::atomic<int> runs{0};
  std::thread reader([&] {
    while (!stop) {
      for (int i = 0; i < n && !stop; ++i) {
        try {
          if (get.run({.redis_key = tag + std::to_string(i)}) != std::to_string(i)) ++wrong;
        } catch (const redis_tasks::error&) {
          ++errors;  // counted, not thrown: an exception would end the process, not the test
        }
        ++runs;
      }
    }
  });
  test_support::at_scope_exit stop_reader([&] {
    stop = true;
    if (reader.joinable()) reader.join();
  });
  // Waits until the reader has read every key once more: it has met the slot as it is now.
  const auto reader_pass = [&](const std::string& when) {
    const int target = runs + n;
    wait_until([&] { return runs >= target; }, 30s, "the reader to read every key " + when);
  };
  reader_pass("before the migration");

  const std::string source_id = cluster.node_id(source);
  const std::string target_id = cluster.node_id(target);
  const std::string s = std::to_string(slot);
  test_support::redis_cli(target, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id});
  test_support::redis_cli(source, {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id});

  // Half the keys move: reads of those must follow ASK to the target.
  for (int i = 0; i < n / 2; ++i) {
    test_support::redis_cli(source, {"MIGRATE", "127.0.0.1", std::to_string(target),
                                     tag + std::to_string(i), "0", "5000"});
  }
  reader_pass("with half the keys migrated (ASK)");
  CHECK(get.run({.redis_key = tag + "0"}) == "0");                    // only on the target: ASK
  CHECK(set.run({.redis_key = tag + "new", .redis_val = "during"}));  // new key: ASK as well
  CHECK(get.run({.redis_key = tag + "new"}) == "during");

  // A collection is written in MULTI … EXEC: ASKING goes before MULTI only (one inside the
  // transaction would be queued, and EXEC would return its +OK too).
  RedisSet<std::vector<std::string>> set_list(
      cluster_config<RedisSet<std::vector<std::string>>>(cluster));
  RedisGet<std::vector<std::string>> get_list(
      cluster_config<RedisGet<std::vector<std::string>>>(cluster));
  const std::vector<std::string> items{"x", "y", "z"};
  const std::vector<std::string> more{"p", "q"};
  CHECK(set_list.run({.redis_key = tag + "list", .redis_val = items}));  // new key: ASK
  CHECK(get_list.run({.redis_key = tag + "list"}) == items);
  CHECK(set_list.run({.redis_key = tag + "list", .redis_val = more}));  // now on the target
  CHECK(get_list.run({.redis_key = tag + "list"}) == more);
  // An nx/xx collection write swaps in a second key with a two-key EVAL, which gets TRYAGAIN
  // for as long as the slot migrates: a connection_error, so task retries cover it.
  CHECK(test_support::thrown<redis_tasks::connection_error>([&] {
          set_list.run({.redis_key = tag + "nx", .redis_val = items, .nx = true});
        }).find("is being migrated") != std::string::npos);

  for (int i = n / 2; i < n; ++i) {
    test_support::redis_cli(source, {"MIGRATE", "127.0.0.1", std::to_string(target),
                                     tag + std::to_string(i), "0", "5000"});
  }
  for (int p : cluster.master_ports()) {
    test_support::redis_cli(p, {"CLUSTER", "SETSLOT", s, "NODE", target_id});
  }
  // The replicas learn of the move by gossip.
  wait_until(
      [&] {
        for (auto* node : cluster.nodes()) {
          if (test_cluster::master_of_slot_seen_by(node->port(), slot) != target) return false;
        }
        return true;
      },
      30s, "every node to see slot " + s + " served by the target");
  reader_pass("after the migration (MOVED)");
  CHECK(get.run({.redis_key = tag + std::to_string(n - 1)}) == std::to_string(n - 1));  // MOVED
  CHECK(get_list.run({.redis_key = tag + "list"}) == more);
  CHECK(test_support::redis_cli(target, {"LRANGE", tag + "list", "0", "-1"}) == "p\nq\n");
  stop = true;
  reader.join();
  CHECK(wrong == 0);
  CHECK(errors == 0);
  CHECK(cluster.master_of_slot(slot) == target);
}

TEST_CASE("a master killed: its replica is promoted and runs resume") {
  test_cluster cluster;
  const std::string key = "failover-key";
  const int master = cluster.master_of_slot(redis_tasks::detail::key_slot(key));

  auto sc = cluster_config<RedisSet<std::string>>(cluster);
  sc.task.max_retries = 100;
  sc.task.retry_delay = 100ms;
  auto gc = cluster_config<RedisGet<std::string>>(cluster);
  gc.task.max_retries = 100;
  gc.task.retry_delay = 100ms;
  RedisSet<std::string> set(sc);
  RedisGet<std::string> get(gc);
  REQUIRE(set.run({.redis_key = key, .redis_val = "before"}));
  // The replica that will take over is in sync when its master dies.
  wait_until([&] { return replica_holds(master, key, "before"); }, 30s,
             "the master's replica to receive the write");

  cluster.node_on(master).kill();
  const auto start = std::chrono::steady_clock::now();
  CHECK(set.run({.redis_key = key, .redis_val = "after"}));  // retried until the replica took over
  CHECK(get.run({.redis_key = key}) == "after");
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  CHECK(cluster.master_of_slot(redis_tasks::detail::key_slot(key)) != master);
}

TEST_CASE("a standalone task runs on a cluster by changing only its URL") {
  test_cluster cluster;
  auto make = [](const std::string& url) {
    RedisExecute<long long>::config c;
    c.password_secret = std::nullopt;
    c.redis_cmd = "INCR visits";
    redis_tasks::apply_url(c, url);
    return RedisExecute<long long>(c);
  };
  test_support::redis_process standalone;
  CHECK(make("redis://127.0.0.1:" + std::to_string(standalone.port())).run() == 1);
  auto on_cluster = make("redis+cluster://127.0.0.1:" + std::to_string(cluster.seed_port()));
  CHECK(on_cluster.run() == 1);
  CHECK(on_cluster.run() == 2);
}

TEST_CASE("run_many on a cluster: items go to the nodes of their slots") {
  test_cluster cluster;
  RedisSet<std::string> set(cluster_config<RedisSet<std::string>>(cluster));
  RedisGet<std::string> get(cluster_config<RedisGet<std::string>>(cluster));
  const auto keys = keys_across_slots();
  std::vector<RedisSet<std::string>::overrides> writes;
  std::vector<RedisGet<std::string>::overrides> reads;
  for (const auto& k : keys) {
    writes.push_back({.redis_key = k, .redis_val = "b:" + k});
    reads.push_back({.redis_key = k});
  }
  for (const auto& r : set.run_many(writes))
    CHECK(r.value());
  const auto got = get.run_many(reads);
  for (std::size_t i = 0; i < keys.size(); ++i)
    CHECK(got[i].value() == "b:" + keys[i]);
}

namespace {

// How many times the node on `port` ran `command` ("command|getkeys", "eval"), by its
// INFO commandstats ("cmdstat_command|getkeys:calls=3,usec=…"); 0 when it never did.
long long command_calls(int port, const std::string& command) {
  const std::string stat = test_support::info_field(
      test_support::redis_cli(port, {"INFO", "commandstats"}), "cmdstat_" + command);
  if (stat.rfind("calls=", 0) != 0) return 0;
  return std::atoll(stat.c_str() + 6);
}

// The calls of COMMAND GETKEYS and of COMMAND INFO, summed over every node of `cluster`.
std::pair<long long, long long> key_lookups(test_cluster& cluster) {
  std::pair<long long, long long> sum{0, 0};
  for (const auto* node : cluster.nodes()) {
    sum.first += command_calls(node->port(), "command|getkeys");
    sum.second += command_calls(node->port(), "command|info");
  }
  return sum;
}

}  // namespace

TEST_CASE("scripts and functions are routed by their numkeys without asking the server") {
  test_cluster cluster;
  const std::string script = "return redis.call('SET', KEYS[1], ARGV[1])";
  // The script and a function, known to every master beforehand (EVALSHA and FCALL need them).
  std::string sha;
  for (const int port : cluster.master_ports()) {
    sha = test_support::redis_cli(port, {"SCRIPT", "LOAD", script});
    while (!sha.empty() && (sha.back() == '\n' || sha.back() == '\r'))
      sha.pop_back();
    REQUIRE(sha.size() == 40);
    REQUIRE(test_support::redis_cli(
                port, {"FUNCTION", "LOAD",
                       "#!lua name=rt_lib\nredis.register_function('rt_set', function(keys, args) "
                       "return redis.call('SET', keys[1], args[1]) end)\n"
                       "redis.register_function('rt_one', function() return 1 end)"}) ==
            "rt_lib\n");
  }
  const int owner = cluster.master_of_slot(redis_tasks::detail::key_slot("{tag}"));
  const auto before = key_lookups(cluster);
  REQUIRE(key_lookups(cluster) == before);  // measuring does not count itself

  RedisExecute<> exec(cluster_config<RedisExecute<>>(cluster));
  auto run = [&](std::vector<std::string> args) {
    return exec.run({.redis_cmd = redis_tasks::command{std::move(args)}});
  };
  for (int i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i);
    CHECK(run({"EVAL", script, "1", "{tag}k", "v" + n}).str() == "OK");
    CHECK(run({"evalsha", sha, "1", "{tag}sha", "s" + n}).str() == "OK");
    CHECK(run({"FCALL", "rt_set", "1", "{tag}f", "f" + n}).str() == "OK");
    CHECK(run({"EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "{tag}k"}).str() == "v" + n);
  }
  // Each went straight to the master of the slot: no other node saw one (a MOVED would show
  // there as a rejected call).
  for (const auto* node : cluster.nodes()) {
    if (node->port() == owner) continue;
    for (const std::string cmd : {"eval", "evalsha", "fcall", "eval_ro"}) {
      CAPTURE(node->port(), cmd);
      CHECK(test_support::info_field(
                test_support::redis_cli(node->port(), {"INFO", "commandstats"}), "cmdstat_" + cmd)
                .empty());
    }
  }
  CHECK(command_calls(owner, "eval") == 5);
  CHECK(command_calls(owner, "evalsha") == 5);
  CHECK(command_calls(owner, "fcall") == 5);
  CHECK(command_calls(owner, "eval_ro") == 5);
  // No keys at all: any node runs it, still without asking which keys it has.
  for (int i = 0; i < 3; ++i) {
    CHECK(run({"EVAL", "return 1", "0"}).integer() == 1);
    CHECK(run({"FCALL", "rt_one", "0"}).integer() == 1);
  }
  CHECK(key_lookups(cluster) == before);

  // The keys landed, read back through the cluster and from the owning master itself.
  RedisGet<std::string> get(cluster_config<RedisGet<std::string>>(cluster));
  CHECK(get.run({.redis_key = "{tag}k"}) == "v4");
  CHECK(get.run({.redis_key = "{tag}sha"}) == "s4");
  CHECK(get.run({.redis_key = "{tag}f"}) == "f4");
  CHECK(test_support::redis_cli(owner, {"GET", "{tag}k"}) == "v4\n");

  // For comparison, a command whose keys move with its arguments does ask: COMMAND INFO once
  // (then cached), COMMAND GETKEYS on every run. So the counters above could have moved.
  for (int i = 0; i < 3; ++i)
    CHECK(run({"ZUNIONSTORE", "{tag}u", "1", "{tag}z"}).integer() == 0);
  const auto after = key_lookups(cluster);
  CHECK(after.first - before.first == 3);
  CHECK(after.second - before.second == 1);
}
