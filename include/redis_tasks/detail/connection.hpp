// One connection to one Redis server: connect, authenticate, select the db, send argument
// vectors, read replies. Knows whether a failed request can have reached the server.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/uio.h>  // iovec

#include "../connection.hpp"
#include "../errors.hpp"
#include "../reply.hpp"
#include "../secret_provider.hpp"
#include "fork.hpp"
#include "mux_request.hpp"
#include "resp.hpp"
#include "socket.hpp"
#include "tls.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The provider used when a task names none: environment variables.
REDIS_TASKS_DECL std::shared_ptr<const SecretProvider> default_secrets();

/// Everything needed to open a connection to one server.
struct endpoint_settings {
  std::string host = "localhost";                 ///< TCP host
  int port = 6379;                                ///< TCP port
  int db = 0;                                     ///< SELECTed database
  std::optional<std::string> password_secret;     ///< secret holding the password
  std::shared_ptr<const SecretProvider> secrets;  ///< where secrets are looked up
  connection_params params;                       ///< everything else
  std::shared_ptr<const tls_context> tls;         ///< set when params.tls.enabled
  /// Sentinel mode: every new connection asks ROLE in its handshake and is refused with
  /// `not_master_error` unless the server is a master (a demoted master keeps its address).
  bool require_master = false;

  /// "host:port", "[v6]:port" or "unix:/path" — used in every message about this server.
  REDIS_TASKS_DECL std::string name() const;

  /// Tasks whose settings give the same key can share connections.
  REDIS_TASKS_DECL std::string pool_key() const;
};

/// A new connection's handshake found a replica where `endpoint_settings::require_master`
/// wants the master (the master failed over; nothing of the run was sent).
class not_master_error : public connection_error {
 public:
  using connection_error::connection_error;
};

/// Throws what a multiplexed request that failed (`r.at` is `failed`) means to its run:
/// `not_sent_error` when no byte of it was written, else `connection_error`.
[[noreturn]] REDIS_TASKS_DECL void throw_failed(const mux_request& r);

/// A connection to one server. Not thread-safe: a pool hands it to one run at a time.
///
/// Every read and write waits against an absolute deadline: the earlier of the run's deadline
/// (task_options.timeout, given with `set_run_deadline`) and the request's own bound, which is
/// `socket_timeout` for each reply as a whole (not for each system call), or a blocking
/// command's block time plus `socket_timeout` (see `stretch_timeout`).
class connection {
 public:
  /// Opens the connection and runs the handshake (AUTH, SELECT, CLIENT SETNAME): name
  /// resolution, connecting, TLS and handshake all by one deadline, the earlier of
  /// `connect_timeout` from now and `run_deadline`. The password is looked up now, so a rotated
  /// secret is picked up.
  REDIS_TASKS_DECL explicit connection(const endpoint_settings& s,
                                       clock::time_point run_deadline = no_deadline);

  /// A multiplexed connection: what a run queues goes out through `channel` on a connection
  /// shared with other runs, until the run needs connection state (a blocking command, MULTI,
  /// SELECT, ...; see `keeps_connection_state`) or sends a request larger than the channel
  /// takes: from then on the run goes on a pooled connection of its own ("pinned").
  REDIS_TASKS_DECL connection(mux_channel& channel, std::string endpoint,
                              std::chrono::milliseconds socket_timeout);

  /// True for a multiplexed connection (see the constructor that takes a channel).
  bool multiplexed() const noexcept { return virt_ != nullptr; }

  /// A multiplexed connection, after a run: drops what the run left unread, gives a pinned
  /// connection back, and forgets the run's deadline and flags.
  REDIS_TASKS_DECL void end_multiplexed_run() noexcept;

