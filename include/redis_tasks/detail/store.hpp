// Writing a C++ value to a key and reading it back, for every storable type: the Redis
// commands behind RedisSet and RedisGet.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "../errors.hpp"
#include "../from_reply.hpp"
#include "../reply.hpp"
#include "../values.hpp"
#include "codec.hpp"
#include "connection.hpp"
#include "json.hpp"
#include "keys.hpp"
#include "script.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// SET's condition.
enum class condition { none, nx, xx };

/// How a value is written: its expiry and condition, as SET takes them.
struct write_options {
  std::optional<std::chrono::milliseconds> expiry;  ///< PX; unset: no expiry
  condition cond = condition::none;                 ///< NX / XX
  /// A lease's fencing token: the write is refused if a larger one already wrote the key.
  std::optional<std::uint64_t> fence;
  /// Send the fenced-write script's text (EVAL), because the server did not have it.
  bool script_text = false;
  /// Load the fenced-write script (SCRIPT LOAD) before it runs: the first fenced write of a
  /// batch, so that a NOSCRIPT cannot send it back to run after the items behind it.
  bool load_script = false;
};

/// Where the largest fencing token that wrote `key` is kept.
REDIS_TASKS_DECL std::string fence_key_for(std::string_view key);

/// Thrown by `finish_write` when the server did not have the fenced-write script (NOSCRIPT):
/// nothing was written, and the write is sent again with the script's text.
struct fence_script_missing {};

/// Writes one string value if no larger fencing token wrote the key before, and records the
/// token (keeping the record's expiry, if it has one: a cache expires it with its entry). KEYS =
/// {key, fence record}; ARGV = {token, value, PX ms or '', 'NX', 'XX' or ''}. Tokens are compared
/// as decimal digit strings (exact beyond 2^53). Answers {1, ''} when written, {0, ''} when NX/XX
/// prevented it, {-1, the larger token} when fenced out.
REDIS_TASKS_DECL const script& fenced_set_script();

/// "key \"name\"" for messages.
REDIS_TASKS_DECL std::string key_subject(std::string_view key);

/// The lease_lost_error of a fenced write that came after a later holder's.
[[noreturn]] REDIS_TASKS_DECL void throw_fenced_out(std::string_view key, std::uint64_t token,
                                                    const std::string& seen, const connection& c);

[[noreturn]] REDIS_TASKS_DECL void throw_reply(const reply& r, std::string_view what,
                                               std::string_view key, const connection& c);

// ---- collections as command chunks ------------------------------------------------------------

/// Elements per RPUSH/SADD/HSET/ZADD when a collection is written; keeps each command small.
inline constexpr std::size_t chunk_elements = 1024;

template <class T>
void append_collection(connection& c, std::string_view key, const T& v) {
  constexpr category cat = category_of<T>();
  const char* verb = cat == category::list   ? "RPUSH"
                     : cat == category::set  ? "SADD"
                     : cat == category::hash ? "HSET"
                                             : "ZADD";
  const std::size_t per_element = (cat == category::hash || cat == category::zset) ? 2 : 1;
  number_buffer a;
  number_buffer b;
  auto it = std::begin(v);
  auto left = static_cast<std::size_t>(std::distance(std::begin(v), std::end(v)));
  while (left > 0) {
    const std::size_t k = std::min(left, chunk_elements);
    c.begin_command(2 + k * per_element);
    c.arg(verb);
    c.arg(key);
    for (std::size_t i = 0; i < k; ++i, ++it) {
      if constexpr (cat == category::hash) {
        c.arg(it->first);
        c.arg(element_text(it->second, a));
      } else if constexpr (cat == category::zset) {
        c.arg(format_number(it->score, b));
        c.arg(element_text(it->member, a));
      } else {
        c.arg(element_text(*it, a));
      }
    }
    c.end_command();
    left -= k;
  }
}

/// Where a conditional write builds the new collection before the script moves it into place:
/// a companion key, in `key`'s cluster slot as EVAL needs.
REDIS_TASKS_DECL std::string swap_key_for(std::string_view key);

