// Acquiring a lease (a lock or a semaphore permit): one script per try, and between tries a
// wait that a release ends at once (BLPOP on the key's signal list), so waiters wake within
// milliseconds of a release rather than at their next poll.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include <unistd.h>

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
inline std::string unique_holder() {
  static const std::uint64_t nonce = [] {
    try {
      std::random_device rd;
      return (std::uint64_t{rd()} << 32) ^ rd();
    } catch (...) {  // no entropy source: the clock still tells processes apart
      return static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
    }
  }();
  static std::atomic<std::uint64_t> counter{0};
  // "host:pid:nonce:", made once per thread and process (a fork() child has another pid).
  struct prefix_cache {
    std::uint64_t generation = ~std::uint64_t{0};
    std::string text;
  };
  thread_local prefix_cache cache;
  const std::uint64_t generation = fork_registry::generation();
  if (cache.generation != generation) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    char hex[17];
    static constexpr char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i)
      hex[i] = digits[(nonce >> (60 - 4 * i)) & 0xF];
    hex[16] = '\0';
    cache.text = std::string(host[0] != '\0' ? host : "host") + ":" + std::to_string(::getpid()) +
                 ":" + hex + ":";
    cache.generation = generation;
  }
  std::string id;
  id.reserve(cache.text.size() + 20);
  id += cache.text;
  id += std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
  return id;
}

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

/// "0.250": a BLPOP timeout in seconds.
inline std::string seconds_text(std::chrono::milliseconds ms) {
  std::string frac = std::to_string(ms.count() % 1000);
  return std::to_string(ms.count() / 1000) + "." + std::string(3 - frac.size(), '0') + frac;
}

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
inline long long integer_in(const reply& r, std::string_view what, const connection& c) {
  if (r.type() != reply_type::integer) {
    throw type_error(std::string(what) + " on " + c.endpoint() + ": expected an integer, got " +
                     describe_reply(r));
  }
  return r.integer();
}

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
inline std::optional<try_outcome> try_lock_plain(connection& c, const acquire_request& req,
                                                 const std::string& token_key,
                                                 const std::string& ttl_text, bool transaction) {
  c.begin_request();
  if (transaction) c.append({"MULTI"});
  c.append({"SET", req.key, req.value, "NX", "PX", ttl_text});
  c.append({"INCR", token_key});
  if (transaction) c.append({"EXEC"});
  c.flush();
  auto fail = [&](const reply& r) {
    throw reply_error(r.str(), "acquiring " + quote_for_message(req.key) + " on " + c.endpoint());
  };
  std::optional<try_outcome> out;
  auto decide = [&](const reply& set, const reply& incr) {
    if (set.is_error()) fail(set);
    if (incr.is_error()) fail(incr);
    if (set.is_nil()) return;
    out.emplace();
    out->acquired = true;
    out->token_or_wait = integer_in(incr, "the token counter", c);
  };
  if (!transaction) {
    reply set = c.read();
    reply incr = c.read();
    decide(set, incr);
    return out;
  }
  std::optional<reply> first_error;
  constexpr std::size_t before_exec = 3;
  for (std::size_t i = 0; i < before_exec; ++i) {
    reply r = c.read();
    if (r.is_error() && !first_error) first_error = std::move(r);
  }
  reply exec = c.read();
  if (first_error) fail(*first_error);
  if (exec.is_error()) fail(exec);
  if (exec.type() != reply_type::array || exec.elements().size() != 2) {
    c.mark_out_of_step();
    throw type_error("acquiring " + quote_for_message(req.key) + " on " + c.endpoint() +
                     ": EXEC answered " + describe_reply(exec) + " for 2 commands");
  }
  decide(exec.elements()[0], exec.elements()[1]);
  return out;
}

/// Whether an acquisition whose request was sent at `sent` is void because its reply came too
/// late: its ttl (less 1% for clocks that run at different rates) ran out before the reply
/// came, so the lease would be born lost, and (plain pipeline) its token may have been taken
/// after a successor's.
inline bool acquisition_void(clock::time_point sent, clock::time_point now,
                             std::chrono::milliseconds ttl) {
  return now - sent >= ttl - ttl / 100;
}

