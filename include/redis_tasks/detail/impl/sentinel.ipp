// The bodies of sentinel.hpp (see ../sentinel.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../sentinel.hpp"

#include <charconv>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL sentinel_router::sentinel_router(endpoint_settings base) : base_(std::move(base)) {
  const auto& sp = base_.params.sentinel;
  if (sp.master_name.empty()) {
    throw config_error("sentinel mode needs sentinel.master_name (the name in `sentinel monitor`)");
  }
  for (const auto& s : sp.sentinels)
    split_host_port(s, "sentinel address");
  description_ =
      "master '" + sp.master_name + "' of sentinels " + sp.sentinels.front() +
      (sp.sentinels.size() > 1 ? " and " + std::to_string(sp.sentinels.size() - 1) + " more"
                               : std::string());
}

REDIS_TASKS_DECL auto sentinel_router::master_pool(clock::time_point deadline)
    -> std::shared_ptr<connection_pool> {
  for (;;) {
    {
      const std::lock_guard<std::mutex> lock(lock_.mutex());
      if (master_) return master_;
    }
    lookup_.run(deadline, "the lookup of the " + description_, [&] {
      {
        const std::lock_guard<std::mutex> lock(lock_.mutex());
        if (master_) return;
      }
      auto pool = resolve(deadline);
      const std::lock_guard<std::mutex> lock(lock_.mutex());
      master_ = std::move(pool);
    });
  }
}

REDIS_TASKS_DECL void sentinel_router::invalidate(const std::shared_ptr<connection_pool>& seen) {
  std::shared_ptr<connection_pool> old;  // let go of after the lock
  const std::lock_guard<std::mutex> lock(lock_.mutex());
  if (master_ == seen) old = std::move(master_);
}

REDIS_TASKS_DECL auto sentinel_router::resolve(clock::time_point deadline)
    -> std::shared_ptr<connection_pool> {
  const auto& sp = base_.params.sentinel;
  std::string why;
  bool auth_failed = false;
  for (const auto& address : sp.sentinels) {
    auto [host, port] = split_host_port(address, "sentinel address");
    endpoint_settings ss = base_;
    ss.host = host;
    ss.port = port;
    ss.db = 0;
    ss.password_secret = sp.password_secret;
    ss.params.username = sp.username;
    ss.params.unix_socket.clear();
    auth_failed = false;  // the error says what the last sentinel's answer was
    bool asking_sentinel = true;
    try {
      connection sentinel(ss, deadline);
      sentinel.set_run_deadline(deadline);
      reply r = sentinel.call({"SENTINEL", "get-master-addr-by-name", sp.master_name});
      if (r.is_error()) {
        why = address + " said " + r.str();
        continue;
      }
      if (r.elements().size() != 2) {
        why = address + " knows no master named '" + sp.master_name + "'";
        continue;
      }
      endpoint_settings ms = base_;
      ms.host = r.elements()[0].str();
      const std::string port = r.elements()[1].str();
      auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), ms.port);
      if (ec != std::errc() || ptr != port.data() + port.size() || ms.port < 1 || ms.port > 65535 ||
          ms.host.empty()) {
        why = address + " named a master at an address that is not host:port";
        continue;
      }
      // Every new connection of the pool checks ROLE in its handshake: after a failover the
      // old master's clients are killed, and a reconnect to its address must not go on
      // against what is now a replica (not_master_error sends the run back here).
      ms.require_master = true;
      asking_sentinel = false;
      auto pool = pool_for(ms);
      // A sentinel may still name the old master for a moment after a failover: believe the
      // server's own ROLE (asked again here, since the lease may be an idle connection).
      auto lease = pool->acquire(deadline);
      reply role = lease->call({"ROLE"});
      if (!role.is_error() && !role.elements().empty() && role.elements()[0].str() == "master") {
        return pool;
      }
      why = address + " named " + ms.name() + ", which is not a master (yet)";
    } catch (const connection_error& e) {
      why = e.what();
    } catch (const auth_error& e) {
      // This sentinel (or the master it named) refused our credentials: another may not.
      why = e.what();
      if (asking_sentinel) {
        why += " (the sentinels' own password is the secret named by sentinel.password_secret)";
      }
      auth_failed = true;
    } catch (const reply_error& e) {
      why = address + ": " + e.what();
    }
    if (clock::now() >= deadline) break;  // out of time: the sentinels left get no try
  }
  if (auth_failed) throw auth_error("cannot find the " + description_ + ": " + why);
  throw connection_error("cannot find the " + description_ + ": " + why);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
