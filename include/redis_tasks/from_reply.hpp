// Where a reply is converted to T: RedisExecute<T>'s typed results.
#pragma once

#include "version.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/json.hpp"
#include "errors.hpp"
#include "reply.hpp"
#include "values.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

template <class T>
T from_reply(reply&& r, const std::string& context);

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

/// `std::vector<std::uint8_t>` and `std::vector<std::byte>`: one string's bytes, not an array.
template <class T>
struct is_byte_vector : std::false_type {};
template <class A>
struct is_byte_vector<std::vector<unsigned char, A>> : std::true_type {};
template <class A>
struct is_byte_vector<std::vector<std::byte, A>> : std::true_type {};

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
  if constexpr (std::is_same_v<T, reply>)
    return "reply";
  else if constexpr (std::is_same_v<T, nlohmann::json>)
    return "nlohmann::json";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, long long>)
    return "long long";
  else if constexpr (std::is_integral_v<T>)
    return "an integer type";
  else if constexpr (std::is_floating_point_v<T>)
    return "double";
  else if constexpr (std::is_same_v<T, std::string>)
    return "std::string";
  else if constexpr (std::is_same_v<T, value>)
    return "redis_tasks::value";
  else if constexpr (is_byte_vector<T>::value)
    return std::is_same_v<typename T::value_type, std::byte> ? "std::vector<std::byte>"
                                                             : "std::vector<std::uint8_t>";
  else if constexpr (is_optional<T>::value)
    return "std::optional<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_vector<T>::value)
    return "std::vector<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_std_set<T>::value)
    return "std::set<" + type_label<typename T::value_type>() + ">";
  else if constexpr (is_string_map<T>::value)
    return "std::map<std::string, " + type_label<typename T::mapped_type>() + ">";
  else
    return "the requested type";
}

/// "a bulk string", "an integer", "nil", "an array of 3 elements": what came back, for messages
/// (never its content, which may be a stored value).
REDIS_TASKS_DECL std::string describe_reply(const reply& r);

/// `out = r.to_json()`, filling `out` so that templates can call it where `nlohmann::json` is
/// still an incomplete type.
REDIS_TASKS_DECL void reply_to_json(const reply& r, nlohmann::json& out);

[[noreturn]] REDIS_TASKS_DECL void throw_misfit(const reply& r, const std::string& context,
                                                const std::string& wanted);

/// A number from the text of a reply (`GET` of a counter, `INCRBYFLOAT`, `ZSCORE` in RESP2),
/// as the server wrote it: decimal integers, or floats including `inf` and `-inf`.
template <class N>
N number_from_text(const reply& r, const std::string& context, const std::string& wanted) {
  const std::string& text = r.str();
  const char* first = text.data();
  const char* last = first + text.size();
  if constexpr (std::is_floating_point_v<N>) {
    if (first != last && *first == '+' && last - first > 1 && first[1] != '-') ++first;
  }
  N v{};
  const auto res = std::from_chars(first, last, v);
  if (!text.empty() && res.ec == std::errc() && res.ptr == last) return v;
  const bool range = res.ec == std::errc::result_out_of_range && res.ptr == last;
  throw type_error(context + " was " + describe_reply(r) + " that is not " +
                   (range ? "in the range of " + wanted
                          : std::string(std::is_floating_point_v<N> ? "a number" : "an integer")) +
                   ", so it does not convert to " + wanted);
}

/// Converts one element of an aggregate. The element's place is added to the message only
/// when it fails, so that converting a large array builds no string per element.
template <class U>
U element_from_reply(reply&& e, const std::string& context, const char* what, std::size_t i) {
  // Messages start with `context`; an inner element's place already follows it, and this
  // (outer) place goes before that one.
  const auto placed = [&](std::string msg) {
    const std::string place = " (" + std::string(what) + " " + std::to_string(i) + ")";
    if (msg.compare(0, context.size(), context) == 0) {
      msg.insert(context.size(), place);
    } else {
      msg += place;
    }
    return msg;
  };
  try {
    return from_reply<U>(std::move(e), context);
  } catch (const reply_error& ex) {
    // what() is "<context and places>: <server message>"; keep the message apart.
    std::string where = ex.what();
    where.resize(where.size() - std::min(where.size(), ex.server_message().size() + 2));
    throw reply_error(ex.server_message(), placed(std::move(where)));
  } catch (const type_error& ex) {
    throw type_error(placed(ex.what()));
  }
}

REDIS_TASKS_DECL bool is_text(const reply& r);

}  // namespace detail