/// Tries with the kind's script. `flag`: set the waiters flag first.
inline try_outcome try_script(connection& c, const acquire_spec& spec, const acquire_request& req,
                              const std::string& token_key, const std::string& signal_key,
                              const std::string& waiters_key, const std::string& ttl_text,
                              const std::string& limit_text, bool flag) {
  if (flag) {
    c.begin_request();
    c.append({"SET", waiters_key, "1", "PX", waiters_flag_ms});
    c.flush();
    reply r = c.read();
    if (r.is_error()) {
      throw reply_error(r.str(),
                        "waiting for " + quote_for_message(req.key) + " on " + c.endpoint());
    }
  }
  reply r = call_script(c, *spec.acquire, "acquiring", req.key, {req.key, token_key, signal_key},
                        {req.value, ttl_text, limit_text});
  const auto& e = r.elements();
  if (r.type() != reply_type::array || e.size() != 2) {
    throw type_error("acquiring " + quote_for_message(req.key) + " on " + c.endpoint() +
                     ": the script answered " + describe_reply(r) +
                     ", not {acquired, token or wait}");
  }
  try_outcome out;
  out.acquired = integer_in(e[0], "the script's answer", c) == 1;
  out.token_or_wait = integer_in(e[1], "the script's answer", c);
  return out;
}

