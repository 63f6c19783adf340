// The bodies of store.hpp (see ../store.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../store.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string fence_key_for(std::string_view key) {
  return companion_key(key, "fence");
}

REDIS_TASKS_DECL const script& fenced_set_script() {
  static const script s(R"lua(
local seen = redis.call('GET', KEYS[2])
if seen and (#seen > #ARGV[1] or (#seen == #ARGV[1] and seen > ARGV[1])) then
  return {-1, seen}
end
if ARGV[4] ~= '' then
  local exists = redis.call('EXISTS', KEYS[1]) == 1
  if (ARGV[4] == 'NX' and exists) or (ARGV[4] == 'XX' and not exists) then return {0, ''} end
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
local fence_ttl = redis.call('PTTL', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1])
if fence_ttl > 0 then redis.call('PEXPIRE', KEYS[2], fence_ttl) end
return {1, ''}
)lua");
  return s;
}

REDIS_TASKS_DECL std::string key_subject(std::string_view key) {
  return "key " + quote_for_message(key);
}

REDIS_TASKS_DECL void throw_fenced_out(std::string_view key, std::uint64_t token,
                                       const std::string& seen, const connection& c) {
  throw lease_lost_error("writing " + key_subject(key) + " on " + c.endpoint() +
                         " with fence_token " + std::to_string(token) +
                         ": a later holder already wrote it with fence_token " + seen +
                         ", so this holder's lease was lost; nothing was written");
}

REDIS_TASKS_DECL void throw_reply(const reply& r, std::string_view what, std::string_view key,
                                  const connection& c) {
  throw reply_error(r.str(),
                    std::string(what) + " " + quote_for_message(key) + " on " + c.endpoint());
}

REDIS_TASKS_DECL std::string swap_key_for(std::string_view key) {
  return companion_key(key, "redis_tasks:swap");
}

REDIS_TASKS_DECL bool finish_write(connection& c, std::string_view key, const queued_write& q) {
  if (!q.transaction && q.fenced) {
    if (q.loaded) {
      reply loaded = c.read();
      if (loaded.is_error()) {
        (void)c.read();  // the write's own reply
        throw_reply(loaded, "SCRIPT LOAD for a fenced SET of", key, c);
      }
    }
    reply r = c.read();
    if (is_noscript(r)) throw fence_script_missing{};
    if (r.is_error()) throw_reply(r, "fenced SET", key, c);
    const auto& e = r.elements();
    if (r.type() != reply_type::array || e.size() != 2 || e[0].type() != reply_type::integer) {
      c.mark_out_of_step();
      throw type_error("writing " + key_subject(key) + " on " + c.endpoint() +
                       ": the fenced-write script answered " + describe_reply(r));
    }
    if (e[0].integer() < 0) throw_fenced_out(key, q.token, e[1].str(), c);
    return e[0].integer() == 1;
  }
  if (!q.transaction) {
    reply r = c.read();
    if (r.is_error()) throw_reply(r, "SET", key, c);
    return !r.is_nil();
  }
  reply multi = c.read();
  // In step: MULTI answered +OK and every command +QUEUED (or an error, which EXECABORT
  // reports), so EXEC's reply below really is the answer to this transaction.
  bool in_step = multi.type() == reply_type::status && multi.str() == "OK";
  std::optional<reply> first_error;
  if (multi.is_error()) first_error = std::move(multi);
  for (std::size_t i = 0; i < q.queued; ++i) {
    reply r = c.read();
    if (!r.is_error() && !(r.type() == reply_type::status && r.str() == "QUEUED")) in_step = false;
    if (r.is_error() && !first_error) first_error = std::move(r);
  }
  reply exec = c.read();
  // A command refused while queuing (EXECABORT) names the real cause in its own reply.
  if (exec.is_error()) throw_reply(first_error ? *first_error : exec, "writing", key, c);
  if (in_step && exec.is_nil()) {
    // EXEC answers nil only when it discarded every queued command (a WATCHed key changed).
    // Nothing we send WATCHes, so a WATCH was left on this connection: close it. Nothing was
    // written, so running the write again on a new connection is safe, and a connection_error
    // is what task retries (task.max_retries) repeat.
    c.mark_broken();
    throw connection_error("writing " + key_subject(key) + " on " + c.endpoint() +
                           ": the server discarded the transaction (EXEC answered nil, as after "
                           "a WATCHed key changed) and wrote nothing; the connection was closed, "
                           "so a retry starts on a new one");
  }
  if (exec.type() != reply_type::array || exec.elements().size() != q.queued) {
    // The replies are out of step with the commands (or something between us and the server
    // changed the transaction): whether, and what, EXEC ran is unknown, so the write may have
    // happened. Not a connection_error, which task retries would repeat without saying so
    // (an NX write that did happen would then report "not stored"): a type_error, which is
    // never retried and, as for any reply of the wrong shape, names what came back.
    c.mark_out_of_step();
    throw type_error("writing " + key_subject(key) + " on " + c.endpoint() + ": EXEC answered " +
                     describe_reply(exec) + " for the " + std::to_string(q.queued) +
                     " commands of the transaction" +
                     (in_step ? "" : ", and earlier replies were out of step") +
                     "; the connection was closed. The value may or may not have been written, "
                     "so the run is not retried: read the key before writing it again");
  }
  for (const auto& r : exec.elements()) {
    if (r.is_error()) throw_reply(r, "writing", key, c);
  }
  const reply& last = exec.elements().back();
  if (q.fenced && last.type() != reply_type::integer) throw_fenced_out(key, q.token, last.str(), c);
  return !q.conditional || last.integer() == 1;
}

