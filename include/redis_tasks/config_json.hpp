// Task configs from JSON, with Prefect's argument names, so that a workflow described in a
// JSON file can build its tasks: `RedisSet<T>::config c = j.get<RedisSet<T>::config>();`.
#pragma once

#include "version.hpp"

#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "command.hpp"
#include "connection.hpp"
#include "detail/codec.hpp"
#include "detail/json.hpp"
#include "errors.hpp"
#include "url.hpp"
#include "values.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Reads a JSON file; a syntax error is a `config_error` naming the file, line and column.
REDIS_TASKS_DECL nlohmann::json load_json_file(const std::string& path);

/// sorted_set from JSON: `[["member", score], …]` or `{"member": score, …}`.
template <class E>
void from_json(const nlohmann::json& json_in, sorted_set<E>& s) {
  static_assert(detail::json_complete<E>::value, REDIS_TASKS_JSON_NEEDED);
  using json = detail::json_t<E>;
  const json& j = json_in;
  s = sorted_set<E>();
  if (j.is_object()) {
    for (const auto& item : j.items()) {
      if constexpr (std::is_same_v<E, std::string>) {
        s.add(item.key(), item.value().template get<double>());
      } else {
        json member;
        detail::parse_json(item.key(), member);
        s.add(member.template get<E>(), item.value().template get<double>());
      }
    }
    return;
  }
  for (const auto& e : j) {
    if (!e.is_array() || e.size() != 2) {
      throw json::type_error::create(302, "a sorted_set entry must be [member, score]", &e);
    }
    s.add(e[0].template get<E>(), e[1].template get<double>());
  }
}

/// sorted_set to JSON: `[["member", score], …]` in its current order.
template <class E>
void to_json(nlohmann::json& json_out, const sorted_set<E>& s) {
  static_assert(detail::json_complete<E>::value, REDIS_TASKS_JSON_NEEDED);
  using json = detail::json_t<E>;
  json& j = json_out;
  j = json::array();
  for (const auto& e : s)
    j.push_back(json::array({e.member, e.score}));
}

namespace detail {

template <class C, class = void>
struct has_redis_key : std::false_type {};
template <class C>
struct has_redis_key<C, std::void_t<decltype(std::declval<C&>().redis_key)>> : std::true_type {};
template <class C, class = void>
struct has_redis_val : std::false_type {};
template <class C>
struct has_redis_val<C, std::void_t<decltype(std::declval<C&>().redis_val)>> : std::true_type {};
/// RedisSet's write options (ex, px, nx, xx, fence_token): not every config with a redis_val
/// has them (RedisStreamAdd does not).
template <class C, class = void>
struct has_set_options : std::false_type {};
template <class C>
struct has_set_options<C, std::void_t<decltype(std::declval<C&>().ex)>> : std::true_type {};
template <class C, class = void>
struct has_redis_cmd : std::false_type {};
template <class C>
struct has_redis_cmd<C, std::void_t<decltype(std::declval<C&>().redis_cmd)>> : std::true_type {};

/// True when a task's `redis_val` of type T can be read from JSON: through its `value_traits`
/// storage type when that is readable (the specialization wins, as when storing), else with
/// nlohmann's own conversion. A `std::string_view` cannot own JSON text; `value` (a
/// std::variant) and a user type whose storage JSON cannot give are not readable either.
template <class T>
constexpr bool json_value_readable() {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return false;
  } else if constexpr (has_user_traits<T>::value) {
    if constexpr (json_value_readable<typename value_traits<T>::storage_type>()) {
      return true;
    } else {
      return json_readable<T>::value;
    }
  } else {
    return json_readable<T>::value;
  }
}

/// Reads a T for which `json_value_readable<T>()` holds, by the same route.
template <class T>
T json_value(const nlohmann::json& json_in) {
  const json_t<T>& v = json_in;
  if constexpr (has_user_traits<T>::value) {
    using S = typename value_traits<T>::storage_type;
    if constexpr (json_value_readable<S>()) {
      return value_traits<T>::from_storage(json_value<S>(v));
    } else {
      return v.template get<T>();
    }
  } else {
    return v.template get<T>();
  }
}

/// Reads the fields of a JSON config object, each checked, with messages naming the field.
struct json_fields {
  std::string where;  ///< the object, e.g. "config" or "tasks[2].config"

