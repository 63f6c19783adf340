// A connection of its own in subscriber mode: opened on the server a client names for the
// subscription (the node of a key's slot on a cluster, the master behind Sentinel), subscribed
// (SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE) until the server confirmed it, then read for the
// messages the server pushes. Pooled connections never subscribe: a subscription changes what
// the connection may carry.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <poll.h>

#include "../errors.hpp"
#include "../from_reply.hpp"
#include "../reply.hpp"
#include "client.hpp"
#include "codec.hpp"
#include "connection.hpp"
#include "deadline.hpp"
#include "fork.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// What a subscriber listens to.
struct subscription {
  std::vector<std::string> channels;  ///< channels (SUBSCRIBE, or SSUBSCRIBE when `sharded`)
  std::vector<std::string> patterns;  ///< glob patterns (PSUBSCRIBE)
  bool sharded = false;               ///< channels are sharded channels (SSUBSCRIBE, Redis 7)
  /// Where the subscriber connects on a cluster: the node of this key's slot; none: any node.
  std::optional<std::string> route_key;

  /// "channel a, pattern b*", for messages.
  std::string describe() const {
    std::string s;
    auto add = [&s](const char* kind, const std::string& name) {
      s += s.empty() ? "" : ", ";
      s += kind;
      s += ' ';
      s += quote_for_message(name);
    };
    for (const auto& c : channels)
      add(sharded ? "sharded channel" : "channel", c);
    for (const auto& p : patterns)
      add("pattern", p);
    return s;
  }
};

/// One message pushed to a subscriber.
struct pushed_message {
  std::string channel;  ///< the channel it was published to
  std::string pattern;  ///< the pattern that matched it (PSUBSCRIBE); empty otherwise
  std::string data;     ///< what was published
};

/// A subscribed connection. Not thread-safe: one thread reads it at a time.
class subscriber {
 public:
  /// Connects to `server` and subscribes to `sub`, all by `deadline`: returns once the server
  /// confirmed every subscription (messages that come first are kept for `next`). The
  /// confirmations wait at most `message_bound` too. An error reply (NOPERM, MOVED, an unknown
  /// command) is a `reply_error`.
  subscriber(std::shared_ptr<connection_pool> server, const subscription& sub,
             clock::time_point deadline)
      : server_(std::move(server)), conn_(server_->settings(), deadline) {
    conn_.set_run_deadline(deadline);
    std::size_t expected = 0;
    auto send = [&](const char* verb, const std::vector<std::string>& names) {
      if (names.empty()) return;
      std::vector<std::string_view> args;
      args.reserve(names.size() + 1);
      args.emplace_back(verb);
      for (const auto& n : names)
        args.emplace_back(n);
      conn_.send_unawaited(args.data(), args.size());
      expected += names.size();
    };
    send(sub.sharded ? "SSUBSCRIBE" : "SUBSCRIBE", sub.channels);
    send("PSUBSCRIBE", sub.patterns);
    const auto confirm_by = earlier(deadline, deadline_after(message_bound()));
    while (confirmed_ < expected) {
      if (auto r = conn_.read_pushed_now()) {
        take(std::move(*r));
        continue;
      }
      if (!wait_fd(conn_.native_handle(), POLLIN, confirm_by)) {
        throw timeout_error(
            "subscribing on " + conn_.endpoint() +
            ": the server did not confirm the subscription within " +
            ms_text(std::chrono::duration_cast<std::chrono::milliseconds>(message_bound())));
      }
    }
    conn_.restore_timeout();
  }

  /// The next message, waiting for more bytes until `wait_until` (a time already past: only
  /// what has arrived); std::nullopt when no whole message came. Never blocks past
  /// `wait_until`. Confirmations and PING answers are taken on the way. Throws
  /// `connection_error` when the connection fails, or when the server ended the subscription
  /// itself (a sharded channel's slot moved to another node).
  std::optional<pushed_message> next(clock::time_point wait_until) {
    for (;;) {
      if (!early_.empty()) {
        pushed_message m = std::move(early_.front());
        early_.pop_front();
        return m;
      }
      if (auto r = conn_.read_pushed_now()) {
        take(std::move(*r));
        continue;
      }
      if (!wait_fd(conn_.native_handle(), POLLIN, wait_until)) return std::nullopt;
    }
  }

