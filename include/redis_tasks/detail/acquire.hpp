// Acquiring a lease (a lock or a semaphore permit): one script per try, and between tries a
// wait that a release ends at once (BLPOP on the key's signal list), so waiters wake within
// milliseconds of a release rather than at their next poll.
#pragma once

#include "../version.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../connection.hpp"
#include "../errors.hpp"
#include "../from_reply.hpp"
#include "../lease.hpp"
#include "client.hpp"
#include "deadline.hpp"
#include "fork.hpp"
#include "keys.hpp"
#include "lease_state.hpp"
#include "renewer.hpp"
#include "run.hpp"
#include "script.hpp"
#include "task_client.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// A holder id unique to this process (host, pid, a random number) and call (a counter).
REDIS_TASKS_DECL std::string unique_holder();

/// What acquiring a kind of lease needs.
struct acquire_spec {
  /// KEYS = {key, token counter, signal list}; ARGV = {holder, ttl in ms, limit}. Answers
  /// {1, token} when acquired, else {0, ms until the earliest holder's expiry, or -1}.
  const script* acquire = nullptr;
  /// Try first with plain commands in one round trip (SET NX PX, INCR; see try_lock_plain)
  /// rather than the script: a lock's uncontended path, cheaper on the server than a script. When
  /// the key is taken, the script decides (it also serves a holder that holds the lock already, and
  /// says how long the holder has left).
  bool transaction_first = false;
  long long limit = 1;    ///< holders at once (1: a lock)
  int wait_replicas = 0;  ///< replicas that must acknowledge the acquisition (WAIT); 0: none
  std::chrono::milliseconds wait_replicas_timeout{1000};  ///< WAIT's timeout
};

/// What one acquisition asks for.
struct acquire_request {
  std::string key;     ///< the lock or semaphore key
  std::string holder;  ///< who acquires, as `lease::holder()` says
  /// What the server stores for this acquisition: the holder when it is the default (unique
  /// already), else the holder and a unique id, so that two processes given the same `holder`
  /// can never both hold the key, nor release each other's.
  std::string value;
  std::chrono::milliseconds ttl{0};   ///< how long it is held without renewal
  std::chrono::milliseconds wait{0};  ///< how long to wait for it (0: one try)
  bool auto_renew = true;             ///< renew at a third of the ttl while the lease lives
};

/// The longest a waiter blocks on one pooled connection before it tries again (a release wakes
/// it at once): short, so that waiters cannot keep the pool from holders' renewals for long.
inline constexpr std::chrono::milliseconds longest_wait_step{250};

/// How long before a run's deadline (task.timeout) a waiter makes its last try.
inline constexpr std::chrono::milliseconds last_try_margin{50};

/// The pause between tries of a waiter too close to its run's deadline for a server-side wait.
inline constexpr std::chrono::milliseconds near_deadline_step{25};

/// "0.250": a BLPOP timeout in seconds.
REDIS_TASKS_DECL std::string seconds_text(std::chrono::milliseconds ms);

/// How long the waiters flag lasts after a waiter's last try: past any wait step, so that a
/// release while someone waits always leaves a wake-up.
inline constexpr std::string_view waiters_flag_ms = "2000";

/// One try: acquired with its token, or not with the current holder's remaining ttl (-1: none).
struct try_outcome {
  bool acquired = false;
  long long token_or_wait = -1;
};

/// Reads one integer of a script's or transaction's answer, or throws a type_error naming
/// `what`.
REDIS_TASKS_DECL long long integer_in(const reply& r, std::string_view what, const connection& c);

/// Tries a lock with plain commands in one round trip: its token when acquired, nullopt when
/// the key was taken (the script decides then).
///
/// On a single server or behind Sentinel the commands are a plain pipeline, `SET key value NX
/// PX ttl` then `INCR` of the token counter, which costs the server less than MULTI/EXEC. The
/// counter is raised on every try, taken or not. Tokens still rise from holder to holder: a
/// successor's SET succeeds only once this holder's key is gone, which is after this INCR ran
/// unless the key expired in between; and then this reply came more than `ttl` after it was
/// sent, so acquire_lease voids the acquisition (see acquisition_void). On a cluster the pair is
/// one MULTI/EXEC, so that an ASK or MOVED redirect applies to both or neither.
REDIS_TASKS_DECL std::optional<try_outcome> try_lock_plain(connection& c,
                                                           const acquire_request& req,
                                                           const std::string& token_key,
                                                           const std::string& ttl_text,
                                                           bool transaction);

