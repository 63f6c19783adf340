// The bodies of connection.hpp (see ../connection.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <new>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::shared_ptr<const SecretProvider> default_secrets() {
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

REDIS_TASKS_DECL std::string endpoint_settings::name() const {
  if (!params.unix_socket.empty()) return "unix:" + params.unix_socket;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

REDIS_TASKS_DECL std::string endpoint_settings::pool_key() const {
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

REDIS_TASKS_DECL void throw_failed(const mux_request& r) {
  if (r.not_sent) throw not_sent_error(r.failure);
  throw connection_error(r.failure +
                         "; the request was written, so whether it ran is unknown (it is not "
                         "sent again)");
}

REDIS_TASKS_DECL connection::connection(const endpoint_settings& s, clock::time_point run_deadline)
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

REDIS_TASKS_DECL connection::connection(mux_channel& channel, std::string endpoint,
                                        std::chrono::milliseconds socket_timeout)
    : endpoint_(std::move(endpoint)),
      socket_timeout_(socket_timeout),
      reply_timeout_(socket_timeout),
      owner_(fork_registry::generation()),
      virt_(std::make_unique<virtual_part>()) {
  virt_->channel = &channel;
}

REDIS_TASKS_DECL void connection::end_multiplexed_run() noexcept {
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

REDIS_TASKS_DECL void connection::begin_async(std::function<void()> resume,
                                              clock::time_point deadline, bool quiet) {
  virt_->async = true;
  virt_->quiet = quiet;
  virt_->resume = std::move(resume);
  run_deadline_ = deadline;
}

REDIS_TASKS_DECL void connection::begin_async_pass() noexcept {
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

REDIS_TASKS_DECL connection::~connection() {
  // In a child after fork(), the connection is the parent's: let go without a word.
  if (stream_ && fork_registry::generation() != owner_) stream_->abandon();
}

REDIS_TASKS_DECL void connection::set_run_deadline(clock::time_point deadline) noexcept {
  run_deadline_ = deadline;
  run_bound_.clear();
  if (virt_ && virt_->pin.conn) virt_->pin.conn->set_run_deadline(deadline);
}

REDIS_TASKS_DECL void connection::begin_request() {
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

REDIS_TASKS_DECL void connection::append(const std::string_view* args, std::size_t n) {
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

REDIS_TASKS_DECL void connection::begin_command(std::size_t argc) {
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

REDIS_TASKS_DECL void connection::set_asking(bool on) {
  if (virt_) return pin().set_asking(on);
  asking_ = on;
  in_multi_ = false;
}

REDIS_TASKS_DECL void connection::arg(std::string_view a) {
  if (virt_) {
    if (virt_->name_next) {
      virt_->name_next = false;
      if (keeps_connection_state(a)) pin();
    }
    if (virt_->pin.conn) return virt_->pin.conn->arg(a);
  }
  encoder_.arg(a);
}

REDIS_TASKS_DECL void connection::end_command() {
  if (virt_) {
    if (virt_->pin.conn) return virt_->pin.conn->end_command();
    // Whole requests only (see append).
    if (encoder_.buffered_bytes() > virt_->channel->max_request_bytes()) pin();
    return;
  }
  if (encoder_.buffered_bytes() >= flush_threshold) flush();
}

REDIS_TASKS_DECL void connection::flush() {
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

REDIS_TASKS_DECL reply connection::read() {
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

REDIS_TASKS_DECL reply connection::call(std::initializer_list<std::string_view> args) {
  begin_request();
  append(args);
  flush();
  return read();
}

REDIS_TASKS_DECL void connection::send_unawaited(const std::string_view* args, std::size_t n) {
  encoder_.clear();
  request_written_ = 0;
  encoder_.append(args, n);
  flush();
}

REDIS_TASKS_DECL std::optional<reply> connection::read_pushed_now() {
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

REDIS_TASKS_DECL bool connection::write_segments(const iovec* iov, int n, std::size_t& written,
                                                 clock::time_point deadline) {
  return stream_->write_all(iov, n, written, deadline);
}

REDIS_TASKS_DECL std::size_t connection::receive_some(clock::time_point deadline) {
  if (!rbuf_) rbuf_ = std::make_unique<char[]>(read_buffer_size);
  const std::size_t n = stream_->read_some(rbuf_.get(), read_buffer_size, deadline);
  parser_.feed(rbuf_.get(), n);
  return n;
}

REDIS_TASKS_DECL void connection::shut_down() noexcept {
  if (stream_) ::shutdown(stream_->native_handle(), SHUT_RDWR);
}

REDIS_TASKS_DECL bool connection::broken() const noexcept {
  if (virt_) return virt_->pin.conn != nullptr && virt_->pin.conn->broken();
  return broken_ || pending_ != 0 || !asked_.empty();
}

REDIS_TASKS_DECL void connection::mark_broken() noexcept {
  if (virt_) {
    // Multiplexed: replies are matched per request, so what is unread is simply dropped.
    if (virt_->pin.conn) virt_->pin.conn->mark_broken();
    drop_sent();
    return;
  }
  broken_ = true;
}

REDIS_TASKS_DECL void connection::mark_out_of_step() noexcept {
  if (virt_) {
    if (virt_->pin.conn) virt_->pin.conn->mark_out_of_step();
    drop_sent();
    out_of_step_ = true;
    return;
  }
  broken_ = true;
  out_of_step_ = true;
}

REDIS_TASKS_DECL bool connection::stretch_timeout(std::chrono::milliseconds block) {
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

REDIS_TASKS_DECL void connection::restore_timeout() noexcept {
  reply_timeout_ = socket_timeout_;
  run_deadline_ = no_deadline;
}

REDIS_TASKS_DECL bool connection::timeout_changed() const noexcept {
  if (virt_) return virt_->pin.conn != nullptr && virt_->pin.conn->timeout_changed();
  return reply_timeout_ != socket_timeout_;
}

REDIS_TASKS_DECL void connection::drop_sent() noexcept {
  if (!virt_->async) {
    for (auto& r : virt_->sent)
      virt_->channel->abandon(r);
  }
  virt_->sent.clear();
  virt_->taken = 0;
}

REDIS_TASKS_DECL connection& connection::pin() {
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

REDIS_TASKS_DECL void connection::flush_multiplexed() {
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

REDIS_TASKS_DECL reply connection::read_multiplexed() {
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

REDIS_TASKS_DECL reply connection::take_reply(bool keep) {
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

REDIS_TASKS_DECL reply connection::read_async() {
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

REDIS_TASKS_DECL reply connection::read_one() {
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

REDIS_TASKS_DECL std::size_t connection::receive(clock::time_point deadline) {
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

REDIS_TASKS_DECL bool connection::read_large_bulk(std::size_t n, reply& out,
                                                  clock::time_point deadline) {
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

REDIS_TASKS_DECL void connection::throw_past_run_deadline(const char* doing) const {
  if (run_bound_.empty()) {
    throw timeout_error("the run took longer than task.timeout " + std::string(doing) + endpoint_);
  }
  throw timeout_error("connecting to " + endpoint_ + " (" + doing +
                      "it in the handshake) took longer than " + run_bound_);
}

REDIS_TASKS_DECL void connection::before_command_asking(std::string_view name) {
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

REDIS_TASKS_DECL auto connection::connect_bound_for(const connection_params& p,
                                                    clock::time_point run_deadline)
    -> connect_bound {
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

REDIS_TASKS_DECL std::string connection::scrub(std::string text,
                                               const std::optional<std::string>& password) {
  if (password && !password->empty()) {
    for (auto pos = text.find(*password); pos != std::string::npos;
         pos = text.find(*password, pos)) {
      text.replace(pos, password->size(), "***");
      pos += 3;
    }
  }
  return text;
}

REDIS_TASKS_DECL void connection::handshake(const endpoint_settings& s) {
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

REDIS_TASKS_DECL void connection::check_master(const reply& role) const {
  const auto& e = role.elements();
  if (!e.empty() && e[0].str() == "master") return;
  throw not_master_error(
      endpoint_ + " is not the master (ROLE: " + (e.empty() ? std::string("?") : e[0].str()) +
      "), so the master is looked up again through the sentinels");
}

REDIS_TASKS_DECL void connection::throw_noauth() {
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

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
