// The bodies of async.hpp (see ../async.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../async.hpp"
#include "../executor.hpp"
#include "../mux.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::shared_ptr<connection> acquire_multiplexed(multiplexer& mux,
                                                                 clock::time_point deadline) {
  // The pointer owns the lease and points at its connection.
  auto held = std::make_shared<multiplexer::lease>(mux.acquire(deadline));
  connection* const c = &**held;
  return std::shared_ptr<connection>(held, c);
}

REDIS_TASKS_DECL void post_async(std::function<void()> job) {
  async_executor::instance().post(std::move(job));
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
