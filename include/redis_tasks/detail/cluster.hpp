// Redis Cluster: key slots, the slot map, and which node's pool serves a run.
#pragma once

#include "../version.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../reply.hpp"
#include "address.hpp"
#include "deadline.hpp"
#include "keys.hpp"
#include "pool.hpp"
#include "single_flight.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The slot map of one cluster and a pool per node. Shared by every task with the same
/// settings; safe to use from many threads.
class cluster_router {
 public:
  REDIS_TASKS_DECL explicit cluster_router(endpoint_settings base);

  /// The pool of the node serving `slot` (loads the slot map first if needed, by `deadline`).
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> pool_for_slot(int slot,
                                                                  clock::time_point deadline);

  /// The pool of a node given as "host:port" (a redirection target, or any node).
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> pool_for_node(const std::string& node);

  /// A pool for a command with no key: any known node, in turn.
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> any_pool(clock::time_point deadline);

  /// A MOVED reply: the slot now lives on `node`. Fixes the entry at once and reloads the
  /// whole map before the next run, since a MOVED usually means more slots changed.
  REDIS_TASKS_DECL void moved(int slot, const std::string& node);

  /// The map may be out of date (a node failed): reload it before the next run.
  REDIS_TASKS_DECL void mark_stale();

  /// The slot a command's keys hash to, as the server describes the command's key positions
  /// (COMMAND INFO, cached; COMMAND GETKEYS for commands whose keys move); -1 when it has none.
  /// Scripts and functions (EVAL, EVALSHA, FCALL and their _RO forms) name their keys in their
  /// arguments, so they need no round trip.
  REDIS_TASKS_DECL int slot_of_command(const std::vector<std::string>& args,
                                       clock::time_point deadline);

  /// "host:port" of the first seed, for messages.
  const std::string& name() const noexcept { return seeds_.front(); }

 private:
  static constexpr std::uint16_t no_node = 0xFFFF;

  struct key_spec {
    long long first = 0;      // position of the first key, 0: none
    bool ask_server = false;  // keys move with the arguments: ask COMMAND GETKEYS
  };

  // EVAL-like commands: `name script numkeys key…`. The slot of the first key, -1 for no keys,
  // nullopt for other commands (and for a numkeys that is not a number: the server says why).
  REDIS_TASKS_DECL static std::optional<int> script_slot(const std::string& name,
                                                         const std::vector<std::string>& args);

  // Runs `fn(connection&)` on some reachable node (seeds and known nodes, in turn), by
  // `deadline`.
  template <class F>
  auto on_any_node(clock::time_point deadline, F&& fn)
      -> decltype(fn(std::declval<connection&>())) {
    std::vector<std::string> candidates;
    {
      const std::lock_guard<std::mutex> lock(lock_.mutex());
      candidates = nodes_;
    }
    candidates.insert(candidates.end(), seeds_.begin(), seeds_.end());
    std::string last_error;
    for (const auto& node : candidates) {
      try {
        auto lease = pool_for_node(node)->acquire(deadline);
        return fn(*lease);
      } catch (const connection_error& e) {
        last_error = e.what();
        if (clock::now() >= deadline) break;  // out of time: no other node gets a try
      }
    }
    throw connection_error("no node of the cluster answered (seeds: " + seeds_.front() +
                           (seeds_.size() > 1
                                ? " and " + std::to_string(seeds_.size() - 1) + " more"
                                : std::string()) +
                           "): " + last_error);
  }

  REDIS_TASKS_DECL void ensure_map(clock::time_point deadline);

  REDIS_TASKS_DECL void refresh(clock::time_point deadline);

  REDIS_TASKS_DECL key_spec describe(const std::string& name, clock::time_point deadline);

  REDIS_TASKS_DECL int slot_from_getkeys(const std::vector<std::string>& args,
                                         clock::time_point deadline);

  endpoint_settings base_;
  std::vector<std::string> seeds_;
  fork_safe_lock lock_;    // guards the map, the pools and the specs; held briefly
  single_flight refresh_;  // one slot-map reload at a time
  std::vector<std::uint16_t> slots_ = std::vector<std::uint16_t>(cluster_slots, no_node);
  std::vector<std::string> nodes_;
  std::map<std::string, std::shared_ptr<connection_pool>> pools_;
  std::map<std::string, key_spec> specs_;
  std::atomic<std::size_t> next_any_{0};
  bool stale_ = true;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/cluster.ipp"
#endif
