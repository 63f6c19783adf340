// What a multiplexed run hands to the shared connections: one request (its encoded commands and
// the replies to them), and the channel that writes it and matches its replies.
#pragma once

#include "../version.hpp"

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../reply.hpp"
#include "deadline.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

class connection;
class mux_link;

/// True for a command that changes or depends on the state of its connection (a transaction,
/// the db, a subscription, a blocking wait, ...): it never goes on a shared connection.
REDIS_TASKS_DECL bool keeps_connection_state(std::string_view name) noexcept;

/// One caller's request on a multiplexed connection: its encoded commands and their replies.
/// Shared by the caller and the link it goes out on, so that a caller that leaves early (its
/// deadline passed) leaves the request in its place: its replies are read and dropped, and no
/// other caller ever gets them. Every field after `bytes` is guarded by the link's lock.
struct mux_request {
  /// Where a request is.
  enum class stage : unsigned char {
    queued,    ///< waiting to be written
    written,   ///< written (or being written), replies awaited
    answered,  ///< every reply is in `replies`
    failed,    ///< failed: see `not_sent` and `failure`
  };
  std::string bytes;               ///< the commands, encoded
  std::size_t expected = 0;        ///< how many replies it gets
  std::vector<reply> replies;      ///< replies arrived so far
  std::shared_ptr<mux_link> link;  ///< the link it went to
  stage at = stage::queued;        ///< where it is
  bool abandoned = false;          ///< the caller left: replies are dropped
  std::size_t received = 0;        ///< replies arrived so far (also when dropped)
  bool waiting = false;            ///< the caller waits on `cv`
  bool not_sent = false;           ///< (failed) no byte of it was written: safe to send again
  std::string failure;             ///< (failed) why
  std::condition_variable cv;      ///< the caller waits on it, with the link's lock
  // An asynchronous run's request: nobody waits on `cv`; `on_settled` is called (once, with
  // no lock held) when it is answered, fails, or its `deadline` passes (`timed_out`; it then
  // keeps its place until its replies come, and they are dropped).
  bool async = false;                        ///< an asynchronous run's (see mux_link::enqueue)
  std::function<void()> on_settled;          ///< set while an asynchronous run awaits it
  clock::time_point deadline = no_deadline;  ///< (asynchronous) the run's deadline
  bool timed_out = false;                    ///< (asynchronous) the deadline passed first
};

/// How an asynchronous run's request ended, as its run sees it.
enum class mux_outcome : unsigned char {
  pending,    ///< not yet
  answered,   ///< every reply came
  failed,     ///< its connection failed (see `not_sent`, `failure`)
  timed_out,  ///< its deadline passed first
};

/// Thrown (not a std::exception, so nothing on its way catches it) by a multiplexed connection
/// in an asynchronous run when a reply has not come yet: the run is run again once it has
/// (see `async_run` in async.hpp), and what it sent is not sent again.
struct async_pending {};

/// Thrown like `async_pending` when an asynchronous run needs a pooled connection of its own
/// (a blocking command, MULTI, ...), before it sent anything: it then runs on a thread.
struct async_unsupported {};

/// A pooled connection held for the rest of a run (while `holder` lives).
struct pinned_connection {
  std::shared_ptr<void> holder;  ///< gives the connection back when destroyed
  connection* conn = nullptr;    ///< the connection
};

/// An asynchronous run in progress on this thread: what it runs on `mux` goes on `conn`, a
/// multiplexed connection in asynchronous mode (see async.hpp). `suspended` is set when the
/// pass stopped quietly where it would wait (see `connection::begin_async`): what the run does
/// from then on is discarded, and run hooks are not told of it.
struct async_context {
  const void* mux;         ///< the server's multiplexer
  connection* conn;        ///< the run's connection
  bool suspended = false;  ///< this pass stopped where it would wait
};

/// The asynchronous run this thread is carrying out, or null.
REDIS_TASKS_DECL async_context*& current_async_context() noexcept;

/// Where a multiplexed connection sends its requests.
class mux_channel {
 public:
  mux_channel() = default;
  mux_channel(const mux_channel&) = delete;
  mux_channel& operator=(const mux_channel&) = delete;
  virtual ~mux_channel() = default;
  /// Queues `r` on a shared connection (writing it at once when no one else is writing),
  /// waiting up to `deadline` for room under the caps.
  virtual void submit(const std::shared_ptr<mux_request>& r, clock::time_point deadline) = 0;
  /// Waits until `r` is answered, reading replies for every caller while no one else does;
  /// false when `deadline` came first (the request keeps its place; its replies will be
  /// dropped). Throws `not_sent_error` when its connection failed before any of it was
  /// written, and `connection_error` when it failed after (the outcome is unknown).
  virtual bool wait(const std::shared_ptr<mux_request>& r, clock::time_point deadline) = 0;
  /// The caller leaves `r` before its replies came: they will be dropped.
  virtual void abandon(const std::shared_ptr<mux_request>& r) noexcept = 0;
  /// A pooled connection to the same server, for the rest of a run that needs connection
  /// state (a blocking command, MULTI, ...).
  virtual pinned_connection pin(clock::time_point deadline) = 0;
  /// The largest request that is multiplexed; a larger one takes a pooled connection.
  virtual std::size_t max_request_bytes() const noexcept = 0;
  /// An asynchronous run reads `r`: how it ended, or `pending` (and then `resume` is called
  /// once it has ended).
  virtual mux_outcome outcome_or_notify(const std::shared_ptr<mux_request>& r,
                                        std::function<void()> resume) = 0;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/mux_request.ipp"
#endif
