// The bodies of mux.hpp (see ../mux.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../mux.hpp"

#include <poll.h>
#include <unistd.h>
#include <algorithm>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool mux_caps::try_take(std::size_t bytes) {
  if (requests_.fetch_add(1, std::memory_order_acq_rel) >= max_requests_) {
    requests_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  // A request always fits when nothing else is in flight (the channel sends larger ones on a
  // pooled connection, so this only matters for caps smaller than one request).
  const std::size_t before = bytes_.fetch_add(bytes, std::memory_order_acq_rel);
  if (before != 0 && before + bytes > max_bytes_) {
    bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
    requests_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

REDIS_TASKS_DECL bool mux_caps::has_room() const noexcept {
  return requests_.load(std::memory_order_acquire) < max_requests_ &&
         bytes_.load(std::memory_order_acquire) < max_bytes_;
}

REDIS_TASKS_DECL void mux_caps::wait_for_room(clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  ++waiters_;
  (void)lock_.cv().wait_until(lk, deadline);
  --waiters_;
}

REDIS_TASKS_DECL void mux_caps::give(std::size_t requests, std::size_t bytes) {
  if (requests == 0) return;
  requests_.fetch_sub(requests, std::memory_order_acq_rel);
  bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
  if (waiters_.load(std::memory_order_acquire) > 0) {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    lock_.cv().notify_all();
  }
}

REDIS_TASKS_DECL void mux_caps::reset() noexcept {
  requests_ = 0;
  bytes_ = 0;
  waiters_ = 0;
}

REDIS_TASKS_DECL bool mux_link::open() const noexcept {
  return !closed_.load(std::memory_order_acquire) && !retired_.load(std::memory_order_acquire);
}

REDIS_TASKS_DECL bool mux_link::enqueue(const std::shared_ptr<mux_request>& r) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  if (!open()) return false;
  r->link = shared_from_this();
  r->at = mux_request::stage::queued;
  pending_.push_back(r);
  load_.fetch_add(1, std::memory_order_relaxed);
  if (writing_) return true;
  // While a reader waits for replies that are on their way, it writes this request with
  // whatever else comes meanwhile, in one write, when it has handed out the next replies.
  if (reading_ && !inflight_.empty()) return true;
  writing_ = true;
  write_queue(lk);
  return true;
}

REDIS_TASKS_DECL void mux_link::write_deferred(std::unique_lock<std::mutex>& lk) {
  if (writing_ || pending_.empty()) return;
  writing_ = true;
  write_queue(lk);
}

REDIS_TASKS_DECL bool mux_link::wait(const std::shared_ptr<mux_request>& r,
                                     clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  for (;;) {
    if (r->at == mux_request::stage::answered) return true;
    if (r->at == mux_request::stage::failed) throw_failed(*r);
    if (r->at == mux_request::stage::written && !reading_) {
      reading_ = true;
      if (read_for(lk, r, deadline, read_goal::mine)) continue;
      abandon_locked(*r, lk);
      return false;
    }
    r->waiting = true;
    const bool woke = r->cv.wait_until(lk, deadline) == std::cv_status::no_timeout;
    r->waiting = false;
    if (woke || r->at == mux_request::stage::answered || r->at == mux_request::stage::failed) {
      continue;
    }
    if (r->at == mux_request::stage::written && !reading_) continue;  // read once more
    // Out of time. Not written yet: taken out of the queue, so it is never sent.
    if (r->at == mux_request::stage::queued) {
      const auto it = std::find(pending_.begin(), pending_.end(), r);
      if (it != pending_.end()) pending_.erase(it);
      load_.fetch_sub(1, std::memory_order_relaxed);
      r->at = mux_request::stage::failed;
      r->not_sent = true;
      r->failure = "not written in time";
      lk.unlock();
      caps_->give(1, r->bytes.size());
      return false;
    }
    abandon_locked(*r, lk);  // keeps its place; its replies are dropped when they come
    return false;
  }
}

REDIS_TASKS_DECL bool mux_link::drain(clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  if (reading_ || inflight_.empty()) return false;
  reading_ = true;
  read_for(lk, nullptr, deadline, read_goal::room);
  return true;
}

REDIS_TASKS_DECL auto mux_link::outcome_or_notify(const std::shared_ptr<mux_request>& r,
                                                  std::function<void()> resume) -> mux_outcome {
  released freed;
  {
    std::unique_lock<std::mutex> g(lock_.mutex());
    // Timed out first: its replies were dropped, even if they came since.
    if (r->timed_out) return mux_outcome::timed_out;
    if (r->at == mux_request::stage::answered) return mux_outcome::answered;
    if (r->at == mux_request::stage::failed) return mux_outcome::failed;
    if (clock::now() >= r->deadline) {
      r->timed_out = true;
      r->replies.clear();
      abandon_locked(*r, g);
      return mux_outcome::timed_out;
    }
    r->on_settled = std::move(resume);
    async_waiting_.fetch_add(1, std::memory_order_relaxed);
    if (!reading_ && !reader_posted_ && r->at == mux_request::stage::written) {
      reader_posted_ = true;
      freed.start_reader = true;
    }
  }
  finish(freed);
  return mux_outcome::pending;
}

REDIS_TASKS_DECL void mux_link::abandon(const std::shared_ptr<mux_request>& r) noexcept {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  r->replies.clear();
  abandon_locked(*r, lk);
}

REDIS_TASKS_DECL void mux_link::close_in_child() noexcept {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  closed_.store(true, std::memory_order_release);
  // Only the descriptor is closed: a parent thread may have been reading or writing at the
  // fork, leaving the connection's buffers (and a TLS session) half changed, so it is let go
  // of rather than destroyed.
  if (conn_) ::close(conn_->native_handle());
  (void)conn_.release();
}

REDIS_TASKS_DECL void mux_link::fail_all(const std::string& why) noexcept {
  released freed;
  {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    fail_locked(why, nullptr, 0, freed);
  }
  // In a child after fork(), the caps were reset: the parent's requests are not counted.
  if (owner_ == fork_registry::generation()) finish(freed);
}

REDIS_TASKS_DECL void mux_link::finish(released& r) {
  caps_->give(r.requests, r.bytes);
  if (!r.resume.empty()) {
    try {
      async_executor::instance().post([go = std::move(r.resume)] {
        for (const auto& f : go)
          f();
      });
    } catch (...) {  // no thread to be had: here, then
      for (auto& f : r.resume)
        f();
    }
  }
  if (r.start_reader) {
    try {
      async_executor::instance().post([self = shared_from_this()] { self->serve(); });
    } catch (...) {  // no thread: the next run that waits reads for them
      const std::lock_guard<std::mutex> g(lock_.mutex());
      reader_posted_ = false;
    }
  }
}

REDIS_TASKS_DECL void mux_link::serve() {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  reader_posted_ = false;
  if (reading_ || inflight_.empty() || !conn_) return;  // (no connection: a parent's link)
  if (async_waiting_.load(std::memory_order_relaxed) == 0) {
    // Every asynchronous run left (out of time) before this reader started.
    released freed;
    close_if_unwanted(freed);
    lk.unlock();
    finish(freed);
    return;
  }
  reading_ = true;
  (void)read_for(lk, nullptr, no_deadline, read_goal::async_runs);
}

REDIS_TASKS_DECL void mux_link::expire(clock::time_point now, released& freed) {
  auto out_of_time = [&](mux_request& r) {
    if (!r.on_settled || r.deadline > now) return false;
    r.timed_out = true;
    r.abandoned = true;
    r.replies.clear();
    freed.resume.push_back(std::move(r.on_settled));
    r.on_settled = nullptr;
    async_waiting_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  };
  for (auto& r : inflight_)
    (void)out_of_time(*r);  // keeps its place: its replies will be dropped
  // Not written yet: never written.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!out_of_time(**it)) {
      ++it;
      continue;
    }
    (*it)->at = mux_request::stage::failed;
    (*it)->not_sent = true;
    (*it)->failure = "not written in time";
    load_.fetch_sub(1, std::memory_order_relaxed);
    ++freed.requests;
    freed.bytes += (*it)->bytes.size();
    it = pending_.erase(it);
  }
}

