// The test cluster (3 masters, 3 replicas) and the test Sentinel setup (a master, a replica and
// three sentinels) as the topology tests use them: how a task's config reaches them, and
// redis-cli on them. Each test file adds what it looks at.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace test_support {

/// `s` without its trailing line ends (redis-cli's output).
inline std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

/// The test cluster, reached through its seed node.
struct cluster_setup {
  test_cluster cluster;  ///< started by the constructor

  /// A task config for the cluster (short timeouts, so failures show fast).
  template <class Task>
  typename Task::config config() const {
    using namespace std::chrono_literals;
    auto c = config_for<Task>(cluster.seed_port());
    c.redis_connection_params.cluster.enabled = true;
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    return c;
  }
  /// redis-cli in cluster mode (-c): it follows MOVED to the key's node.
  std::string cli(std::vector<std::string> args) const {
    args.insert(args.begin(), "-c");
    return trimmed(redis_cli(cluster.seed_port(), args));
  }
};

/// A master, its replica and three sentinels watching it as "mymaster", settled.
struct sentinel_setup {
  redis_process master;                          ///< the master at the start
  redis_process replica;                         ///< its replica
  std::unique_ptr<sentinel_process> s1, s2, s3;  ///< the sentinels

  /// Starts them and waits until the replica synced and the sentinels found it and each other.
  sentinel_setup()
      : master({"--repl-diskless-sync-delay", "0"}),
        replica({"--replicaof", "127.0.0.1", std::to_string(master.port())}) {
    using namespace std::chrono_literals;
    s1 = std::make_unique<sentinel_process>(master.port());
    s2 = std::make_unique<sentinel_process>(master.port());
    s3 = std::make_unique<sentinel_process>(master.port());
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

  /// A task config that finds the master through the sentinels (host and port point nowhere).
  template <class Task>
  typename Task::config config() const {
    using namespace std::chrono_literals;
    auto c = config_for<Task>(1);
    c.redis_connection_params.sentinel.sentinels = {s1->address(), s2->address(), s3->address()};
    c.redis_connection_params.sentinel.master_name = "mymaster";
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 2000ms;
    return c;
  }
  /// redis-cli against the master.
  std::string cli(std::vector<std::string> args) const {
    return trimmed(redis_cli(master.port(), std::move(args)));
  }
};

}  // namespace test_support
