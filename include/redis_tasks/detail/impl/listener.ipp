// The bodies of listener.hpp (see ../listener.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL pubsub_listener::~pubsub_listener() {
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

REDIS_TASKS_DECL void pubsub_listener::start(clock::time_point deadline) {
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

REDIS_TASKS_DECL auto pubsub_listener::next(
    clock::time_point until, const std::function<bool(const pubsub_message&)>& accept)
    -> std::optional<pubsub_message> {
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

REDIS_TASKS_DECL std::string pubsub_listener::trouble() const {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  return trouble_;
}

REDIS_TASKS_DECL void pubsub_listener::wake() noexcept {
  const char b = 1;
  (void)!::write(wake_write_.get(), &b, 1);
}

REDIS_TASKS_DECL bool pubsub_listener::stopping() {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  return stop_;
}

REDIS_TASKS_DECL bool pubsub_listener::pause_until(clock::time_point until) {
  while (!stopping()) {
    if (!wait_fd(wake_read_.get(), POLLIN, until)) return false;
    drain_wake();
  }
  return true;
}

REDIS_TASKS_DECL void pubsub_listener::drain_wake() noexcept {
  char buf[64];
  while (::read(wake_read_.get(), buf, sizeof buf) > 0) {
  }
}

REDIS_TASKS_DECL void pubsub_listener::keep(pushed_message&& p) {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  pubsub_message m{std::move(p.channel), std::move(p.pattern), std::move(p.data), gap_};
  gap_ = false;
  const bool full = buffer_.size() >= capacity_;
  if (full) buffer_.pop_front();  // the oldest goes: the next one comes after a gap
  buffer_.push_back(std::move(m));
  if (full) buffer_.front().gap_before = true;
  lock_.cv().notify_all();
}

REDIS_TASKS_DECL void pubsub_listener::loop() {
  // Copies: the connection, and the pool whose settings these are, may go.
  const connection_params params = conn_->server()->settings().params;
  const auto ping_every = params.health_check_interval;
  const auto connect_bound =
      params.connect_timeout.count() > 0 ? params.connect_timeout : std::chrono::milliseconds(5000);
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

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
