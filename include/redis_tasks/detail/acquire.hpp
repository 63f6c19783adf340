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
#include <utility>

#include <unistd.h>

#include "../connection.hpp"
#include "../errors.hpp"
#include "../from_reply.hpp"
#include "../lease.hpp"
#include "client.hpp"
#include "deadline.hpp"
#include "keys.hpp"
#include "lease_state.hpp"
#include "renewer.hpp"
#include "run.hpp"
#include "script.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// A holder id unique to this process (host, pid, a random number) and call (a counter).
inline std::string unique_holder() {
  static const std::string host = [] {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return std::string("host");
    return std::string(name);
  }();
  static const std::uint64_t nonce = [] {
    try {
      std::random_device rd;
      return (std::uint64_t{rd()} << 32) ^ rd();
    } catch (...) {  // no entropy source: the clock still tells processes apart
      return static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
    }
  }();
  static std::atomic<std::uint64_t> counter{0};
  char hex[17];
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i)
    hex[i] = digits[(nonce >> (60 - 4 * i)) & 0xF];
  hex[16] = '\0';
  return host + ":" + std::to_string(::getpid()) + ":" + hex + ":" +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

/// What acquiring a kind of lease needs.
struct acquire_spec {
  /// KEYS = {key, token counter, signal list}; ARGV = {holder, ttl in ms, limit}. Answers
  /// {1, token} when acquired, else {0, ms until the earliest holder's expiry, or -1}.
  const script* acquire = nullptr;
  lease_scripts lease;    ///< extending and releasing what was acquired
  long long limit = 1;    ///< holders at once (1: a lock)
  int wait_replicas = 0;  ///< replicas that must acknowledge the acquisition (WAIT); 0: none
  std::chrono::milliseconds wait_replicas_timeout{1000};  ///< WAIT's timeout
};

/// What one acquisition asks for.
struct acquire_request {
  std::string key;                    ///< the lock or semaphore key
  std::string holder;                 ///< who acquires
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

/// Acquires a lease, waiting up to `req.wait`; std::nullopt when it was not acquired in time.
/// The whole run, waiting included, is one run for hooks and retries (task_options).
inline std::optional<lease> acquire_lease(const std::shared_ptr<client>& cl,
                                          const task_options& task, const std::string& name,
                                          const acquire_spec& spec, const acquire_request& req) {
  const std::string token_key = companion_key(req.key, "token");
  const std::string signal_key = companion_key(req.key, "signal");
  const std::string ttl_text = std::to_string(req.ttl.count());
  const std::string limit_text = std::to_string(spec.limit);
  const std::string context = "acquiring " + quote_for_message(req.key);
  const auto wait_end = saturating_add(clock::now(), req.wait);
  struct acquired {
    std::uint64_t token = 0;
    clock::time_point sent;
    long long replicas = -1;  // replicas that acknowledged (with wait_replicas), else -1
  };
  const run_info info{name, req.key, "EVALSHA", cl->endpoint()};
  const auto got = with_retries(task, info, [&](clock::time_point deadline) {
    for (;;) {
      const auto sent = clock::now();
      auto outcome = cl->run(req.key, deadline, [&](connection& c) {
        reply r = call_script(c, *spec.acquire, context, {req.key, token_key, signal_key},
                              {req.holder, ttl_text, limit_text});
        const auto& e = r.elements();
        if (r.type() != reply_type::array || e.size() != 2 || e[0].type() != reply_type::integer ||
            e[1].type() != reply_type::integer) {
          throw type_error(context + " on " + c.endpoint() + ": the script answered " +
                           describe_reply(r) + ", not {acquired, token or wait}");
        }
        std::pair<bool, long long> out{e[0].integer() == 1, e[1].integer()};
        long long replicas = -1;
        if (out.first && spec.wait_replicas > 0) {
          // WAIT counts the replicas that have this connection's writes: the acquisition.
          c.stretch_timeout(spec.wait_replicas_timeout);
          reply w = c.call({"WAIT", std::to_string(spec.wait_replicas),
                            std::to_string(spec.wait_replicas_timeout.count())});
          if (w.is_error())
            throw reply_error(w.str(), "WAIT after " + context + " on " + c.endpoint());
          replicas = w.integer();
          if (replicas < spec.wait_replicas) {
            const std::string signal_ttl =
                std::to_string(std::max<long long>(1000, req.ttl.count()));
            (void)call_script(c, *spec.lease.release, "releasing " + quote_for_message(req.key),
                              {req.key, signal_key},
                              {req.holder, signal_ttl, std::to_string(spec.lease.signals)});
          }
        }
        return std::make_pair(out, replicas);
      });
      if (outcome.first.first) {
        if (spec.wait_replicas > 0 && outcome.second < spec.wait_replicas) {
          throw connection_error(
              context + ": only " + std::to_string(outcome.second) + " of the " +
              std::to_string(spec.wait_replicas) + " replicas asked for (wait_replicas) " +
              "acknowledged the acquisition within " + ms_text(spec.wait_replicas_timeout) +
              ", so it was released; a failover could have granted it twice");
        }
        return std::optional<acquired>(
            acquired{static_cast<std::uint64_t>(outcome.first.second), sent, outcome.second});
      }
      const auto now = clock::now();
      if (now >= wait_end) return std::optional<acquired>();
      auto step = std::min<std::chrono::milliseconds>(
          std::chrono::ceil<std::chrono::milliseconds>(wait_end - now), longest_wait_step);
      // The current holder's expiry frees it without a release: try again then.
      const long long expires_in = outcome.first.second;
      if (expires_in >= 0) step = std::min(step, std::chrono::milliseconds(expires_in + 1));
      if (step.count() < 1) continue;
      cl->run(signal_key, deadline, [&](connection& c) {
        c.stretch_timeout(step);
        reply r = c.call({"BLPOP", signal_key, seconds_text(step)});
        if (r.is_error())
          throw reply_error(r.str(),
                            "waiting for " + quote_for_message(req.key) + " on " + c.endpoint());
        return 0;
      });
    }
  });
  if (!got) return std::nullopt;
  auto state = std::make_shared<lease_state>(cl, spec.lease, task, req.key, req.holder, got->token,
                                             req.ttl, got->sent, name);
  lease l = lease_access::make(state);
  if (req.auto_renew) {
    renewer::instance().add(state, saturating_add(got->sent, lease_state::renew_every(req.ttl)));
  }
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
  if (ttl > std::chrono::hours(24) * 365 * 30) {
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
  req.holder = holder ? *holder : unique_holder();
  req.auto_renew = cfg.auto_renew;
  return req;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
