// The bodies of pool.hpp (see ../pool.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../pool.hpp"

#include <unistd.h>
#include <algorithm>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL connection_pool::lease::~lease() {
  if (conn_) pool_->give_back(std::move(conn_));
}

REDIS_TASKS_DECL connection_pool::connection_pool(endpoint_settings s)
    : settings_(std::move(s)), owner_(fork_registry::generation()) {
  if (settings_.params.multiplex.enabled) {
    mux_ = std::make_unique<multiplexer>(settings_, [this](clock::time_point deadline) {
      auto held = std::make_shared<lease>(acquire(deadline));
      connection* c = &**held;
      return pinned_connection{std::move(held), c};
    });
  }
}

REDIS_TASKS_DECL auto connection_pool::acquire(clock::time_point run_deadline) -> lease {
  const auto& p = settings_.params;
  std::unique_lock<std::mutex> lock(lock_.mutex());
  forget_parent_connections();
  // One clock reading serves the wait deadline and the reuse checks. It is taken with the
  // lock held, and again whenever time may have passed (a wait, a candidate that failed its
  // checks), so that a connection never looks more recently used than it was.
  auto now = clock::now();
  const auto pool_deadline =
      p.pool_wait_timeout.count() > 0 ? saturating_add(now, p.pool_wait_timeout) : no_deadline;
  const auto deadline = earlier(pool_deadline, run_deadline);
  for (;;) {
    if (!idle_.empty()) {
      std::unique_ptr<connection> c = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      bool ready = false;
      try {
        ready = ready_for_reuse(*c, now, run_deadline);
      } catch (...) {
        c.reset();
        lock.lock();
        if (open_ > 0) --open_;
        lock_.cv().notify_one();
        throw;
      }
      if (ready) {
        c->set_run_deadline(run_deadline);
        return lease(this, std::move(c));
      }
      c.reset();
      lock.lock();
      if (open_ > 0) --open_;
      now = clock::now();
      continue;
    }
    if (open_ < p.pool_size) {
      ++open_;
      lock.unlock();
      try {
        auto c = std::make_unique<connection>(settings_, run_deadline);
        c->set_run_deadline(run_deadline);
        return lease(this, std::move(c));
      } catch (...) {
        lock.lock();
        // A fork may have reset the count while the connection was being opened.
        if (open_ > 0) --open_;
        lock_.cv().notify_one();
        throw;
      }
    }
    const bool ready = wait_until(lock_.cv(), lock, deadline, [&] {
      return !idle_.empty() || open_ < p.pool_size || owner_ != fork_registry::generation();
    });
    forget_parent_connections();
    if (!ready) {
      if (run_deadline < pool_deadline) {
        throw timeout_error("the run took longer than task.timeout waiting for one of the " +
                            std::to_string(p.pool_size) + " busy connections to " +
                            settings_.name());
      }
      throw timeout_error("all " + std::to_string(p.pool_size) + " connections to " +
                          settings_.name() + " stayed busy for pool_wait_timeout " +
                          ms_text(p.pool_wait_timeout) + "; raise pool_size or pool_wait_timeout");
    }
    now = clock::now();
  }
}

REDIS_TASKS_DECL std::size_t connection_pool::open_connections() const {
  std::lock_guard<std::mutex> lock(lock_.mutex());
  return open_;
}

REDIS_TASKS_DECL bool connection_pool::ready_for_reuse(connection& c, clock::time_point now,
                                                       clock::time_point run_deadline) const {
  const auto idle_for = now - c.last_used();
  if (idle_for < recently_used) return !c.broken();
  if (!c.idle_and_intact()) return false;
  const auto& hc = settings_.params.health_check_interval;
  // Compared in milliseconds: the largest intervals (no check) must not overflow.
  if (hc.count() > 0 && std::chrono::duration_cast<std::chrono::milliseconds>(idle_for) > hc) {
    // The PING waits as any reply does (socket_timeout), and never past the run's deadline.
    try {
      c.set_run_deadline(run_deadline);
      reply r = c.call({"PING"});
      return !r.is_error();
    } catch (const timeout_error&) {
      // Out of the run's own time, the PING says nothing about the connection: the run ends
      // here (this connection, its state now unknown, goes), and the other idle ones stay.
      if (clock::now() >= run_deadline) throw;
      return false;
    } catch (const error&) {
      return false;
    }
  }
  return true;
}

REDIS_TASKS_DECL void connection_pool::give_back(std::unique_ptr<connection> c) {
  std::lock_guard<std::mutex> lock(lock_.mutex());
  if (c->owner() != owner_) {
    // Opened before a fork that this process's pool has since forgotten: not counted.
    c.reset();
  } else if (c->broken()) {
    --open_;
    c.reset();
  } else {
    c->restore_timeout();
    idle_.push_back(std::move(c));
  }
  lock_.cv().notify_one();
}

REDIS_TASKS_DECL void connection_pool::forget_parent_connections() {
  const std::uint64_t now = fork_registry::generation();
  if (owner_ == now) return;
  owner_ = now;
  idle_.clear();  // each connection's destructor sees it is not its process's, and says nothing
  open_ = 0;
}

REDIS_TASKS_DECL std::shared_ptr<connection_pool> pool_for(const endpoint_settings& s) {
  if (!s.params.shared_pool) return std::make_shared<connection_pool>(s);
  static shared_registry<connection_pool> registry;
  return registry.get(s.pool_key(), [&] { return std::make_shared<connection_pool>(s); });
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
