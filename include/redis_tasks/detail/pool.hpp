// A bounded pool of connections to one server, shared by every task with the same settings.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "connection.hpp"

namespace redis_tasks::detail {

/// Hands out connections to one server, at most `pool_size` at once. Idle connections are
/// checked before reuse: one the server closed is dropped without a command being written to it
/// (except right after a reply, when it cannot have idled out; see `recently_used`).
class connection_pool {
 public:
  /// A connection on loan; returns it to the pool when destroyed (or drops it if broken).
  class lease {
   public:
    lease(connection_pool* pool, std::unique_ptr<connection> c)
        : pool_(pool), conn_(std::move(c)) {}
    lease(lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) {}
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    /// The connection.
    connection& operator*() const noexcept { return *conn_; }
    /// The connection.
    connection* operator->() const noexcept { return conn_.get(); }

   private:
    connection_pool* pool_;
    std::unique_ptr<connection> conn_;
  };

  explicit connection_pool(endpoint_settings s) : settings_(std::move(s)) {}
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  /// A connection ready for a command: an idle one that passed its checks, or a new one.
  /// Waits up to `pool_wait_timeout` when all `pool_size` connections are in use, and never
  /// past the run's deadline (task_options.timeout).
  lease acquire() {
    const auto& p = settings_.params;
    std::unique_lock<std::mutex> lock(mutex_);
    // One clock reading serves the wait deadline and the reuse checks. It is taken with the
    // lock held, and again whenever time may have passed (a wait, a candidate that failed its
    // checks), so that a connection never looks more recently used than it was.
    auto now = clock::now();
    const auto pool_deadline =
        p.pool_wait_timeout.count() > 0 ? now + p.pool_wait_timeout : clock::time_point::max();
    const auto run_deadline = current_run_deadline();
    const auto deadline = std::min(pool_deadline, run_deadline);
    for (;;) {
      if (!idle_.empty()) {
        std::unique_ptr<connection> c = std::move(idle_.back());
        idle_.pop_back();
        lock.unlock();
        if (ready_for_reuse(*c, now)) return lease(this, std::move(c));
        c.reset();
        lock.lock();
        --open_;
        now = clock::now();
        continue;
      }
      if (open_ < p.pool_size) {
        ++open_;
        lock.unlock();
        try {
          return lease(this, std::make_unique<connection>(settings_));
        } catch (...) {
          lock.lock();
          --open_;
          available_.notify_one();
          throw;
        }
      }
      if (deadline == clock::time_point::max()) {
        available_.wait(lock);
      } else if (available_.wait_until(lock, deadline) == std::cv_status::timeout &&
                 idle_.empty() && open_ >= p.pool_size) {
        if (run_deadline < pool_deadline) {
          throw timeout_error("the run took longer than task.timeout waiting for one of the " +
                              std::to_string(p.pool_size) + " busy connections to " +
                              settings_.name());
        }
        throw timeout_error("all " + std::to_string(p.pool_size) + " connections to " +
                            settings_.name() + " stayed busy for pool_wait_timeout " +
                            ms_text(p.pool_wait_timeout) +
                            "; raise pool_size or pool_wait_timeout");
      }
      now = clock::now();
    }
  }

  /// Connections currently open (idle or on loan).
  std::size_t open_connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return open_;
  }

  /// The settings every connection of this pool is opened with.
  const endpoint_settings& settings() const noexcept { return settings_; }

 private:
  // Within this long of its last reply, a connection is reused without the idle check.
  //
  // The check (`idle_and_intact`: a MSG_PEEK recv, one syscall, 1-2% of a loopback round
  // trip) is there so that a connection the server closed while it sat idle (its `timeout`, a
  // restart, CLIENT KILL, a proxy or NAT dropping it) is replaced before a command is written
  // to it: a command written to a dead connection fails, and cannot be retried safely because
  // it might have run. Skipping the check right after a reply keeps that guarantee where it
  // means something:
  // - Redis closes idle clients only after `timeout` seconds (whole seconds, checked by its
  //   cron); proxies and keepalive after seconds to hours: never within 100 us of a reply.
  // - A close that is not about idleness (shutdown, CLIENT KILL, a crash) can land at any
  //   moment, also between the check and the write: the check never excluded it, it only kept
  //   the window short. Skipped, the window is the time since the last reply, under 100 us and
  //   a few microseconds for back-to-back runs; after a longer pause the check runs as before.
  // - The servers tasks talk to send nothing unasked (no pub/sub, no tracking on these
  //   connections), so no stray bytes can be waiting either.
  // 100 us covers back-to-back runs; after a longer pause the syscall costs under 0.5% of the
  // time between runs, so checking then is cheap.
  static constexpr std::chrono::microseconds recently_used{100};

  bool ready_for_reuse(connection& c, clock::time_point now) const {
    const auto idle_for = now - c.last_used();
    if (idle_for < recently_used) return !c.broken();
    if (!c.idle_and_intact()) return false;
    const auto& hc = settings_.params.health_check_interval;
    if (hc.count() > 0 && idle_for > hc) {
      try {
        reply r = c.call({"PING"});
        return !r.is_error();
      } catch (const error&) {
        return false;
      }
    }
    return true;
  }

  void give_back(std::unique_ptr<connection> c) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (c->broken()) {
      --open_;
      c.reset();
    } else {
      idle_.push_back(std::move(c));
    }
    available_.notify_one();
  }

  endpoint_settings settings_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<connection>> idle_;
  std::size_t open_ = 0;
};

/// The pool for `s`: shared with every other task whose settings match (unless the task asked
/// for a pool of its own). A pool lives as long as some task uses it.
inline std::shared_ptr<connection_pool> pool_for(const endpoint_settings& s) {
  if (!s.params.shared_pool) return std::make_shared<connection_pool>(s);
  static std::mutex registry_mutex;
  static std::map<std::string, std::weak_ptr<connection_pool>> registry;
  const std::string key = s.pool_key();
  std::lock_guard<std::mutex> lock(registry_mutex);
  for (auto it = registry.begin(); it != registry.end();) {
    it = it->second.expired() ? registry.erase(it) : std::next(it);
  }
  auto& slot = registry[key];
  if (auto existing = slot.lock()) return existing;
  auto created = std::make_shared<connection_pool>(s);
  slot = created;
  return created;
}

}  // namespace redis_tasks::detail
