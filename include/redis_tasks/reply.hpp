// `reply`: whatever the server answered, as a tree that can be inspected, printed like
// redis-cli prints it, and converted to JSON. It does not depend on hiredis.
#pragma once

#include "version.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/json.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// The kinds of RESP reply. The RESP3 kinds (`double_value` … `attribute`) only arrive when the
/// library is built against hiredis 1.x and the connection speaks RESP3.
enum class reply_type {
  nil,           ///< no value (`$-1`, `*-1`, RESP3 `_`)
  status,        ///< simple string such as `OK`
  error,         ///< error reply; the text is in `str()`
  integer,       ///< 64-bit signed integer
  string,        ///< bulk string, binary-safe
  array,         ///< ordered elements
  double_value,  ///< RESP3 double; `number()` and its text in `str()`
  boolean,       ///< RESP3 boolean
  map,           ///< RESP3 map; `elements()` holds key, value, key, value, …
  set,           ///< RESP3 set
  verbatim,      ///< RESP3 verbatim string; text in `str()`, format (`txt`) in `format()`
  big_number,    ///< RESP3 big number; decimal digits in `str()`
  push,          ///< RESP3 out-of-band push data
  attribute,     ///< RESP3 attribute map
};

/// The name of a reply type as written in messages ("integer", "bulk string", …).
REDIS_TASKS_DECL const char* to_string(reply_type t);

namespace detail {

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
REDIS_TASKS_DECL bool is_valid_utf8(std::string_view s);

/// Standard base64 (RFC 4648, with padding).
REDIS_TASKS_DECL std::string base64_encode(std::string_view in);

/// Quotes a string as redis-cli prints a bulk string (its `sdscatrepr`).
REDIS_TASKS_DECL void append_quoted(std::string& out, std::string_view s);

}  // namespace detail

/// Any RESP reply. Aggregates own their elements; a map keeps keys and values interleaved.
class reply {
 public:
  /// A nil reply.
  reply() = default;

  /// A nil reply.
  static reply make_nil() { return reply(); }
  /// A status reply such as `OK`.
  static reply make_status(std::string s) { return reply(reply_type::status, std::move(s)); }
  /// An error reply with the server's text.
  static reply make_error(std::string s) { return reply(reply_type::error, std::move(s)); }
  /// A bulk string.
  static reply make_string(std::string s) { return reply(reply_type::string, std::move(s)); }
  /// An integer reply.
  REDIS_TASKS_DECL static reply make_integer(long long v);
  /// A RESP3 double; `text` is how the server spelled it (empty: derived from `v`).
  REDIS_TASKS_DECL static reply make_double(double v, std::string text = {});
  /// A RESP3 boolean.
  REDIS_TASKS_DECL static reply make_boolean(bool v);
  /// A RESP3 big number given as decimal digits.
  REDIS_TASKS_DECL static reply make_big_number(std::string digits);
  /// A RESP3 verbatim string with its three-letter format (`txt`, `mkd`).
  REDIS_TASKS_DECL static reply make_verbatim(std::string text, std::string format = "txt");
  /// An aggregate: `array`, `set`, `push`, or `map`/`attribute` (keys and values interleaved).
  REDIS_TASKS_DECL static reply make_aggregate(reply_type t, std::vector<reply> elements);
  /// An array reply.
  REDIS_TASKS_DECL static reply make_array(std::vector<reply> elements);

  /// What kind of reply this is.
  reply_type type() const noexcept { return type_; }
  /// True for a nil reply.
  bool is_nil() const noexcept { return type_ == reply_type::nil; }
  /// True for an error reply.
  bool is_error() const noexcept { return type_ == reply_type::error; }
  /// True for text-carrying replies: status, error, bulk string, verbatim, big number, double.
  REDIS_TASKS_DECL bool has_text() const noexcept;
  /// True for array, map, set, push and attribute replies.
  REDIS_TASKS_DECL bool is_aggregate() const noexcept;

  /// The text of a text-carrying reply (see `has_text()`), else an empty string.
  const std::string& str() const noexcept { return str_; }
  /// Moves the text out (for converting without a copy).
  std::string&& take_str() noexcept { return std::move(str_); }
  /// The value of an integer reply (1/0 for a boolean), else 0.
  long long integer() const noexcept { return integer_; }
  /// The value of a double reply, else 0.
  double number() const noexcept { return number_; }
  /// The value of a boolean reply.
  bool boolean() const noexcept { return integer_ != 0; }
  /// The format of a verbatim string (`txt`, `mkd`).
  const std::string& format() const noexcept { return format_; }
  /// The elements of an aggregate; for a map, keys and values interleaved.
  const std::vector<reply>& elements() const noexcept { return elements_; }
  /// Mutable elements, for moving them out.
  std::vector<reply>& elements() noexcept { return elements_; }

  /// The reply as JSON: nil → null; status, bulk and verbatim strings → JSON strings when they
  /// are valid UTF-8, else `{"$binary": "<base64 of the exact bytes>"}`; integer → number;
  /// double → number (`"inf"`, `"-inf"`, `"nan"` as strings); boolean → bool; big number →
  /// string of digits; error → `{"error": "<text>"}`; array, set, push → array; map and
  /// attribute → object when every key is a text reply with valid UTF-8 and no key repeats,
  /// else an array of `[key, value]` pairs (also for a one-entry map whose key is `$binary` or
  /// `error`, so that those two objects always mean a binary string and an error). Never
  /// throws, and `dump()` of the result never throws either: the bytes come back exactly.
  REDIS_TASKS_DECL nlohmann::json to_json() const;

  /// The reply printed as redis-cli prints it in a terminal (no trailing newline).
  REDIS_TASKS_DECL std::string to_string() const;

  /// Deep equality (type, text, numbers and elements).
  friend bool operator==(const reply& a, const reply& b) {
    return a.type_ == b.type_ && a.integer_ == b.integer_ &&
           (a.number_ == b.number_ || (std::isnan(a.number_) && std::isnan(b.number_))) &&
           a.str_ == b.str_ && a.format_ == b.format_ && a.elements_ == b.elements_;
  }
  /// Deep inequality.
  friend bool operator!=(const reply& a, const reply& b) { return !(a == b); }

 private:
  reply(reply_type t, std::string s) : type_(t), str_(std::move(s)) {}

  REDIS_TASKS_DECL static std::string format_double(double v);

  REDIS_TASKS_DECL static nlohmann::json text_to_json(const std::string& s);

  REDIS_TASKS_DECL nlohmann::json map_to_json() const;

  REDIS_TASKS_DECL void print(std::string& out, const std::string& prefix) const;

  REDIS_TASKS_DECL void print_aggregate(std::string& out, const std::string& prefix) const;

  // Mirrors redis-cli: a map value that spans several lines starts on a line of its own.
  REDIS_TASKS_DECL bool is_multiline() const;

  reply_type type_ = reply_type::nil;
  long long integer_ = 0;
  double number_ = 0;
  std::string str_;
  std::string format_;
  std::vector<reply> elements_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/reply.ipp"
#endif
