// A bounded pool of connections to one server, shared by every task with the same settings.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "connection.hpp"

namespace redis_tasks::detail {

/// Hands out connections to one server, at most `pool_size` at once. Idle connections are
/// checked before reuse: one the server closed is dropped without a command being written to it.
class connection_pool {
 public:
  /// A connection on loan; returns it to the pool when destroyed (or drops it if broken).
  class lease {
   public:
    lease(connection_pool* pool, std::unique_ptr<connection> c) : pool_(pool), conn_(std::move(c)) {}
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
  /// Waits up to `pool_wait_timeout` when all `pool_size` connections are in use.
  lease acquire() {
    const auto& p = settings_.params;
    const auto deadline =
        p.pool_wait_timeout.count() > 0 ? clock::now() + p.pool_wait_timeout : clock::time_point::max();
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (!idle_.empty()) {
        std::unique_ptr<connection> c = std::move(idle_.back());
        idle_.pop_back();
        lock.unlock();
        if (ready_for_reuse(*c)) return lease(this, std::move(c));
        c.reset();
        lock.lock();
        --open_;
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
        throw timeout_error("all " + std::to_string(p.pool_size) + " connections to " +
                            settings_.name() + " stayed busy for pool_wait_timeout " +
                            ms_text(p.pool_wait_timeout) + "; raise pool_size or pool_wait_timeout");
      }
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
  bool ready_for_reuse(connection& c) {
    if (!c.idle_and_intact()) return false;
    const auto& hc = settings_.params.health_check_interval;
    if (hc.count() > 0 && clock::now() - c.last_used() > hc) {
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