/// Whether an acquisition whose request was sent at `sent` is void because its reply came too
/// late: its ttl (less 1% for clocks that run at different rates) ran out before the reply
/// came, so the lease would be born lost, and (plain pipeline) its token may have been taken
/// after a successor's.
REDIS_TASKS_DECL bool acquisition_void(clock::time_point sent, clock::time_point now,
                                       std::chrono::milliseconds ttl);

/// Tries with the kind's script. `flag`: set the waiters flag first.
REDIS_TASKS_DECL try_outcome try_script(connection& c, const acquire_spec& spec,
                                        const acquire_request& req, const std::string& token_key,
                                        const std::string& signal_key,
                                        const std::string& waiters_key, const std::string& ttl_text,
                                        const std::string& limit_text, bool flag);

/// Acquires a lease, waiting up to `req.wait`; std::nullopt when it was not acquired in time.
/// The whole run, waiting included, is one run for hooks and retries (task_options).
///
/// A waiter sets the waiters flag before each try after the first, so that a release that comes
/// after that try leaves a wake-up on the signal list; it then blocks on the list (BLPOP), for
/// at most a short step and the current holder's remaining ttl.
REDIS_TASKS_DECL std::optional<lease> acquire_lease(const std::shared_ptr<const lease_context>& ctx,
                                                    const acquire_spec& spec, acquire_request req);

/// Checks the fields every lease-giving task has; `label` names the task.
REDIS_TASKS_DECL void check_lease_settings(const std::string& label, std::chrono::milliseconds ttl,
                                           std::chrono::milliseconds wait,
                                           const std::optional<std::string>& holder);

/// A run's acquisition: the config's settings, with the run's overrides winning.
template <class Config, class Overrides>
acquire_request lease_request(const Config& cfg, const Overrides& o, const std::string& label) {
  acquire_request req;
  req.key = o.redis_key ? *o.redis_key : cfg.redis_key.value_or("");
  if (req.key.empty()) {
    throw config_error(label + ": redis_key is missing; give it in the config or in run()");
  }
  req.ttl = o.ttl.value_or(cfg.ttl);
  req.wait = o.wait.value_or(cfg.wait);
  const auto& holder = o.holder ? o.holder : cfg.holder;
  if (o.ttl || o.wait || o.holder) check_lease_settings(label, req.ttl, req.wait, holder);
  if (holder) {
    req.holder = *holder;
    req.value = *holder + "/" + unique_holder();
  } else {
    req.holder = unique_holder();
    req.value = req.holder;
  }
  req.auto_renew = cfg.auto_renew;
  return req;
}

/// What RedisLock and RedisSemaphore share: the settings every lease-giving task has, checked
/// when it is built, and runs that acquire a lease.
template <class Config, class Overrides>
class lease_task {
 public:
  /// Acquires a lease (the lock, or a permit), waiting up to `wait` (woken by a release, not
  /// only by polling): a held `lease`, or std::nullopt when none came free in time.
  std::optional<lease> run(const Overrides& o = {}) const {
    check_live(context_.get(), kind_);
    return acquire_lease(context_, spec_, lease_request(cfg_, o, label_));
  }
  /// Same as `run(o)`.
  std::optional<lease> operator()(const Overrides& o = {}) const { return run(o); }
  /// The settings the task was built with.
  const Config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key.
  const std::string& name() const noexcept { return name_; }

 protected:
  /// Checks the settings every lease-giving task has; `kind` is the class, `what` names its key
  /// in messages ("lock").
  lease_task(Config cfg, const char* kind, const char* what)
      : cfg_(std::move(cfg)),
        label_(task_label(cfg_.task, kind)),
        kind_(kind),
        name_(task_name(cfg_.task, kind, cfg_.redis_key.value_or(""))) {
    check_retry_options(cfg_.task, label_);
    check_lease_settings(label_, cfg_.ttl, cfg_.wait, cfg_.holder);
    if (cfg_.redis_key && cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is empty; give the " + what + "'s key");
    }
  }
  /// Opens the task's client (no connection yet) once the kind's scripts are known.
  void start(const acquire_spec& spec, const lease_scripts& scripts) {
    spec_ = spec;
    context_ = std::make_shared<const lease_context>(
        lease_context{client_for(cfg_, label_), cfg_.task, name_, scripts});
  }

  Config cfg_;         ///< the settings
  std::string label_;  ///< the class and name, for messages

 private:
  const char* kind_;  // the class, for the error of a moved-from task
  std::string name_;
  acquire_spec spec_;
  std::shared_ptr<const lease_context> context_;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/acquire.ipp"
#endif
