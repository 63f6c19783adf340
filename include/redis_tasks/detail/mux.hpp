// Many callers, few connections: runs of every task that shares a pool are written together on
// a few shared connections to the server ("links"), and each reply goes to the caller whose
// request it answers, in order.
//
// No thread of its own: whoever finds a link's writer idle writes every request queued on it
// in one system call, and whoever waits for a reply while no one reads becomes the reader,
// hands each reply to its caller, and passes the reading on once its own reply is in.
#pragma once

#include "../version.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "connection.hpp"
#include "deadline.hpp"
#include "executor.hpp"
#include "fork.hpp"
#include "mux_request.hpp"
#include "socket.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The caps on what is in flight to one server: requests and their bytes, written or waiting
/// to be written. Counted without a lock; a run that finds them reached waits on the lock.
class mux_caps {
 public:
  mux_caps(std::size_t max_requests, std::size_t max_bytes)
      : max_requests_(max_requests), max_bytes_(max_bytes) {}

  /// Takes room for one request of `bytes`, if there is room now.
  REDIS_TASKS_DECL bool try_take(std::size_t bytes);

  /// True when one more small request would fit now.
  REDIS_TASKS_DECL bool has_room() const noexcept;

  /// Waits until room is given back, or `deadline`.
  REDIS_TASKS_DECL void wait_for_room(clock::time_point deadline);

  /// Gives back the room of `requests` requests of `bytes` bytes in all. Never call it with a
  /// link's lock held (see fork_safe_lock).
  REDIS_TASKS_DECL void give(std::size_t requests, std::size_t bytes);

  /// In a child after fork(): the parent's requests are not this process's.
  REDIS_TASKS_DECL void reset() noexcept;

  /// The caps.
  std::size_t max_requests() const noexcept { return max_requests_; }
  /// The caps.
  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  const std::size_t max_requests_;
  const std::size_t max_bytes_;
  std::atomic<std::size_t> requests_{0};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<int> waiters_{0};
  fork_safe_lock lock_;
};

/// One shared connection and the requests on it: those waiting to be written, then those
/// written, whose replies come back in the order they were written.
class mux_link : public std::enable_shared_from_this<mux_link> {
 public:
  mux_link(std::unique_ptr<connection> c, bool tls, std::chrono::milliseconds socket_timeout,
           std::shared_ptr<mux_caps> caps)
      : conn_(std::move(c)),
        tls_(tls),
        socket_timeout_(socket_timeout),
        caps_(std::move(caps)),
        owner_(fork_registry::generation()) {}
  mux_link(const mux_link&) = delete;
  mux_link& operator=(const mux_link&) = delete;
  ~mux_link() { fail_all("the multiplexer was closed"); }

  /// False once the link failed or was retired (a reply said READONLY): it takes no more
  /// requests.
  REDIS_TASKS_DECL bool open() const noexcept;
  /// Requests queued or in flight, to pick the least busy link.
  std::size_t load() const noexcept { return load_.load(std::memory_order_relaxed); }

  /// Queues `r` (its room under the caps taken), and writes the queue unless someone already
  /// is. False when the link no longer takes requests (`r` is untouched).
  REDIS_TASKS_DECL bool enqueue(const std::shared_ptr<mux_request>& r);

 private:
  // Writes what is queued (requests left to the reader by `enqueue`), in one go. Lock held.
  REDIS_TASKS_DECL void write_deferred(std::unique_lock<std::mutex>& lk);

 public:
  /// See mux_channel::wait.
  REDIS_TASKS_DECL bool wait(const std::shared_ptr<mux_request>& r, clock::time_point deadline);

  /// Reads the replies of requests whose callers left (or do not read now) until none is in
  /// flight or `deadline` passes; false when there was nothing to read or another caller reads.
  /// A run that finds the caps reached calls it, so that requests whose callers timed out
  /// cannot hold the room forever.
  REDIS_TASKS_DECL bool drain(clock::time_point deadline);

  /// See mux_channel::outcome_or_notify.
  REDIS_TASKS_DECL mux_outcome outcome_or_notify(const std::shared_ptr<mux_request>& r,
                                                 std::function<void()> resume);

  /// See mux_channel::abandon.
  REDIS_TASKS_DECL void abandon(const std::shared_ptr<mux_request>& r) noexcept;