REDIS_TASKS_DECL bool has_non_finite(const nlohmann::json& j) {
  if (j.is_number_float()) return !std::isfinite(j.get<double>());
  if (j.is_structured()) {
    for (const auto& e : j) {
      if (has_non_finite(e)) return true;
    }
  }
  return false;
}

REDIS_TASKS_DECL std::string type_of_key(connection& c, std::string_view key) {
  reply t = c.call({"TYPE", key});
  if (t.is_error()) throw_reply(t, "TYPE", key, c);
  return t.str();
}

REDIS_TASKS_DECL void throw_wrong_type(std::string_view key, const std::string& holds,
                                       category wanted, std::string_view cpp_type) {
  std::string hint;
  if (wanted == category::bytes) {
    hint =
        "; a byte vector is stored as one binary string: read a list of numbers as "
        "std::vector<int>";
  }
  throw type_error(key_subject(key) + " holds a " + holds + ", but " + std::string(cpp_type) +
                   " expects " + category_description(wanted) + hint);
}

REDIS_TASKS_DECL std::string take_text(reply& r, std::string_view key) {
  if (r.type() == reply_type::string || r.type() == reply_type::status ||
      r.type() == reply_type::verbatim) {
    return std::move(r.take_str());
  }
  throw type_error("reading " + key_subject(key) + ": expected a bulk string element, got " +
                   to_string(r.type()));
}

REDIS_TASKS_DECL void append_read(connection& c, redis_kind k, std::string_view key) {
  switch (k) {
    case redis_kind::string:
      c.append({"GET", key});
      break;
    case redis_kind::list:
      c.append({"LRANGE", key, "0", "-1"});
      break;
    case redis_kind::set:
      c.append({"SMEMBERS", key});
      break;
    case redis_kind::hash:
      c.append({"HGETALL", key});
      break;
    case redis_kind::zset:
      c.append({"ZRANGE", key, "0", "-1", "WITHSCORES"});
      break;
  }
}

REDIS_TASKS_DECL std::optional<value> read_any(connection& c, std::string_view key,
                                               std::string_view cpp_type) {
  constexpr int attempts = 100;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const std::string t = type_of_key(c, key);
    try {
      if (t == "none") return std::nullopt;
      std::optional<value> v;
      if (t == "string") {
        if (auto s = read_direct<std::string>(c, key, cpp_type)) v = std::move(*s);
      } else if (t == "list") {
        if (auto s = read_direct<std::vector<std::string>>(c, key, cpp_type)) v = std::move(*s);
      } else if (t == "set") {
        if (auto s = read_direct<std::set<std::string>>(c, key, cpp_type)) v = std::move(*s);
      } else if (t == "hash") {
        if (auto s = read_direct<std::map<std::string, std::string>>(c, key, cpp_type)) {
          v = std::move(*s);
        }
      } else if (t == "zset") {
        if (auto s = read_direct<sorted_set<std::string>>(c, key, cpp_type)) v = std::move(*s);
      } else {
        throw type_error(key_subject(key) + " holds a " + t + ", which " + std::string(cpp_type) +
                         " cannot hold (it reads string, list, set, hash and zset)");
      }
      if (v) return v;
      // The key vanished between TYPE and the read: look again.
    } catch (const type_error&) {
      // The key changed type between TYPE and the read; look again unless it really is foreign.
      if (t != "string" && t != "list" && t != "set" && t != "hash" && t != "zset") throw;
      if (type_of_key(c, key) == t) throw;
    }
  }
  // Writers keep replacing the key with values of other types. That is no connection fault
  // (and a connection_error would also make a cluster reload its slot map and a sentinel setup
  // look up its master again), so a type_error about the key's type, never retried, whose
  // message says how to read the key.
  throw type_error("reading " + key_subject(key) + " on " + c.endpoint() +
                   ": its type changed between TYPE and the read " + std::to_string(attempts) +
                   " times in a row, as concurrent writers replace it with values of other "
                   "types; read it as the one type the writers agree on (e.g. RedisGet<"
                   "std::vector<std::string>> for a list) or read it again once they settle");
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