  /// True while part of a message has arrived and the rest has not.
  bool mid_message() const noexcept { return conn_.mid_message(); }
  /// How many pushed replies (messages, confirmations, PING answers) arrived so far.
  std::uint64_t heard() const noexcept { return heard_; }
  /// How long the rest of a begun message may take: socket_timeout, else connect_timeout,
  /// else 10 s (a subscriber never waits without a bound).
  std::chrono::milliseconds message_bound() const {
    const auto& p = server_->settings().params;
    if (p.socket_timeout.count() > 0) return p.socket_timeout;
    if (p.connect_timeout.count() > 0) return p.connect_timeout;
    return std::chrono::milliseconds(10000);
  }

  /// Sends a PING, whose answer `next` takes. Throws `connection_error` when the PING sent
  /// before this one is still unanswered: the connection is dead though it looks open.
  void ping() {
    if (awaiting_pong_) {
      throw connection_error("the subscription on " + conn_.endpoint() +
                             " did not answer PING within a health check interval");
    }
    static constexpr std::string_view args[] = {"PING"};
    conn_.set_run_deadline(deadline_after(message_bound()));  // even with socket_timeout 0
    conn_.send_unawaited(args, 1);
    conn_.restore_timeout();
    awaiting_pong_ = true;
  }

  /// True when a PING was sent and its answer has not come yet.
  bool awaiting_pong() const noexcept { return awaiting_pong_; }
  /// The socket, to wait on it along with other descriptors.
  int native_handle() const noexcept { return conn_.native_handle(); }
  /// The server, as "host:port".
  const std::string& endpoint() const noexcept { return conn_.endpoint(); }
  /// The pool whose server this subscriber is on (for `client::server_failed`).
  const std::shared_ptr<connection_pool>& server() const noexcept { return server_; }
  /// The fork generation that opened it (a child after fork() must never use it).
  std::uint64_t owner() const noexcept { return conn_.owner(); }

 private:
  void take(reply&& r) {
    ++heard_;
    if (r.is_error()) {
      throw reply_error(r.str(), "subscribing on " + conn_.endpoint());
    }
    if (r.type() != reply_type::array || r.elements().empty()) {
      throw connection_error("the subscription on " + conn_.endpoint() + " received " +
                             describe_reply(r) + ", which is no pub/sub message");
    }
    auto& e = r.elements();
    const std::string kind = e[0].str();
    if ((kind == "message" || kind == "smessage") && e.size() == 3) {
      early_.push_back(pushed_message{e[1].take_str(), std::string(), e[2].take_str()});
    } else if (kind == "pmessage" && e.size() == 4) {
      early_.push_back(pushed_message{e[2].take_str(), e[1].take_str(), e[3].take_str()});
    } else if (kind == "subscribe" || kind == "psubscribe" || kind == "ssubscribe") {
      ++confirmed_;
    } else if (kind == "pong") {
      awaiting_pong_ = false;
    } else if (kind == "sunsubscribe" || kind == "unsubscribe" || kind == "punsubscribe") {
      // Never asked for: the server ended the subscription (a sharded channel's slot moved).
      throw connection_error("the server " + conn_.endpoint() + " ended the subscription (" + kind +
                             "), as it does when a sharded channel's slot moves");
    } else {
      throw connection_error("the subscription on " + conn_.endpoint() +
                             " received an unknown pushed message '" + printable_kind(kind) + "'");
    }
  }

  static std::string printable_kind(const std::string& k) {
    std::string s = k.substr(0, 32);
    for (auto& ch : s) {
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    }
    return s;
  }

  std::shared_ptr<connection_pool> server_;
  connection conn_;
  std::deque<pushed_message> early_;  // messages received, not yet returned by `next`
  std::size_t confirmed_ = 0;
  std::uint64_t heard_ = 0;
  bool awaiting_pong_ = false;
};

/// Opens a subscriber for `sub` on the server `cl` names for it, by `deadline`: a MOVED answer
/// or a demoted master sends it to the new server (a few times at most); a connection that
/// fails makes the client look the server up again next time, and the error propagates.
inline std::unique_ptr<subscriber> open_subscriber(client& cl, const subscription& sub,
                                                   clock::time_point deadline) {
  const route r = sub.route_key ? route(*sub.route_key) : route::none();
  for (int attempt = 0;; ++attempt) {
    auto server = cl.server_for(r, deadline);
    try {
      return std::make_unique<subscriber>(server, sub, deadline);
    } catch (const reply_error& e) {
      if (attempt >= 3 || !cl.redirected(e.server_message(), *server)) throw;
    } catch (const not_master_error&) {
      cl.server_failed(server);
      if (attempt >= 3 || !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
        throw;
      }
    } catch (const connection_error&) {
      cl.server_failed(server);
      throw;
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