/// Converts a reply to T, as RedisExecute<T> does. `context` names the reply in messages
/// (e.g. "reply to INCR"). Rules: integers from integer replies or decimal text; doubles from
/// double, integer or numeric text (`inf` included); bool from integer, boolean, `OK` (true),
/// nil (false) or text `1`/`0`; std::string from any text reply or an integer;
/// `std::vector<std::uint8_t>` and `std::vector<std::byte>` from a text reply, byte for byte
/// (bytes are one string: an array of numbers converts to std::vector<int>);
/// std::optional<U> maps nil to std::nullopt; std::vector<U> and std::set<U> from arrays and
/// sets; std::map<std::string, U> from maps or flat key/value arrays (HGETALL, CONFIG GET);
/// nlohmann::json via `reply::to_json()`; `value` by shape (array → vector, set → set, map →
/// map, text → string). An error reply is a `reply_error`, except for T = `reply` and
/// `nlohmann::json`, which keep it as a value (RedisExecute throws for a top-level error
/// before converting). Anything else that does not fit is a `type_error` naming `context` and
/// what came back, never its content.
template <class T>
T from_reply(reply&& r, const std::string& context) {
  if constexpr (std::is_same_v<T, reply>) {
    return std::move(r);
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    static_assert(detail::json_complete<T>::value, REDIS_TASKS_JSON_NEEDED);
    T j;
    detail::reply_to_json(r, j);
    return j;
  } else {
    if (r.is_error()) throw reply_error(r.str(), context);
    if constexpr (detail::is_optional<T>::value) {
      if (r.is_nil()) return std::nullopt;
      return from_reply<typename T::value_type>(std::move(r), context);
    } else if constexpr (std::is_same_v<T, bool>) {
      switch (r.type()) {
        case reply_type::nil:
          return false;
        case reply_type::boolean:
          return r.boolean();
        case reply_type::integer:
          return r.integer() != 0;
        case reply_type::status:
          if (r.str() == "OK") return true;
          break;
        case reply_type::string:
          if (r.str() == "1") return true;
          if (r.str() == "0") return false;
          break;
        default:
          break;
      }
      detail::throw_misfit(r, context, "bool");
    } else if constexpr (std::is_integral_v<T>) {
      const std::string wanted = detail::type_label<T>();
      if (r.type() == reply_type::integer) {
        const long long v = r.integer();
        if (v < static_cast<long long>(std::numeric_limits<T>::min()) ||
            (v > 0 && static_cast<unsigned long long>(v) > std::numeric_limits<T>::max())) {
          throw type_error(context + " was the integer " + std::to_string(v) +
                           ", outside the range of " + wanted);
        }
        return static_cast<T>(v);
      }
      if (r.type() == reply_type::string || r.type() == reply_type::status ||
          r.type() == reply_type::big_number) {
        return detail::number_from_text<T>(r, context, wanted);
      }
      if (r.type() == reply_type::double_value && std::isfinite(r.number()) &&
          std::trunc(r.number()) == r.number() &&
          r.number() >= static_cast<double>(std::numeric_limits<T>::min()) &&
          r.number() < std::ldexp(1.0, std::numeric_limits<T>::digits)) {
        return static_cast<T>(r.number());  // a RESP3 double such as ZSCORE's that is whole
      }
      detail::throw_misfit(r, context, wanted);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (r.type() == reply_type::double_value) return static_cast<T>(r.number());
      if (r.type() == reply_type::integer) return static_cast<T>(r.integer());
      if (r.type() == reply_type::string || r.type() == reply_type::status ||
          r.type() == reply_type::big_number) {
        return detail::number_from_text<T>(r, context, "double");
      }
      detail::throw_misfit(r, context, "double");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (detail::is_text(r)) return std::move(r.take_str());
      if (r.type() == reply_type::integer) return std::to_string(r.integer());
      detail::throw_misfit(r, context, "std::string");
    } else if constexpr (detail::is_byte_vector<T>::value) {
      if (detail::is_text(r)) {
        const std::string& s = r.str();
        T out(s.size());
        if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
        return out;
      }
      detail::throw_misfit(r, context, detail::type_label<T>());
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
        auto item = detail::element_from_reply<U>(std::move(e), context, "element", i++);
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
        auto k = detail::element_from_reply<std::string>(std::move(el[i]), context, "key", i / 2);
        auto v = detail::element_from_reply<U>(std::move(el[i + 1]), context, "value", i / 2);
        out.insert_or_assign(std::move(k), std::move(v));
      }
      return out;
    } else if constexpr (std::is_same_v<T, value>) {
      switch (r.type()) {
        case reply_type::set:
          return from_reply<std::set<std::string>>(std::move(r), context);
        case reply_type::map:
          return from_reply<std::map<std::string, std::string>>(std::move(r), context);
        case reply_type::array:
          return from_reply<std::vector<std::string>>(std::move(r), context);
        case reply_type::nil:
        case reply_type::boolean:
        case reply_type::push:
        case reply_type::attribute:
          detail::throw_misfit(r, context, "redis_tasks::value");
        default:
          return from_reply<std::string>(std::move(r), context);
      }
    } else {
      static_assert(detail::is_optional<T>::value || std::is_arithmetic_v<T>,
                    "RedisExecute<T>: T must be reply, nlohmann::json, bool, an integer, a "
                    "floating-point type, std::string, std::optional, std::vector, std::set, "
                    "std::map<std::string, U> or redis_tasks::value");
    }
  }
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/from_reply.ipp"
#endif
