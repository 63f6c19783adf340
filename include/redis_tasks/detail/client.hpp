// Where a command goes: the client picks the server for a run and lends it a connection.
// Standalone, Redis Cluster (by key slot, following MOVED/ASK) or Redis Sentinel (the current
// master); the tasks only call `run`, so one task runs unchanged on all three.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "async.hpp"
#include "connection.hpp"
#include "deadline.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

// Defined in cluster.hpp, pool.hpp and sentinel.hpp: the client holds them by pointer, so files
// that include this header parse none of their definitions.
class cluster_router;
class connection_pool;
class sentinel_router;

/// The database index that the connections of `pool` select (for keyspace channel names).
REDIS_TASKS_DECL int database_of(const connection_pool& pool);

/// What a run is about, for routing: one key, the keys of a command, or nothing.
struct route {
  std::string_view key;                               ///< the key (when `keyed`)
  bool keyed = false;                                 ///< route by `key`
  const std::vector<std::string>* command = nullptr;  ///< route by this command's keys

  /// A run about one key.
  route(std::string_view k) : key(k), keyed(true) {}  // NOLINT: a key is a route
  /// A run about one key.
  route(const std::string& k) : route(std::string_view(k)) {}  // NOLINT
  /// A run about no key (on a cluster: any node).
  REDIS_TASKS_DECL static route none();
  /// A run of `args`, routed by the keys the server says the command has.
  REDIS_TASKS_DECL static route for_command(const std::vector<std::string>& args);
};

/// Routes runs to connections.
class client {
 public:
  REDIS_TASKS_DECL explicit client(endpoint_settings s);

  /// Calls `fn(connection&)` on a connection of the server that serves `r`, and returns what it
  /// returns; every wait (for a pooled connection, connecting, each reply, back-off pauses)
  /// ends by `deadline` at the latest. A request that cannot have reached a server (nothing was
  /// written before the connection failed, or the server redirected it with MOVED/ASK/READONLY)
  /// is sent again; any other failure propagates, so nothing runs twice.
  template <class F>
  auto run(const route& r, clock::time_point deadline, F&& fn)
      -> std::invoke_result_t<F&, connection&> {
    // The routing below is compiled once, not once per caller: `fn` reaches it through a
    // plain function pointer, and its result comes back through `result`.
    using result_t = std::invoke_result_t<F&, connection&>;
    std::optional<result_t> result;
    auto call = [&](connection& c) { result.emplace(fn(c)); };
    run_erased(r, deadline, callback{&call, [](void* f, connection& c) {
                                       (*static_cast<decltype(call)*>(f))(c);
                                     }});
    return std::move(*result);
  }

  /// The pool of the server a subscriber for `r` connects to (on a connection of its own,
  /// outside the pool, made from the pool's settings): the server; behind Sentinel the master;
  /// on a Redis Cluster the node serving the slot of `r`'s key, or any node for a route with no
  /// key. Looks the master or the slot map up if needed, by `deadline`.
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> server_for(const route& r,
                                                               clock::time_point deadline);

  /// A subscriber's connection to `pool`'s server failed or was refused: a cluster reloads its
  /// slot map, and a sentinel setup asks the sentinels for the master, before the next lookup.
  REDIS_TASKS_DECL void server_failed(const std::shared_ptr<connection_pool>& pool);

  /// A subscriber's command was answered MOVED (`server_message`, e.g. "MOVED 3999
  /// 127.0.0.1:6381") by the node of `pool`: the slot map learns the new node. False when the
  /// message is no redirection.
  REDIS_TASKS_DECL bool redirected(const std::string& server_message, const connection_pool& pool);

  /// Where an asynchronous run of a task with options `t` goes: through the multiplexer of a
  /// single server, so that no thread waits for its replies, when multiplexing is on and the
  /// task has no retries (whose delays would hold a thread anyway); else on a thread.
  /// `quiet`: only the library reads the run's replies (see connection::begin_async).
  /// `replayable`: running the run again makes the same requests (false when user code encodes
  /// them, which may not: it then runs on a thread).
  REDIS_TASKS_DECL async_route async_route_for(const task_options& t, bool quiet,
                                               bool replayable = true) const;

  /// True when every run goes to the same server, so a batch can share one pipeline (not on a
  /// Redis Cluster, where items go to the nodes of their slots).
  bool pipelines() const noexcept { return !cluster_; }

  /// The server set, for messages: "host:port", "cluster host:port" or the sentinel master.
  const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  // A non-owning reference to the caller's callable.
  struct callback {
    void* object;
    void (*invoke)(void*, connection&);
    void operator()(connection& c) const { invoke(object, c); }
  };

  REDIS_TASKS_DECL void run_erased(const route& r, clock::time_point deadline, callback fn);

  // Runs fn on a connection of `pool`; sent once more on a new connection when nothing of the
  // request left (see not_sent_error). `asking`: prefix commands with ASKING (cluster ASK).
  // The pool bounds the connection by `deadline` while it is on loan. Returns true when a reply
  // said READONLY (read by `fn` as a result, e.g. a batch item's error): the server was demoted.
  REDIS_TASKS_DECL static bool run_on(connection_pool& pool, clock::time_point deadline,
                                      callback fn, bool asking);

  // As run_on, on a multiplexed connection: a request its shared connection failed to write
  // (not_sent_error) goes again on the next one. Each failure closes one shared connection, so
  // one more try than there are of them reaches a new one.
  REDIS_TASKS_DECL static bool run_multiplexed(multiplexer& mux, clock::time_point deadline,
                                               callback fn);

  REDIS_TASKS_DECL void run_cluster(const route& r, clock::time_point deadline, callback fn);

  REDIS_TASKS_DECL void run_sentinel(clock::time_point deadline, callback fn);

  std::shared_ptr<connection_pool> pool_;
  std::shared_ptr<cluster_router> cluster_;
  std::shared_ptr<sentinel_router> sentinel_;
  std::string endpoint_;
  int max_redirects_ = 5;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/client.ipp"
#endif