/// Decides NX/XX and puts the collection built in KEYS[2] in place of KEYS[1] (or deletes
/// KEYS[1] when KEYS[2] is empty, i.e. the collection was), with the expiry ARGV[2] in ms or
/// none. With a fencing token ARGV[3], the write is refused if the fence record KEYS[3] holds a
/// larger one, and the token is recorded when written. Returns 1 when written, 0 when the
/// condition ARGV[1] prevented it, the larger token (a string) when fenced out.
inline constexpr std::string_view conditional_swap_script = R"lua(
local token = ARGV[3]
if token then
  local seen = redis.call('GET', KEYS[3])
  if seen and (#seen > #token or (#seen == #token and seen > token)) then
    redis.call('DEL', KEYS[2])
    return seen
  end
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'NX' and exists) or (ARGV[1] == 'XX' and not exists) then
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[1])
  if ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  else
    redis.call('PERSIST', KEYS[1])
  end
else
  redis.call('DEL', KEYS[1])
end
if token then
  local fence_ttl = redis.call('PTTL', KEYS[3])
  redis.call('SET', KEYS[3], token)
  if fence_ttl > 0 then redis.call('PEXPIRE', KEYS[3], fence_ttl) end
end
return 1
)lua";

/// How long a swap key may outlive a transaction whose script failed (it never should).
inline constexpr std::string_view swap_key_ttl_ms = "60000";

/// Replaces `key` with a collection, atomically, with SET's expiry and condition.
///
/// Why one MULTI/EXEC: it replaces the key in one step however many RPUSH/SADD/HSET/ZADD
/// chunks the collection takes, so a million elements go out in bounded client memory, with no
/// Lua unpack limit and no argv of a million entries; no reader sees a partial value.
///
/// Why NX/XX are decided by a short script queued at the end of that same transaction, rather
/// than by WATCH + EXISTS and a retry when EXEC fails: a retry re-sends the whole collection,
/// and any write landing while it is sent fails it again, so a large conditional write starved
/// behind a stream of small ones (a 200k-element XX write gave up after 1000 attempts against
/// four small writers). Here the chunks fill a swap key and the script, run atomically at EXEC,
/// checks the condition and renames the swap key into place or drops it: one round trip, no
/// retries, and concurrent writers are ordered exactly like concurrent SETs. The script is sent
/// with EVAL, not EVALSHA: a NOSCRIPT error would only show at EXEC, after the chunks had run.
/// The swap key gets a short TTL before the script runs, so it cannot linger even if the script
/// failed.
/// What a queued write waits for: the replies that belong to it, read by `finish_write`.
struct queued_write {
  bool transaction = false;  ///< MULTI … EXEC (a collection) rather than one SET
  bool conditional = false;  ///< NX/XX decided by the swap script (its reply is EXEC's last)
  bool fenced = false;       ///< a fenced write (the fenced-set script, or the swap script)
  std::uint64_t token = 0;   ///< its fencing token
  bool loaded = false;       ///< a SCRIPT LOAD was queued before it
  // Companion keys, kept here because a request references long arguments until it is
  // flushed (see request_encoder::external_threshold).
  std::string swap_key;
  std::string fence_key;
  std::size_t queued = 0;  ///< commands between MULTI and EXEC
};

template <class T>
queued_write queue_collection(connection& c, std::string_view key, const T& v,
                              const write_options& o) {
  if constexpr (category_of<T>() == category::zset) {
    // Checked here as well as by the task, because a value_traits type reaches this point only
    // through to_storage. ZADD would refuse a NaN and abort the whole transaction.
    for (const auto& e : v) {
      if (std::isnan(e.score)) {
        throw config_error("the value for " + key_subject(key) +
                           " has a NaN sorted-set score; Redis scores must be numbers");
      }
    }
  }
  const auto n = static_cast<std::size_t>(std::distance(std::begin(v), std::end(v)));
  char ms_buf[32];
  std::string_view ms;
  if (o.expiry) {
    auto res = std::to_chars(ms_buf, ms_buf + sizeof ms_buf, o.expiry->count());
    ms = std::string_view(ms_buf, static_cast<std::size_t>(res.ptr - ms_buf));
  }
  queued_write q;
  q.transaction = true;
  q.conditional = o.cond != condition::none || o.fence.has_value();
  q.fenced = o.fence.has_value();
  q.token = o.fence.value_or(0);
  if (q.conditional) q.swap_key = swap_key_for(key);
  if (q.fenced) q.fence_key = fence_key_for(key);
  const std::string& swap = q.swap_key;
  const std::string_view target = q.conditional ? std::string_view(swap) : key;

  c.append({"MULTI"});
  c.append({"DEL", target});
  q.queued = 1;
  if (n > 0) {
    append_collection(c, target, v);
    q.queued += (n + chunk_elements - 1) / chunk_elements;
  }
  if (q.conditional) {
    if (n > 0) {
      c.append({"PEXPIRE", swap, swap_key_ttl_ms});
      ++q.queued;
    }
    const std::string_view cond = o.cond == condition::nx   ? "NX"
                                  : o.cond == condition::xx ? "XX"
                                                            : "";
    if (o.fence) {
      const std::string token = std::to_string(*o.fence);  // short: copied
      c.append({"EVAL", conditional_swap_script, "3", key, swap, q.fence_key, cond, ms, token});
    } else {
      c.append({"EVAL", conditional_swap_script, "2", key, swap, cond, ms});
    }
    ++q.queued;
  } else if (n > 0 && o.expiry) {
    c.append({"PEXPIRE", key, ms});
    ++q.queued;
  }
  c.append({"EXEC"});
  return q;
}

