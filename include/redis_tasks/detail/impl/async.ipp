// The bodies of async.hpp (see ../async.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../async.hpp"
#include "../executor.hpp"
#include "../mux.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL void mux_giver::operator()(connection* c) const noexcept {
  const multiplexer::lease back(mux, std::unique_ptr<connection>(c));  // gives it back as it goes
}

REDIS_TASKS_DECL mux_connection acquire_multiplexed(multiplexer& mux, clock::time_point deadline) {
  multiplexer::lease held = mux.acquire(deadline);
  return mux_connection(held.release().release(), mux_giver{&mux});
}

REDIS_TASKS_DECL void post_async(std::function<void()> job) {
  async_executor::instance().post(std::move(job));
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
