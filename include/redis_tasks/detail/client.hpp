// Where a command goes: the client picks the server for a run and lends it a connection.
// Standalone, Redis Cluster (by key slot, following MOVED/ASK) or Redis Sentinel (the current
// master); the tasks only call `run`, so one task runs unchanged on all three.
#pragma once

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

#include "cluster.hpp"
#include "pool.hpp"
#include "sentinel.hpp"

namespace redis_tasks::detail {

/// What a run is about, for routing: one key, the keys of a command, or nothing.
struct route {
  std::string_view key;                               ///< the key (when `keyed`)
  bool keyed = false;                                 ///< route by `key`
  const std::vector<std::string>* command = nullptr;  ///< route by this command's keys

  /// A run about one key.
  route(std::string_view k) : key(k), keyed(true) {}  // NOLINT: a key is a route
  /// A run about one key.
  route(const std::string& k) : route(std::string_view(k)) {}  // NOLINT
  /// A run of `args`, routed by the keys the server says the command has.
  static route for_command(const std::vector<std::string>& args) {
    route r{std::string_view()};
    r.keyed = false;
    r.command = &args;
    return r;
  }
};

/// Parses "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381". A node without a host
/// (":6381", a node that does not know its own address) is on `from_host`, the host of the
/// node that sent the redirection.
inline bool parse_redirect(const std::string& msg, int& slot, std::string& node,
                           std::string_view from_host) {
  const auto a = msg.find(' ');
  const auto b = msg.find(' ', a + 1);
  if (a == std::string::npos || b == std::string::npos) return false;
  slot = std::atoi(msg.c_str() + a + 1);
  node = msg.substr(b + 1);
  // Unbracketed, as Redis writes IPv6 nodes here and in CLUSTER SLOTS (split at the last ':').
  if (!node.empty() && node.front() == ':') node.insert(0, from_host);
  return slot >= 0 && slot < cluster_slots && !node.empty();
}

/// Routes runs to connections.
class client {
 public:
  explicit client(endpoint_settings s) {
    if (s.params.tls.enabled && !s.tls) s.tls = std::make_shared<const tls_context>(s.params.tls);
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
  /// returns. A request that cannot have reached a server (nothing was written before the
  /// connection failed, or the server redirected it with MOVED/ASK/READONLY) is sent again;
  /// any other failure propagates, so nothing runs twice.
  template <class F>
  auto run(const route& r, F&& fn) -> std::invoke_result_t<F&, connection&> {
    // The routing below is compiled once, not once per caller: `fn` reaches it through a
    // plain function pointer, and its result comes back through `result`.
    using result_t = std::invoke_result_t<F&, connection&>;
    std::optional<result_t> result;
    auto call = [&](connection& c) { result.emplace(fn(c)); };
    run_erased(
        r, callback{&call, [](void* f, connection& c) { (*static_cast<decltype(call)*>(f))(c); }});
    return std::move(*result);
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
    static std::mutex registry_mutex;
    static std::map<std::string, std::weak_ptr<Router>> registry;
    std::string key = std::string(kind) + '\x1e' + s.pool_key();
    for (const auto& n : s.params.cluster.seeds)
      key += '\x1e' + n;
    for (const auto& n : s.params.sentinel.sentinels)
      key += '\x1e' + n;
    key += '\x1e' + s.params.sentinel.master_name + '\x1e' + s.params.sentinel.username + '\x1e' +
           s.params.sentinel.password_secret.value_or("-");
    std::lock_guard<std::mutex> lock(registry_mutex);
    // Entries whose tasks are all gone are dropped as new ones come, so a program that keeps
    // building tasks for new endpoints does not keep their keys forever.
    for (auto it = registry.begin(); it != registry.end();) {
      it = it->second.expired() ? registry.erase(it) : std::next(it);
    }
    auto& slot = registry[key];
    if (auto existing = slot.lock()) return existing;
    auto created = std::make_shared<Router>(s);
    slot = created;
    return created;
  }

  // While a run has a deadline (task_options.timeout), each read and write waits at most
  // what is left of it. On the way out the connection gets its socket timeout back, whatever
  // changed it (this guard, or a blocking command's stretch), before the pool reuses it.
  class deadline_guard {
   public:
    explicit deadline_guard(connection& c) : c_(c) {
      const auto deadline = current_run_deadline();
      if (deadline == clock::time_point::max()) return;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0) {
        throw timeout_error("the run took longer than task.timeout before its command was sent");
      }
      const auto t = c.socket_timeout();
      c.set_timeout(t.count() > 0 && t < left ? t : left);
    }
    deadline_guard(const deadline_guard&) = delete;
    deadline_guard& operator=(const deadline_guard&) = delete;
    ~deadline_guard() {
      if (c_.timeout_changed() && !c_.broken()) c_.restore_timeout();
    }

   private:
    connection& c_;
  };

