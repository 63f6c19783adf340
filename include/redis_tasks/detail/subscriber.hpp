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
  REDIS_TASKS_DECL std::string describe() const;
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
  REDIS_TASKS_DECL subscriber(std::shared_ptr<connection_pool> server, const subscription& sub,
                              clock::time_point deadline);

  /// The next message, waiting for more bytes until `wait_until` (a time already past: only
  /// what has arrived); std::nullopt when no whole message came. Never blocks past
  /// `wait_until`. Confirmations and PING answers are taken on the way. Throws
  /// `connection_error` when the connection fails, or when the server ended the subscription
  /// itself (a sharded channel's slot moved to another node).
  REDIS_TASKS_DECL std::optional<pushed_message> next(clock::time_point wait_until);

  /// True while part of a message has arrived and the rest has not.
  bool mid_message() const noexcept { return conn_.mid_message(); }
  /// How many pushed replies (messages, confirmations, PING answers) arrived so far.
  std::uint64_t heard() const noexcept { return heard_; }
  /// How long the rest of a begun message may take: socket_timeout, else connect_timeout,
  /// else 10 s (a subscriber never waits without a bound).
  REDIS_TASKS_DECL std::chrono::milliseconds message_bound() const;

  /// Sends a PING, whose answer `next` takes. Throws `connection_error` when the PING sent
  /// before this one is still unanswered: the connection is dead though it looks open.
  REDIS_TASKS_DECL void ping();

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
  REDIS_TASKS_DECL void take(reply&& r);

  REDIS_TASKS_DECL static std::string printable_kind(const std::string& k);

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
REDIS_TASKS_DECL std::unique_ptr<subscriber> open_subscriber(client& cl, const subscription& sub,
                                                             clock::time_point deadline);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/subscriber.ipp"
#endif
