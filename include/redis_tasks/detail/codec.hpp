// How each C++ type maps to a Redis type: the category of T, and elements ↔ text.
// Pure functions: tests call them without a server.
#pragma once

#include "../version.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <deque>
#include <limits>
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

#include "../errors.hpp"
#include "../reply.hpp"
#include "../values.hpp"
#include "json.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// The Redis data types a C++ value can be stored as.
enum class redis_kind { string, list, set, hash, zset };

/// The name Redis's TYPE command uses for a kind.
REDIS_TASKS_DECL const char* kind_name(redis_kind k);

/// A key or other subject quoted for messages: printable, escaped, and cut at 80 bytes.
REDIS_TASKS_DECL std::string quote_for_message(std::string_view s);

/// `out = nlohmann::json::parse(text)`, compiled once rather than in every template that reads
/// JSON. It fills `out` rather than returning it, so that templates can call it where
/// `nlohmann::json` is still an incomplete type.
REDIS_TASKS_DECL void parse_json(std::string_view text, nlohmann::json& out);

// ---- categories -----------------------------------------------------------------------------

template <class T>
inline constexpr bool is_string_like_v =
    std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>;

template <class T>
inline constexpr bool is_number_v = std::is_arithmetic_v<T>;

/// `const char*` and `char*`: refused as values, since a config would keep the pointer.
template <class T>
inline constexpr bool is_char_pointer_v =
    std::is_pointer_v<T>&& std::is_same_v<std::remove_cv_t<std::remove_pointer_t<T>>, char>;

/// Bytes: `std::vector<std::uint8_t>` (= `unsigned char`) and `std::vector<std::byte>`, stored
/// as one binary string, never as a list of numbers.
template <class T>
struct bytes_of : std::false_type {};
template <class A>
struct bytes_of<std::vector<unsigned char, A>> : std::true_type {};
template <class A>
struct bytes_of<std::vector<std::byte, A>> : std::true_type {};
template <class T>
inline constexpr bool is_bytes_v = bytes_of<T>::value;

/// E may be an element of a container: a string, bytes or an arithmetic type.
template <class T>
inline constexpr bool is_element_v = is_string_like_v<T> || is_number_v<T> || is_bytes_v<T>;

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
struct json_readable<T, std::void_t<decltype(std::declval<const json_t<T>&>().template get<T>())>>
    : std::true_type {};

template <class T>
inline constexpr bool is_value_variant_v = std::is_same_v<T, value>;

/// How T is stored, in order of precedence: a user's `value_traits`, the built-in categories,
/// then JSON for anything nlohmann can convert.
enum class category { user, string, number, bytes, list, set, hash, zset, any, json, none };

template <class T>
constexpr category category_of() {
  if constexpr (has_user_traits<T>::value)
    return category::user;
  else if constexpr (is_string_like_v<T>)
    return category::string;
  else if constexpr (is_number_v<T>)
    return category::number;
  else if constexpr (is_bytes_v<T>)  // before list: a vector of bytes is not a list of numbers
    return category::bytes;
  else if constexpr (sequence_of<T>::value)
    return category::list;
  else if constexpr (set_of<T>::value)
    return category::set;
  else if constexpr (hash_of<T>::value)
    return category::hash;
  else if constexpr (zset_of<T>::value)
    return category::zset;
  else if constexpr (is_value_variant_v<T>)
    return category::any;
  else if constexpr (std::is_same_v<T, nlohmann::json> ||
                     std::conjunction_v<json_complete<T>,
                                        std::is_constructible<json_t<T>, const T&>,
                                        json_readable<T>>)
    return category::json;
  else
    return category::none;
}

/// False only for a JSON type where `<nlohmann/json.hpp>` was not included (json_complete
/// is asked for JSON types only, so that other types' answers never depend on includes).
template <class T>
inline constexpr bool json_ready_v =
    std::disjunction_v<std::bool_constant<category_of<T>() != category::json>, json_complete<T>>;