/// Acquires a lease, waiting up to `req.wait`; std::nullopt when it was not acquired in time.
/// The whole run, waiting included, is one run for hooks and retries (task_options).
///
/// A waiter sets the waiters flag before each try after the first, so that a release that comes
/// after that try leaves a wake-up on the signal list; it then blocks on the list (BLPOP), for
/// at most a short step and the current holder's remaining ttl.
inline std::optional<lease> acquire_lease(const std::shared_ptr<const lease_context>& ctx,
                                          const acquire_spec& spec, acquire_request req) {
  client& cl = *ctx->cl;
  const std::string token_key = companion_key(req.key, "token");
  if (!cl.pipelines() && key_slot(token_key) != key_slot(req.key)) {
    // Redis Cluster: the companion keys would live in another slot than the key.
    throw config_error("the key " + quote_for_message(req.key) +
                       " has a '}' but no hash tag before it, so on a Redis Cluster the keys "
                       "that go with it cannot share its slot; use a key without '}', or with a "
                       "hash tag such as {name}");
  }
  const std::string ttl_text = std::to_string(req.ttl.count());
  const std::string limit_text = std::to_string(spec.limit);
  const auto wait_end = saturating_add(clock::now(), req.wait);
  std::string signal_key;
  std::string waiters_key;
  auto companions = [&] {
    if (!signal_key.empty()) return;
    signal_key = companion_key(req.key, "signal");
    waiters_key = companion_key(req.key, "waiters");
  };
  if (!spec.transaction_first || spec.wait_replicas > 0) companions();
  struct acquired {
    std::uint64_t token = 0;
    clock::time_point sent;
  };
  const run_info info{ctx->name, req.key, spec.transaction_first ? "SET" : "EVALSHA",
                      cl.endpoint()};
  const auto got = with_retries(ctx->task, info, [&](clock::time_point deadline) {
    for (bool waiting = false;; waiting = true) {
      if (waiting) companions();
      const auto sent = clock::now();
      long long replicas = -1;
      const try_outcome outcome = cl.run(req.key, deadline, [&](connection& c) {
        std::optional<try_outcome> o;
        // A waiter's tries go straight to the script, which also says how long to wait.
        if (spec.transaction_first && !waiting) {
          o = try_lock_plain(c, req, token_key, ttl_text, !cl.pipelines());
        }
        if (!o) {
          companions();
          o = try_script(c, spec, req, token_key, signal_key, waiters_key, ttl_text, limit_text,
                         waiting);
        }
        if (o->acquired && acquisition_void(sent, clock::now(), req.ttl)) {
          // Born lost: give the key back (if it is still ours) and try again while wait lasts.
          companions();
          (void)call_script(c, *ctx->scripts.release, "releasing", req.key,
                            {req.key, signal_key, waiters_key},
                            {req.value, std::to_string(std::max<long long>(1000, req.ttl.count())),
                             std::to_string(ctx->scripts.signals)});
          o->acquired = false;
          o->token_or_wait = 0;
          return *o;
        }
        if (o->acquired && spec.wait_replicas > 0) {
          // WAIT counts the replicas that have this connection's writes: the acquisition.
          c.stretch_timeout(spec.wait_replicas_timeout);
          reply w = c.call({"WAIT", std::to_string(spec.wait_replicas),
                            std::to_string(spec.wait_replicas_timeout.count())});
          if (w.is_error()) {
            throw reply_error(w.str(), "WAIT after acquiring " + quote_for_message(req.key) +
                                           " on " + c.endpoint());
          }
          replicas = integer_in(w, "WAIT", c);
          if (replicas < spec.wait_replicas) {
            const std::string signal_ttl =
                std::to_string(std::max<long long>(1000, req.ttl.count()));
            (void)call_script(c, *ctx->scripts.release, "releasing", req.key,
                              {req.key, signal_key, waiters_key},
                              {req.value, signal_ttl, std::to_string(ctx->scripts.signals)});
          }
        }
        return *o;
      });
      if (outcome.acquired) {
        if (spec.wait_replicas > 0 && replicas < spec.wait_replicas) {
          throw connection_error(
              "acquiring " + quote_for_message(req.key) + ": only " + std::to_string(replicas) +
              " of the " + std::to_string(spec.wait_replicas) +
              " replicas asked for (wait_replicas) acknowledged the acquisition within " +
              ms_text(spec.wait_replicas_timeout) +
              ", so it was released; a failover could have granted it twice");
        }
        return std::optional<acquired>(
            acquired{static_cast<std::uint64_t>(outcome.token_or_wait), sent});
      }
      const auto now = clock::now();
      if (now >= wait_end) return std::optional<acquired>();
      if (!waiting) continue;  // try once more with the waiters flag set, then wait
      auto step = std::min<std::chrono::milliseconds>(
          std::chrono::ceil<std::chrono::milliseconds>(wait_end - now), longest_wait_step);
      // The current holder's expiry frees it without a release: try again then.
      if (outcome.token_or_wait >= 0) {
        step = std::min(step, std::chrono::milliseconds(outcome.token_or_wait + 1));
      }
      if (step.count() < 1) continue;
      cl.run(signal_key, deadline, [&](connection& c) {
        c.stretch_timeout(step);
        reply r = c.call({"BLPOP", signal_key, seconds_text(step)});
        if (r.is_error()) {
          throw reply_error(r.str(),
                            "waiting for " + quote_for_message(req.key) + " on " + c.endpoint());
        }
        return 0;
      });
    }
  });
  if (!got) return std::nullopt;
  const bool auto_renew = req.auto_renew;
  auto state = std::make_shared<lease_state>(ctx, std::move(req.key), std::move(req.holder),
                                             std::move(req.value), got->token, req.ttl, got->sent,
                                             auto_renew);
  lease l = lease_access::make(state);
  if (auto_renew) renewer::instance().add(state);
  return std::optional<lease>(std::move(l));
}

/// Checks the fields every lease-giving task has; `label` names the task.
inline void check_lease_settings(const std::string& label, std::chrono::milliseconds ttl,
                                 std::chrono::milliseconds wait,
                                 const std::optional<std::string>& holder) {
  if (ttl.count() <= 0) {
    throw config_error(label + ": ttl must be positive, got " + std::to_string(ttl.count()) +
                       " ms; a lease without expiry would wedge its key if its holder died");
  }
  if (ttl > longest_lease_ttl) {
    throw config_error(label + ": ttl of " + std::to_string(ttl.count()) +
                       " ms is too large (at most 30 years)");
  }
  if (wait.count() < 0) {
    throw config_error(label + ": wait must not be negative (0: one try), got " +
                       std::to_string(wait.count()) + " ms");
  }
  if (holder && holder->empty()) {
    throw config_error(label + ": holder is empty; leave it unset for a unique id");
  }
}

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