  REDIS_TASKS_DECL config_error field_error(const std::string& name, const std::string& want,
                                            const nlohmann::json& got) const;
  REDIS_TASKS_DECL std::string string(const std::string& name, const nlohmann::json& v) const;
  /// A whole number in [lo, hi]; out of range is an error naming the field, never truncated.
  REDIS_TASKS_DECL long long whole(const std::string& name, const nlohmann::json& v, long long lo,
                                   long long hi) const;
  REDIS_TASKS_DECL bool boolean(const std::string& name, const nlohmann::json& v) const;
  /// Seconds as milliseconds: a positive value under 1 ms is 1 ms, not 0 (which means "none").
  REDIS_TASKS_DECL std::chrono::milliseconds seconds(const std::string& name,
                                                     const nlohmann::json& v) const;
  /// A string, or null for none.
  REDIS_TASKS_DECL std::optional<std::string> optional_string(const std::string& name,
                                                              const nlohmann::json& v) const;
};

/// A config with fields of its own (the coordination tasks) lists them in `own_fields` and
/// reads them with `load_field(config&, name, value, json_fields) -> bool` (false: not one).
template <class C, class = void>
struct has_own_fields : std::false_type {};
template <class C>
struct has_own_fields<C, std::void_t<decltype(C::own_fields)>> : std::true_type {};

template <class Config>
bool load_own_field(Config& c, const std::string& name, const nlohmann::json& v,
                    const json_fields& f) {
  if constexpr (has_own_fields<Config>::value) {
    return Config::load_field(c, name, v, f);
  } else {
    (void)c, (void)name, (void)v, (void)f;
    return false;
  }
}

