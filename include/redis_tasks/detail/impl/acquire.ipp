// The bodies of acquire.hpp (see ../acquire.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../acquire.hpp"

#include <unistd.h>
#include <algorithm>
#include <random>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string unique_holder() {
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

REDIS_TASKS_DECL std::string seconds_text(std::chrono::milliseconds ms) {
  std::string frac = std::to_string(ms.count() % 1000);
  return std::to_string(ms.count() / 1000) + "." + std::string(3 - frac.size(), '0') + frac;
}

REDIS_TASKS_DECL long long integer_in(const reply& r, std::string_view what, const connection& c) {
  if (r.type() != reply_type::integer) {
    throw type_error(std::string(what) + " on " + c.endpoint() + ": expected an integer, got " +
                     describe_reply(r));
  }
  return r.integer();
}

REDIS_TASKS_DECL std::optional<try_outcome> try_lock_plain(connection& c,
                                                           const acquire_request& req,
                                                           const std::string& token_key,
                                                           const std::string& ttl_text,
                                                           bool transaction) {
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

REDIS_TASKS_DECL bool acquisition_void(clock::time_point sent, clock::time_point now,
                                       std::chrono::milliseconds ttl) {
  return now - sent >= ttl - ttl / 100;
}

REDIS_TASKS_DECL try_outcome try_script(connection& c, const acquire_spec& spec,
                                        const acquire_request& req, const std::string& token_key,
                                        const std::string& signal_key,
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

REDIS_TASKS_DECL std::optional<lease> acquire_lease(const std::shared_ptr<const lease_context>& ctx,
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
      // Close to the run's deadline (task.timeout) a BLPOP could end after it, since Redis ends
      // a block at its next timer tick, up to 100 ms late: there the waiter pauses on its own
      // clock between tries, and a wait that outlasts the run ends with "not acquired" shortly
      // before its deadline rather than in a timeout_error.
      auto end = wait_end;
      if (deadline != no_deadline) {
        const auto last_try = std::min(wait_end, deadline - last_try_margin);
        if (now >= last_try) return std::optional<acquired>();
        if (now >= deadline - server_block_margin) {
          auto pause = std::min<std::chrono::milliseconds>(
              std::chrono::ceil<std::chrono::milliseconds>(last_try - now), near_deadline_step);
          if (outcome.token_or_wait >= 0) {
            pause = std::min(pause, std::chrono::milliseconds(outcome.token_or_wait + 1));
          }
          (void)sleep_within(pause, deadline);
          continue;
        }
        end = std::min(end, deadline - server_block_margin);
      }
      auto step = std::min<std::chrono::milliseconds>(
          std::chrono::ceil<std::chrono::milliseconds>(end - now), longest_wait_step);
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

REDIS_TASKS_DECL void check_lease_settings(const std::string& label, std::chrono::milliseconds ttl,
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

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
