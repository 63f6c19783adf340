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

#include "address.hpp"
#include "async.hpp"
#include "cluster.hpp"
#include "deadline.hpp"
#include "pool.hpp"
#include "sentinel.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

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
  static route none() {
    route r{std::string_view()};
    r.keyed = false;
    return r;
  }
  /// A run of `args`, routed by the keys the server says the command has.
  static route for_command(const std::vector<std::string>& args) {
    route r{std::string_view()};
    r.keyed = false;
    r.command = &args;
    return r;
  }
};

/// Routes runs to connections.
class client {
 public:
  explicit client(endpoint_settings s) {
    if (s.params.tls.enabled && !s.tls) s.tls = make_tls_context(s.params.tls, s.name());
    const bool cluster = s.params.cluster.enabled;
    const bool sentinel = !s.params.sentinel.sentinels.empty();
    if (cluster && sentinel) {
      throw config_error(
          "cluster and sentinel settings are both given; a server set is one or "
          "the other");
    }
    if (cluster) {
      max_redirects_ = s.params.cluster.max_redirects;
      cluster_ = shared_router<cluster_router>(s, "cluster");
      endpoint_ = "cluster " + cluster_->name();
    } else if (sentinel) {
      sentinel_ = shared_router<sentinel_router>(s, "sentinel");
      endpoint_ = sentinel_->name();
    } else {
      pool_ = pool_for(s);
      endpoint_ = s.name();
    }
  }

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
  std::shared_ptr<connection_pool> server_for(const route& r, clock::time_point deadline) {
    if (cluster_) {
      return r.keyed ? cluster_->pool_for_slot(key_slot(r.key), deadline)
                     : cluster_->any_pool(deadline);
    }
    if (sentinel_) return sentinel_->master_pool(deadline);
    return pool_;
  }

  /// A subscriber's connection to `pool`'s server failed or was refused: a cluster reloads its
  /// slot map, and a sentinel setup asks the sentinels for the master, before the next lookup.
  void server_failed(const std::shared_ptr<connection_pool>& pool) {
    if (cluster_) cluster_->mark_stale();
    if (sentinel_) sentinel_->invalidate(pool);
  }

  /// A subscriber's command was answered MOVED (`server_message`, e.g. "MOVED 3999
  /// 127.0.0.1:6381") by the node of `pool`: the slot map learns the new node. False when the
  /// message is no redirection.
  bool redirected(const std::string& server_message, const connection_pool& pool) {
    int slot = 0;
    std::string node;
    if (!cluster_ || server_message.compare(0, 6, "MOVED ") != 0 ||
        !parse_redirect(server_message, slot, node, pool.settings().host)) {
      return false;
    }
    cluster_->moved(slot, node);
    return true;
  }

  /// Where an asynchronous run of a task with options `t` goes: through the multiplexer of a
  /// single server, so that no thread waits for its replies, when multiplexing is on and the
  /// task has no retries (whose delays would hold a thread anyway); else on a thread.
  /// `quiet`: only the library reads the run's replies (see connection::begin_async).
  /// `replayable`: running the run again makes the same requests (false when user code encodes
  /// them, which may not: it then runs on a thread).
  async_route async_route_for(const task_options& t, bool quiet, bool replayable = true) const {
    async_route r;
    r.deadline = deadline_after(t.timeout);
    r.quiet = quiet;
    if (pool_ && t.max_retries == 0 && replayable) r.mux = pool_->mux();
    return r;
  }

  /// True when every run goes to the same server, so a batch can share one pipeline (not on a
  /// Redis Cluster, where items go to the nodes of their slots).
  bool pipelines() const noexcept { return !cluster_; }

  /// The server set, for messages: "host:port", "cluster host:port" or the sentinel master.
  const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  // Routers are shared by tasks with equal settings, like pools, so a cluster's slot map and
  // a sentinel master lookup are made once.
  template <class Router>
  static std::shared_ptr<Router> shared_router(const endpoint_settings& s, const char* kind) {
    if (!s.params.shared_pool) return std::make_shared<Router>(s);  // a router of its own
    static shared_registry<Router> registry;
    std::string key = std::string(kind) + '\x1e' + s.pool_key();
    for (const auto& n : s.params.cluster.seeds)
      key += '\x1e' + n;
    for (const auto& n : s.params.sentinel.sentinels)
      key += '\x1e' + n;
    key += '\x1e' + s.params.sentinel.master_name + '\x1e' + s.params.sentinel.username + '\x1e' +
           s.params.sentinel.password_secret.value_or("-");
    return registry.get(key, [&] { return std::make_shared<Router>(s); });
  }

  // A non-owning reference to the caller's callable.
  struct callback {
    void* object;
    void (*invoke)(void*, connection&);
    void operator()(connection& c) const { invoke(object, c); }
  };

  void run_erased(const route& r, clock::time_point deadline, callback fn) {
    if (cluster_) {
      run_cluster(r, deadline, fn);
    } else if (sentinel_) {
      run_sentinel(deadline, fn);
    } else {
      run_on(*pool_, deadline, fn, false);
    }
  }