  /// In a child after fork(), of a link the parent opened: closes the child's copy of the
  /// socket without a word to the server. The requests in flight at the fork are left as they
  /// are (and with them this link, which they hold): a parent thread may have been waiting on
  /// one, and a condition variable with waiters can be neither signalled safely nor destroyed.
  /// The few bytes so left behind are the price of a child that never hangs or crashes here.
  REDIS_TASKS_DECL void close_in_child() noexcept;

  /// Fails every request (`why`) and closes the link.
  REDIS_TASKS_DECL void fail_all(const std::string& why) noexcept;

 private:
  // What is done once the lock is released: room given back, asynchronous runs resumed, a
  // reader started for them.
  struct released {
    std::size_t requests = 0;
    std::size_t bytes = 0;
    std::vector<std::function<void()>> resume;
    bool start_reader = false;
  };

  // Carries out `r` (the lock released). Asynchronous runs go on on an executor thread, never
  // on this one: it may be reading for others.
  REDIS_TASKS_DECL void finish(released& r);

  // A reader for asynchronous runs (on an executor thread): reads until nothing is in flight.
  REDIS_TASKS_DECL void serve();

  // Asynchronous runs whose deadline passed: told so now (their requests keep their places,
  // their replies will be dropped). Lock held.
  REDIS_TASKS_DECL void expire(clock::time_point now, released& freed);

  REDIS_TASKS_DECL clock::time_point last_progress() const noexcept;
  REDIS_TASKS_DECL void mark_progress(clock::time_point t) noexcept;

  // Ends `r` (answered or failed): gives its room back (counted in `freed`) and wakes its
  // caller. Called with the lock held.
  REDIS_TASKS_DECL void settle(mux_request& r, mux_request::stage at, released& freed);

  // Fails everything and closes. `batch`/`written`: the requests being written when the link
  // failed, and how many bytes of them left: those after that are not sent. Lock held.
  REDIS_TASKS_DECL void fail_locked(const std::string& why,
                                    const std::vector<std::shared_ptr<mux_request>>* batch,
                                    std::size_t written, released& freed) noexcept;

  // Asks the first caller that waits on a written request to take over reading, or else starts
  // a reader for the asynchronous runs that wait (lock held).
  REDIS_TASKS_DECL void pass_reading(released& freed);

  // The caller of `r` leaves it (out of time): its replies will be dropped. Lock held on entry,
  // released on return.
  REDIS_TASKS_DECL void abandon_locked(mux_request& r, std::unique_lock<std::mutex>& lk) noexcept;

  // Closes a retired link (a reply said READONLY) once no caller needs it: nobody reads or
  // writes, nothing is queued, and every request left in flight was abandoned. No one would
  // ever read those requests' replies, and they hold the link (it holds them), so the link and
  // its socket would otherwise be kept for good. Lock held.
  REDIS_TASKS_DECL void close_if_unwanted(released& freed) noexcept;

  // Writes the queue, again and again while requests keep coming (lock held on entry and exit).
  REDIS_TASKS_DECL void write_queue(std::unique_lock<std::mutex>& lk);

  // What a reader reads for, besides its own request (`me`) when it has one.
  enum class read_goal {
    mine,        // (`me` set) only that
    room,        // (`me` null) until the caps have room again: a run waiting for room
    async_runs,  // (`me` null) while asynchronous runs wait for replies here
  };

  // Reads replies for everyone until `me` is settled (true) or `deadline` passes (false);
  // `me` null: until nothing is in flight, or `goal` is met. Asynchronous runs whose deadlines
  // pass meanwhile are told so. Entered with the lock held and reading_ set; leaves with the
  // lock held, reading passed on.
  REDIS_TASKS_DECL bool read_for(std::unique_lock<std::mutex>& lk,
                                 const std::shared_ptr<mux_request>& me, clock::time_point deadline,
                                 read_goal goal);

  // Hands replies to the requests they answer, in order (lock held). A reply with no request
  // waiting for it is a protocol anomaly: everything fails and the link closes, so that no
  // caller ever gets a reply that is not its own.
  REDIS_TASKS_DECL void deliver(std::vector<reply>& got, released& freed);

  fork_safe_lock lock_;
  std::mutex io_;  // TLS: one call at a time on the connection
  std::unique_ptr<connection> conn_;
  const bool tls_;
  const std::chrono::milliseconds socket_timeout_;
  std::shared_ptr<mux_caps> caps_;
  std::deque<std::shared_ptr<mux_request>> pending_;   // not written yet
  std::deque<std::shared_ptr<mux_request>> inflight_;  // written, awaiting replies
  bool writing_ = false;
  bool reading_ = false;
  bool reader_posted_ = false;                 // a reader for asynchronous runs is on its way
  std::atomic<std::size_t> async_waiting_{0};  // asynchronous runs awaiting a request here
  // When bytes last came, or a write after idle went out (written outside the lock).
  std::atomic<clock::rep> last_progress_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> retired_{false};  // a reply said READONLY: takes no new requests
  std::atomic<std::size_t> load_{0};
  std::uint64_t owner_;  // the fork generation (process) that opened the link
};