  /// A multiplexed connection, for an asynchronous run (see async.hpp): a read whose reply has
  /// not come throws `async_pending` and calls `resume` once it has; the run is then run again
  /// from the start (`begin_async_pass`), its requests matched to those already sent rather
  /// than sent again, their replies read again. Every request is bounded by `deadline`.
  ///
  /// `quiet`: instead of throwing, the read returns a nil reply and the pass goes on to its end
  /// sending nothing more (`async_context::suspended` says it must be discarded). Unwinding an
  /// exception costs more than a whole round trip; a nil reply is safe where only the library
  /// reads replies (no user `value_traits` or `from_reply`).
  REDIS_TASKS_DECL void begin_async(std::function<void()> resume, clock::time_point deadline,
                                    bool quiet);
  /// True when this pass stopped quietly (see begin_async).
  bool async_suspended() const noexcept { return virt_->suspended; }
  /// An asynchronous run starts again from the beginning.
  REDIS_TASKS_DECL void begin_async_pass() noexcept;

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  REDIS_TASKS_DECL ~connection();

  /// The fork generation that opened the connection (a child after fork() must never use it).
  std::uint64_t owner() const noexcept { return owner_; }

  /// Bounds every read and write from now on by `deadline` (the run's task_options.timeout),
  /// until set again; `no_deadline` for none.
  REDIS_TASKS_DECL void set_run_deadline(clock::time_point deadline) noexcept;

  /// Starts a new request: forgets what was written for the previous one.
  REDIS_TASKS_DECL void begin_request();

  /// Queues one command made of `n` arguments.
  REDIS_TASKS_DECL void append(const std::string_view* args, std::size_t n);
  /// Queues one command.
  void append(std::initializer_list<std::string_view> args) { append(args.begin(), args.size()); }

  /// Starts queuing a command of `argc` arguments, given one by one with `arg`. Not for MULTI,
  /// EXEC or DISCARD (the name is not known yet when ASKING is queued; see `set_asking`).
  REDIS_TASKS_DECL void begin_command(std::size_t argc);

  /// In a Redis Cluster slot migration, the target node serves a key only to a client that
  /// says ASKING first: while this is on, every command is preceded by ASKING, except inside
  /// MULTI … EXEC, where the ASKING sent before MULTI holds for the whole transaction (one
  /// sent inside would be queued, and its +OK would come back in EXEC's reply). `read`
  /// consumes the ASKING replies.
  REDIS_TASKS_DECL void set_asking(bool on);
  /// One argument of the command started by `begin_command`; long ones are not copied and must
  /// outlive the next `flush`.
  REDIS_TASKS_DECL void arg(std::string_view a);
  /// Ends a command started by `begin_command`; writes out a long pipeline as it grows, so
  /// memory stays bounded however many commands a request has.
  REDIS_TASKS_DECL void end_command();

  /// Writes everything queued, within `socket_timeout` and the run's deadline. Throws
  /// `not_sent_error` if nothing of this request left.
  REDIS_TASKS_DECL void flush();

  /// Reads the next reply. Error replies are returned, not thrown, except NOAUTH, which
  /// means the server wants a password this connection did not give: that is an `auth_error`.
  REDIS_TASKS_DECL reply read();

  /// Sends one command and reads its reply.
  REDIS_TASKS_DECL reply call(std::initializer_list<std::string_view> args);

  // ---- subscriber mode: after (S|P)SUBSCRIBE the server pushes messages unasked ---------------

  /// Subscriber mode: writes one command whose answer comes as a pushed message (read with
  /// `read_pushed_now`), so no reply is awaited for it. Within socket_timeout and the run's
  /// deadline.
  REDIS_TASKS_DECL void send_unawaited(const std::string_view* args, std::size_t n);

  /// Subscriber mode: the next whole message among the bytes that have arrived, reading only
  /// what is there now (never waiting); std::nullopt when no whole message is there yet (what
  /// arrived of one is kept for the next call). Throws `connection_error` when the connection
  /// failed or the server closed it.
  REDIS_TASKS_DECL std::optional<reply> read_pushed_now();

  // ---- a link of a multiplexer: one writer and one reader at a time, on other threads ------

  /// Link mode: writes `n` segments by `deadline` (false when it passed first); `written`
  /// counts the bytes that left. Throws `connection_error` (`not_sent_error` when nothing left).
  REDIS_TASKS_DECL bool write_segments(const iovec* iov, int n, std::size_t& written,
                                       clock::time_point deadline);