  // A non-owning reference to the caller's callable.
  struct callback {
    void* object;
    void (*invoke)(void*, connection&);
    void operator()(connection& c) const { invoke(object, c); }
  };

  void run_erased(const route& r, callback fn) {
    if (cluster_) {
      run_cluster(r, fn);
    } else if (sentinel_) {
      run_sentinel(fn);
    } else {
      run_on(*pool_, fn, false);
    }
  }

  // Runs fn on a connection of `pool`; sent once more on a new connection when nothing of the
  // request left (see not_sent_error). `asking`: prefix commands with ASKING (cluster ASK).
  static void run_on(connection_pool& pool, callback fn, bool asking) {
    for (int attempt = 0;; ++attempt) {
      auto lease = pool.acquire();
      try {
        const deadline_guard bounded(*lease);
        if (!asking) {
          fn(*lease);
          return;
        }
        lease->set_asking(true);
        struct reset {
          connection& c;
          ~reset() { c.set_asking(false); }
        } guard{*lease};
        fn(*lease);
        return;
      } catch (const not_sent_error&) {
        if (attempt >= 1) throw;
      }
    }
  }

  void run_cluster(const route& r, callback fn) {
    const int slot =
        r.command ? cluster_->slot_of_command(*r.command) : (r.keyed ? key_slot(r.key) : -1);
    std::string ask_node;
    const int max_redirects = max_redirects_;
    for (int redirects = 0, busy = 0;;) {
      std::shared_ptr<connection_pool> pool =
          !ask_node.empty() ? cluster_->pool_for_node(ask_node)
                            : (slot >= 0 ? cluster_->pool_for_slot(slot) : cluster_->any_pool());
      try {
        run_on(*pool, fn, !ask_node.empty());
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
          if (++busy <= 20) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10 * busy));
            continue;
          }
          // A multi-key request (e.g. the swap key of an nx/xx collection write) can get
          // TRYAGAIN for the whole migration: a connection_error, so task retries cover it.
          throw connection_error("cluster " + cluster_->name() + ": " +
                                 (slot >= 0 ? "slot " + std::to_string(slot) : "a slot") +
                                 " is being migrated (" + e.server_message() +
                                 ", 20 times in a row); task retries will try again");
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

  void run_sentinel(callback fn) {
    for (int attempt = 0;; ++attempt) {
      auto pool = sentinel_->master_pool();
      try {
        run_on(*pool, fn, false);
        return;
      } catch (const reply_error& e) {
        // READONLY: this server was demoted; the write was refused, so it may go to the new
        // master.
        if (e.code() != "READONLY" || attempt >= 3) throw;
        sentinel_->invalidate(pool);
        std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
      } catch (const not_master_error&) {
        // A new connection found a replica at the master's address (a failover demoted it):
        // nothing of the run was sent, so it goes to the master the sentinels name now.
        sentinel_->invalidate(pool);
        if (attempt >= 3) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
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

}  // namespace redis_tasks::detail