/// Queues the commands that write `v` to `key` (nothing is flushed). `v` must be of a stored
/// category (not a `value_traits` type nor JSON: convert those first, see `converted`), and
/// must stay alive until the request is flushed, since long arguments are not copied.
template <class T>
queued_write queue_write(connection& c, std::string_view key, const T& v, const write_options& o) {
  constexpr category cat = category_of<T>();
  static_assert(cat != category::user && cat != category::json && cat != category::none,
                "queue_write takes stored values: convert value_traits and JSON types first");
  if constexpr (cat == category::any) {
    return std::visit([&](const auto& alt) { return queue_write(c, key, alt, o); }, v);
  } else if constexpr (kind_of(cat) == redis_kind::string) {
    number_buffer numbers;
    std::string_view value;
    if constexpr (cat == category::string || cat == category::bytes) {
      value = element_text(v, numbers);  // a view of v
    } else {
      value = format_number(v, numbers);  // short: copied into the request right away
    }
    char ms_buf[32];
    if (o.fence) {
      std::string_view ms;
      if (o.expiry) {
        auto res = std::to_chars(ms_buf, ms_buf + sizeof ms_buf, o.expiry->count());
        ms = std::string_view(ms_buf, static_cast<std::size_t>(res.ptr - ms_buf));
      }
      queued_write q;
      q.fenced = true;
      q.token = *o.fence;
      q.fence_key = fence_key_for(key);
      if (o.load_script) {
        c.append({"SCRIPT", "LOAD", fenced_set_script().text()});
        q.loaded = true;
      }
      const std::string token = std::to_string(*o.fence);  // short: copied
      queue_script(c, fenced_set_script(), o.script_text, {key, q.fence_key},
                   {token, value, ms,
                    o.cond == condition::nx   ? "NX"
                    : o.cond == condition::xx ? "XX"
                                              : ""});
      return q;
    }
    std::string_view args[6] = {"SET", key, value};
    std::size_t n = 3;
    if (o.expiry) {
      auto res = std::to_chars(ms_buf, ms_buf + sizeof ms_buf, o.expiry->count());
      args[n++] = "PX";
      args[n++] = std::string_view(ms_buf, static_cast<std::size_t>(res.ptr - ms_buf));
    }
    if (o.cond == condition::nx) args[n++] = "NX";
    if (o.cond == condition::xx) args[n++] = "XX";
    c.append(args, n);
    return queued_write{};
  } else {
    return queue_collection(c, key, v, o);
  }
}

/// Reads the replies of a queued write; true when stored, false when NX/XX prevented it.
/// Throws `reply_error` for a refused write, after reading all of its replies.
REDIS_TASKS_DECL bool finish_write(connection& c, std::string_view key, const queued_write& q);

/// The type T is written as: a `value_traits` type as (the stored form of) its storage type,
/// a JSON type as its text, anything else as itself.
template <class T, class = void>
struct stored_form {
  using type = T;
};
template <class T>
struct stored_form<T, std::enable_if_t<category_of<T>() == category::user>> {
  using type = typename stored_form<typename value_traits<T>::storage_type>::type;
};
template <class T>
struct stored_form<T, std::enable_if_t<category_of<T>() == category::json>> {
  using type = std::string;
};
/// The type T is written as.
template <class T>
using stored_form_t = typename stored_form<T>::type;

