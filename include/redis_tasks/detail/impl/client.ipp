// The bodies of client.hpp (see ../client.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../address.hpp"
#include "../client.hpp"
#include "../cluster.hpp"
#include "../pool.hpp"
#include "../sentinel.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL int database_of(const connection_pool& pool) {
  return pool.settings().db;
}

REDIS_TASKS_DECL auto route::none() -> route {
  route r{std::string_view()};
  r.keyed = false;
  return r;
}

REDIS_TASKS_DECL auto route::for_command(const std::vector<std::string>& args) -> route {
  route r{std::string_view()};
  r.keyed = false;
  r.command = &args;
  return r;
}

// Routers are shared by clients with equal settings, like pools, so a cluster's slot map and a
// sentinel master lookup are made once. (Used by the client's constructor only.)
template <class Router>
std::shared_ptr<Router> shared_router(const endpoint_settings& s, const char* kind) {
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

REDIS_TASKS_DECL client::client(endpoint_settings s) {
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

REDIS_TASKS_DECL auto client::server_for(const route& r, clock::time_point deadline)
    -> std::shared_ptr<connection_pool> {
  if (cluster_) {
    return r.keyed ? cluster_->pool_for_slot(key_slot(r.key), deadline)
                   : cluster_->any_pool(deadline);
  }
  if (sentinel_) return sentinel_->master_pool(deadline);
  return pool_;
}

REDIS_TASKS_DECL void client::server_failed(const std::shared_ptr<connection_pool>& pool) {
  if (cluster_) cluster_->mark_stale();
  if (sentinel_) sentinel_->invalidate(pool);
}

REDIS_TASKS_DECL bool client::redirected(const std::string& server_message,
                                         const connection_pool& pool) {
  int slot = 0;
  std::string node;
  if (!cluster_ || server_message.compare(0, 6, "MOVED ") != 0 ||
      !parse_redirect(server_message, slot, node, pool.settings().host)) {
    return false;
  }
  cluster_->moved(slot, node);
  return true;
}

REDIS_TASKS_DECL auto client::async_route_for(const task_options& t, bool quiet,
                                              bool replayable) const -> async_route {
  async_route r;
  r.deadline = deadline_after(t.timeout);
  r.quiet = quiet;
  if (pool_ && t.max_retries == 0 && replayable) r.mux = pool_->mux();
  return r;
}

REDIS_TASKS_DECL void client::run_erased(const route& r, clock::time_point deadline, callback fn) {
  if (cluster_) {
    run_cluster(r, deadline, fn);
  } else if (sentinel_) {
    run_sentinel(deadline, fn);
  } else {
    run_on(*pool_, deadline, fn, false);
  }
}

REDIS_TASKS_DECL bool client::run_on(connection_pool& pool, clock::time_point deadline, callback fn,
                                     bool asking) {
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

REDIS_TASKS_DECL bool client::run_multiplexed(multiplexer& mux, clock::time_point deadline,
                                              callback fn) {
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

REDIS_TASKS_DECL void client::run_cluster(const route& r, clock::time_point deadline, callback fn) {
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

REDIS_TASKS_DECL void client::run_sentinel(clock::time_point deadline, callback fn) {
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
      if (attempt >= 3 || !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
        throw;
      }
    } catch (const not_master_error&) {
      // A new connection found a replica at the master's address (a failover demoted it):
      // nothing of the run was sent, so it goes to the master the sentinels name now.
      sentinel_->invalidate(pool);
      if (attempt >= 3 || !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
        throw;
      }
    } catch (const connection_error&) {
      sentinel_->invalidate(pool);
      throw;
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
