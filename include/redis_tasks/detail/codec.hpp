// How each C++ type maps to a Redis type: the category of T, and elements ↔ text.
// Pure functions: tests call them without a server.
#pragma once

#include <charconv>
#include <deque>
#include <list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "../errors.hpp"
#include "../reply.hpp"
#include "../values.hpp"

namespace redis_tasks::detail {

/// The Redis data types a C++ value can be stored as.
enum class redis_kind { string, list, set, hash, zset };

/// The name Redis's TYPE command uses for a kind.
inline const char* kind_name(redis_kind k) {
  switch (k) {
    case redis_kind::string: return "string";
    case redis_kind::list: return "list";
    case redis_kind::set: return "set";
    case redis_kind::hash: return "hash";
    case redis_kind::zset: return "zset";
  }
  return "unknown";
}

/// A key or other subject quoted for messages: printable, escaped, and cut at 80 bytes.
inline std::string quote_for_message(std::string_view s) {
  std::string out;
  const bool cut = s.size() > 80;
  append_quoted(out, cut ? s.substr(0, 80) : s);
  if (cut) out.insert(out.size() - 1, "...");
  return out;
}

// ---- categories -----------------------------------------------------------------------------

template <class T>
inline constexpr bool is_string_like_v =
    std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>;

template <class T>
inline constexpr bool is_number_v = std::is_arithmetic_v<T>;

/// E may be an element of a container: a string or an arithmetic type.
template <class T>
inline constexpr bool is_element_v = is_string_like_v<T> || is_number_v<T>;

template <class T>
struct sequence_of : std::false_type {};
template <class E, class A>
struct sequence_of<std::vector<E, A>> : std::bool_constant<is_element_v<E>> {};
template <class E, class A>
struct sequence_of<std::deque<E, A>> : std::bool_constant<is_element_v<E>> {};
template <class E, class A>
struct sequence_of<std::list<E, A>> : std::bool_constant<is_element_v<E>> {};

template <class T>
struct set_of : std::false_type {};
template <class E, class C, class A>
struct set_of<std::set<E, C, A>> : std::bool_constant<is_element_v<E>> {};
template <class E, class H, class Q, class A>
struct set_of<std::unordered_set<E, H, Q, A>> : std::bool_constant<is_element_v<E>> {};

template <class T>
struct hash_of : std::false_type {};
template <class E, class C, class A>
struct hash_of<std::map<std::string, E, C, A>> : std::bool_constant<is_element_v<E>> {};
template <class E, class H, class Q, class A>
struct hash_of<std::unordered_map<std::string, E, H, Q, A>> : std::bool_constant<is_element_v<E>> {
};

template <class T>
struct zset_of : std::false_type {};
template <class E>
struct zset_of<sorted_set<E>> : std::bool_constant<is_element_v<E>> {};

template <class T, class = void>
struct has_user_traits : std::false_type {};
template <class T>
struct has_user_traits<T, std::void_t<typename value_traits<T>::storage_type>> : std::true_type {};

template <class T, class = void>
struct json_readable : std::false_type {};
template <class T>
struct json_readable<T, std::void_t<decltype(std::declval<const nlohmann::json&>().template get<T>())>>
    : std::true_type {};

template <class T>
inline constexpr bool is_value_variant_v = std::is_same_v<T, value>;

/// How T is stored, in order of precedence: a user's `value_traits`, the built-in categories,
/// then JSON for anything nlohmann can convert.
enum class category { user, string, number, list, set, hash, zset, any, json, none };

template <class T>
constexpr category category_of() {
  if constexpr (has_user_traits<T>::value) return category::user;
  else if constexpr (is_string_like_v<T>) return category::string;
  else if constexpr (is_number_v<T>) return category::number;
  else if constexpr (sequence_of<T>::value) return category::list;
  else if constexpr (set_of<T>::value) return category::set;
  else if constexpr (hash_of<T>::value) return category::hash;
  else if constexpr (zset_of<T>::value) return category::zset;
  else if constexpr (is_value_variant_v<T>) return category::any;
  else if constexpr (std::is_same_v<T, nlohmann::json> ||
                     (std::is_constructible_v<nlohmann::json, const T&> && json_readable<T>::value))
    return category::json;
  else return category::none;
}

/// The Redis type a category is stored as.
constexpr redis_kind kind_of(category c) {
  switch (c) {
    case category::list: return redis_kind::list;
    case category::set: return redis_kind::set;
    case category::hash: return redis_kind::hash;
    case category::zset: return redis_kind::zset;
    default: return redis_kind::string;
  }
}

// ---- numbers and elements as text -------------------------------------------------------------

/// Room for any number's text.
using number_buffer = char[128];

/// The text a number is stored as: integers in decimal, floating point in the shortest form that
/// reads back exactly (`inf`, `-inf`, `nan` for the special values), bool as `1`/`0`.
template <class N>
std::string_view format_number(N v, number_buffer& buf) {
  if constexpr (std::is_same_v<N, bool>) {
    return v ? "1" : "0";
  } else {
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string_view(buf, static_cast<std::size_t>(res.ptr - buf));
  }
}

/// Parses a stored number; throws `type_error` naming `subject` when `text` is not a whole `N`.
template <class N>
N parse_number(std::string_view text, const std::string& subject) {
  auto fail = [&](const char* why) -> N {
    throw type_error(subject + " holds " + quote_for_message(text) + ", which is not " + why);
  };
  if constexpr (std::is_same_v<N, bool>) {
    if (text == "1") return true;
    if (text == "0") return false;
    return fail("a boolean (1 or 0)");
  } else {
    const char* first = text.data();
    const char* last = text.data() + text.size();
    N v{};
    if constexpr (std::is_floating_point_v<N>) {
      if (first != last && *first == '+' && last - first > 1 && first[1] != '-') ++first;
    }
    auto res = std::from_chars(first, last, v);
    if (text.empty() || res.ec != std::errc() || res.ptr != last) {
      if (res.ec == std::errc::result_out_of_range) return fail("in the range of the requested type");
      return fail(std::is_floating_point_v<N> ? "a floating-point number" : "an integer");
    }
    return v;
  }
}

/// An element as text for the wire; numbers are formatted into `buf`.
template <class E>
std::string_view element_text(const E& e, number_buffer& buf) {
  if constexpr (is_string_like_v<E>) {
    return std::string_view(e);
  } else {
    return format_number(e, buf);
  }
}

/// An element read back from its text.
template <class E>
E element_from_text(std::string&& s, const std::string& subject) {
  if constexpr (std::is_same_v<E, std::string>) {
    return std::move(s);
  } else if constexpr (std::is_same_v<E, std::string_view>) {
    static_assert(!std::is_same_v<E, std::string_view>,
                  "std::string_view cannot own data read from Redis: read std::string instead");
  } else {
    return parse_number<E>(s, subject);
  }
}

/// A human name of a C++ category, for "expected …" in messages.
inline const char* category_description(category c) {
  switch (c) {
    case category::string: return "a string";
    case category::number: return "a string holding a number";
    case category::list: return "a list";
    case category::set: return "a set";
    case category::hash: return "a hash";
    case category::zset: return "a sorted set (zset)";
    case category::json: return "a string holding JSON";
    case category::any: return "any of string, list, set, hash, zset";
    default: return "a storable value";
  }
}

}  // namespace redis_tasks::detail
