// RedisLock: a lock with an expiry and a fencing token, returning a movable `lease`.
//
// On the server, the lock key holds its holder's id with an expiry (PX ttl); `{key}:token` counts
// tries (the fencing tokens, never expiring); waiters set `{key}:waiters` (a short-lived flag)
// and block on the list `{key}:signal`, which a release pushes to while the flag is there. All
// share the key's cluster slot.
#pragma once

#include "version.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/acquire.hpp"
#include "detail/run.hpp"
#include "detail/script.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

/// The lock's acquisition (see acquire_spec: the uncontended path is a transaction; the script
/// serves a holder that holds the lock already).
REDIS_TASKS_DECL const acquire_spec& lock_spec();

/// The lock's extension and release (see lease_scripts for their keys and arguments).
REDIS_TASKS_DECL const lease_scripts& lock_scripts();

}  // namespace detail

/// RedisLock's settings: the connection fields, as every task has them, then the lock's own.
struct lock_config {
  std::string host = "localhost";                                 ///< Redis host
  int port = 6379;                                                ///< Redis port
  int db = 0;                                                     ///< database index
  std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
  connection_params redis_connection_params{};                    ///< timeouts, user, TLS, pool…
  std::optional<std::string> redis_key{};                         ///< the lock's key
  std::chrono::milliseconds ttl{30000};                           ///< expiry without renewal; > 0
  std::chrono::milliseconds wait{0};    ///< how long run() waits for it; 0: one try
  std::optional<std::string> holder{};  ///< who holds it; unset: unique per process and lease
  bool auto_renew = true;               ///< renew at a third of ttl while the lease lives
  /// Replicas that must acknowledge an acquisition (Redis WAIT) before it counts; 0: none.
  int wait_replicas = 0;
  std::chrono::milliseconds wait_replicas_timeout{1000};  ///< how long WAIT waits; > 0
  task_options task{};                                    ///< name, retries, timeout
  std::shared_ptr<const SecretProvider> secrets{};        ///< null: environment variables
  /// Run on this shared connection instead of the connection fields above.
  std::shared_ptr<connection_handle> connection{};

  /// The fields of its own that a JSON config may give (beside the connection fields).
  static constexpr const char* own_fields =
      "ttl, wait, holder, auto_renew, wait_replicas, wait_replicas_timeout";
  /// Reads one of `own_fields`; false for any other name.
  REDIS_TASKS_DECL static bool load_field(lock_config& c, const std::string& name,
                                          const nlohmann::json& v, const detail::json_fields& f);
};

/// Loads a lock_config from JSON (durations in seconds); a wrong name or type is a `config_error`
/// naming the field. (nlohmann's `get<lock_config>()` finds it.)
REDIS_TASKS_DECL void from_json(const nlohmann::json& j, lock_config& c);

/// A RedisLock run's settings; a given field wins over the config's.
struct lock_overrides {
  std::optional<std::string> redis_key{};           ///< the lock's key
  std::optional<std::chrono::milliseconds> ttl{};   ///< expiry without renewal
  std::optional<std::chrono::milliseconds> wait{};  ///< how long to wait for it
  std::optional<std::string> holder{};              ///< who holds it
};

/// A lock with an expiry and a fencing token: at most one holder at a time, and a holder that
/// dies frees it after `ttl` with no help. `run()` returns a `lease` (released when it goes),
/// or std::nullopt when the lock was not acquired within `wait` (or, when `task.timeout` ends
/// first, by its last try, 50 ms before the run's deadline).
///
/// Failover caveat: Redis replicates asynchronously, so a master that fails right after
/// granting the lock may leave a replica that never saw it, and the promoted replica can grant
/// it again. `wait_replicas` narrows that window (the acquisition must reach that many
/// replicas, or it is released and the run fails); fencing tokens (`RedisSet::fence_token`)
/// keep a superseded holder's writes out.
class RedisLock : public detail::lease_task<lock_config, lock_overrides> {
 public:
  /// The task's settings (see `lock_config`).
  using config = lock_config;
  /// A run's settings (see `lock_overrides`).
  using overrides = lock_overrides;

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  REDIS_TASKS_DECL explicit RedisLock(config cfg = {});
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/lock.ipp"
#endif
