// Redis Sentinel: find the master by name, and find it again after a failover.
#pragma once

#include "../version.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "address.hpp"
#include "deadline.hpp"
#include "pool.hpp"
#include "single_flight.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Asks the sentinels where the master is (SENTINEL get-master-addr-by-name), checks the answer
/// with ROLE, and keeps the master's pool until told the master is gone.
class sentinel_router {
 public:
  REDIS_TASKS_DECL explicit sentinel_router(endpoint_settings base);

  /// The current master's pool, looking the master up if it is not known, by `deadline`. One
  /// thread looks it up at a time; the others wait for it, each no longer than its own deadline
  /// (no lock is held across the lookup's network I/O).
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> master_pool(clock::time_point deadline);

  /// The master answered READONLY, the connection broke or a new one found a replica: look it
  /// up again next time.
  REDIS_TASKS_DECL void invalidate(const std::shared_ptr<connection_pool>& seen);

  /// "master 'name' of sentinels host:port …", for messages.
  const std::string& name() const noexcept { return description_; }

 private:
  // Asks each sentinel in turn, until one names a master that says it is one.
  REDIS_TASKS_DECL std::shared_ptr<connection_pool> resolve(clock::time_point deadline);

  endpoint_settings base_;
  std::string description_;
  fork_safe_lock lock_;   // guards master_, briefly
  single_flight lookup_;  // one lookup at a time
  std::shared_ptr<connection_pool> master_;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/sentinel.ipp"
#endif
