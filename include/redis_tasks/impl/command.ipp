// The bodies of command.hpp (see ../command.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../command.hpp"

#include <cctype>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL bool is_hex_digit(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

REDIS_TASKS_DECL int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

REDIS_TASKS_DECL std::string command_word(std::string_view line) {
  std::size_t b = 0;
  while (b < line.size() && std::isspace(static_cast<unsigned char>(line[b])))
    ++b;
  std::size_t e = b;
  while (e < line.size() && !std::isspace(static_cast<unsigned char>(line[e])) && e - b < 32)
    ++e;
  std::string w(line.substr(b, e - b));
  for (auto& c : w)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return w;
}

REDIS_TASKS_DECL void throw_split_error(std::string_view line, std::size_t pos,
                                        std::string_view what) {
  throw config_error(
      "command line starting with `" + command_word(line) + "`: " + std::string(what) +
      " at column " + std::to_string(pos + 1) + " of " + std::to_string(line.size()) +
      "; close the quote, or pass the arguments as a vector to send them as they are");
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL std::vector<std::string> split_command_line(std::string_view line) {
  std::vector<std::string> out;
  if (line.find('\0') != std::string_view::npos) {
    detail::throw_split_error(line, line.find('\0'),
                              "a NUL byte cannot be written in a command line");
  }
  const std::size_t n = line.size();
  auto at = [&](std::size_t i) -> char { return i < n ? line[i] : '\0'; };
  std::size_t p = 0;
  for (;;) {
    while (p < n && std::isspace(static_cast<unsigned char>(line[p])))
      ++p;
    if (p >= n) return out;
    bool in_double = false;
    bool in_single = false;
    std::size_t quote_start = 0;
    std::string current;
    for (bool done = false; !done;) {
      const char c = at(p);
      if (in_double) {
        if (c == '\\' && at(p + 1) == 'x' && detail::is_hex_digit(at(p + 2)) &&
            detail::is_hex_digit(at(p + 3))) {
          current.push_back(
              static_cast<char>(detail::hex_value(at(p + 2)) * 16 + detail::hex_value(at(p + 3))));
          p += 3;
        } else if (c == '\\' && p + 1 < n) {
          ++p;
          switch (line[p]) {
            case 'n':
              current.push_back('\n');
              break;
            case 'r':
              current.push_back('\r');
              break;
            case 't':
              current.push_back('\t');
              break;
            case 'b':
              current.push_back('\b');
              break;
            case 'a':
              current.push_back('\a');
              break;
            default:
              current.push_back(line[p]);
              break;
          }
        } else if (c == '"') {
          if (p + 1 < n && !std::isspace(static_cast<unsigned char>(line[p + 1]))) {
            detail::throw_split_error(line, p, "closing double quote not followed by a space");
          }
          done = true;
        } else if (p >= n) {
          detail::throw_split_error(line, quote_start, "unbalanced double quote");
        } else {
          current.push_back(c);
        }
      } else if (in_single) {
        if (c == '\\' && at(p + 1) == '\'') {
          ++p;
          current.push_back('\'');
        } else if (c == '\'') {
          if (p + 1 < n && !std::isspace(static_cast<unsigned char>(line[p + 1]))) {
            detail::throw_split_error(line, p, "closing single quote not followed by a space");
          }
          done = true;
        } else if (p >= n) {
          detail::throw_split_error(line, quote_start, "unbalanced single quote");
        } else {
          current.push_back(c);
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0':
            done = true;
            break;
          case '"':
            in_double = true;
            quote_start = p;
            break;
          case '\'':
            in_single = true;
            quote_start = p;
            break;
          default:
            current.push_back(c);
            break;
        }
      }
      if (p < n) ++p;
    }
    out.push_back(std::move(current));
  }
}

REDIS_TASKS_DECL command::command(
    std::initializer_list<std::string_view> args) {  // NOLINT: implicit by design
  // An initializer_list parameter wins over the iterator-pair and string_view constructors
  // that a two-element list `{"GET", key}` would otherwise also match (an ambiguity).
  if (args.size() == 1) {
    args_ = split_command_line(*args.begin());
  } else {
    args_.assign(args.begin(), args.end());
  }
}

REDIS_TASKS_DECL std::string command::name() const {
  if (args_.empty()) return {};
  return detail::command_word(args_.front());
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string command_label(const command& cmd) {
  static constexpr std::string_view containers[] = {
      "ACL",    "CLIENT", "CLUSTER", "COMMAND", "CONFIG",  "FUNCTION", "LATENCY", "MEMORY",
      "MODULE", "OBJECT", "PUBSUB",  "SCRIPT",  "SLOWLOG", "XGROUP",   "XINFO"};
  std::string label = cmd.name();
  if (cmd.args().size() < 2) return label;
  bool container = false;
  for (auto c : containers)
    container = container || label == c;
  const std::string& sub = cmd.args()[1];
  // Only a plain word is a subcommand; anything else is left out rather than echoed.
  if (!container || sub.empty() || sub.size() > 32) return label;
  for (char c : sub) {
    if (!std::isalpha(static_cast<unsigned char>(c)) && c != '-' && c != '_') return label;
  }
  return label + " " + command_word(sub);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