REDIS_TASKS_DECL clock::time_point mux_link::last_progress() const noexcept {
  return clock::time_point(clock::duration(last_progress_.load(std::memory_order_relaxed)));
}

REDIS_TASKS_DECL void mux_link::mark_progress(clock::time_point t) noexcept {
  last_progress_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
}

REDIS_TASKS_DECL void mux_link::settle(mux_request& r, mux_request::stage at, released& freed) {
  r.at = at;
  load_.fetch_sub(1, std::memory_order_relaxed);
  ++freed.requests;
  freed.bytes += r.bytes.size();
  if (r.abandoned) r.replies.clear();
  if (r.waiting) r.cv.notify_one();
  if (r.on_settled) {
    freed.resume.push_back(std::move(r.on_settled));
    r.on_settled = nullptr;
    async_waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
}

REDIS_TASKS_DECL void mux_link::fail_locked(const std::string& why,
                                            const std::vector<std::shared_ptr<mux_request>>* batch,
                                            std::size_t written, released& freed) noexcept {
  closed_.store(true, std::memory_order_release);
  // Never in a child after fork(): shutting the socket down would cut the parent's link.
  if (conn_ && owner_ == fork_registry::generation()) conn_->shut_down();
  std::size_t offset = 0;
  const mux_request* first_unsent = nullptr;
  if (batch != nullptr) {
    for (const auto& b : *batch) {
      if (offset >= written) {
        first_unsent = b.get();
        break;
      }
      offset += b->bytes.size();
    }
  }
  bool unsent = false;
  for (auto& r : inflight_) {
    if (r.get() == first_unsent) unsent = true;
    r->not_sent = unsent;
    r->failure = why;
    settle(*r, mux_request::stage::failed, freed);
  }
  inflight_.clear();
  for (auto& r : pending_) {
    r->not_sent = true;
    r->failure = why;
    settle(*r, mux_request::stage::failed, freed);
  }
  pending_.clear();
}

REDIS_TASKS_DECL void mux_link::pass_reading(released& freed) {
  reading_ = false;
  for (auto& r : inflight_) {
    if (r->waiting && !r->abandoned) {
      r->cv.notify_one();
      return;
    }
  }
  if (async_waiting_.load(std::memory_order_relaxed) > 0 && !inflight_.empty() && !reader_posted_) {
    reader_posted_ = true;
    freed.start_reader = true;
    return;
  }
  close_if_unwanted(freed);
}

REDIS_TASKS_DECL void mux_link::abandon_locked(mux_request& r,
                                               std::unique_lock<std::mutex>& lk) noexcept {
  r.abandoned = true;
  released freed;
  close_if_unwanted(freed);
  lk.unlock();
  // In a child after fork(), the caps were reset: the parent's requests are not counted.
  if (freed.requests > 0 && owner_ == fork_registry::generation()) finish(freed);
}

REDIS_TASKS_DECL void mux_link::close_if_unwanted(released& freed) noexcept {
  if (!retired_.load(std::memory_order_relaxed) || closed_.load(std::memory_order_relaxed) ||
      reading_ || writing_ || reader_posted_ || !pending_.empty()) {
    return;
  }
  for (const auto& r : inflight_) {
    if (!r->abandoned) return;
  }
  fail_locked(
      "the server refused a write with READONLY (a replica now); the multiplexed "
      "connection was closed",
      nullptr, 0, freed);
}

REDIS_TASKS_DECL void mux_link::write_queue(std::unique_lock<std::mutex>& lk) {
  std::vector<std::shared_ptr<mux_request>> batch;
  std::vector<iovec> iov;
  while (!pending_.empty() && !closed_.load(std::memory_order_relaxed)) {
    batch.clear();
    iov.clear();
    if (inflight_.empty() && !reading_) {
      // Before writing to a link that sat idle: a server that closed it (its `timeout`,
      // CLIENT KILL, a restart) or sent bytes nobody asked for would make the requests fail
      // after they were written, when they cannot be sent again. Checked as a pool checks
      // an idle connection (not within 100 us of the last reply, when it cannot have idled
      // out); what is left of a parsed reply is checked every time. Nothing is in flight and
      // no one reads, so the connection is this writer's alone meanwhile.
      lk.unlock();
      const auto now = clock::now();
      bool intact = !conn_->mid_message();
      if (intact && now - last_progress() >= std::chrono::microseconds(100)) {
        if (tls_) {
          const std::lock_guard<std::mutex> io(io_);
          intact = conn_->idle_and_intact();
        } else {
          intact = conn_->idle_and_intact();
        }
      }
      mark_progress(now);
      lk.lock();
      if (!intact) {
        released freed;
        fail_locked("the shared connection to " + conn_->endpoint() +
                        " was closed by the server or got bytes nobody asked for while idle",
                    nullptr, 0, freed);
        lk.unlock();
        finish(freed);
        lk.lock();
        continue;
      }
    }
    while (!pending_.empty() && batch.size() < 256) {
      std::shared_ptr<mux_request> r = std::move(pending_.front());
      pending_.pop_front();
      r->at = mux_request::stage::written;
      iov.push_back(iovec{r->bytes.data(), r->bytes.size()});
      inflight_.push_back(r);
      batch.push_back(std::move(r));
    }
    released started;
    if (!reading_) pass_reading(started);
    lk.unlock();
    finish(started);
    std::size_t written = 0;
    std::string why;
    try {
      // A write is bounded by socket_timeout, not by one caller's deadline: the requests of
      // others go in it, and stopping half-way would leave the connection unusable.
      const auto deadline =
          socket_timeout_.count() > 0 ? saturating_add(clock::now(), socket_timeout_) : no_deadline;
      bool done = false;
      if (tls_) {
        const std::lock_guard<std::mutex> io(io_);
        done = conn_->write_segments(iov.data(), static_cast<int>(iov.size()), written, deadline);
      } else {
        done = conn_->write_segments(iov.data(), static_cast<int>(iov.size()), written, deadline);
      }
      if (!done) {
        why = "writing to " + conn_->endpoint() + " took longer than socket_timeout " +
              ms_text(socket_timeout_);
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    lk.lock();
    if (!why.empty()) {
      released freed;
      fail_locked(why, &batch, written, freed);
      lk.unlock();
      finish(freed);
      lk.lock();
    }
  }
  writing_ = false;
  if (!reading_) {
    // A retired link whose last reader left while this wrote: nobody else will close it.
    released freed;
    close_if_unwanted(freed);
    if (freed.requests > 0) {
      lk.unlock();
      finish(freed);
      lk.lock();
    }
  }
}

REDIS_TASKS_DECL bool mux_link::read_for(std::unique_lock<std::mutex>& lk,
                                         const std::shared_ptr<mux_request>& me,
                                         clock::time_point deadline, read_goal goal) {
  auto settled = [&] {
    if (!me) {
      // The asynchronous reader stops once no such run waits (every one answered or out of
      // time): else, with no deadline of its own, it would wait for bytes for good.
      return inflight_.empty() || (goal == read_goal::room && caps_->has_room()) ||
             (goal == read_goal::async_runs && async_waiting_.load(std::memory_order_relaxed) == 0);
    }
    return me->at == mux_request::stage::answered || me->at == mux_request::stage::failed;
  };
  lk.unlock();
  std::vector<reply> got;
  std::string why;
  bool out_of_time = false;
  auto next_expiry = clock::now() + std::chrono::milliseconds(10);
  try {
    for (;;) {
      reply rep;
      while (conn_->next_received(rep))
        got.push_back(std::move(rep));
      if (!got.empty()) {
        released freed;
        lk.lock();
        deliver(got, freed);
        got.clear();
        if (async_waiting_.load(std::memory_order_relaxed) > 0) {
          // Also while replies stream in (a large one ahead): deadlines every 10 ms.
          const auto now = clock::now();
          if (now >= next_expiry) {
            expire(now, freed);
            next_expiry = now + std::chrono::milliseconds(10);
          }
        }
        write_deferred(lk);
        const bool done = settled();
        if (done) pass_reading(freed);
        lk.unlock();
        finish(freed);
        if (done) {
          lk.lock();
          return true;
        }
      }
      // While asynchronous runs wait, wake at least every 10 ms to tell those out of time.
      const bool watch = async_waiting_.load(std::memory_order_relaxed) > 0;
      const auto until =
          watch ? earlier(deadline, clock::now() + std::chrono::milliseconds(10)) : deadline;
      std::size_t n = 0;
      if (tls_) {
        // TLS: one call at a time on the connection; wait for bytes outside the lock.
        bool buffered = false;
        {
          const std::lock_guard<std::mutex> io(io_);
          buffered = conn_->has_buffered_bytes();
        }
        if (buffered || wait_fd(conn_->native_handle(), POLLIN, until)) {
          // Bytes are there; the rest of a TLS record they start follows at once, so the read
          // may wait a little for it (holding up the writer that long at most).
          const std::lock_guard<std::mutex> io(io_);
          n = conn_->receive_some(clock::now() + std::chrono::milliseconds(50));
        }
      } else {
        n = conn_->receive_some(until);
      }
      if (n > 0) {
        mark_progress(clock::now());
        continue;
      }
      const auto now = clock::now();
      if (watch) {
        released freed;
        lk.lock();
        expire(now, freed);
        write_deferred(lk);
        const bool done = settled();
        if (done) pass_reading(freed);
        lk.unlock();
        finish(freed);
        if (done) {
          lk.lock();
          return true;
        }
      }
      if (now >= deadline ||
          (socket_timeout_.count() > 0 && now - last_progress() >= socket_timeout_)) {
        out_of_time = true;
        break;
      }
    }
  } catch (const std::exception& e) {
    why = e.what();
  }
  released freed;
  if (!lk.owns_lock()) lk.lock();  // (an exception may have left it held)
  if (!why.empty()) {
    fail_locked(why, nullptr, 0, freed);
    reading_ = false;
  } else if (out_of_time && socket_timeout_.count() > 0 && !inflight_.empty() &&
             clock::now() - last_progress() >= socket_timeout_) {
    // Nothing came for socket_timeout while replies were due: the connection is dead.
    fail_locked("no reply from " + conn_->endpoint() + " within socket_timeout " +
                    ms_text(socket_timeout_) + " (multiplexed connection closed)",
                nullptr, 0, freed);
    reading_ = false;
  } else {
    write_deferred(lk);
    pass_reading(freed);
  }
  lk.unlock();
  finish(freed);
  lk.lock();
  return settled();
}

REDIS_TASKS_DECL void mux_link::deliver(std::vector<reply>& got, released& freed) {
  for (auto& rep : got) {
    if (inflight_.empty() || inflight_.front()->at != mux_request::stage::written) {
      fail_locked("protocol error: " + conn_->endpoint() +
                      " sent a reply no request was waiting for (multiplexed connection "
                      "closed)",
                  nullptr, 0, freed);
      return;
    }
    mux_request& r = *inflight_.front();
    if (rep.is_error() && rep.str().compare(0, 8, "READONLY") == 0) {
      // Demoted: no new requests; what is queued is still written and answered.
      retired_.store(true, std::memory_order_release);
    }
    ++r.received;
    if (!r.abandoned) r.replies.push_back(std::move(rep));
    if (r.received == r.expected) {
      settle(r, mux_request::stage::answered, freed);
      inflight_.pop_front();
    }
  }
}

REDIS_TASKS_DECL multiplexer::lease::~lease() {
  if (conn_) m_->give_back(std::move(conn_));
}

REDIS_TASKS_DECL multiplexer::~multiplexer() {
  std::vector<std::shared_ptr<mux_link>> parents;
  forget_parent_links(parents);  // in a child after fork(): failing them could hang (see let_go)
  let_go(parents);
  for (auto& s : slots_) {
    if (s.link) s.link->fail_all("the multiplexer was closed");
  }
}

REDIS_TASKS_DECL auto multiplexer::acquire(clock::time_point run_deadline) -> lease {
  std::unique_ptr<connection> c;
  std::vector<std::shared_ptr<mux_link>> parents;  // let go of after the lock
  {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    forget_parent_links(parents);
    if (!spare_.empty()) {
      c = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  let_go(parents);
  if (!c)
    c = std::make_unique<connection>(*this, settings_.name(), settings_.params.socket_timeout);
  c->set_run_deadline(run_deadline);
  return lease(this, std::move(c));
}

REDIS_TASKS_DECL std::size_t multiplexer::open_links() const {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  std::size_t n = 0;
  for (const auto& s : slots_) {
    if (s.link || s.connecting) ++n;
  }
  return n;
}

REDIS_TASKS_DECL void multiplexer::submit(const std::shared_ptr<mux_request>& r,
                                          clock::time_point deadline) {
  const auto& m = settings_.params.multiplex;
  const auto pw = settings_.params.pool_wait_timeout;
  const auto room_deadline =
      earlier(deadline, pw.count() > 0 ? saturating_add(clock::now(), pw) : no_deadline);
  while (!caps_->try_take(r->bytes.size())) {
    if (clock::now() < room_deadline) {
      // Requests whose callers timed out hold room until their replies are read: read them
      // if no one does, else wait a little for room.
      if (!help_read(room_deadline)) {
        caps_->wait_for_room(earlier(room_deadline, clock::now() + std::chrono::milliseconds(10)));
      }
      continue;
    }
    if (room_deadline == deadline) {
      throw timeout_error(
          "the run took longer than task.timeout waiting for room among the "
          "requests in flight to " +
          settings_.name() + " (multiplexed)");
    }
    throw timeout_error("the requests in flight to " + settings_.name() +
                        " stayed at multiplex.max_in_flight " + std::to_string(m.max_in_flight) +
                        " or multiplex.max_bytes_in_flight " +
                        std::to_string(m.max_bytes_in_flight) + " for pool_wait_timeout " +
                        ms_text(pw) + "; raise them, or pool_wait_timeout");
  }
  try {
    for (;;) {
      if (pick(deadline)->enqueue(r)) return;  // else the link just closed: pick again
    }
  } catch (...) {
    caps_->give(1, r->bytes.size());
    throw;
  }
}

REDIS_TASKS_DECL bool multiplexer::help_read(clock::time_point deadline) {
  std::vector<std::shared_ptr<mux_link>> links;
  {
    const std::lock_guard<std::mutex> g(lock_.mutex());
    for (const auto& s : slots_) {
      if (s.link) links.push_back(s.link);
    }
  }
  bool helped = false;
  for (const auto& l : links)
    helped = l->drain(deadline) || helped;
  return helped;
}

REDIS_TASKS_DECL bool multiplexer::wait(const std::shared_ptr<mux_request>& r,
                                        clock::time_point deadline) {
  return r->link->wait(r, deadline);
}

REDIS_TASKS_DECL auto multiplexer::outcome_or_notify(const std::shared_ptr<mux_request>& r,
                                                     std::function<void()> resume) -> mux_outcome {
  return r->link->outcome_or_notify(r, std::move(resume));
}

REDIS_TASKS_DECL void multiplexer::abandon(const std::shared_ptr<mux_request>& r) noexcept {
  if (r->link) r->link->abandon(r);
}

REDIS_TASKS_DECL void multiplexer::give_back(std::unique_ptr<connection> c) {
  c->end_multiplexed_run();
  const std::lock_guard<std::mutex> g(lock_.mutex());
  if (spare_.size() < 1024) spare_.push_back(std::move(c));
}

REDIS_TASKS_DECL void multiplexer::forget_parent_links(
    std::vector<std::shared_ptr<mux_link>>& parents) {
  const std::uint64_t now = fork_registry::generation();
  if (owner_ == now) return;
  owner_ = now;
  for (auto& s : slots_) {
    if (s.link) parents.push_back(std::move(s.link));
    s = slot();
  }
  caps_->reset();
}

REDIS_TASKS_DECL void multiplexer::let_go(
    std::vector<std::shared_ptr<mux_link>>& parents) noexcept {
  for (const auto& l : parents)
    l->close_in_child();
  parents.clear();
}

REDIS_TASKS_DECL auto multiplexer::pick(clock::time_point deadline) -> std::shared_ptr<mux_link> {
  std::vector<std::shared_ptr<mux_link>> dropped;  // destroyed after the lock is released
  std::vector<std::shared_ptr<mux_link>> parents;  // let go of after the lock is released
  struct parents_guard {
    std::vector<std::shared_ptr<mux_link>>& links;
    ~parents_guard() { let_go(links); }
  } const let_go_parents{parents};
  std::unique_lock<std::mutex> lk(lock_.mutex());
  for (;;) {
    forget_parent_links(parents);
    std::shared_ptr<mux_link> best;
    std::size_t best_load = 0;
    slot* empty = nullptr;
    for (auto& s : slots_) {
      if (s.link && !s.link->open()) dropped.push_back(std::move(s.link));
      if (!s.link) {
        if (!s.connecting && empty == nullptr) empty = &s;
        continue;
      }
      const std::size_t load = s.link->load();
      if (!best || load < best_load) {
        best = s.link;
        best_load = load;
      }
    }
    if (best && (best_load == 0 || empty == nullptr)) return best;
    if (empty != nullptr) {
      empty->connecting = true;
      const std::uint64_t generation = owner_;
      lk.unlock();
      std::shared_ptr<mux_link> made;
      try {
        made = std::make_shared<mux_link>(std::make_unique<connection>(settings_, deadline),
                                          settings_.params.tls.enabled,
                                          settings_.params.socket_timeout, caps_);
      } catch (...) {
        lk.lock();
        if (owner_ == generation) empty->connecting = false;
        lock_.cv().notify_all();
        throw;
      }
      lk.lock();
      if (owner_ == generation) {
        empty->connecting = false;
        empty->link = made;
      }
      lock_.cv().notify_all();
      return made;
    }
    if (best) return best;
    // Every slot is being connected by another run: wait for one.
    if (lock_.cv().wait_until(lk, deadline) == std::cv_status::timeout) {
      throw timeout_error(
          "the run took longer than task.timeout waiting for a multiplexed "
          "connection to " +
          settings_.name());
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
