// One connection to one Redis server: connect, authenticate, select the db, send argument
// vectors, read replies. Knows whether a failed request can have reached the server.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include "../connection.hpp"
#include "../errors.hpp"
#include "../reply.hpp"
#include "../secrets.hpp"
#include "fork.hpp"
#include "mux_request.hpp"
#include "resp.hpp"
#include "socket.hpp"
#include "tls.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The provider used when a task names none: environment variables.
inline std::shared_ptr<const SecretProvider> default_secrets() {
  // Never destroyed (a lease released while the program exits may still connect), and in
  // static storage rather than on the heap, so that a plugin's copy goes with the plugin.
  // The shared_ptr owns nothing (it aliases the provider in static storage): nothing on the
  // heap, so nothing leaks when a plugin is unloaded.
  using holder = std::shared_ptr<const SecretProvider>;
  alignas(EnvSecretProvider) static unsigned char provider_storage[sizeof(EnvSecretProvider)];
  alignas(holder) static unsigned char storage[sizeof(holder)];
  static const holder* env =
      ::new (storage) holder(std::shared_ptr<void>(), ::new (provider_storage) EnvSecretProvider());
  return *env;
}

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
  std::string name() const {
    if (!params.unix_socket.empty()) return "unix:" + params.unix_socket;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
  }

  /// Tasks whose settings give the same key can share connections.
  std::string pool_key() const {
    std::string k = name();
    auto add = [&k](const std::string& s) {
      k += '\x1f';
      k += s;
    };
    add(std::to_string(db));
    add(params.username);
    add(password_secret ? "s:" + *password_secret : "-");
    // The default provider (environment variables) is one whatever object stands for it.
    add(secrets ? std::to_string(reinterpret_cast<std::uintptr_t>(secrets.get())) : "env");
    add(params.client_name);
    add(std::to_string(params.connect_timeout.count()));
    add(std::to_string(params.socket_timeout.count()));
    add(params.keepalive ? "ka" + std::to_string(params.keepalive_interval.count()) : "noka");
    add(std::to_string(params.pool_size));
    add(std::to_string(params.pool_wait_timeout.count()));
    add(std::to_string(params.health_check_interval.count()));
    const auto& t = params.tls;
    add(t.enabled ? "tls" : "plain");
    if (t.enabled) {
      add(t.ca_certs);
      add(t.ca_path);
      add(t.certfile);
      add(t.keyfile);
      add(std::to_string(static_cast<int>(t.cert_reqs)));
      add(t.check_hostname ? "check" : "nocheck");
      add(t.server_hostname);
    }
    if (require_master) add("master");
    const auto& m = params.multiplex;
    if (m.enabled) {
      add("mux" + std::to_string(m.connections) + "/" + std::to_string(m.max_in_flight) + "/" +
          std::to_string(m.max_bytes_in_flight));
    }
    return k;
  }
};

/// A new connection's handshake found a replica where `endpoint_settings::require_master`
/// wants the master (the master failed over; nothing of the run was sent).
class not_master_error : public connection_error {
 public:
  using connection_error::connection_error;
};