/// True when `j` holds a NaN or an infinite number anywhere.
REDIS_TASKS_DECL bool has_non_finite(const nlohmann::json& j);

/// `v` converted to its stored form (for `value_traits` and JSON types only).
/// A JSON value that cannot be written (e.g. invalid UTF-8) is a `config_error` naming `label`.
template <class T>
stored_form_t<T> converted(const T& v, const std::string& label) {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::user) {
    return converted(value_traits<T>::to_storage(v), label);
  } else if constexpr (cat == category::json) {
    static_assert(json_complete<T>::value, REDIS_TASKS_JSON_NEEDED);
    using json = json_t<T>;
    try {
      // JSON has no NaN or infinity: nlohmann would write them as null, and the value would
      // not read back.
      auto checked = [&label](const json& j) {
        if (has_non_finite(j)) {
          throw config_error(label +
                             ": the value holds NaN or infinity, which JSON cannot hold (it "
                             "would be stored as null)");
        }
        return j.dump();
      };
      if constexpr (std::is_same_v<T, json>) {
        return checked(v);
      } else {
        return checked(json(v));
      }
    } catch (const typename json::exception& e) {
      throw config_error(label + ": the value cannot be written as JSON (" + e.what() + ")");
    }
  } else {
    return v;
  }
}

/// Writes `v` to `key` as the Redis type that fits T; false when NX/XX prevented it.
template <class T>
bool write_value(connection& c, std::string_view key, const T& v, const write_options& o) {
  constexpr category cat = category_of<T>();
  static_assert(
      cat != category::none,
      "redis_tasks cannot store this type: use a string, a number, a container of "
      "those, sorted_set, a JSON-convertible type (with <nlohmann/json.hpp> included), or "
      "specialize value_traits");
  if constexpr (cat == category::user || cat == category::json) {
    const auto stored = converted(v, "writing " + key_subject(key));
    return write_value(c, key, stored, o);
  } else {
    c.begin_request();
    const queued_write q = queue_write(c, key, v, o);
    c.flush();
    try {
      return finish_write(c, key, q);
    } catch (const fence_script_missing&) {
      write_options with_text = o;
      with_text.script_text = true;
      c.begin_request();
      const queued_write again = queue_write(c, key, v, with_text);
      c.flush();
      return finish_write(c, key, again);
    }
  }
}

// ---- reading ----------------------------------------------------------------------------------

/// The Redis type `key` holds now ("none" if it does not exist).
REDIS_TASKS_DECL std::string type_of_key(connection& c, std::string_view key);

[[noreturn]] REDIS_TASKS_DECL void throw_wrong_type(std::string_view key, const std::string& holds,
                                                    category wanted, std::string_view cpp_type);

template <class T>
T decode_string(std::string&& s, std::string_view key) {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::string) {
    static_assert(std::is_same_v<T, std::string>,
                  "read strings as std::string: a std::string_view cannot own what Redis sent");
    return std::move(s);
  } else if constexpr (cat == category::bytes) {
    return bytes_from_text<T>(s);
  } else if constexpr (cat == category::number) {
    return parse_number<T>(s, key_subject(key));
  } else {
    static_assert(json_complete<T>::value, REDIS_TASKS_JSON_NEEDED);
    using json = json_t<T>;
    json j;
    try {
      parse_json(s, j);
    } catch (const typename json::parse_error& e) {
      throw type_error(key_subject(key) + " holds a string that is not valid JSON (byte " +
                       std::to_string(e.byte) + ")");
    }
    if constexpr (std::is_same_v<T, json>) {
      return j;
    } else {
      try {
        return j.template get<T>();
      } catch (const typename json::exception& e) {
        throw type_error(key_subject(key) +
                         " holds JSON that does not convert to the requested "
                         "type: " +
                         e.what());
      }
    }
  }
}

REDIS_TASKS_DECL std::string take_text(reply& r, std::string_view key);