/// Loads a task config from a JSON object with Prefect's argument names. `where` names the
/// object in messages (e.g. "tasks[2].config"); `kind` is the task class.
template <class Config>
void load_config(const nlohmann::json& json_in, Config& c, const std::string& where,
                 const char* kind) {
  static_assert(json_complete<Config>::value, REDIS_TASKS_JSON_NEEDED);
  using json = json_t<Config>;
  const json& j = json_in;
  std::string accepted = "url, host, port, db, password_secret, redis_connection_params, task";
  if constexpr (has_redis_key<Config>::value) accepted += ", redis_key";
  if constexpr (has_redis_val<Config>::value) accepted += ", redis_val";
  if constexpr (has_set_options<Config>::value) accepted += ", ex, px, nx, xx, fence_token";
  if constexpr (has_redis_cmd<Config>::value) accepted += ", redis_cmd";
  if constexpr (has_own_fields<Config>::value) accepted += std::string(", ") + Config::own_fields;
  if (!j.is_object()) {
    throw config_error(where + ": a " + std::string(kind) + " config must be a JSON object, got " +
                       j.type_name());
  }
  const json_fields f{where};
  auto field_error = [&](const std::string& name, const std::string& want,
                         const nlohmann::json& got) { return f.field_error(name, want, got); };
  auto get_string = [&](const std::string& name, const nlohmann::json& v) {
    return f.string(name, v);
  };
  auto get_int = [&](const std::string& name, const nlohmann::json& v, long long lo, long long hi) {
    return f.whole(name, v, lo, hi);
  };
  constexpr long long int_max = std::numeric_limits<int>::max();
  constexpr long long ll_min = std::numeric_limits<long long>::min();
  constexpr long long ll_max = std::numeric_limits<long long>::max();
  auto get_bool = [&](const std::string& name, const nlohmann::json& v) {
    return f.boolean(name, v);
  };
  auto get_seconds = [&](const std::string& name, const nlohmann::json& v) {
    return f.seconds(name, v);
  };
  // "url" first, so that the other fields can refine what it sets.
  if (j.contains("url")) apply_url(c, get_string("url", j.at("url")));
  for (const auto& item : j.items()) {
    const std::string& name = item.key();
    const json& v = item.value();
    // Branches whose if-constexpr bodies a Config lacks are empty alike: not clones.
    if (name == "url") {  // NOLINT(bugprone-branch-clone)
      continue;
    } else if (name == "host") {
      c.host = get_string(name, v);
    } else if (name == "port") {
      // 1..65535, as a task checks it for TCP (a unix socket ignores the port).
      c.port = static_cast<int>(get_int(name, v, 1, 65535));
    } else if (name == "db") {
      c.db = static_cast<int>(get_int(name, v, 0, int_max));
    } else if (name == "password_secret") {
      c.password_secret =
          v.is_null() ? std::nullopt : std::optional<std::string>(get_string(name, v));
    } else if (name == "redis_connection_params") {
      try {
        apply_params(c.redis_connection_params, v);
      } catch (const config_error& e) {
        throw config_error(where + ": " + e.what());
      }
    } else if (name == "task") {
      if (!v.is_object()) throw field_error(name, "an object (name, max_retries, retry_delay)", v);
      for (const auto& t : v.items()) {
        if (t.key() == "name") {
          c.task.name = get_string("task.name", t.value());
        } else if (t.key() == "max_retries") {
          c.task.max_retries = static_cast<int>(get_int("task.max_retries", t.value(), 0, int_max));
        } else if (t.key() == "retry_delay") {
          c.task.retry_delay = get_seconds("task.retry_delay", t.value());
        } else if (t.key() == "timeout") {
          c.task.timeout = get_seconds("task.timeout", t.value());
        } else {
          throw config_error(where + ".task: unknown field `" + t.key() +
                             "`; accepted: name, max_retries, retry_delay, timeout");
        }
      }
    } else if (name == "redis_key" && has_redis_key<Config>::value) {
      if constexpr (has_redis_key<Config>::value) {
        c.redis_key = v.is_null() ? std::nullopt : std::optional<std::string>(get_string(name, v));
      }
    } else if (name == "redis_val" && has_redis_val<Config>::value) {
      if constexpr (has_redis_val<Config>::value) {
        using T = typename decltype(c.redis_val)::value_type;
        if (v.is_null()) {
          c.redis_val = std::nullopt;
        } else if constexpr (std::is_same_v<T, std::string_view>) {
          throw config_error(where +
                             ".redis_val: a std::string_view cannot own JSON text; "
                             "use RedisSet<std::string>, or give the value at run time");
        } else if constexpr (!json_value_readable<T>()) {
          if constexpr (std::is_same_v<T, value>) {
            throw config_error(where + ".redis_val: a " + kind +
                               "<redis_tasks::value> cannot read its value from JSON (it would "
                               "not know which Redis type to store); give redis_val at run "
                               "time, or use a task of the concrete type, e.g. " +
                               kind + "<std::vector<std::string>>");
          } else {
            throw config_error(where + ".redis_val: this " + kind +
                               "'s value type cannot be read from JSON; give redis_val at run "
                               "time, or give the type a nlohmann from_json, or a value_traits "
                               "storage_type that JSON can give");
          }
        } else {
          try {
            c.redis_val = json_value<T>(v);
          } catch (const typename json::exception& e) {
            throw config_error(where + ".redis_val: does not fit the task's value type (" +
                               e.what() + ")");
          } catch (const type_error& e) {
            throw config_error(where + ".redis_val: does not make the task's value type (" +
                               e.what() + ")");
          }
        }
      }
    } else if ((name == "ex" || name == "px") && has_set_options<Config>::value) {
      if constexpr (has_set_options<Config>::value) {
        if (v.is_null()) {
          if (name == "ex")
            c.ex = std::nullopt;
          else
            c.px = std::nullopt;
        } else if (name == "ex") {
          c.ex = std::chrono::seconds(get_int(name, v, ll_min, ll_max));
        } else {
          c.px = std::chrono::milliseconds(get_int(name, v, ll_min, ll_max));
        }
      }
    } else if ((name == "nx" || name == "xx") && has_set_options<Config>::value) {
      if constexpr (has_set_options<Config>::value) {
        (name == "nx" ? c.nx : c.xx) = get_bool(name, v);
      }
    } else if (name == "fence_token" && has_set_options<Config>::value) {
      if constexpr (has_set_options<Config>::value) {
        c.fence_token = v.is_null() ? std::nullopt
                                    : std::optional<std::uint64_t>(
                                          static_cast<std::uint64_t>(get_int(name, v, 0, ll_max)));
      }
    } else if (name == "redis_cmd" && has_redis_cmd<Config>::value) {
      if constexpr (has_redis_cmd<Config>::value) {
        if (v.is_null()) {
          c.redis_cmd = std::nullopt;
        } else if (v.is_string()) {
          try {
            c.redis_cmd = command(v.template get<std::string>());
          } catch (const config_error& e) {
            throw config_error(where + ".redis_cmd: " + e.what());
          }
        } else if (v.is_array()) {
          std::vector<std::string> args;
          for (const auto& a : v) {
            if (!a.is_string()) throw field_error(name, "a command line or an array of strings", v);
            args.push_back(a.template get<std::string>());
          }
          c.redis_cmd = command(std::move(args));
        } else {
          throw field_error(name, "a command line or an array of strings", v);
        }
      }
    } else if (load_own_field(c, name, v, f)) {
      continue;
    } else {
      throw config_error(where + ": unknown field `" + name + "` for " + kind +
                         "; accepted: " + accepted);
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/config_json.ipp"
#endif
