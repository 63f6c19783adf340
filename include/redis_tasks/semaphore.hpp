// RedisSemaphore: at most `limit` holders at a time, each holding a `lease` (a permit) that
// frees itself after `ttl` if its holder dies, judged by the server's clock.
//
// On the server, the key is a sorted set of holders scored by their permit's expiry in the
// server's milliseconds (TIME): a permit is live while its score is in the future. Expired ones
// are removed by the next acquisition, and the key expires with its last permit.
// `{key}:token` numbers the permits; waiters set `{key}:waiters` and block on `{key}:signal`,
// which a release pushes to while the flag is there.
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

/// The semaphore's acquisition (see acquire_spec for the script's keys and arguments).
REDIS_TASKS_DECL const acquire_spec& semaphore_spec();

/// A permit's extension and release (see lease_scripts for their keys and arguments).
REDIS_TASKS_DECL const lease_scripts& semaphore_scripts();

}  // namespace detail

/// RedisSemaphore's settings: the connection fields, as every task has them, then the semaphore's
/// own.
struct semaphore_config {
  std::string host = "localhost";                                 ///< Redis host
  int port = 6379;                                                ///< Redis port
  int db = 0;                                                     ///< database index
  std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
  connection_params redis_connection_params{};                    ///< timeouts, user, TLS, pool…
  std::optional<std::string> redis_key{};                         ///< the semaphore's key
  long long limit = 0;                   ///< permits at once; required, > 0
  std::chrono::milliseconds ttl{30000};  ///< a permit's expiry without renewal; > 0
  std::chrono::milliseconds wait{0};     ///< how long run() waits; 0: one try
  std::optional<std::string> holder{};   ///< who holds it; unset: unique per process and permit
  bool auto_renew = true;                ///< renew at a third of ttl while the lease lives
  task_options task{};                   ///< name, retries, timeout
  std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
  /// Run on this shared connection instead of the connection fields above.
  std::shared_ptr<connection_handle> connection{};

  /// The fields of its own that a JSON config may give (beside the connection fields).
  static constexpr const char* own_fields = "limit, ttl, wait, holder, auto_renew";
  /// Reads one of `own_fields`; false for any other name.
  REDIS_TASKS_DECL static bool load_field(semaphore_config& c, const std::string& name,
                                          const nlohmann::json& v, const detail::json_fields& f);
};

/// Loads a semaphore_config from JSON (durations in seconds); a wrong name or type is a
/// `config_error` naming the field. (nlohmann's `get<semaphore_config>()` finds it.)
REDIS_TASKS_DECL void from_json(const nlohmann::json& j, semaphore_config& c);

/// A RedisSemaphore run's settings; a given field wins over the config's.
struct semaphore_overrides {
  std::optional<std::string> redis_key{};           ///< the semaphore's key
  std::optional<std::chrono::milliseconds> ttl{};   ///< a permit's expiry without renewal
  std::optional<std::chrono::milliseconds> wait{};  ///< how long to wait for a permit
  std::optional<std::string> holder{};              ///< who holds it
};

/// A concurrency limit: at most `limit` permits live at once, across processes. A crashed
/// holder's permit frees itself after `ttl` (by the server's clock) with no help. `run()`
/// returns a `lease` (the permit, released when it goes), or std::nullopt when none was free
/// within `wait` (or, when `task.timeout` ends first, by its last try, 50 ms before the
/// run's deadline).
class RedisSemaphore : public detail::lease_task<semaphore_config, semaphore_overrides> {
 public:
  /// The task's settings (see `semaphore_config`).
  using config = semaphore_config;
  /// A run's settings (see `semaphore_overrides`).
  using overrides = semaphore_overrides;

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  REDIS_TASKS_DECL explicit RedisSemaphore(config cfg = {});
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/semaphore.ipp"
#endif
