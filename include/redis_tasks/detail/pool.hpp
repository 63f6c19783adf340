// A bounded pool of connections to one server, shared by every task with the same settings.
#pragma once

#include "../version.hpp"

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
#include "deadline.hpp"
#include "fork.hpp"
#include "mux.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Hands out connections to one server, at most `pool_size` at once. Idle connections are
/// checked before reuse: one the server closed is dropped without a command being written to it
/// (except right after a reply, when it cannot have idled out; see `recently_used`).
///
/// A pool remembers its process: in a child after fork() it lets go of every connection it had
/// (without a word to the server: they are the parent's) and opens its own, so parent and child
/// never read each other's replies.
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
    REDIS_TASKS_DECL ~lease();
    /// The connection.
    connection& operator*() const noexcept { return *conn_; }
    /// The connection.
    connection* operator->() const noexcept { return conn_.get(); }

   private:
    connection_pool* pool_;
    std::unique_ptr<connection> conn_;
  };

  REDIS_TASKS_DECL explicit connection_pool(endpoint_settings s);
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  /// A connection ready for a command, bound by `run_deadline` (task_options.timeout) until
  /// it is given back: an idle one that passed its checks, or a new one. Waits up to
  /// `pool_wait_timeout` when all `pool_size` connections are in use, and never past
  /// `run_deadline`.
  REDIS_TASKS_DECL lease acquire(clock::time_point run_deadline);

  /// A connection as `acquire` gives it, with no run deadline.
  lease acquire() { return acquire(no_deadline); }

  /// Connections currently open (idle or on loan).
  REDIS_TASKS_DECL std::size_t open_connections() const;

  /// The multiplexer of this server, when `multiplex.enabled`; else null.
  multiplexer* mux() const noexcept { return mux_.get(); }

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

  REDIS_TASKS_DECL bool ready_for_reuse(connection& c, clock::time_point now,
                                        clock::time_point run_deadline) const;

  REDIS_TASKS_DECL void give_back(std::unique_ptr<connection> c);

  // In a child after fork(): the idle connections, and those that other threads of the parent
  // had on loan, are the parent's. Drops them (closing only this process's descriptors, with no
  // TLS close_notify) and starts counting afresh. Called with the lock held.
  REDIS_TASKS_DECL void forget_parent_connections();

  endpoint_settings settings_;
  // Held briefly (never across I/O), and kept usable across fork(): see fork_safe_lock.
  mutable fork_safe_lock lock_;
  std::vector<std::unique_ptr<connection>> idle_;
  std::size_t open_ = 0;
  std::uint64_t owner_;  // the fork generation whose connections these are
  // Last, so it goes first: its pinned runs give connections back to this pool.
  std::unique_ptr<multiplexer> mux_;
};

/// Objects shared by key among the users that hold them: an entry lasts while some user keeps
/// its object alive. Its lock is held only briefly and never while an object is made (making a
/// pool registers a lock for fork(): see fork_safe_lock).
template <class T>
class shared_registry {
 public:
  /// The object for `key`, made by `make()` when there is none.
  template <class Make>
  std::shared_ptr<T> get(const std::string& key, Make&& make) {
    {
      const std::lock_guard<std::mutex> g(lock_.mutex());
      // Entries whose users are all gone are dropped as new ones come, so a program that
      // keeps building tasks for new endpoints does not keep their keys forever.
      for (auto it = entries_.begin(); it != entries_.end();) {
        it = it->second.expired() ? entries_.erase(it) : std::next(it);
      }
      auto found = entries_.find(key);
      if (found != entries_.end()) {
        if (auto existing = found->second.lock()) return existing;
      }
    }
    std::shared_ptr<T> created = make();  // destroyed after the lock below, if not kept
    const std::lock_guard<std::mutex> g(lock_.mutex());
    auto& slot = entries_[key];
    if (auto existing = slot.lock()) return existing;  // another thread made one first
    slot = created;
    return created;
  }

 private:
  fork_safe_lock lock_;
  std::map<std::string, std::weak_ptr<T>> entries_;
};

/// The pool for `s`: shared with every other task whose settings match (unless the task asked
/// for a pool of its own). A pool lives as long as some task uses it.
REDIS_TASKS_DECL std::shared_ptr<connection_pool> pool_for(const endpoint_settings& s);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/pool.ipp"
#endif
