// Redis Sentinel (a master, a replica and three sentinels, started here): tasks find the master
// by name, and after the master is killed they carry on against the promoted replica.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::wait_until;

namespace {

struct sentinel_setup {
  redis_process master;
  redis_process replica;
  std::unique_ptr<sentinel_process> s1, s2, s3;

  sentinel_setup() : replica({"--replicaof", "127.0.0.1", std::to_string(master.port())}) {
    s1 = std::make_unique<sentinel_process>(master.port());
    s2 = std::make_unique<sentinel_process>(master.port());
    s3 = std::make_unique<sentinel_process>(master.port());
    // Wait until the replica synced and the sentinels found it and each other.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string repl, known, others;
    while (std::chrono::steady_clock::now() < deadline) {
      repl = test_support::redis_cli(replica.port(), {"INFO", "replication"});
      known = test_support::redis_cli(s1->port(), {"SENTINEL", "REPLICAS", "mymaster"});
      others = test_support::redis_cli(s1->port(), {"SENTINEL", "SENTINELS", "mymaster"});
      if (test_support::info_field(repl, "master_link_status") == "up" &&
          known.find(std::to_string(replica.port())) != std::string::npos &&
          others.find(std::to_string(s2->port())) != std::string::npos &&
          others.find(std::to_string(s3->port())) != std::string::npos) {
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("sentinel setup did not settle: replica link '" +
                             test_support::info_field(repl, "master_link_status") +
                             "', replicas known to the first sentinel:\n" + known +
                             "\nother sentinels it knows:\n" + others);
  }

  template <class Task>
  typename Task::config config() const {
    // host/port point nowhere useful: only the sentinels are asked.
    auto c = test_support::config_for<Task>(1);
    c.redis_connection_params.sentinel.sentinels = {s1->address(), s2->address(), s3->address()};
    c.redis_connection_params.sentinel.master_name = "mymaster";
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    return c;
  }

  /// The role ("master", "slave") of `server` by its own account.
  static std::string role(const redis_process& server) {
    return test_support::info_field(test_support::redis_cli(server.port(), {"INFO", "replication"}),
                                    "role");
  }

  /// Whether every sentinel names `server` as the master now.
  bool sentinels_agree_on(const redis_process& server) const {
    for (const auto* s : {s1.get(), s2.get(), s3.get()}) {
      if (test_support::redis_cli(s->port(), {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"}) !=
          "127.0.0.1\n" + std::to_string(server.port()) + "\n") {
        return false;
      }
    }
    return true;
  }
};

}  // namespace

TEST_CASE("tasks find the master through the sentinels and follow a failover") {
  const bool multiplex = GENERATE(false, true);  // pooled, or on shared connections
  sentinel_setup setup;
  auto sc = setup.config<RedisSet<std::string>>();
  sc.task.max_retries = 100;
  sc.task.retry_delay = 100ms;
  sc.redis_connection_params.multiplex.enabled = multiplex;
  auto gc = setup.config<RedisGet<std::string>>();
  gc.task.max_retries = 100;
  gc.task.retry_delay = 100ms;
  gc.redis_connection_params.multiplex.enabled = multiplex;
  RedisSet<std::string> set(sc);
  RedisGet<std::string> get(gc);
  RedisExecute<std::string> role(setup.config<RedisExecute<std::string>>());

  REQUIRE(set.run({.redis_key = "k", .redis_val = "before"}));
  CHECK(get.run({.redis_key = "k"}) == "before");
  CHECK(test_support::redis_cli(setup.master.port(), {"GET", "k"}) == "before\n");
  // The replica that will take over is in sync when the master dies.
  wait_until(
      [&] {
        return test_support::redis_cli(setup.replica.port(), {"GET", "k"}) == "before\n";
      },
      30s, "the replica to receive the write");

  setup.master.kill();
  const auto start = std::chrono::steady_clock::now();
  CHECK(set.run({.redis_key = "k", .redis_val = "after"}));  // retries until the failover is done
  CHECK(get.run({.redis_key = "k"}) == "after");
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  // The write went to the promoted replica.
  CHECK(test_support::redis_cli(setup.replica.port(), {"GET", "k"}) == "after\n");
  CHECK(test_support::info_field(
            test_support::redis_cli(setup.replica.port(), {"INFO", "replication"}), "role") ==
        "master");
}

TEST_CASE("a demoted master's READONLY sends the write to the new master") {
  sentinel_setup setup;
  RedisSet<std::string> set(setup.config<RedisSet<std::string>>());
  REQUIRE(set.run({.redis_key = "k", .redis_val = "1"}));
  // Swap roles by hand behind the task's back: the old master becomes a replica of the other.
  test_support::redis_cli(setup.s1->port(), {"SENTINEL", "FAILOVER", "mymaster"});
  wait_until([&] { return sentinel_setup::role(setup.master) == "slave"; }, 30s,
             "the old master to become a replica");
  // Whichever sentinel the task asks after READONLY names the new master.
  wait_until([&] { return setup.sentinels_agree_on(setup.replica); }, 30s,
             "every sentinel to name the promoted replica as the master");
  // The pooled connection still points at the old master, which now answers READONLY.
  CHECK(set.run({.redis_key = "k", .redis_val = "2"}));
  CHECK(test_support::redis_cli(setup.replica.port(), {"GET", "k"}) == "2\n");
}

TEST_CASE("after a failover, reads go to the new master, not to the demoted one") {
  sentinel_setup setup;
  auto gc = setup.config<RedisGet<std::string>>();
  gc.task.max_retries = 20;
  gc.task.retry_delay = 100ms;
  RedisGet<std::string> get(gc);
  test_support::redis_cli(setup.master.port(), {"SET", "k", "old"});
  REQUIRE(get.run({.redis_key = "k"}) == "old");  // a pooled connection to the master

  test_support::redis_cli(setup.s1->port(), {"SENTINEL", "FAILOVER", "mymaster"});
  auto old_master = [&](const std::string& field) {
    return test_support::info_field(
        test_support::redis_cli(setup.master.port(), {"INFO", "replication"}), field);
  };
  wait_until(
      [&] {
        // Written to the new master until it accepts the write and the old one replicates it.
        test_support::redis_cli(setup.replica.port(), {"SET", "k", "fresh"});
        return old_master("role") == "slave" && old_master("master_link_status") == "up" &&
               test_support::redis_cli(setup.master.port(), {"GET", "k"}) == "fresh\n";
      },
      30s, "the old master to become a synced replica of the new one");
  // The demoted master gets a value of its own: a read served there is told apart.
  test_support::redis_cli(setup.master.port(), {"CONFIG", "SET", "replica-read-only", "no"});
  test_support::redis_cli(setup.master.port(), {"SET", "k", "stale"});

  // The old master's address still answers, but every new connection checks ROLE: the pool
  // does not carry on against a replica, and the master is looked up again.
  wait_until([&] { return get.run({.redis_key = "k"}) == "fresh"; }, 30s,
             "a read served by the new master");
  CHECK(test_support::redis_cli(setup.master.port(), {"GET", "k"}) == "stale\n");
}

TEST_CASE("sentinel settings are checked and an unknown master name is a clear error") {
  sentinel_setup setup;
  auto c = setup.config<RedisGet<std::string>>();
  c.redis_connection_params.sentinel.master_name = "nosuchmaster";
  c.redis_key = "k";
  try {
    RedisGet<std::string>(c).run();
    FAIL("expected connection_error");
  } catch (const redis_tasks::connection_error& e) {
    CHECK(std::string(e.what()).find("nosuchmaster") != std::string::npos);
  }
  auto bad = setup.config<RedisGet<std::string>>();
  bad.redis_connection_params.sentinel.sentinels = {"no-port"};
  CHECK_THROWS_AS(RedisGet<std::string>(bad), redis_tasks::config_error);
}