  /// Link mode: the next reply among the bytes received; false when more bytes are needed.
  /// Throws `connection_error` on a protocol error.
  bool next_received(reply& r) { return parser_.next(r); }

  /// Link mode: receives what arrives by `deadline` (0 when nothing did) for `next_received`.
  /// Throws `connection_error` when the connection failed or the server closed it.
  REDIS_TASKS_DECL std::size_t receive_some(clock::time_point deadline);

  /// Link mode: true when received bytes wait in the stream itself (decrypted TLS data).
  bool has_buffered_bytes() noexcept { return stream_->has_buffered(); }

  /// Link mode: wakes a reader or writer blocked on the socket and fails their calls (the
  /// descriptor itself is closed with the connection).
  REDIS_TASKS_DECL void shut_down() noexcept;

  /// Subscriber mode: true while part of a message has arrived and the rest has not.
  bool mid_message() const noexcept { return !parser_.at_reply_start(); }

  /// The socket's descriptor, for a subscriber that waits on it along with a wake-up.
  int native_handle() const noexcept { return stream_->native_handle(); }

  /// True when a reply said READONLY: the server is a replica now (a demoted master).
  bool saw_readonly() const noexcept { return saw_readonly_; }

  /// True when an I/O error left the connection unusable, or replies are still unread.
  REDIS_TASKS_DECL bool broken() const noexcept;
  /// Marks the connection unusable (its state is unknown, e.g. a reply was left unread).
  REDIS_TASKS_DECL void mark_broken() noexcept;
  /// Marks the connection unusable because its replies went out of step with the commands: no
  /// later reply on it may be trusted (a batch fails the items still waiting).
  REDIS_TASKS_DECL void mark_out_of_step() noexcept;
  /// True after `mark_out_of_step`.
  bool out_of_step() const noexcept { return out_of_step_; }
  /// When the last reply arrived.
  clock::time_point last_used() const noexcept { return last_used_; }
  /// The server, as "host:port".
  const std::string& endpoint() const noexcept { return endpoint_; }

  /// True when the server has not closed this idle connection and sent nothing unasked.
  bool idle_and_intact() { return !broken_ && stream_->idle_and_intact(); }

  /// Lets the next replies wait for a blocking command that may block `block` (0: forever):
  /// that long plus the socket timeout (no limit when either is 0), but never past the run's
  /// deadline. Returns true when the run's deadline is what bounds it. Undone by
  /// `restore_timeout()`, which the client runs before the connection is reused.
  REDIS_TASKS_DECL bool stretch_timeout(std::chrono::milliseconds block);
  /// Back to the configured socket timeout, and no run deadline.
  REDIS_TASKS_DECL void restore_timeout() noexcept;
  /// True while a blocking command's stretch is in force.
  REDIS_TASKS_DECL bool timeout_changed() const noexcept;
  /// The configured socket timeout.
  std::chrono::milliseconds socket_timeout() const noexcept { return socket_timeout_; }

 private:
  // A multiplexed connection's own state (see the constructor that takes a channel).
  struct virtual_part {
    mux_channel* channel = nullptr;
    std::deque<std::shared_ptr<mux_request>> sent;  // submitted, replies not all taken
    std::size_t taken = 0;                          // replies taken from sent.front()
    std::size_t queued = 0;                         // commands encoded, not submitted yet
    bool name_next = false;  // the next `arg` is a command's name (after begin_command)
    pinned_connection pin;   // the pooled connection the run moved to
    bool async = false;      // an asynchronous run (see begin_async)
    bool quiet = false;      // (async) stop a pass with a nil reply rather than an exception
    bool suspended = false;  // (async) this pass stopped quietly
    std::vector<std::shared_ptr<mux_request>> recorded;  // (async) every request sent, in order
    std::size_t cursor = 0;        // (async) the next of `recorded` a flush matches
    std::function<void()> resume;  // (async) runs the run again once a reply came
  };

