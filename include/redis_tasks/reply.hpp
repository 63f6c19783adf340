// `reply`: whatever the server answered, as a tree that can be inspected, printed like
// redis-cli prints it, and converted to JSON. It does not depend on hiredis.
#pragma once

#include "version.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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
inline const char* to_string(reply_type t) {
  switch (t) {
    case reply_type::nil:
      return "nil";
    case reply_type::status:
      return "status";
    case reply_type::error:
      return "error";
    case reply_type::integer:
      return "integer";
    case reply_type::string:
      return "bulk string";
    case reply_type::array:
      return "array";
    case reply_type::double_value:
      return "double";
    case reply_type::boolean:
      return "boolean";
    case reply_type::map:
      return "map";
    case reply_type::set:
      return "set";
    case reply_type::verbatim:
      return "verbatim string";
    case reply_type::big_number:
      return "big number";
    case reply_type::push:
      return "push";
    case reply_type::attribute:
      return "attribute";
  }
  return "unknown";
}

namespace detail {

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
inline bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += extra + 1;
  }
  return true;
}

/// Standard base64 (RFC 4648, with padding).
inline std::string base64_encode(std::string_view in) {
  static constexpr char table[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                            (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(table[(v >> 6) & 63]);
    out.push_back(table[v & 63]);
  }
  if (i < in.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

/// Quotes a string as redis-cli prints a bulk string (its `sdscatrepr`).
inline void append_quoted(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        if (c >= 0x20 && c < 0x7F) {
          out.push_back(ch);
        } else {
          out += "\\x";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        }
    }
  }
  out.push_back('"');
}

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
  static reply make_integer(long long v) {
    reply r;
    r.type_ = reply_type::integer;
    r.integer_ = v;
    return r;
  }
  /// A RESP3 double; `text` is how the server spelled it (empty: derived from `v`).
  static reply make_double(double v, std::string text = {}) {
    reply r(reply_type::double_value, std::move(text));
    r.number_ = v;
    if (r.str_.empty()) r.str_ = format_double(v);
    return r;
  }
  /// A RESP3 boolean.
  static reply make_boolean(bool v) {
    reply r;
    r.type_ = reply_type::boolean;
    r.integer_ = v ? 1 : 0;
    return r;
  }
  /// A RESP3 big number given as decimal digits.
  static reply make_big_number(std::string digits) {
    return reply(reply_type::big_number, std::move(digits));
  }
  /// A RESP3 verbatim string with its three-letter format (`txt`, `mkd`).
  static reply make_verbatim(std::string text, std::string format = "txt") {
    reply r(reply_type::verbatim, std::move(text));
    r.format_ = std::move(format);
    return r;
  }
  /// An aggregate: `array`, `set`, `push`, or `map`/`attribute` (keys and values interleaved).
  static reply make_aggregate(reply_type t, std::vector<reply> elements) {
    reply r;
    r.type_ = t;
    r.elements_ = std::move(elements);
    return r;
  }
  /// An array reply.
  static reply make_array(std::vector<reply> elements) {
    return make_aggregate(reply_type::array, std::move(elements));
  }

  /// What kind of reply this is.
  reply_type type() const noexcept { return type_; }
  /// True for a nil reply.
  bool is_nil() const noexcept { return type_ == reply_type::nil; }
  /// True for an error reply.
  bool is_error() const noexcept { return type_ == reply_type::error; }
  /// True for text-carrying replies: status, error, bulk string, verbatim, big number, double.
  bool has_text() const noexcept {
    return type_ == reply_type::status || type_ == reply_type::error ||
           type_ == reply_type::string || type_ == reply_type::verbatim ||
           type_ == reply_type::big_number || type_ == reply_type::double_value;
  }
  /// True for array, map, set, push and attribute replies.
  bool is_aggregate() const noexcept {
    return type_ == reply_type::array || type_ == reply_type::map || type_ == reply_type::set ||
           type_ == reply_type::push || type_ == reply_type::attribute;
  }

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
  nlohmann::json to_json() const {
    switch (type_) {
      case reply_type::nil:
        return nullptr;
      case reply_type::status:
      case reply_type::string:
      case reply_type::verbatim:
        return text_to_json(str_);
      case reply_type::big_number:
        return str_;
      case reply_type::error:
        return nlohmann::json{{"error", text_to_json(str_)}};
      case reply_type::integer:
        return integer_;
      case reply_type::boolean:
        return integer_ != 0;
      case reply_type::double_value:
        if (std::isfinite(number_)) return number_;
        return std::isnan(number_) ? "nan" : (number_ > 0 ? "inf" : "-inf");
      case reply_type::array:
      case reply_type::set:
      case reply_type::push: {
        auto arr = nlohmann::json::array();
        for (const auto& e : elements_)
          arr.push_back(e.to_json());
        return arr;
      }
      case reply_type::map:
      case reply_type::attribute:
        return map_to_json();
    }
    return nullptr;
  }

  /// The reply printed as redis-cli prints it in a terminal (no trailing newline).
  std::string to_string() const {
    std::string out;
    print(out, "");
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

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

  static std::string format_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
  }

  static nlohmann::json text_to_json(const std::string& s) {
    if (detail::is_valid_utf8(s)) return s;
    return nlohmann::json{{"$binary", detail::base64_encode(s)}};
  }

  nlohmann::json map_to_json() const {
    // A one-entry object {"$binary": …} or {"error": …} would read back as a binary string or
    // an error reply; such a map keeps its pairs so that every JSON shape means one thing.
    bool as_object = !(elements_.size() == 2 && elements_[0].has_text() &&
                       (elements_[0].str_ == "$binary" || elements_[0].str_ == "error"));
    auto obj = nlohmann::json::object();
    for (std::size_t i = 0; i + 1 < elements_.size() && as_object; i += 2) {
      const auto& k = elements_[i];
      if (!k.has_text() || k.is_error() || !detail::is_valid_utf8(k.str_) || obj.contains(k.str_)) {
        as_object = false;
        break;
      }
      obj[k.str_] = elements_[i + 1].to_json();
    }
    if (as_object) return obj;
    auto arr = nlohmann::json::array();
    for (std::size_t i = 0; i + 1 < elements_.size(); i += 2) {
      arr.push_back(nlohmann::json::array({elements_[i].to_json(), elements_[i + 1].to_json()}));
    }
    return arr;
  }

  void print(std::string& out, const std::string& prefix) const {
    switch (type_) {
      case reply_type::error:
        out += "(error) " + str_ + "\n";
        return;
      case reply_type::status:
      case reply_type::verbatim:
        out += str_ + "\n";
        return;
      case reply_type::integer:
        out += "(integer) " + std::to_string(integer_) + "\n";
        return;
      case reply_type::double_value:
        out += "(double) " + str_ + "\n";
        return;
      case reply_type::big_number:
        out += "(big number) " + str_ + "\n";
        return;
      case reply_type::string:
        detail::append_quoted(out, str_);
        out += "\n";
        return;
      case reply_type::nil:
        out += "(nil)\n";
        return;
      case reply_type::boolean:
        out += integer_ != 0 ? "(true)\n" : "(false)\n";
        return;
      case reply_type::array:
      case reply_type::map:
      case reply_type::set:
      case reply_type::push:
      case reply_type::attribute:
        print_aggregate(out, prefix);
        return;
    }
  }

  void print_aggregate(std::string& out, const std::string& prefix) const {
    const bool is_map = type_ == reply_type::map || type_ == reply_type::attribute;
    if (elements_.empty()) {
      switch (type_) {
        case reply_type::array:
          out += "(empty array)\n";
          break;
        case reply_type::map:
          out += "(empty hash)\n";
          break;
        case reply_type::set:
          out += "(empty set)\n";
          break;
        case reply_type::push:
          out += "(empty push)\n";
          break;
        default:
          out += "(empty aggregate type)\n";
          break;
      }
      return;
    }
    const std::size_t count = is_map ? elements_.size() / 2 : elements_.size();
    const std::size_t width = std::to_string(count).size();
    const char mark = is_map ? '#' : (type_ == reply_type::set ? '~' : ')');
    const std::string child_prefix = prefix + std::string(width + 2, ' ');
    for (std::size_t i = 0; i < count; ++i) {
      if (i > 0) out += prefix;
      std::string index = std::to_string(i + 1);
      out += std::string(width - index.size(), ' ') + index + mark + ' ';
      if (is_map) {
        elements_[2 * i].print(out, child_prefix);
        if (!out.empty() && out.back() == '\n') out.pop_back();
        out += " => ";
        if (elements_[2 * i + 1].is_multiline()) out += "\n" + child_prefix;
        elements_[2 * i + 1].print(out, child_prefix);
      } else {
        elements_[i].print(out, child_prefix);
      }
    }
  }

  // Mirrors redis-cli: a map value that spans several lines starts on a line of its own.
  bool is_multiline() const {
    switch (type_) {
      case reply_type::array:
      case reply_type::set:
      case reply_type::push:
        if (elements_.empty()) return false;
        if (elements_.size() > 1) return true;
        return elements_[0].is_multiline();
      case reply_type::map:
      case reply_type::attribute:
        if (elements_.empty()) return false;
        if (elements_.size() > 2) return true;
        return elements_.size() > 1 && elements_[1].is_multiline();
      default:
        return false;
    }
  }

  reply_type type_ = reply_type::nil;
  long long integer_ = 0;
  double number_ = 0;
  std::string str_;
  std::string format_;
  std::vector<reply> elements_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
