// The bodies of renewer.hpp (see ../renewer.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../renewer.hpp"

#include <new>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL auto renewer::instance() -> renewer& {
  alignas(renewer) static unsigned char storage[sizeof(renewer)];
  static auto* r = ::new (storage) renewer();
  return *r;
}

REDIS_TASKS_DECL void renewer::add(const std::shared_ptr<lease_state>& lease) {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  const std::uint64_t generation = fork_registry::generation();
  if (thread_generation_ != generation) {
    // A fork() child: the parent's thread does not exist here, and its leases are not ours.
    due_.clear();
    wakes_at_ = clock::time_point::max();
    try {
      std::thread(&renewer::loop, this, generation).detach();
    } catch (const std::system_error& e) {
      throw error(std::string("cannot start the thread that renews leases (auto_renew): ") +
                  e.what() + "; set auto_renew to false and extend leases yourself");
    }
    thread_generation_ = generation;
  }
  queue(lease.get(), lease, lease->next_renewal());
}

REDIS_TASKS_DECL void renewer::rescheduled(lease_state* lease) {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  // Not queued: the thread is renewing it now, and queues it again by its new times after.
  if (auto weak = unqueue(lease)) queue(lease, std::move(*weak), lease->next_renewal());
}

REDIS_TASKS_DECL void renewer::removed(lease_state* lease) {
  const std::lock_guard<std::mutex> g(lock_.mutex());
  (void)unqueue(lease);
}

REDIS_TASKS_DECL void renewer::queue(lease_state* key, std::weak_ptr<lease_state> lease,
                                     clock::time_point when) {
  due_.emplace(when, entry{key, std::move(lease)});
  key->queued_at = when;
  if (when < wakes_at_) lock_.cv().notify_one();
}

REDIS_TASKS_DECL auto renewer::unqueue(lease_state* key)
    -> std::optional<std::weak_ptr<lease_state>> {
  if (!key->queued_at) return std::nullopt;
  const auto range = due_.equal_range(*key->queued_at);
  key->queued_at.reset();
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second.key != key) continue;
    std::weak_ptr<lease_state> weak = std::move(it->second.lease);
    due_.erase(it);
    return weak;
  }
  return std::nullopt;
}

REDIS_TASKS_DECL void renewer::loop(std::uint64_t generation) {
  std::unique_lock<std::mutex> g(lock_.mutex());
  for (;;) {
    if (fork_registry::generation() != generation) return;  // defensive: never in a child
    if (due_.empty()) {
      wakes_at_ = clock::time_point::max();
      lock_.cv().wait(g);
      wakes_at_ = clock::time_point::min();  // awake: it looks at the queue before sleeping
      continue;
    }
    const auto first = due_.begin();
    if (first->first > clock::now()) {
      // A copy: while the thread waits, the entry may be taken out of the queue.
      const clock::time_point when = first->first;
      wakes_at_ = when;
      lock_.cv().wait_until(g, when);
      wakes_at_ = clock::time_point::min();
      continue;
    }
    entry e = std::move(first->second);
    due_.erase(first);
    auto lease = e.lease.lock();
    if (!lease) continue;
    lease->queued_at.reset();
    g.unlock();
    std::optional<clock::time_point> retry_at;
    const bool go_on = lease->renew(retry_at);  // I/O without the lock
    g.lock();
    if (go_on && lease->held())
      queue(e.key, std::move(e.lease), retry_at ? *retry_at : lease->next_renewal());
    g.unlock();
    lease.reset();  // may be the last reference: destroyed without the lock
    g.lock();
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
