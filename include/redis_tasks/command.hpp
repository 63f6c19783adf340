// A Redis command for RedisExecute: a redis-cli style line, or an argument vector.
#pragma once

#include "version.hpp"

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

REDIS_TASKS_DECL bool is_hex_digit(char c);

REDIS_TASKS_DECL int hex_value(char c);

/// The first word of a line, upper-cased, for error messages that must not echo arguments.
REDIS_TASKS_DECL std::string command_word(std::string_view line);

[[noreturn]] REDIS_TASKS_DECL void throw_split_error(std::string_view line, std::size_t pos,
                                                     std::string_view what);

}  // namespace detail

/// Splits a command line exactly as `redis-cli` does: words separated by spaces, tabs, CR or LF;
/// double quotes with the escapes `\n \r \t \b \a \\ \" \xHH` (any other escaped character stands
/// for itself); single quotes where only `\'` is an escape; a quoted part may follow unquoted text
/// in the same word, but a closing quote must be followed by a separator or the end of the line.
/// Throws `config_error` naming the column of an unbalanced quote or a misplaced closing quote.
REDIS_TASKS_DECL std::vector<std::string> split_command_line(std::string_view line);

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
  REDIS_TASKS_DECL command(std::initializer_list<std::string_view> args);
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
  REDIS_TASKS_DECL std::string name() const;

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
REDIS_TASKS_DECL std::string command_label(const command& cmd);

}  // namespace detail

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/command.ipp"
#endif