/// Throws what a multiplexed request that failed (`r.at` is `failed`) means to its run:
/// `not_sent_error` when no byte of it was written, else `connection_error`.
[[noreturn]] inline void throw_failed(const mux_request& r) {
  if (r.not_sent) throw not_sent_error(r.failure);
  throw connection_error(r.failure +
                         "; the request was written, so whether it ran is unknown (it is not "
                         "sent again)");
}

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
  explicit connection(const endpoint_settings& s, clock::time_point run_deadline = no_deadline)
      : endpoint_(s.name()),
        socket_timeout_(s.params.socket_timeout),
        reply_timeout_(s.params.socket_timeout),
        owner_(fork_registry::generation()) {
    const connect_bound bound = connect_bound_for(s.params, run_deadline);
    socket_options o{s.params.keepalive, s.params.keepalive_interval};
    unique_fd fd = s.params.unix_socket.empty()
                       ? connect_tcp(s.host, s.port, o, endpoint_, bound)
                       : connect_unix(s.params.unix_socket, endpoint_, bound);
    if (s.params.tls.enabled) {
      if (!s.tls) throw config_error("TLS is on for " + endpoint_ + " but no TLS context was made");
      stream_ = make_tls_stream(std::move(fd), *s.tls, s.host, endpoint_, bound);
    } else {
      stream_ = std::make_unique<plain_stream>(std::move(fd), endpoint_, socket_timeout_);
    }
    // The handshake's replies are bounded by the connect deadline alone.
    run_deadline_ = bound.deadline;
    reply_timeout_ = std::chrono::milliseconds(0);
    run_bound_ = bound.what;
    handshake(s);
    reply_timeout_ = socket_timeout_;
    run_deadline_ = no_deadline;
    run_bound_.clear();
    last_used_ = clock::now();
  }

  /// A multiplexed connection: what a run queues goes out through `channel` on a connection
  /// shared with other runs, until the run needs connection state (a blocking command, MULTI,
  /// SELECT, ...; see `keeps_connection_state`) or sends a request larger than the channel
  /// takes: from then on the run goes on a pooled connection of its own ("pinned").
  connection(mux_channel& channel, std::string endpoint, std::chrono::milliseconds socket_timeout)
      : endpoint_(std::move(endpoint)),
        socket_timeout_(socket_timeout),
        reply_timeout_(socket_timeout),
        owner_(fork_registry::generation()),
        virt_(std::make_unique<virtual_part>()) {
    virt_->channel = &channel;
  }

  /// True for a multiplexed connection (see the constructor that takes a channel).
  bool multiplexed() const noexcept { return virt_ != nullptr; }

  /// A multiplexed connection, after a run: drops what the run left unread, gives a pinned
  /// connection back, and forgets the run's deadline and flags.
  void end_multiplexed_run() noexcept {
    if (virt_->async) {
      for (auto& r : virt_->recorded)
        virt_->channel->abandon(r);
      virt_->recorded.clear();
      virt_->resume = nullptr;
      virt_->async = false;
    }
    drop_sent();
    virt_->pin = pinned_connection();
    virt_->queued = 0;
    virt_->name_next = false;
    encoder_.clear();
    saw_readonly_ = false;
    out_of_step_ = false;
    run_deadline_ = no_deadline;
  }

  /// A multiplexed connection, for an asynchronous run (see async.hpp): a read whose reply has
  /// not come throws `async_pending` and calls `resume` once it has; the run is then run again
  /// from the start (`begin_async_pass`), its requests matched to those already sent rather
  /// than sent again, their replies read again. Every request is bounded by `deadline`.
  ///
  /// `quiet`: instead of throwing, the read returns a nil reply and the pass goes on to its end
  /// sending nothing more (`async_context::suspended` says it must be discarded). Unwinding an
  /// exception costs more than a whole round trip; a nil reply is safe where only the library
  /// reads replies (no user `value_traits` or `from_reply`).
  void begin_async(std::function<void()> resume, clock::time_point deadline, bool quiet) {
    virt_->async = true;
    virt_->quiet = quiet;
    virt_->resume = std::move(resume);
    run_deadline_ = deadline;
  }
  /// True when this pass stopped quietly (see begin_async).
  bool async_suspended() const noexcept { return virt_->suspended; }
  /// An asynchronous run starts again from the beginning.
  void begin_async_pass() noexcept {
    virtual_part& v = *virt_;
    v.suspended = false;
    saw_readonly_ = false;  // what a discarded pass saw is not this pass's
    out_of_step_ = false;
    v.cursor = 0;
    v.sent.clear();
    v.taken = 0;
    v.queued = 0;
    v.name_next = false;
    encoder_.clear();
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() {
    // In a child after fork(), the connection is the parent's: let go without a word.
    if (stream_ && fork_registry::generation() != owner_) stream_->abandon();
  }

  /// The fork generation that opened the connection (a child after fork() must never use it).
  std::uint64_t owner() const noexcept { return owner_; }

  /// Bounds every read and write from now on by `deadline` (the run's task_options.timeout),
  /// until set again; `no_deadline` for none.
  void set_run_deadline(clock::time_point deadline) noexcept {
    run_deadline_ = deadline;
    run_bound_.clear();
    if (virt_ && virt_->pin.conn) virt_->pin.conn->set_run_deadline(deadline);
  }

  /// Starts a new request: forgets what was written for the previous one.
  void begin_request() {
    if (virt_) {
      if (virt_->pin.conn) return virt_->pin.conn->begin_request();
      drop_sent();  // (an asynchronous run keeps them: they are read again in the next pass)
      virt_->queued = 0;
      virt_->name_next = false;
      encoder_.clear();
      return;
    }
    if (pending_ != 0) broken_ = true;  // a previous request was abandoned mid-way
    encoder_.clear();
    request_written_ = 0;
  }

  /// Queues one command made of `n` arguments.
  void append(const std::string_view* args, std::size_t n) {
    if (virt_) {
      if (!virt_->pin.conn && !(n > 0 && keeps_connection_state(args[0]))) {
        encoder_.append(args, n);
        ++virt_->queued;
        // A request goes out whole, in one piece (two pieces could go on different shared
        // connections, and one fail after the other ran); past what a shared connection takes,
        // the run moves to a pooled one, which writes it as it grows.
        if (encoder_.buffered_bytes() > virt_->channel->max_request_bytes()) pin();
        return;
      }
      return pin().append(args, n);
    }
    if (asking_) before_command_asking(n > 0 ? args[0] : std::string_view());
    encoder_.append(args, n);
    ++pending_;
    if (encoder_.buffered_bytes() >= flush_threshold) flush();
  }
  /// Queues one command.
  void append(std::initializer_list<std::string_view> args) { append(args.begin(), args.size()); }

  /// Starts queuing a command of `argc` arguments, given one by one with `arg`. Not for MULTI,
  /// EXEC or DISCARD (the name is not known yet when ASKING is queued; see `set_asking`).
  void begin_command(std::size_t argc) {
    if (virt_) {
      if (virt_->pin.conn) return virt_->pin.conn->begin_command(argc);
      encoder_.begin(argc);
      ++virt_->queued;
      virt_->name_next = true;
      return;
    }
    if (asking_) before_command_asking(std::string_view());
    encoder_.begin(argc);
    ++pending_;
  }

  /// In a Redis Cluster slot migration, the target node serves a key only to a client that
  /// says ASKING first: while this is on, every command is preceded by ASKING, except inside
  /// MULTI … EXEC, where the ASKING sent before MULTI holds for the whole transaction (one
  /// sent inside would be queued, and its +OK would come back in EXEC's reply). `read`
  /// consumes the ASKING replies.
  void set_asking(bool on) {
    if (virt_) return pin().set_asking(on);
    asking_ = on;
    in_multi_ = false;
  }
  /// One argument of the command started by `begin_command`; long ones are not copied and must
  /// outlive the next `flush`.
  void arg(std::string_view a) {
    if (virt_) {
      if (virt_->name_next) {
        virt_->name_next = false;
        if (keeps_connection_state(a)) pin();
      }
      if (virt_->pin.conn) return virt_->pin.conn->arg(a);
    }
    encoder_.arg(a);
  }
  /// Ends a command started by `begin_command`; writes out a long pipeline as it grows, so
  /// memory stays bounded however many commands a request has.
  void end_command() {
    if (virt_) {
      if (virt_->pin.conn) return virt_->pin.conn->end_command();
      // Whole requests only (see append).
      if (encoder_.buffered_bytes() > virt_->channel->max_request_bytes()) pin();
      return;
    }
    if (encoder_.buffered_bytes() >= flush_threshold) flush();
  }

  /// Writes everything queued, within `socket_timeout` and the run's deadline. Throws
  /// `not_sent_error` if nothing of this request left.
  void flush() {
    if (virt_) return flush_multiplexed();
    const auto& segs = encoder_.segments();
    if (segs.empty()) return;
    iovecs_.clear();
    const char* base = encoder_.buffer().data();
    for (const auto& sg : segs) {
      iovecs_.push_back(
          iovec{const_cast<char*>(sg.external ? sg.external : base + sg.offset), sg.size});
    }
    const auto now = clock::now();
    const auto own = saturating_add(now, socket_timeout_);
    const auto deadline = socket_timeout_.count() > 0 ? earlier(own, run_deadline_) : run_deadline_;
    bool done = false;
    try {
      done = stream_->write_all(iovecs_.data(), static_cast<int>(iovecs_.size()), request_written_,
                                deadline);
    } catch (...) {
      broken_ = true;
      throw;
    }
    if (!done) {
      broken_ = true;
      if (deadline == run_deadline_) throw_past_run_deadline("writing to ");
      throw timeout_error("writing to " + endpoint_ + " took longer than socket_timeout " +
                          ms_text(socket_timeout_));
    }
    encoder_.clear();
  }

  /// Reads the next reply. Error replies are returned, not thrown, except NOAUTH, which
  /// means the server wants a password this connection did not give: that is an `auth_error`.
  reply read() {
    if (virt_) {
      if (virt_->pin.conn) {
        reply r = virt_->pin.conn->read();
        if (virt_->pin.conn->saw_readonly()) saw_readonly_ = true;
        return r;
      }
      return read_multiplexed();
    }
    if (!asked_.empty()) {
      // A command queued in asking mode: skip the reply (always +OK) to the ASKING sent
      // before it, if one was.
      const bool asked = asked_.front();
      asked_.pop_front();
      if (asked) (void)read_one();
    }
    reply r = read_one();
    --pending_;
    if (r.is_error()) {
      if (r.str().compare(0, 6, "NOAUTH") == 0) throw_noauth();
      if (r.str().compare(0, 8, "READONLY") == 0) {
        // The server was demoted: its connections go (once this request's replies are read).
        saw_readonly_ = true;
        broken_ = true;
      }
    }
    return r;
  }

  /// Sends one command and reads its reply.
  reply call(std::initializer_list<std::string_view> args) {
    begin_request();
    append(args);
    flush();
    return read();
  }

  // ---- subscriber mode: after (S|P)SUBSCRIBE the server pushes messages unasked ---------------

  /// Subscriber mode: writes one command whose answer comes as a pushed message (read with
  /// `read_pushed_now`), so no reply is awaited for it. Within socket_timeout and the run's
  /// deadline.
  void send_unawaited(const std::string_view* args, std::size_t n) {
    encoder_.clear();
    request_written_ = 0;
    encoder_.append(args, n);
    flush();
  }

  /// Subscriber mode: the next whole message among the bytes that have arrived, reading only
  /// what is there now (never waiting); std::nullopt when no whole message is there yet (what
  /// arrived of one is kept for the next call). Throws `connection_error` when the connection
  /// failed or the server closed it.
  std::optional<reply> read_pushed_now() {
    reply r;
    if (parser_.next(r)) return r;
    for (;;) {
      if (!stream_->has_buffered() &&
          !wait_fd(stream_->native_handle(), POLLIN, clock::time_point::min())) {
        return std::nullopt;
      }
      if (!rbuf_) rbuf_ = std::make_unique<char[]>(read_buffer_size);
      const std::size_t n =
          stream_->read_some(rbuf_.get(), read_buffer_size, clock::time_point::min());
      if (n == 0) return std::nullopt;
      parser_.feed(rbuf_.get(), n);
      if (parser_.next(r)) {
        last_used_ = clock::now();
        return r;
      }
    }
  }

  // ---- a link of a multiplexer: one writer and one reader at a time, on other threads ------

  /// Link mode: writes `n` segments by `deadline` (false when it passed first); `written`
  /// counts the bytes that left. Throws `connection_error` (`not_sent_error` when nothing left).
  bool write_segments(const iovec* iov, int n, std::size_t& written, clock::time_point deadline) {
    return stream_->write_all(iov, n, written, deadline);
  }

  /// Link mode: the next reply among the bytes received; false when more bytes are needed.
  /// Throws `connection_error` on a protocol error.
  bool next_received(reply& r) { return parser_.next(r); }

  /// Link mode: receives what arrives by `deadline` (0 when nothing did) for `next_received`.
  /// Throws `connection_error` when the connection failed or the server closed it.
  std::size_t receive_some(clock::time_point deadline) {
    if (!rbuf_) rbuf_ = std::make_unique<char[]>(read_buffer_size);
    const std::size_t n = stream_->read_some(rbuf_.get(), read_buffer_size, deadline);
    parser_.feed(rbuf_.get(), n);
    return n;
  }

  /// Link mode: true when received bytes wait in the stream itself (decrypted TLS data).
  bool has_buffered_bytes() noexcept { return stream_->has_buffered(); }

  /// Link mode: wakes a reader or writer blocked on the socket and fails their calls (the
  /// descriptor itself is closed with the connection).
  void shut_down() noexcept {
    if (stream_) ::shutdown(stream_->native_handle(), SHUT_RDWR);
  }

  /// Subscriber mode: true while part of a message has arrived and the rest has not.
  bool mid_message() const noexcept { return !parser_.at_reply_start(); }

  /// The socket's descriptor, for a subscriber that waits on it along with a wake-up.
  int native_handle() const noexcept { return stream_->native_handle(); }

  /// True when a reply said READONLY: the server is a replica now (a demoted master).
  bool saw_readonly() const noexcept { return saw_readonly_; }

  /// True when an I/O error left the connection unusable, or replies are still unread.
  bool broken() const noexcept {
    if (virt_) return virt_->pin.conn != nullptr && virt_->pin.conn->broken();
    return broken_ || pending_ != 0 || !asked_.empty();
  }
  /// Marks the connection unusable (its state is unknown, e.g. a reply was left unread).
  void mark_broken() noexcept {
    if (virt_) {
      // Multiplexed: replies are matched per request, so what is unread is simply dropped.
      if (virt_->pin.conn) virt_->pin.conn->mark_broken();
      drop_sent();
      return;
    }
    broken_ = true;
  }
  /// Marks the connection unusable because its replies went out of step with the commands: no
  /// later reply on it may be trusted (a batch fails the items still waiting).
  void mark_out_of_step() noexcept {
    if (virt_) {
      if (virt_->pin.conn) virt_->pin.conn->mark_out_of_step();
      drop_sent();
      out_of_step_ = true;
      return;
    }
    broken_ = true;
    out_of_step_ = true;
  }
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
  bool stretch_timeout(std::chrono::milliseconds block) {
    if (virt_) return pin().stretch_timeout(block);  // a blocking command: not on a shared one
    using std::chrono::milliseconds;
    milliseconds t{0};
    if (socket_timeout_.count() > 0 && block.count() > 0) {
      // Saturating: the largest durations mean "no limit", never an overflow.
      t = block > milliseconds::max() - socket_timeout_ ? milliseconds(0) : block + socket_timeout_;
    }
    reply_timeout_ = t;
    const auto own = t.count() > 0 ? saturating_add(clock::now(), t) : no_deadline;
    return run_deadline_ != no_deadline && run_deadline_ <= own;
  }
  /// Back to the configured socket timeout, and no run deadline.
  void restore_timeout() noexcept {
    reply_timeout_ = socket_timeout_;
    run_deadline_ = no_deadline;
  }
  /// True while a blocking command's stretch is in force.
  bool timeout_changed() const noexcept {
    if (virt_) return virt_->pin.conn != nullptr && virt_->pin.conn->timeout_changed();
    return reply_timeout_ != socket_timeout_;
  }
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
  void drop_sent() noexcept {
    if (!virt_->async) {
      for (auto& r : virt_->sent)
        virt_->channel->abandon(r);
    }
    virt_->sent.clear();
    virt_->taken = 0;
  }

  // Moves the run to a pooled connection of its own, with what is queued of the current
  // request; every earlier request of the run was answered (or is dropped).
  connection& pin() {
    virtual_part& v = *virt_;
    if (v.pin.conn) return *v.pin.conn;
    if (v.async) {
      if (v.suspended) throw async_pending{};
      if (v.recorded.empty()) throw async_unsupported{};
      throw error(
          "internal error: an asynchronous run needed a connection of its own after it "
          "sent a request");
    }
    drop_sent();
    v.pin = v.channel->pin(run_deadline_);
    connection& c = *v.pin.conn;
    c.set_run_deadline(run_deadline_);
    c.begin_request();
    if (v.queued > 0) {
      c.encoder_.append_encoded(encoder_);
      c.pending_ += v.queued;
    }
    encoder_.clear();
    v.queued = 0;
    return c;
  }

  void flush_multiplexed() {
    virtual_part& v = *virt_;
    if (v.pin.conn) return v.pin.conn->flush();
    if (v.queued == 0) return;
    const auto& segs = encoder_.segments();
    std::size_t total = 0;
    for (const auto& sg : segs)
      total += sg.size;
    if (total > v.channel->max_request_bytes()) return pin().flush();
    // A new request each time: the writer and reader of the shared connection may still hold
    // the last one (its reply can come before the writer let go of it).
    auto r = std::make_shared<mux_request>();
    r->bytes.reserve(total);
    const char* base = encoder_.buffer().data();
    for (const auto& sg : segs)
      r->bytes.append(sg.external ? sg.external : base + sg.offset, sg.size);
    r->expected = v.queued;
    encoder_.clear();
    v.queued = 0;
    if (v.async) {
      if (v.suspended) return;  // a discarded pass sends nothing
      if (v.cursor < v.recorded.size()) {
        // A pass after the first: this request went out already; its replies are read again.
        std::shared_ptr<mux_request>& sent = v.recorded[v.cursor++];
        if (sent->bytes != r->bytes) {
          throw error("internal error: an asynchronous run sent other commands when run again");
        }
        v.sent.push_back(sent);
        return;
      }
      r->deadline = run_deadline_;
      r->async = true;
      v.channel->submit(r, run_deadline_);
      v.recorded.push_back(r);
      ++v.cursor;
      v.sent.push_back(std::move(r));
      return;
    }
    v.channel->submit(r, run_deadline_);
    v.sent.push_back(std::move(r));
  }

  reply read_multiplexed() {
    virtual_part& v = *virt_;
    if (v.async && v.suspended) return reply();
    if (v.sent.empty()) throw error("internal error: a reply was read before a request was sent");
    if (v.async) return read_async();
    const auto own =
        socket_timeout_.count() > 0 ? saturating_add(clock::now(), socket_timeout_) : no_deadline;
    const auto deadline = earlier(own, run_deadline_);
    std::shared_ptr<mux_request>& r = v.sent.front();
    bool answered = false;
    try {
      answered = v.channel->wait(r, deadline);
    } catch (...) {
      drop_sent();
      throw;
    }
    if (!answered) {
      drop_sent();
      if (deadline == run_deadline_) throw_past_run_deadline("waiting for a reply from ");
      throw timeout_error("no reply from " + endpoint_ + " within socket_timeout " +
                          ms_text(socket_timeout_) + " (multiplexed)");
    }
    return take_reply(false);
  }

  // The next reply of the answered request sent first: moved out, or (`keep`) copied, for an
  // asynchronous run's later passes read it again.
  reply take_reply(bool keep) {
    virtual_part& v = *virt_;
    const std::shared_ptr<mux_request>& r = v.sent.front();
    reply out = keep ? r->replies[v.taken] : std::move(r->replies[v.taken]);
    if (++v.taken == r->expected) {
      v.taken = 0;
      v.sent.pop_front();
    }
    if (out.is_error()) {
      if (out.str().compare(0, 6, "NOAUTH") == 0) throw_noauth();
      if (out.str().compare(0, 8, "READONLY") == 0) saw_readonly_ = true;
    }
    return out;
  }

  // An asynchronous run's read: the reply if it came (a copy: a later pass reads it again), else
  // `async_pending`, and the run is resumed when it comes.
  reply read_async() {
    virtual_part& v = *virt_;
    if (v.suspended) return reply();
    const std::shared_ptr<mux_request>& r = v.sent.front();
    switch (v.channel->outcome_or_notify(r, v.resume)) {
      case mux_outcome::pending:
        if (!v.quiet) throw async_pending{};
        v.suspended = true;
        if (async_context* a = current_async_context()) a->suspended = true;
        return reply();
      case mux_outcome::failed:
        throw_failed(*r);
      case mux_outcome::timed_out:
        throw_past_run_deadline("waiting for a reply from ");
      case mux_outcome::answered:
        break;
    }
    return take_reply(true);
  }

  static constexpr std::size_t read_buffer_size = std::size_t{64} * 1024;
  static constexpr std::size_t flush_threshold = std::size_t{1024} * 1024;

  reply read_one() {
    reply r;
    // Replies already buffered need no clock reading and no deadline.
    if (parser_.next(r)) {
      last_used_ = clock::now();
      return r;
    }
    // One deadline for the whole reply, however its bytes trickle in.
    const auto own =
        reply_timeout_.count() > 0 ? saturating_add(clock::now(), reply_timeout_) : no_deadline;
    const auto deadline = earlier(own, run_deadline_);
    try {
      do {
        if (!rbuf_) rbuf_ = std::make_unique<char[]>(read_buffer_size);
        const bool fresh = parser_.at_reply_start();
        const std::size_t n = receive(deadline);
        if (fresh && read_large_bulk(n, r, deadline)) break;
        parser_.feed(rbuf_.get(), n);
      } while (!parser_.next(r));
    } catch (...) {
      broken_ = true;
      throw;
    }
    last_used_ = clock::now();
    return r;
  }

  // Reads into the read buffer by `deadline`; a deadline that passes is a timeout_error saying
  // which bound it was.
  std::size_t receive(clock::time_point deadline) {
    const std::size_t n = stream_->read_some(rbuf_.get(), read_buffer_size, deadline);
    if (n > 0) return n;
    broken_ = true;
    if (deadline == run_deadline_) throw_past_run_deadline("waiting for a reply from ");
    if (reply_timeout_ != socket_timeout_) {
      throw timeout_error("no reply from " + endpoint_ + " within " + ms_text(reply_timeout_));
    }
    throw timeout_error("no reply from " + endpoint_ + " within socket_timeout " +
                        ms_text(socket_timeout_));
  }

  // A reply that is one bulk string longer than the read buffer (a large GET) is read into its
  // string here, not through hiredis: each byte is copied once (read buffer to string) instead
  // of twice (into hiredis's buffer, then out of it), and hiredis's buffer is not regrown to
  // the value's size for every such reply. `n` bytes that start a reply are in the read buffer;
  // false leaves them for hiredis, as for every reply of another form.
  bool read_large_bulk(std::size_t n, reply& out, clock::time_point deadline) {
    std::size_t len = 0;
    const std::size_t header = bulk_header(rbuf_.get(), n, len);
    if (header == 0 || len < read_buffer_size || header + len + 2 <= n) return false;
    std::string s;
    // Capacity follows the bytes that did arrive (16-fold, at least 1 MiB), never only the
    // length the server announced: a 13-byte header must not allocate gigabytes.
    auto append = [&](const char* data, std::size_t k) {
      if (s.size() + k > s.capacity()) {
        s.reserve(std::min(len, std::max<std::size_t>((s.size() + k) * 16, std::size_t{1} << 20)));
      }
      s.append(data, k);
    };
    const char* rest = rbuf_.get() + header;
    std::size_t rest_n = n - header;
    for (;;) {
      const std::size_t k = std::min(rest_n, len - s.size());
      append(rest, k);
      rest += k;
      rest_n -= k;
      if (s.size() == len) break;
      rest_n = receive(deadline);
      rest = rbuf_.get();
    }
    // The CR LF after the data (skipped unchecked, as hiredis does); what follows it starts
    // the next replies.
    for (std::size_t crlf = 2;;) {
      const std::size_t k = std::min(rest_n, crlf);
      rest += k;
      rest_n -= k;
      crlf -= k;
      if (crlf == 0) break;
      rest_n = receive(deadline);
      rest = rbuf_.get();
    }
    if (rest_n > 0) parser_.feed(rest, rest_n);
    out = reply::make_string(std::move(s));
    return true;
  }

  [[noreturn]] void throw_past_run_deadline(const char* doing) const {
    if (run_bound_.empty()) {
      throw timeout_error("the run took longer than task.timeout " + std::string(doing) +
                          endpoint_);
    }
    throw timeout_error("connecting to " + endpoint_ + " (" + doing +
                        "it in the handshake) took longer than " + run_bound_);
  }

  // Asking mode, before a command named `name` (empty when not known): queues ASKING unless
  // inside MULTI … EXEC, and notes whether it did, for `read`.
  void before_command_asking(std::string_view name) {
    auto is = [name](std::string_view word) {
      return name.size() == word.size() &&
             std::equal(name.begin(), name.end(), word.begin(), [](char a, char b) {
               return std::toupper(static_cast<unsigned char>(a)) == b;
             });
    };
    const bool ask = !in_multi_;
    if (is("MULTI")) {
      in_multi_ = true;
    } else if (is("EXEC") || is("DISCARD")) {
      in_multi_ = false;
    }
    if (ask) {
      static constexpr std::string_view asking[] = {"ASKING"};
      encoder_.append(asking, 1);
    }
    asked_.push_back(ask);
  }

  // The deadline for connecting and the handshake: connect_timeout, else (0) socket_timeout,
  // as in redis-py; or the run's deadline (task_options.timeout) when that comes first.
  connect_bound connect_bound_for(const connection_params& p, clock::time_point run_deadline) {
    const bool by_connect = p.connect_timeout.count() > 0;
    const auto t = by_connect ? p.connect_timeout : p.socket_timeout;
    connect_bound b;
    b.deadline = deadline_after(t);
    b.what = (by_connect ? "connect_timeout " : "socket_timeout ") + ms_text(t);
    b.hint = by_connect ? " or raise connect_timeout" : " or set connect_timeout";
    if (run_deadline < b.deadline) {
      if (clock::now() >= run_deadline) {
        throw timeout_error("the run took longer than task.timeout before connecting to " +
                            endpoint_);
      }
      b.deadline = run_deadline;
      b.what = "what was left of task.timeout";
      b.hint = " or raise task.timeout";
    }
    return b;
  }

  static std::string scrub(std::string text, const std::optional<std::string>& password) {
    if (password && !password->empty()) {
      for (auto pos = text.find(*password); pos != std::string::npos;
           pos = text.find(*password, pos)) {
        text.replace(pos, password->size(), "***");
        pos += 3;
      }
    }
    return text;
  }

  void handshake(const endpoint_settings& s) {
    const auto& provider = s.secrets ? s.secrets : default_secrets();
    std::optional<std::string> password;
    if (s.password_secret) password = provider->get(*s.password_secret);
    secret_desc_ = s.password_secret ? "secret '" + *s.password_secret + "'" : "";

    begin_request();
    const std::string db = std::to_string(s.db);
    const char* labels[5];
    int expected = 0;
    if (password) {
      if (s.params.username.empty()) {
        append({"AUTH", *password});
      } else {
        append({"AUTH", s.params.username, *password});
      }
      labels[expected++] = "AUTH";
    }
    if (s.db != 0) {
      append({"SELECT", db});
      labels[expected++] = "SELECT";
    }
    if (!s.params.client_name.empty()) {
      append({"CLIENT", "SETNAME", s.params.client_name});
      labels[expected++] = "CLIENT SETNAME";
    }
    if (s.params.tls.enabled) {
      // With TLS 1.3 a server that rejects our certificate (or wants one) says so only after
      // the client's side of the handshake is done: one round trip makes that a connect error.
      append({"PING"});
      labels[expected++] = "PING";
    }
    if (s.require_master) {
      append({"ROLE"});
      labels[expected++] = "ROLE";
    }
    if (expected == 0) return;
    flush();
    for (int i = 0; i < expected; ++i) {
      reply r = read();
      const std::string label = labels[i];
      if (!r.is_error()) {
        if (label == "ROLE") check_master(r);
        continue;
      }
      const std::string msg = scrub(r.str(), password);
      if (label == "AUTH") {
        const std::string who =
            s.params.username.empty() ? "" : " for user '" + s.params.username + "'";
        if (msg.find("without any password configured") != std::string::npos ||
            msg.find("no password is set") != std::string::npos) {
          throw auth_error(endpoint_ + " has no password set, but " + secret_desc_ +
                           " provided one; remove that secret or set password_secret to "
                           "std::nullopt (server said: " +
                           msg + ")");
        }
        throw auth_error(endpoint_ + " rejected the password from " + secret_desc_ + who +
                         " (server said: " + msg + ")");
      }
      if (label == "SELECT") {
        throw reply_error(msg, "SELECT " + db + " on " + endpoint_ + " (check the `db` setting)");
      }
      if (label == "ROLE") {
        throw reply_error(msg, "ROLE on " + endpoint_ +
                                   " (in sentinel mode each new connection checks that the "
                                   "server is the master)");
      }
      throw reply_error(
          msg, label + " on " + endpoint_ + (label == "PING" ? "" : " (check `client_name`)"));
    }
  }

  void check_master(const reply& role) const {
    const auto& e = role.elements();
    if (!e.empty() && e[0].str() == "master") return;
    throw not_master_error(
        endpoint_ + " is not the master (ROLE: " + (e.empty() ? std::string("?") : e[0].str()) +
        "), so the master is looked up again through the sentinels");
  }

  [[noreturn]] void throw_noauth() {
    broken_ = true;
    if (secret_desc_.empty()) {
      throw auth_error(endpoint_ +
                       " requires a password, but password_secret is not set; name the secret "
                       "that holds it");
    }
    throw auth_error(endpoint_ + " requires a password, but no " + secret_desc_ +
                     " was found; provide it (by default as an environment variable of that "
                     "name) or pass a SecretProvider that has it");
  }

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