/// The Redis type a category is stored as.
constexpr redis_kind kind_of(category c) {
  switch (c) {
    case category::list:
      return redis_kind::list;
    case category::set:
      return redis_kind::set;
    case category::hash:
      return redis_kind::hash;
    case category::zset:
      return redis_kind::zset;
    default:
      return redis_kind::string;
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

/// "a signed 8-bit integer", "double", …: the number type N, for messages.
template <class N>
std::string number_description() {
  if constexpr (std::is_same_v<N, bool>) {
    return "a boolean (1 or 0)";
  } else if constexpr (std::is_floating_point_v<N>) {
    return std::is_same_v<N, float>    ? "float"
           : std::is_same_v<N, double> ? "double"
                                       : "long double";
  } else {
    return std::string(std::is_signed_v<N> ? "a signed " : "an unsigned ") +
           std::to_string(sizeof(N) * 8) + "-bit integer";
  }
}

/// Reads a floating-point `text` whose value lies below the normal range: a subnormal number
/// such as `5e-324` (what `std::to_chars` writes for `denorm_min`), or one that rounds to zero.
/// Needed because libstdc++'s `from_chars` calls these out of range for long double, and for
/// every floating type before GCC 12. False (and `out` untouched) for anything else.
REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last, float& out);
/// As for float.
REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last, double& out);
/// As for float.
REDIS_TASKS_DECL bool parse_below_normal_range(const char* first, const char* last,
                                               long double& out);

/// Parses a stored number; throws `type_error` naming `subject` when `text` is not a whole `N`.
/// The message never quotes `text`: a stored value's content stays out of error messages.
template <class N>
N parse_number(std::string_view text, const std::string& subject) {
  auto fail = [&](const std::string& why) -> N { throw type_error(subject + " holds " + why); };
  if constexpr (std::is_same_v<N, bool>) {
    if (text == "1") return true;
    if (text == "0") return false;
    return fail("text that is not a boolean (1 or 0)");
  } else {
    const char* first = text.data();
    const char* last = text.data() + text.size();
    N v{};
    if constexpr (std::is_floating_point_v<N>) {
      // Redis and redis-cli spell positive infinity "+inf"; from_chars takes no sign '+'.
      if (first != last && *first == '+' && last - first > 1 && first[1] != '-') ++first;
    }
    auto res = std::from_chars(first, last, v);
    if (text.empty() || res.ec != std::errc() || res.ptr != last) {
      if (!text.empty() && res.ec == std::errc::result_out_of_range && res.ptr == last) {
        if constexpr (std::is_floating_point_v<N>) {
          if (parse_below_normal_range(first, last, v)) return v;
        }
        return fail("a number outside the range of " + number_description<N>());
      }
      if (text.empty()) return fail("an empty string, which is not a number");
      return fail(std::is_floating_point_v<N> ? "text that is not a floating-point number"
                                              : "text that is not an integer");
    }
    return v;
  }
}

/// An element as text for the wire: strings and bytes as views of `e`, numbers formatted into
/// `buf`.
template <class E>
std::string_view element_text(const E& e, number_buffer& buf) {
  if constexpr (is_string_like_v<E>) {
    return std::string_view(e);
  } else if constexpr (is_bytes_v<E>) {
    return std::string_view(reinterpret_cast<const char*>(e.data()), e.size());
  } else {
    return format_number(e, buf);
  }
}

