// The bodies of executor.hpp (see ../executor.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../executor.hpp"

#include <new>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL auto async_executor::instance() -> async_executor& {
  alignas(async_executor) static unsigned char storage[sizeof(async_executor)];
  static auto* e = ::new (storage) async_executor();
  return *e;
}

REDIS_TASKS_DECL void async_executor::post(std::function<void()> job) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  forget_parent_threads();
  jobs_.push_back(std::move(job));
  if (idle_ > 0) {
    lock_.cv().notify_one();
    return;
  }
  if (threads_ >= max_threads) return;  // a busy thread takes it when it is done
  ++threads_;
  try {
    std::thread([this, generation = generation_] { work(generation); }).detach();
  } catch (...) {
    --threads_;
    if (threads_ == 0) {
      jobs_.pop_back();
      throw;
    }
  }
}

REDIS_TASKS_DECL std::size_t async_executor::busy_threads() {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  forget_parent_threads();
  return threads_ - idle_;
}

REDIS_TASKS_DECL void async_executor::forget_parent_threads() {
  const std::uint64_t now = fork_registry::generation();
  if (generation_ == now) return;
  generation_ = now;
  jobs_.clear();
  threads_ = 0;
  idle_ = 0;
}

REDIS_TASKS_DECL void async_executor::work(std::uint64_t generation) {
  std::unique_lock<std::mutex> lk(lock_.mutex());
  for (;;) {
    if (generation != fork_registry::generation()) {
      // This thread called fork() in a job and goes on in the child: the parent's queued jobs
      // are not the child's to run, and it is the child's only executor thread.
      forget_parent_threads();
      generation = generation_;
      ++threads_;
    }
    if (!jobs_.empty()) {
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();  // never throws: see start_async
      job = nullptr;
      lk.lock();
      continue;
    }
    ++idle_;
    const bool woke =
        lock_.cv().wait_for(lk, std::chrono::seconds(5)) == std::cv_status::no_timeout;
    --idle_;
    if (!woke && jobs_.empty()) {
      --threads_;
      return;
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
