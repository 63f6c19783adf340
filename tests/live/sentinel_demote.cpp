// A demoted master under Sentinel, with the clients' connections left open: the roles are
// swapped by hand with REPLICAOF (a sentinel failover would kill every normal client, and a
// new connection checks ROLE, so READONLY would never be read). The task's idle pooled
// connection still points at the old master, which now answers writes with READONLY.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisSet;
using test_support::clients_named;
using test_support::info_field;
using test_support::redis_cli;
using test_support::redis_process;
using test_support::sentinel_process;
using test_support::wait_until;

namespace {

// A master, its replica and three sentinels, as in sentinel.cpp.
struct demote_setup {
  redis_process master;
  redis_process replica;
  std::unique_ptr<sentinel_process> s1, s2, s3;

  demote_setup() : replica({"--replicaof", "127.0.0.1", std::to_string(master.port())}) {
    s1 = std::make_unique<sentinel_process>(master.port());
    s2 = std::make_unique<sentinel_process>(master.port());
    s3 = std::make_unique<sentinel_process>(master.port());
    // Wait until the replica synced and the sentinels found it and each other.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string repl, known, others;
    while (std::chrono::steady_clock::now() < deadline) {
      repl = redis_cli(replica.port(), {"INFO", "replication"});
      known = redis_cli(s1->port(), {"SENTINEL", "REPLICAS", "mymaster"});
      others = redis_cli(s1->port(), {"SENTINEL", "SENTINELS", "mymaster"});
      if (info_field(repl, "master_link_status") == "up" &&
          known.find(std::to_string(replica.port())) != std::string::npos &&
          others.find(std::to_string(s2->port())) != std::string::npos &&
          others.find(std::to_string(s3->port())) != std::string::npos) {
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("sentinel setup did not settle: replica link '" +
                             info_field(repl, "master_link_status") +
                             "', replicas known to the first sentinel:\n" + known +
                             "\nother sentinels it knows:\n" + others);
  }

  std::vector<sentinel_process*> sentinels() const { return {s1.get(), s2.get(), s3.get()}; }

  /// A RedisSet config that finds the master through the sentinels, its connections named
  /// `client_name`, and no task retries: only the library's own READONLY handling may help.
  RedisSet<std::string>::config set_config(const std::string& client_name) const {
    // host/port point nowhere useful: only the sentinels are asked.
    auto c = test_support::config_for<RedisSet<std::string>>(1);
    c.redis_connection_params.sentinel.sentinels = {s1->address(), s2->address(), s3->address()};
    c.redis_connection_params.sentinel.master_name = "mymaster";
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    c.redis_connection_params.client_name = client_name;
    c.task.max_retries = 0;
    return c;
  }

  /// The role ("master", "slave") of `server` by its own account.
  static std::string role(const redis_process& server) {
    return info_field(redis_cli(server.port(), {"INFO", "replication"}), "role");
  }

  /// Whether every sentinel names `server` as the master now.
  bool sentinels_agree_on(const redis_process& server) const {
    for (const auto* s : sentinels()) {
      if (redis_cli(s->port(), {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"}) !=
          "127.0.0.1\n" + std::to_string(server.port()) + "\n") {
        return false;
      }
    }
    return true;
  }

  /// Makes `to` (a synced replica of `from`) the master and `from` its replica, without
  /// killing a client on either, and has the sentinels name `to`. Sentinels do not adopt a
  /// swap made behind their back: they see a master that says it is a replica, call it down,
  /// and fail over themselves (killing clients). So they forget the master first and are told
  /// the new one after, the way an operator moves a monitored master.
  void swap_roles(const redis_process& from, const redis_process& to) const {
    for (const auto* s : sentinels()) {
      REQUIRE(redis_cli(s->port(), {"SENTINEL", "REMOVE", "mymaster"}) == "OK\n");
    }
    REQUIRE(redis_cli(to.port(), {"REPLICAOF", "NO", "ONE"}) == "OK\n");
    REQUIRE(redis_cli(from.port(), {"REPLICAOF", "127.0.0.1", std::to_string(to.port())}) ==
            "OK\n");
    REQUIRE(role(from) == "slave");
    REQUIRE(role(to) == "master");
    for (const auto* s : sentinels()) {
      REQUIRE(redis_cli(s->port(), {"SENTINEL", "MONITOR", "mymaster", "127.0.0.1",
                                    std::to_string(to.port()), "2"}) == "OK\n");
    }
    wait_until([&] { return sentinels_agree_on(to); }, 30s,
               "every sentinel to name the new master");
  }
};

/// How many READONLY error replies the server on `port` has sent (INFO errorstats).
int readonly_replies(int port, const std::vector<std::string>& auth = {}) {
  std::vector<std::string> args = auth;
  args.insert(args.end(), {"INFO", "errorstats"});
  const std::string stat = info_field(redis_cli(port, args), "errorstat_READONLY");
  return stat.rfind("count=", 0) == 0 ? std::stoi(stat.substr(6)) : 0;
}

}  // namespace

TEST_CASE(
    "an idle connection to a demoted master reads READONLY, and the write goes to the new master") {
  demote_setup setup;
  const std::string name = "demote-single";
  RedisSet<std::string> set(setup.set_config(name));
  REQUIRE(set.run({.redis_key = "k", .redis_val = "1"}));
  REQUIRE(clients_named(setup.master.port(), name) == 1);  // idle in the pool now
  wait_until(
      [&] {
        return redis_cli(setup.replica.port(), {"GET", "k"}) == "1\n";
      },
      30s, "the replica to receive the first write");

  setup.swap_roles(setup.master, setup.replica);
  // The swap left the task's connection to the old master open: the next run takes it.
  REQUIRE(clients_named(setup.master.port(), name) == 1);
  REQUIRE(readonly_replies(setup.master.port()) == 0);

  CHECK(set.run({.redis_key = "k", .redis_val = "2"}));
  // The write did reach the old master, which refused it once; then it went to the new master.
  CHECK(readonly_replies(setup.master.port()) == 1);
  CHECK(redis_cli(setup.replica.port(), {"GET", "k"}) == "2\n");
  CHECK(clients_named(setup.replica.port(), name) == 1);
  // The connection that read READONLY was closed, not put back in the pool.
  wait_until([&] { return clients_named(setup.master.port(), name) == 0; }, 10s,
             "the connection to the demoted master to be closed");
  // The old master, a replica now, receives the write from the new one.
  wait_until(
      [&] {
        return redis_cli(setup.master.port(), {"GET", "k"}) == "2\n";
      },
      30s, "the demoted master to replicate the write");
}

TEST_CASE("a batch on a demoted master fails with READONLY, and the next run finds the new one") {
  demote_setup setup;
  const std::string name = "demote-batch";
  RedisSet<std::string> set(setup.set_config(name));
  REQUIRE(set.run({.redis_key = "warm", .redis_val = "1"}));
  REQUIRE(clients_named(setup.master.port(), name) == 1);  // idle in the pool now
  wait_until(
      [&] {
        return redis_cli(setup.replica.port(), {"GET", "warm"}) == "1\n";
      },
      30s, "the replica to receive the first write");

  setup.swap_roles(setup.master, setup.replica);
  REQUIRE(clients_named(setup.master.port(), name) == 1);

  const auto results = set.run_many({{.redis_key = "b1", .redis_val = "x"},
                                     {.redis_key = "b2", .redis_val = "y"},
                                     {.redis_key = "b3", .redis_val = "z"}});
  REQUIRE(results.size() == 3);
  for (const auto& r : results) {
    CHECK_FALSE(r.ok());
    try {
      std::rethrow_exception(r.error());
    } catch (const redis_tasks::reply_error& e) {
      CHECK(e.code() == "READONLY");
    } catch (const std::exception& e) {
      FAIL("expected a reply_error READONLY, got: " << e.what());
    }
  }
  // All three reached the old master and were refused; none was stored anywhere.
  CHECK(readonly_replies(setup.master.port()) == 3);
  CHECK(redis_cli(setup.master.port(), {"EXISTS", "b1", "b2", "b3"}) == "0\n");
  CHECK(redis_cli(setup.replica.port(), {"EXISTS", "b1", "b2", "b3"}) == "0\n");
  wait_until([&] { return clients_named(setup.master.port(), name) == 0; }, 10s,
             "the connection that read READONLY to be closed");

  // From now on the old master refuses connections without a password: had the batch not
  // made the task forget it, the next run would connect there and fail with auth_error.
  const std::vector<std::string> auth = {"--no-auth-warning", "-a", "locked-out"};
  REQUIRE(redis_cli(setup.master.port(), {"CONFIG", "SET", "requirepass", "locked-out"}) == "OK\n");
  CHECK(set.run({.redis_key = "b1", .redis_val = "after"}));
  CHECK(redis_cli(setup.replica.port(), {"GET", "b1"}) == "after\n");
  CHECK(readonly_replies(setup.master.port(), auth) == 3);  // the next run did not go there
}