/// Bytes holding exactly the bytes of `s` (NULs and 0xFF included).
template <class B>
B bytes_from_text(std::string_view s) {
  B out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

/// An element read back from its text.
template <class E>
E element_from_text(std::string&& s, const std::string& subject) {
  if constexpr (std::is_same_v<E, std::string>) {
    return std::move(s);
  } else if constexpr (is_bytes_v<E>) {
    return bytes_from_text<E>(s);
  } else if constexpr (std::is_same_v<E, std::string_view>) {
    static_assert(!std::is_same_v<E, std::string_view>,
                  "std::string_view cannot own data read from Redis: read std::string instead");
  } else {
    return parse_number<E>(s, subject);
  }
}

// ---- names of C++ types, for messages -------------------------------------------------------

template <class T>
struct container_name {
  static constexpr const char* value = nullptr;
};
template <class E, class A>
struct container_name<std::vector<E, A>> {
  static constexpr const char* value = "std::vector";
};
template <class E, class A>
struct container_name<std::deque<E, A>> {
  static constexpr const char* value = "std::deque";
};
template <class E, class A>
struct container_name<std::list<E, A>> {
  static constexpr const char* value = "std::list";
};
template <class E, class C, class A>
struct container_name<std::set<E, C, A>> {
  static constexpr const char* value = "std::set";
};
template <class E, class H, class Q, class A>
struct container_name<std::unordered_set<E, H, Q, A>> {
  static constexpr const char* value = "std::unordered_set";
};
template <class E, class C, class A>
struct container_name<std::map<std::string, E, C, A>> {
  static constexpr const char* value = "std::map";
};
template <class E, class H, class Q, class A>
struct container_name<std::unordered_map<std::string, E, H, Q, A>> {
  static constexpr const char* value = "std::unordered_map";
};

/// How a storable T is spelled in C++ ("std::deque<double>", "redis_tasks::sorted_set<int>"),
/// for messages such as "RedisGet<std::deque<double>> expects a list". Types the library
/// cannot name (a user's own) are described by how they are stored.
template <class T>
std::string value_type_name() {
  constexpr category c = category_of<T>();
  if constexpr (std::is_same_v<T, std::string>)
    return "std::string";
  else if constexpr (std::is_same_v<T, std::string_view>)
    return "std::string_view";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, char>)
    return "char";
  else if constexpr (std::is_same_v<T, signed char>)
    return "signed char";
  else if constexpr (std::is_same_v<T, unsigned char>)
    return "unsigned char";
  else if constexpr (std::is_same_v<T, short>)
    return "short";
  else if constexpr (std::is_same_v<T, unsigned short>)
    return "unsigned short";
  else if constexpr (std::is_same_v<T, int>)
    return "int";
  else if constexpr (std::is_same_v<T, unsigned>)
    return "unsigned";
  else if constexpr (std::is_same_v<T, long>)
    return "long";
  else if constexpr (std::is_same_v<T, unsigned long>)
    return "unsigned long";
  else if constexpr (std::is_same_v<T, long long>)
    return "long long";
  else if constexpr (std::is_same_v<T, unsigned long long>)
    return "unsigned long long";
  else if constexpr (std::is_same_v<T, float>)
    return "float";
  else if constexpr (std::is_same_v<T, double>)
    return "double";
  else if constexpr (std::is_same_v<T, long double>)
    return "long double";
  else if constexpr (c == category::number)
    return "an arithmetic type";
  else if constexpr (c == category::bytes)
    return std::is_same_v<typename T::value_type, std::byte> ? "std::vector<std::byte>"
                                                             : "std::vector<std::uint8_t>";
  else if constexpr (c == category::list || c == category::set) {
    // Appended in steps: gcc 12 warns (-Warray-bounds, a false positive) on `string(...) + ...`.
    std::string name = container_name<T>::value;
    name += '<';
    name += value_type_name<typename T::value_type>();
    name += '>';
    return name;
  } else if constexpr (c == category::hash) {
    std::string name = container_name<T>::value;
    name += "<std::string, ";
    name += value_type_name<typename T::mapped_type>();
    name += '>';
    return name;
  } else if constexpr (c == category::zset) {
    using E = decltype(std::declval<typename T::value_type>().member);
    return "redis_tasks::sorted_set<" + value_type_name<E>() + ">";
  } else if constexpr (c == category::any) {
    return "redis_tasks::value";
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return "nlohmann::json";
  } else if constexpr (c == category::json) {
    return "a JSON-convertible type";
  } else if constexpr (c == category::user) {
    return "a value_traits type stored as " +
           value_type_name<typename value_traits<T>::storage_type>();
  } else {
    return "an unstorable type";
  }
}

/// A human name of a C++ category, for "expected …" in messages.
REDIS_TASKS_DECL const char* category_description(category c);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/codec.ipp"
#endif
