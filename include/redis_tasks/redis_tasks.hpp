// redis_tasks: Prefect's Redis tasks (RedisSet, RedisGet, RedisExecute) for C++, and tasks that
// coordinate processes through Redis (RedisLock, RedisSemaphore, RedisRateLimit, RedisKeySensor,
// RedisPubSubSensor, RedisPublish, RedisCache, RedisStreamAdd, RedisStreamConsumer).
// This header brings the whole public API, and the whole of nlohmann/json (tasks.hpp and the
// headers it includes declare JSON with <nlohmann/json_fwd.hpp>: see the README's "Finer
// headers").
#pragma once

#include <nlohmann/json.hpp>  // IWYU pragma: export

#include "batch.hpp"              // IWYU pragma: export
#include "cache.hpp"              // IWYU pragma: export
#include "command.hpp"            // IWYU pragma: export
#include "config_json.hpp"        // IWYU pragma: export
#include "connection.hpp"         // IWYU pragma: export
#include "connection_handle.hpp"  // IWYU pragma: export
#include "errors.hpp"             // IWYU pragma: export
#include "from_reply.hpp"         // IWYU pragma: export
#include "key_sensor.hpp"         // IWYU pragma: export
#include "lease.hpp"              // IWYU pragma: export
#include "lock.hpp"               // IWYU pragma: export
#include "observe.hpp"            // IWYU pragma: export
#include "publish.hpp"            // IWYU pragma: export
#include "pubsub_message.hpp"     // IWYU pragma: export
#include "pubsub_sensor.hpp"      // IWYU pragma: export
#include "rate_limit.hpp"         // IWYU pragma: export
#include "reply.hpp"              // IWYU pragma: export
#include "secret_provider.hpp"    // IWYU pragma: export
#include "secrets.hpp"            // IWYU pragma: export
#include "semaphore.hpp"          // IWYU pragma: export
#include "stream.hpp"             // IWYU pragma: export
#include "tasks.hpp"              // IWYU pragma: export
#include "url.hpp"                // IWYU pragma: export
#include "values.hpp"             // IWYU pragma: export
#include "version.hpp"            // IWYU pragma: export