template <class T>
T decode_collection(reply& r, std::string_view key) {
  constexpr category cat = category_of<T>();
  const std::string subject = key_subject(key);
  auto& el = r.elements();
  T out;
  if constexpr (cat == category::list) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<T, std::vector<E, typename T::allocator_type>>) {
      out.reserve(el.size());
    }
    for (auto& e : el)
      out.push_back(element_from_text<E>(take_text(e, key), subject));
  } else if constexpr (cat == category::set) {
    using E = typename T::value_type;
    for (auto& e : el)
      out.insert(element_from_text<E>(take_text(e, key), subject));
  } else if constexpr (cat == category::hash) {
    using E = typename T::mapped_type;
    for (std::size_t i = 0; i + 1 < el.size(); i += 2) {
      std::string field = take_text(el[i], key);
      out.insert_or_assign(std::move(field),
                           element_from_text<E>(take_text(el[i + 1], key), subject));
    }
  } else {
    using E = decltype(std::declval<typename T::value_type>().member);
    auto add = [&](reply& m, reply& s) {
      double score = s.type() == reply_type::double_value
                         ? s.number()
                         : parse_number<double>(take_text(s, key), subject);
      out.add(element_from_text<E>(take_text(m, key), subject), score);
    };
    out.reserve(el.size() / 2);
    if (!el.empty() && el.front().type() == reply_type::array) {  // RESP3: [member, score] pairs
      for (auto& pair : el) {
        if (pair.elements().size() == 2) add(pair.elements()[0], pair.elements()[1]);
      }
    } else {
      for (std::size_t i = 0; i + 1 < el.size(); i += 2)
        add(el[i], el[i + 1]);
    }
  }
  return out;
}

/// The read command for a kind, with its arguments after the key.
REDIS_TASKS_DECL void append_read(connection& c, redis_kind k, std::string_view key);

/// Reads `key` as T; `std::nullopt` when it does not exist. `cpp_type` names T in messages.
template <class T>
std::optional<T> read_value(connection& c, std::string_view key, std::string_view cpp_type);

/// The value in the reply to a read of `key` (see `append_read`); `std::nullopt` when the key
/// does not exist. An error reply is a `reply_error` (WRONGTYPE is the caller's to explain).
template <class T>
std::optional<T> decode_read(reply&& r, std::string_view key, const connection& c) {
  constexpr redis_kind kind = kind_of(category_of<T>());
  if (r.is_error()) throw_reply(r, "reading", key, c);
  if constexpr (kind == redis_kind::string) {
    if (r.is_nil()) return std::nullopt;
    return decode_string<T>(std::move(r.take_str()), key);
  } else {
    if (r.elements().empty()) return std::nullopt;  // Redis has no empty collections
    return decode_collection<T>(r, key);
  }
}

template <class T>
std::optional<T> read_direct(connection& c, std::string_view key, std::string_view cpp_type) {
  constexpr category cat = category_of<T>();
  c.begin_request();
  append_read(c, kind_of(cat), key);
  c.flush();
  reply r = c.read();
  if (r.is_error() && r.str().compare(0, 9, "WRONGTYPE") == 0) {
    throw_wrong_type(key, type_of_key(c, key), cat, cpp_type);
  }
  return decode_read<T>(std::move(r), key, c);
}

REDIS_TASKS_DECL std::optional<value> read_any(connection& c, std::string_view key,
                                               std::string_view cpp_type);

template <class T>
std::optional<T> read_value(connection& c, std::string_view key, std::string_view cpp_type) {
  constexpr category cat = category_of<T>();
  static_assert(cat != category::none,
                "redis_tasks cannot read this type: use a string, a number, a container of "
                "those, sorted_set, value, a JSON-convertible type (with <nlohmann/json.hpp> "
                "included), or specialize value_traits");
  if constexpr (cat == category::user) {
    using S = typename value_traits<T>::storage_type;
    auto s = read_value<S>(c, key, cpp_type);
    if (!s) return std::nullopt;
    // What a user's from_storage throws becomes a type_error about this key; a library error
    // (a type_error of its own) is kept as it is.
    try {
      return value_traits<T>::from_storage(std::move(*s));
    } catch (const redis_tasks::error&) {
      throw;
    } catch (const std::exception& e) {
      throw type_error(key_subject(key) + " on " + c.endpoint() + " does not make a " +
                       std::string(cpp_type) + ": " + e.what());
    }
  } else if constexpr (cat == category::any) {
    return read_any(c, key, cpp_type);
  } else {
    return read_direct<T>(c, key, cpp_type);
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/store.ipp"
#endif
