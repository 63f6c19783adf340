// A subscription that stays up between runs: a thread of its own reads the subscriber's messages
// into a bounded buffer as they come, reconnects and subscribes again when the connection fails
// (flagging the gap), and checks an idle connection with PING. Runs take messages from the
// buffer.
#pragma once

#include "../version.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "../errors.hpp"
#include "../pubsub_message.hpp"
#include "client.hpp"
#include "deadline.hpp"
#include "fork.hpp"
#include "socket.hpp"
#include "subscriber.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// A pub/sub subscription with its reading thread and buffer. Made unsubscribed; the first
/// `start` subscribes (on the caller's thread, so its errors reach the run) and starts the
/// thread. Destroying it stops the thread and closes the connection (ending the subscription).
class pubsub_listener {
 public:
  /// A listener for `sub` on the servers of `cl`, keeping at most `buffer_size` messages.
  pubsub_listener(std::shared_ptr<client> cl, subscription sub, std::size_t buffer_size)
      : client_(std::move(cl)),
        sub_(std::move(sub)),
        capacity_(std::max<std::size_t>(buffer_size, 1)),
        generation_(fork_registry::generation()) {}

  pubsub_listener(const pubsub_listener&) = delete;
  pubsub_listener& operator=(const pubsub_listener&) = delete;

  /// Stops the thread (in the process that started it) and closes the connection. Waits for
  /// the thread, which may be connecting: at most connect_timeout.
  REDIS_TASKS_DECL ~pubsub_listener();

  /// The fork generation that made it: a child after fork() makes a listener of its own.
  std::uint64_t generation() const noexcept { return generation_; }

  /// True once subscribed (the thread reads from then on).
  bool started() const noexcept { return started_.load(std::memory_order_acquire); }

  /// Subscribes by `deadline` unless done already, then starts the reading thread. Errors
  /// (connection_error, auth_error, reply_error) propagate, and a later call tries again.
  REDIS_TASKS_DECL void start(clock::time_point deadline);

  /// Takes the oldest buffered message that `accept` (when given) takes, waiting for one until
  /// `until`; messages it refuses are dropped. std::nullopt when none came in time.
  REDIS_TASKS_DECL std::optional<pubsub_message> next(
      clock::time_point until, const std::function<bool(const pubsub_message&)>& accept);

  /// Why the subscription is down now ("" when it is up): the last error of reconnecting.
  REDIS_TASKS_DECL std::string trouble() const;

  /// What it listens to, for messages.
  const subscription& targets() const noexcept { return sub_; }

 private:
  REDIS_TASKS_DECL void wake() noexcept;

  REDIS_TASKS_DECL bool stopping();

  // Waits for the wake-up pipe until `until`; true when asked to stop.
  REDIS_TASKS_DECL bool pause_until(clock::time_point until);

  REDIS_TASKS_DECL void drain_wake() noexcept;

  REDIS_TASKS_DECL void keep(pushed_message&& p);

  REDIS_TASKS_DECL void loop();

  std::shared_ptr<client> client_;
  subscription sub_;
  std::size_t capacity_;
  std::uint64_t generation_;

  std::mutex start_mutex_;  // serialises `start` (held across its I/O)
  std::atomic<bool> started_{false};
  std::unique_ptr<subscriber> conn_;  // the thread's alone once it runs
  std::unique_ptr<std::thread> thread_;
  unique_fd wake_read_;   // the thread waits on it along with the connection
  unique_fd wake_write_;  // the destructor writes to it

  mutable fork_safe_lock lock_;  // guards what follows; never held across I/O
  std::deque<pubsub_message> buffer_;
  bool gap_ = false;          // the next message kept comes after a loss
  bool carried_gap_ = false;  // a refused message had gap_before: the next returned one gets it
  int judging_gaps_ = 0;      // gap-flagged messages whose predicate runs now
  int socket_ = -1;           // the subscriber's socket (closed by a fork() child's destructor)
  bool stop_ = false;
  std::string trouble_;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/listener.ipp"
#endif