  // Abandons what was sent and not read (its replies will be dropped).
  REDIS_TASKS_DECL void drop_sent() noexcept;

  // Moves the run to a pooled connection of its own, with what is queued of the current
  // request; every earlier request of the run was answered (or is dropped).
  REDIS_TASKS_DECL connection& pin();

  REDIS_TASKS_DECL void flush_multiplexed();

  REDIS_TASKS_DECL reply read_multiplexed();

  // The next reply of the answered request sent first: moved out, or (`keep`) copied, for an
  // asynchronous run's later passes read it again.
  REDIS_TASKS_DECL reply take_reply(bool keep);

  // An asynchronous run's read: the reply if it came (a copy: a later pass reads it again), else
  // `async_pending`, and the run is resumed when it comes.
  REDIS_TASKS_DECL reply read_async();

  static constexpr std::size_t read_buffer_size = std::size_t{64} * 1024;
  static constexpr std::size_t flush_threshold = std::size_t{1024} * 1024;

  REDIS_TASKS_DECL reply read_one();

  // Reads into the read buffer by `deadline`; a deadline that passes is a timeout_error saying
  // which bound it was.
  REDIS_TASKS_DECL std::size_t receive(clock::time_point deadline);

  // A reply that is one bulk string longer than the read buffer (a large GET) is read into its
  // string here, not through hiredis: each byte is copied once (read buffer to string) instead
  // of twice (into hiredis's buffer, then out of it), and hiredis's buffer is not regrown to
  // the value's size for every such reply. `n` bytes that start a reply are in the read buffer;
  // false leaves them for hiredis, as for every reply of another form.
  REDIS_TASKS_DECL bool read_large_bulk(std::size_t n, reply& out, clock::time_point deadline);

  [[noreturn]] REDIS_TASKS_DECL void throw_past_run_deadline(const char* doing) const;

  // Asking mode, before a command named `name` (empty when not known): queues ASKING unless
  // inside MULTI … EXEC, and notes whether it did, for `read`.
  REDIS_TASKS_DECL void before_command_asking(std::string_view name);

  // The deadline for connecting and the handshake: connect_timeout, else (0) socket_timeout,
  // as in redis-py; or the run's deadline (task_options.timeout) when that comes first.
  REDIS_TASKS_DECL connect_bound connect_bound_for(const connection_params& p,
                                                   clock::time_point run_deadline);

  REDIS_TASKS_DECL static std::string scrub(std::string text,
                                            const std::optional<std::string>& password);

  REDIS_TASKS_DECL void handshake(const endpoint_settings& s);

  REDIS_TASKS_DECL void check_master(const reply& role) const;

  [[noreturn]] REDIS_TASKS_DECL void throw_noauth();

  std::string endpoint_;
  std::chrono::milliseconds socket_timeout_;
  std::chrono::milliseconds reply_timeout_;  // bound of one reply: socket_timeout, or stretched
  clock::time_point run_deadline_ = no_deadline;  // the run's own deadline
  std::string run_bound_;  // what set run_deadline_ when not task.timeout: the connect bound
  std::uint64_t owner_;    // the fork generation (process) that opened the connection
  std::unique_ptr<stream> stream_;
  request_encoder encoder_;
  reply_parser parser_;
  std::vector<iovec> iovecs_;
  std::unique_ptr<char[]> rbuf_;
  std::size_t request_written_ = 0;
  std::size_t pending_ = 0;  // commands sent or queued whose replies are not read yet
  std::deque<bool> asked_;   // per command queued in asking mode: was ASKING sent before it
  bool asking_ = false;
  bool in_multi_ = false;  // asking mode: the commands being queued are inside MULTI … EXEC
  bool broken_ = false;
  bool saw_readonly_ = false;
  bool out_of_step_ =
      false;  // replies no longer match commands  // a reply said READONLY: the server was demoted
  clock::time_point last_used_;
  std::string secret_desc_;
  std::unique_ptr<virtual_part> virt_;  // set for a multiplexed connection
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/connection.ipp"
#endif
