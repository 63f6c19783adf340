// A subscription that stays up between runs: a thread of its own reads the subscriber's messages
// into a bounded buffer as they come, reconnects and subscribes again when the connection fails
// (flagging the gap), and checks an idle connection with PING. Runs take messages from the
// buffer.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <csignal>

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
  ~pubsub_listener() {
    if (fork_registry::generation() != generation_) {
      // A fork() child: the thread is the parent's and does not exist here, and the parent's
      // thread may have been half-way through the subscriber's state. Leave both untouched,
      // but close this process's copy of the socket, or the subscription would outlive the
      // parent's sensor while the child runs.
      (void)thread_.release();
      (void)conn_.release();
      if (socket_ >= 0) ::close(socket_);
      return;
    }
    if (!thread_) return;
    {
      const std::lock_guard<std::mutex> g(lock_.mutex());
      stop_ = true;
    }
    wake();
    thread_->join();
  }

  /// The fork generation that made it: a child after fork() makes a listener of its own.
  std::uint64_t generation() const noexcept { return generation_; }

  /// True once subscribed (the thread reads from then on).
  bool started() const noexcept { return started_.load(std::memory_order_acquire); }

  /// Subscribes by `deadline` unless done already, then starts the reading thread. Errors
  /// (connection_error, auth_error, reply_error) propagate, and a later call tries again.
  void start(clock::time_point deadline) {
    const std::lock_guard<std::mutex> g(start_mutex_);
    if (thread_) return;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw error("cannot make the pipe that stops a subscriber's thread: " +
                  std::system_category().message(errno));
    }
    unique_fd wake_read(fds[0]);
    unique_fd wake_write(fds[1]);
    auto conn = open_subscriber(*client_, sub_, deadline);
    {
      const std::lock_guard<std::mutex> g(lock_.mutex());
      socket_ = conn->native_handle();
    }
    conn_ = std::move(conn);
    wake_read_ = std::move(wake_read);
    wake_write_ = std::move(wake_write);
    // The thread takes no signals: they stay with the application's threads.
    sigset_t all;
    sigset_t before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    try {
      thread_ = std::make_unique<std::thread>(&pubsub_listener::loop, this);
    } catch (const std::system_error& e) {
      pthread_sigmask(SIG_SETMASK, &before, nullptr);
      conn_.reset();
      const std::lock_guard<std::mutex> g(lock_.mutex());
      socket_ = -1;
      throw error(std::string("cannot start the thread that reads a subscription: ") + e.what());
    }
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
    started_.store(true, std::memory_order_release);
  }

  /// Takes the oldest buffered message that `accept` (when given) takes, waiting for one until
  /// `until`; messages it refuses are dropped. std::nullopt when none came in time.
  std::optional<pubsub_message> next(clock::time_point until,
                                     const std::function<bool(const pubsub_message&)>& accept) {
    std::unique_lock<std::mutex> g(lock_.mutex());
    for (;;) {
      while (!buffer_.empty()) {
        pubsub_message m = std::move(buffer_.front());
        buffer_.pop_front();
        // A gap before a refused message is a gap before the next one returned; so is one
        // before a message another run is still judging (a gap flagged twice is harmless, a
        // gap not flagged is not).
        m.gap_before = m.gap_before || carried_gap_ || judging_gaps_ > 0;
        carried_gap_ = false;
        if (!accept) return m;
        const bool gap = m.gap_before;
        if (gap) ++judging_gaps_;
        g.unlock();
        bool ok = false;
        try {
          ok = accept(m);
        } catch (...) {
          // The message is gone with the exception: the next one returned comes after a gap.
          g.lock();
          if (gap) --judging_gaps_;
          carried_gap_ = true;
          throw;
        }
        g.lock();
        if (gap) --judging_gaps_;
        if (ok) return m;
        carried_gap_ = carried_gap_ || gap;
      }
      if (clock::now() >= until) return std::nullopt;
      lock_.cv().wait_until(g, until);
    }
  }

  /// Why the subscription is down now ("" when it is up): the last error of reconnecting.
  std::string trouble() const {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    return trouble_;
  }

  /// What it listens to, for messages.
  const subscription& targets() const noexcept { return sub_; }

 private:
  void wake() noexcept {
    const char b = 1;
    (void)!::write(wake_write_.get(), &b, 1);
  }

  bool stopping() {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    return stop_;
  }

  // Waits for the wake-up pipe until `until`; true when asked to stop.
  bool pause_until(clock::time_point until) {
    while (!stopping()) {
      if (!wait_fd(wake_read_.get(), POLLIN, until)) return false;
      drain_wake();
    }
    return true;
  }

  void drain_wake() noexcept {
    char buf[64];
    while (::read(wake_read_.get(), buf, sizeof buf) > 0) {
    }
  }

  void keep(pushed_message&& p) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    pubsub_message m{std::move(p.channel), std::move(p.pattern), std::move(p.data), gap_};
    gap_ = false;
    const bool full = buffer_.size() >= capacity_;
    if (full) buffer_.pop_front();  // the oldest goes: the next one comes after a gap
    buffer_.push_back(std::move(m));
    if (full) buffer_.front().gap_before = true;
    lock_.cv().notify_all();
  }

  void loop() {
    // Copies: the connection, and the pool whose settings these are, may go.
    const connection_params params = conn_->server()->settings().params;
    const auto ping_every = params.health_check_interval;
    const auto connect_bound = params.connect_timeout.count() > 0 ? params.connect_timeout
                                                                  : std::chrono::milliseconds(5000);
    auto backoff = std::chrono::milliseconds(50);
    // Absolute times, so that signals and wake-ups (which end a poll early) never postpone them.
    clock::time_point ping_at = deadline_after(ping_every);
    clock::time_point message_by = no_deadline;  // the rest of a begun message must come by then
    std::uint64_t heard = 0;
    for (;;) {
      if (stopping()) return;
      if (!conn_) {
        try {
          auto conn = open_subscriber(*client_, sub_, deadline_after(connect_bound));
          const std::lock_guard<std::mutex> g(lock_.mutex());
          socket_ = conn->native_handle();
          conn_ = std::move(conn);
          gap_ = true;  // what was published while no subscriber was connected is gone
          trouble_.clear();
          backoff = std::chrono::milliseconds(50);
          ping_at = deadline_after(ping_every);
          message_by = no_deadline;
          heard = conn_->heard();
        } catch (const std::exception& e) {
          {
            const std::lock_guard<std::mutex> g(lock_.mutex());
            trouble_ = e.what();
          }
          if (pause_until(deadline_after(backoff))) return;
          backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
          continue;
        }
      }
      try {
        // Everything that has arrived, without waiting (and without a blocking read, so the
        // destructor is never kept waiting by a message that stalls half-way).
        while (auto m = conn_->next(clock::time_point::min())) {
          keep(std::move(*m));
          if (stopping()) return;
        }
        const auto now = clock::now();
        if (conn_->heard() != heard) {  // the server spoke: the connection is alive
          heard = conn_->heard();
          ping_at = deadline_after(ping_every);
        }
        if (!conn_->mid_message()) {
          message_by = no_deadline;
        } else if (message_by == no_deadline) {
          message_by = saturating_add(now, conn_->message_bound());
        } else if (now >= message_by) {
          throw timeout_error("a message on the subscription at " + conn_->endpoint() +
                              " stalled half-way for " + ms_text(conn_->message_bound()));
        }
        if (ping_every.count() > 0 && now >= ping_at) {
          conn_->ping();  // throws when the previous PING went unanswered a whole interval
          ping_at = deadline_after(ping_every);
          continue;
        }
        const auto wake_at = earlier(ping_every.count() > 0 ? ping_at : no_deadline, message_by);
        pollfd fds[2] = {{conn_->native_handle(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        const int rc = ::poll(fds, 2, poll_timeout(wake_at, clock::now()));
        if (rc < 0 && errno != EINTR) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));  // ENOMEM: shortly again
        }
        if (rc > 0 && fds[1].revents != 0) drain_wake();
      } catch (const std::exception& e) {
        auto server = conn_->server();
        {
          const std::lock_guard<std::mutex> g(lock_.mutex());
          trouble_ = e.what();
          socket_ = -1;
        }
        conn_.reset();
        client_->server_failed(server);
      }
    }
  }

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
