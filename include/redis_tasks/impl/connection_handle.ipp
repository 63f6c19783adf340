// The bodies of connection_handle.hpp (see ../connection_handle.hpp): included by that header, or
// compiled once by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../connection_handle.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL auto connection_handle::make(settings s) -> std::shared_ptr<connection_handle> {
  return std::shared_ptr<connection_handle>(new connection_handle(std::move(s)));
}

REDIS_TASKS_DECL connection_handle::connection_handle(settings s) : settings_(std::move(s)) {
  // The handle's pools and routers are its own: never found in, nor added to, the registry
  // that tasks without a handle share.
  auto es = detail::settings_of(settings_, "connection_handle");
  es.params.shared_pool = false;
  client_ = std::make_shared<detail::client>(std::move(es));
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
