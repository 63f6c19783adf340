// Where a reply is converted to T: RedisExecute<T>'s typed results.
#pragma once

#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/codec.hpp"
#include "errors.hpp"
#include "reply.hpp"
#include "values.hpp"

namespace redis_tasks {

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_std_set : std::false_type {};
template <class T, class C, class A>
struct is_std_set<std::set<T, C, A>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};

/// A short name of T for messages.
template <class T>
std::string type_label() {
  if constexpr (std::is_same_v<T, reply>) return "reply";
  else if constexpr (std::is_same_v<T, nlohmann::json>) return "nlohmann::json";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, long long>) return "long long";
  else if constexpr (std::is_integral_v<T>) return "an integer type";
  else if constexpr (std::is_floating_point_v<T>) return "double";
  else if constexpr (std::is_same_v<T, std::string>) return "std::string";
  else if constexpr (std::is_same_v<T, value>) return "redis_tasks::value";
  else if constexpr (is_optional<T>::value) return "std::optional<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_vector<T>::value) return "std::vector<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_std_set<T>::value) return "std::set<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_string_map<T>::value) return "std::map<std::string, " + type_label<typename T::mapped_type>() + ">";
  else return "the requested type";
}

[[noreturn]] inline void throw_misfit(const reply& r, const std::string& context,
                                      const std::string& wanted) {
  std::string got = to_string(r.type());
  if (r.type() == reply_type::array || r.type() == reply_type::set || r.type() == reply_type::map) {
    got += " of " + std::to_string(r.elements().size()) + " elements";
  }
  throw type_error(context + " was " + (r.type() == reply_type::integer || r.type() == reply_type::array ? "an " : "a ") +
                   got + ", which does not convert to " + wanted);
}

inline bool is_text(const reply& r) {
  return r.type() == reply_type::string || r.type() == reply_type::status ||
         r.type() == reply_type::verbatim || r.type() == reply_type::big_number ||
         r.type() == reply_type::double_value;
}

}  // namespace detail

/// Converts a reply to T, as RedisExecute<T> does. `context` names the reply in messages
/// (e.g. "reply to INCR"). Rules: integers from integer replies or decimal text; doubles from
/// double, integer or numeric text; bool from integer, boolean, `OK` (true), nil (false) or
/// text `1`/`0`; std::string from any text reply or an integer; std::optional<U> maps nil to
/// std::nullopt; std::vector<U> and std::set<U> from arrays and sets; std::map<std::string, U>
/// from maps or flat key/value arrays; nlohmann::json via `reply::to_json()`; `value` by shape.
/// An error reply is a `reply_error`; anything else that does not fit is a `type_error`.
template <class T>
T from_reply(reply&& r, const std::string& context) {
  if constexpr (std::is_same_v<T, reply>) {
    return std::move(r);
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return r.to_json();
  } else {
    if (r.is_error()) throw reply_error(r.str(), context);
    if constexpr (detail::is_optional<T>::value) {
      if (r.is_nil()) return std::nullopt;
      return from_reply<typename T::value_type>(std::move(r), context);
    } else if constexpr (std::is_same_v<T, bool>) {
      switch (r.type()) {
        case reply_type::nil: return false;
        case reply_type::boolean: return r.boolean();
        case reply_type::integer: return r.integer() != 0;
        case reply_type::status:
          if (r.str() == "OK") return true;
          break;
        case reply_type::string:
          if (r.str() == "1") return true;
          if (r.str() == "0") return false;
          break;
        default: break;
      }
      detail::throw_misfit(r, context, "bool");
    } else if constexpr (std::is_integral_v<T>) {
      if (r.type() == reply_type::integer) {
        const long long v = r.integer();
        if (v < static_cast<long long>(std::numeric_limits<T>::min()) ||
            (v > 0 && static_cast<unsigned long long>(v) > std::numeric_limits<T>::max())) {
          throw type_error(context + " was " + std::to_string(v) + ", outside the range of " +
                           detail::type_label<T>());
        }
        return static_cast<T>(v);
      }
      if (r.type() == reply_type::string || r.type() == reply_type::status ||
          r.type() == reply_type::big_number) {
        return detail::parse_number<T>(r.str(), context);
      }
      detail::throw_misfit(r, context, detail::type_label<T>());
    } else if constexpr (std::is_floating_point_v<T>) {
      if (r.type() == reply_type::double_value) return static_cast<T>(r.number());
      if (r.type() == reply_type::integer) return static_cast<T>(r.integer());
      if (r.type() == reply_type::string || r.type() == reply_type::status) {
        return detail::parse_number<T>(r.str(), context);
      }
      detail::throw_misfit(r, context, "double");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (detail::is_text(r)) return std::move(r.take_str());
      if (r.type() == reply_type::integer) return std::to_string(r.integer());
      detail::throw_misfit(r, context, "std::string");
    } else if constexpr (detail::is_vector<T>::value || detail::is_std_set<T>::value) {
      using U = typename T::value_type;
      if (r.type() != reply_type::array && r.type() != reply_type::set &&
          r.type() != reply_type::push) {
        detail::throw_misfit(r, context, detail::type_label<T>());
      }
      T out;
      if constexpr (detail::is_vector<T>::value) out.reserve(r.elements().size());
      std::size_t i = 0;
      for (auto& e : r.elements()) {
        auto item = from_reply<U>(std::move(e), context + " (element " + std::to_string(i++) + ")");
        if constexpr (detail::is_vector<T>::value) {
          out.push_back(std::move(item));
        } else {
          out.insert(std::move(item));
        }
      }
      return out;
    } else if constexpr (detail::is_string_map<T>::value) {
      using U = typename T::mapped_type;
      const bool flat_pairs = r.type() == reply_type::array && r.elements().size() % 2 == 0;
      if (r.type() != reply_type::map && !flat_pairs) {
        detail::throw_misfit(r, context, detail::type_label<T>());
      }
      T out;
      auto& el = r.elements();
      for (std::size_t i = 0; i + 1 < el.size(); i += 2) {
        auto k = from_reply<std::string>(std::move(el[i]), context + " (key)");
        auto v = from_reply<U>(std::move(el[i + 1]), context + " (value of a field)");
        out.insert_or_assign(std::move(k), std::move(v));
      }
      return out;
    } else if constexpr (std::is_same_v<T, value>) {
      switch (r.type()) {
        case reply_type::set: return from_reply<std::set<std::string>>(std::move(r), context);
        case reply_type::map:
          return from_reply<std::map<std::string, std::string>>(std::move(r), context);
        case reply_type::array:
          return from_reply<std::vector<std::string>>(std::move(r), context);
        case reply_type::nil: detail::throw_misfit(r, context, "redis_tasks::value (use std::optional)");
        default: return from_reply<std::string>(std::move(r), context);
      }
    } else {
      static_assert(detail::is_optional<T>::value || std::is_arithmetic_v<T>,
                    "RedisExecute<T>: T must be reply, nlohmann::json, bool, an integer, a "
                    "floating-point type, std::string, std::optional, std::vector, std::set, "
                    "std::map<std::string, U> or redis_tasks::value");
    }
  }
}

}  // namespace redis_tasks
