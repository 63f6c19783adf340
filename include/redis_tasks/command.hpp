// A Redis command for RedisExecute: a redis-cli style line, or an argument vector.
#pragma once

#include "version.hpp"

#include <cctype>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "errors.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

inline bool is_hex_digit(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

/// The first word of a line, upper-cased, for error messages that must not echo arguments.
inline std::string command_word(std::string_view line) {
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

[[noreturn]] inline void throw_split_error(std::string_view line, std::size_t pos,
                                           std::string_view what) {
  throw config_error(
      "command line starting with `" + command_word(line) + "`: " + std::string(what) +
      " at column " + std::to_string(pos + 1) + " of " + std::to_string(line.size()) +
      "; close the quote, or pass the arguments as a vector to send them as they are");
}

}  // namespace detail

/// Splits a command line exactly as `redis-cli` does: words separated by spaces, tabs, CR or LF;
/// double quotes with the escapes `\n \r \t \b \a \\ \" \xHH` (any other escaped character stands
/// for itself); single quotes where only `\'` is an escape; a quoted part may follow unquoted text
/// in the same word, but a closing quote must be followed by a separator or the end of the line.
/// Throws `config_error` naming the column of an unbalanced quote or a misplaced closing quote.
inline std::vector<std::string> split_command_line(std::string_view line) {
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

/// A command to send: its arguments exactly as they go on the wire (binary-safe).
/// Built from a redis-cli style line (split by `split_command_line`), from a brace list of
/// arguments (`{"GET", key}`, `{"SET", key, value}`: string literals, std::string and
/// std::string_view mixed) or from any range of arguments, which are sent as they are:
/// `command{std::vector<std::string>{"SET", key, value}}`.
class command {
 public:
  /// An empty command; running it is a `config_error`.
  command() = default;
  /// Splits `line` as redis-cli does; throws `config_error` on unbalanced quotes.
  command(std::string_view line) : args_(split_command_line(line)) {}  // NOLINT: implicit by design
  /// Splits `line` as redis-cli does; throws `config_error` on unbalanced quotes.
  command(const char* line) : command(std::string_view(line)) {}  // NOLINT: implicit by design
  /// Splits `line` as redis-cli does; throws `config_error` on unbalanced quotes.
  command(const std::string& line) : command(std::string_view(line)) {}  // NOLINT
  /// Uses `args` as they are: no splitting, no unquoting, binary-safe.
  explicit command(std::vector<std::string> args) : args_(std::move(args)) {}
  /// A brace list of arguments, each sent as it is: `{"GET", key}`, `{"SET", key, value}`.
  /// A list of one element is a line, as if the braces were not there (`{"PING"}`,
  /// `command{"INCR counter"}`), since a command name is never one argument with spaces.
  command(std::initializer_list<std::string_view> args) {  // NOLINT: implicit by design
    // An initializer_list parameter wins over the iterator-pair and string_view constructors
    // that a two-element list `{"GET", key}` would otherwise also match (an ambiguity).
    if (args.size() == 1) {
      args_ = split_command_line(*args.begin());
    } else {
      args_.assign(args.begin(), args.end());
    }
  }
  /// Uses every element of a range of string-like values (std::string_view, const char*, …)
  /// as one argument, as it is: any container, C array or C++20 view, including views that
  /// can only be iterated when not const (such as `std::views::filter`).
  template <
      class Range,
      class = std::enable_if_t<
          !std::is_convertible_v<Range&&, std::string_view> &&
          !std::is_same_v<std::remove_cv_t<std::remove_reference_t<Range>>, command> &&
          std::is_constructible_v<std::string, decltype(*std::begin(std::declval<Range&>()))>>>
  explicit command(Range&& args) {
    for (auto&& a : args)
      args_.emplace_back(std::forward<decltype(a)>(a));
  }

  /// The arguments, command name first.
  const std::vector<std::string>& args() const noexcept { return args_; }
  /// True when there is no argument at all.
  bool empty() const noexcept { return args_.empty(); }
  /// The command name upper-cased (`"INCRBY"`), or "" when empty; safe to put in messages.
  std::string name() const {
    if (args_.empty()) return {};
    return detail::command_word(args_.front());
  }

  /// Equal when the argument vectors are equal.
  friend bool operator==(const command& a, const command& b) { return a.args_ == b.args_; }
  /// Unequal when the argument vectors differ.
  friend bool operator!=(const command& a, const command& b) { return !(a == b); }

 private:
  std::vector<std::string> args_;
};

/// RedisExecute's `redis_cmd`: a `std::optional<command>` that a brace list of arguments also
/// sets, so that `.redis_cmd = {"GET", key}` works as `command({"GET", key})` does (a plain
/// std::optional cannot take a list of two or more elements).
class optional_command : public std::optional<command> {
 public:
  using std::optional<command>::optional;
  /// No command (falls back to the config's).
  optional_command() = default;
  /// A brace list of arguments, as `command` takes it.
  optional_command(std::initializer_list<std::string_view> args)  // NOLINT: implicit by design
      : std::optional<command>(command(args)) {}
  /// Sets the command, or clears it with `std::nullopt` (as std::optional's assignment does).
  template <class U = command>
  optional_command& operator=(U&& v) {
    std::optional<command>::operator=(std::forward<U>(v));
    return *this;
  }
};

namespace detail {

/// The command for messages: its name, plus the subcommand of a container command
/// (`CONFIG GET`, `CLIENT LIST`, `XINFO STREAM`), which is a keyword and never user data.
inline std::string command_label(const command& cmd) {
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
