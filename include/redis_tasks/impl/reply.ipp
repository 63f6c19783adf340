// The bodies of reply.hpp (see ../reply.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../reply.hpp"

#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL const char* to_string(reply_type t) {
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

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool is_valid_utf8(std::string_view s) {
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

REDIS_TASKS_DECL std::string base64_encode(std::string_view in) {
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

REDIS_TASKS_DECL void append_quoted(std::string& out, std::string_view s) {
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
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL reply reply::make_integer(long long v) {
  reply r;
  r.type_ = reply_type::integer;
  r.integer_ = v;
  return r;
}

REDIS_TASKS_DECL reply reply::make_double(double v, std::string text) {
  reply r(reply_type::double_value, std::move(text));
  r.number_ = v;
  if (r.str_.empty()) r.str_ = format_double(v);
  return r;
}

REDIS_TASKS_DECL reply reply::make_boolean(bool v) {
  reply r;
  r.type_ = reply_type::boolean;
  r.integer_ = v ? 1 : 0;
  return r;
}

REDIS_TASKS_DECL reply reply::make_big_number(std::string digits) {
  return reply(reply_type::big_number, std::move(digits));
}

REDIS_TASKS_DECL reply reply::make_verbatim(std::string text, std::string format) {
  reply r(reply_type::verbatim, std::move(text));
  r.format_ = std::move(format);
  return r;
}

REDIS_TASKS_DECL reply reply::make_aggregate(reply_type t, std::vector<reply> elements) {
  reply r;
  r.type_ = t;
  r.elements_ = std::move(elements);
  return r;
}

REDIS_TASKS_DECL reply reply::make_array(std::vector<reply> elements) {
  return make_aggregate(reply_type::array, std::move(elements));
}

REDIS_TASKS_DECL bool reply::has_text() const noexcept {
  return type_ == reply_type::status || type_ == reply_type::error || type_ == reply_type::string ||
         type_ == reply_type::verbatim || type_ == reply_type::big_number ||
         type_ == reply_type::double_value;
}

REDIS_TASKS_DECL bool reply::is_aggregate() const noexcept {
  return type_ == reply_type::array || type_ == reply_type::map || type_ == reply_type::set ||
         type_ == reply_type::push || type_ == reply_type::attribute;
}

REDIS_TASKS_DECL auto reply::to_json() const -> nlohmann::json {
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

REDIS_TASKS_DECL std::string reply::to_string() const {
  std::string out;
  print(out, "");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

REDIS_TASKS_DECL std::string reply::format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

REDIS_TASKS_DECL auto reply::text_to_json(const std::string& s) -> nlohmann::json {
  if (detail::is_valid_utf8(s)) return s;
  return nlohmann::json{{"$binary", detail::base64_encode(s)}};
}

REDIS_TASKS_DECL auto reply::map_to_json() const -> nlohmann::json {
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

REDIS_TASKS_DECL void reply::print(std::string& out, const std::string& prefix) const {
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

REDIS_TASKS_DECL void reply::print_aggregate(std::string& out, const std::string& prefix) const {
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

REDIS_TASKS_DECL bool reply::is_multiline() const {
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

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