  // Runs fn on a connection of `pool`; sent once more on a new connection when nothing of the
  // request left (see not_sent_error). `asking`: prefix commands with ASKING (cluster ASK).
  // The pool bounds the connection by `deadline` while it is on loan. Returns true when a reply
  // said READONLY (read by `fn` as a result, e.g. a batch item's error): the server was demoted.
  static bool run_on(connection_pool& pool, clock::time_point deadline, callback fn, bool asking) {
    if (!asking && pool.mux() != nullptr) return run_multiplexed(*pool.mux(), deadline, fn);
    for (int attempt = 0;; ++attempt) {
      auto lease = pool.acquire(deadline);
      try {
        if (!asking) {
          fn(*lease);
          return lease->saw_readonly();
        }
        lease->set_asking(true);
        struct reset {
          connection& c;
          ~reset() { c.set_asking(false); }
        } guard{*lease};
        fn(*lease);
        return lease->saw_readonly();
      } catch (const not_sent_error&) {
        if (attempt >= 1) throw;
      }
    }
  }

  // As run_on, on a multiplexed connection: a request its shared connection failed to write
  // (not_sent_error) goes again on the next one. Each failure closes one shared connection, so
  // one more try than there are of them reaches a new one.
  static bool run_multiplexed(multiplexer& mux, clock::time_point deadline, callback fn) {
    if (async_context* a = current_async_context(); a != nullptr && a->mux == &mux) {
      // An asynchronous run: on its own connection (in asynchronous mode, by its deadline).
      for (std::size_t attempt = 0;; ++attempt) {
        try {
          fn(*a->conn);
          return a->conn->saw_readonly();
        } catch (const not_sent_error&) {
          if (attempt >= mux.links_allowed()) throw;
        }
      }
    }
    for (std::size_t attempt = 0;; ++attempt) {
      auto lease = mux.acquire(deadline);
      try {
        fn(*lease);
        return lease->saw_readonly();
      } catch (const not_sent_error&) {
        if (attempt >= mux.links_allowed()) throw;
      }
    }
  }

  void run_cluster(const route& r, clock::time_point deadline, callback fn) {
    const int slot = r.command ? cluster_->slot_of_command(*r.command, deadline)
                               : (r.keyed ? key_slot(r.key) : -1);
    std::string ask_node;
    const int max_redirects = max_redirects_;
    for (int redirects = 0, busy = 0;;) {
      std::shared_ptr<connection_pool> pool = !ask_node.empty() ? cluster_->pool_for_node(ask_node)
                                              : slot >= 0 ? cluster_->pool_for_slot(slot, deadline)
                                                          : cluster_->any_pool(deadline);
      try {
        run_on(*pool, deadline, fn, !ask_node.empty());
        return;
      } catch (const reply_error& e) {
        const std::string code = e.code();
        int to_slot = 0;
        std::string node;
        if ((code == "MOVED" || code == "ASK") &&
            parse_redirect(e.server_message(), to_slot, node, pool->settings().host)) {
          if (++redirects > max_redirects) {
            throw connection_error("cluster " + cluster_->name() + ": gave up after " +
                                   std::to_string(max_redirects) +
                                   " redirections (last: " + e.server_message() + ")");
          }
          if (code == "MOVED") {
            cluster_->moved(to_slot, node);
            ask_node.clear();
          } else {
            ask_node = node;
          }
          continue;
        }
        if (code == "TRYAGAIN") {  // keys of the slot are being migrated
          // Back off, but never past the run's deadline: out of time, the run ends below.
          if (++busy <= 20 && sleep_within(std::chrono::milliseconds(10 * busy), deadline)) {
            continue;
          }
          // A multi-key request (e.g. the swap key of an nx/xx collection write) can get
          // TRYAGAIN for the whole migration: a connection_error, so task retries cover it.
          throw connection_error("cluster " + cluster_->name() + ": " +
                                 (slot >= 0 ? "slot " + std::to_string(slot) : "a slot") +
                                 " is being migrated (" + e.server_message() + ", " +
                                 std::to_string(busy) +
                                 " times in a row); task retries will try again");
        }
        if (code == "CLUSTERDOWN") {
          cluster_->mark_stale();
          throw connection_error("cluster " + cluster_->name() + " is down or failing over (" +
                                 e.server_message() + "); task retries will try again");
        }
        throw;
      } catch (const connection_error&) {
        cluster_->mark_stale();  // the node may have failed; its replica takes over
        throw;
      }
    }
  }

  void run_sentinel(clock::time_point deadline, callback fn) {
    for (int attempt = 0;; ++attempt) {
      auto pool = sentinel_->master_pool(deadline);
      try {
        // A batch reads READONLY as an item's error: the next run asks the sentinels again.
        if (run_on(*pool, deadline, fn, false)) sentinel_->invalidate(pool);
        return;
      } catch (const reply_error& e) {
        // READONLY: this server was demoted; the write was refused, so it may go to the new
        // master.
        if (e.code() != "READONLY") throw;
        sentinel_->invalidate(pool);
        if (attempt >= 3 ||
            !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
          throw;
        }
      } catch (const not_master_error&) {
        // A new connection found a replica at the master's address (a failover demoted it):
        // nothing of the run was sent, so it goes to the master the sentinels name now.
        sentinel_->invalidate(pool);
        if (attempt >= 3 ||
            !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
          throw;
        }
      } catch (const connection_error&) {
        sentinel_->invalidate(pool);
        throw;
      }
    }
  }

  std::shared_ptr<connection_pool> pool_;
  std::shared_ptr<cluster_router> cluster_;
  std::shared_ptr<sentinel_router> sentinel_;
  std::string endpoint_;
  int max_redirects_ = 5;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