/// The shared connections to one server, and the multiplexed connections that runs borrow.
class multiplexer final : public mux_channel {
 public:
  /// A multiplexed connection on loan for one run.
  class lease {
   public:
    lease(multiplexer* m, std::unique_ptr<connection> c) : m_(m), conn_(std::move(c)) {}
    lease(lease&& o) noexcept : m_(o.m_), conn_(std::move(o.conn_)) {}
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    REDIS_TASKS_DECL ~lease();
    /// The connection.
    connection& operator*() const noexcept { return *conn_; }
    /// The connection.
    connection* operator->() const noexcept { return conn_.get(); }
    /// Takes the connection out: the lease then gives nothing back (whoever holds it must).
    std::unique_ptr<connection> release() noexcept { return std::move(conn_); }

   private:
    multiplexer* m_;
    std::unique_ptr<connection> conn_;
  };

  /// Links to the server of `s`; `pin` lends a pooled connection of the same server.
  multiplexer(endpoint_settings s, std::function<pinned_connection(clock::time_point)> pin)
      : settings_(std::move(s)),
        pin_(std::move(pin)),
        caps_(std::make_shared<mux_caps>(settings_.params.multiplex.max_in_flight,
                                         settings_.params.multiplex.max_bytes_in_flight)),
        slots_(settings_.params.multiplex.connections),
        owner_(fork_registry::generation()) {}

  REDIS_TASKS_DECL ~multiplexer() override;

  /// A multiplexed connection for one run, bounded by `run_deadline`.
  REDIS_TASKS_DECL lease acquire(clock::time_point run_deadline);

  /// `multiplex.connections`: the most shared connections open at once.
  std::size_t links_allowed() const noexcept { return slots_.size(); }

  /// Shared connections open now (at most `multiplex.connections`).
  REDIS_TASKS_DECL std::size_t open_links() const;

  REDIS_TASKS_DECL void submit(const std::shared_ptr<mux_request>& r,
                               clock::time_point deadline) override;

  // Reads replies on links where no one reads; false when there was nothing to do.
  REDIS_TASKS_DECL bool help_read(clock::time_point deadline);

  REDIS_TASKS_DECL bool wait(const std::shared_ptr<mux_request>& r,
                             clock::time_point deadline) override;

  REDIS_TASKS_DECL mux_outcome outcome_or_notify(const std::shared_ptr<mux_request>& r,
                                                 std::function<void()> resume) override;

  REDIS_TASKS_DECL void abandon(const std::shared_ptr<mux_request>& r) noexcept override;

  pinned_connection pin(clock::time_point deadline) override { return pin_(deadline); }

  std::size_t max_request_bytes() const noexcept override { return caps_->max_bytes(); }

 private:
  struct slot {
    std::shared_ptr<mux_link> link;
    bool connecting = false;
  };

  REDIS_TASKS_DECL void give_back(std::unique_ptr<connection> c);

  // In a child after fork(): the links are the parent's; they move to `parents`, for let_go
  // once the lock is released (a link takes its own lock as it goes).
  REDIS_TASKS_DECL void forget_parent_links(std::vector<std::shared_ptr<mux_link>>& parents);

  // Lets the parent's links go, closing the child's copy of each socket without a word to the
  // server. A link with requests in flight at the fork is kept alive by them (each holds its
  // link), and is only closed: else its socket would stay open in the child for good.
  REDIS_TASKS_DECL static void let_go(std::vector<std::shared_ptr<mux_link>>& parents) noexcept;

  // The least busy open link, opening one more (up to the setting) when every link is busy.
  REDIS_TASKS_DECL std::shared_ptr<mux_link> pick(clock::time_point deadline);

  endpoint_settings settings_;
  std::function<pinned_connection(clock::time_point)> pin_;
  std::shared_ptr<mux_caps> caps_;
  mutable fork_safe_lock lock_;  // brief; never held across I/O
  std::vector<slot> slots_;
  std::vector<std::unique_ptr<connection>> spare_;  // multiplexed connections to lend
  std::uint64_t owner_;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/mux.ipp"
#endif
