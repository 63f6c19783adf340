// Compiled mode: the bodies of the library's non-template functions, for exactly one
// translation unit of a program whose every translation unit defines
// REDIS_TASKS_SEPARATE_COMPILATION (as Boost.Redis's src.hpp and Asio's impl/src.hpp do):
//
//     // redis_tasks.cpp
//     #include <redis_tasks/src.hpp>
//
// The other files then compile only declarations, which makes them faster to build.
#pragma once

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#error \
    "redis_tasks/src.hpp is for compiled mode: define REDIS_TASKS_SEPARATE_COMPILATION for every translation unit of the program (or use the header-only library and leave this file out)"
#endif

#include "redis_tasks.hpp"

#include "detail/impl/acquire.ipp"
#include "detail/impl/address.ipp"
#include "detail/impl/async.ipp"
#include "detail/impl/client.ipp"
#include "detail/impl/cluster.ipp"
#include "detail/impl/codec.ipp"
#include "detail/impl/command_policy.ipp"
#include "detail/impl/connection.ipp"
#include "detail/impl/deadline.ipp"
#include "detail/impl/executor.ipp"
#include "detail/impl/fork.ipp"
#include "detail/impl/keys.ipp"
#include "detail/impl/lease_state.ipp"
#include "detail/impl/listener.ipp"
#include "detail/impl/mux.ipp"
#include "detail/impl/mux_request.ipp"
#include "detail/impl/pool.ipp"
#include "detail/impl/renewer.ipp"
#include "detail/impl/resp.ipp"
#include "detail/impl/run.ipp"
#include "detail/impl/script.ipp"
#include "detail/impl/sentinel.ipp"
#include "detail/impl/sha1.ipp"
#include "detail/impl/sha256.ipp"
#include "detail/impl/socket.ipp"
#include "detail/impl/store.ipp"
#include "detail/impl/subscriber.ipp"
#include "detail/impl/task_client.ipp"
#include "detail/impl/tls.ipp"
#include "impl/cache.ipp"
#include "impl/command.ipp"
#include "impl/config_json.ipp"
#include "impl/connection.ipp"
#include "impl/connection_handle.ipp"
#include "impl/errors.ipp"
#include "impl/from_reply.ipp"
#include "impl/key_sensor.ipp"
#include "impl/lease.ipp"
#include "impl/lock.ipp"
#include "impl/observe.ipp"
#include "impl/pubsub_sensor.ipp"
#include "impl/rate_limit.ipp"
#include "impl/reply.ipp"
#include "impl/secret_provider.ipp"
#include "impl/secrets.ipp"
#include "impl/semaphore.ipp"
#include "impl/stream.ipp"
#include "impl/tasks.ipp"
#include "impl/url.ipp"
