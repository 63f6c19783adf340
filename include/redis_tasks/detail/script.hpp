// Lua scripts, run by EVALSHA: each script's SHA-1 is computed once, so the usual run sends
// only the hash, and a server that does not know the script yet (NOSCRIPT: restarted, failed
// over, SCRIPT FLUSH) gets the text once by EVAL, which also loads it.
#pragma once

#include "../version.hpp"

#include <initializer_list>
#include <string>
#include <string_view>

#include "../errors.hpp"
#include "../reply.hpp"
#include "codec.hpp"
#include "connection.hpp"
#include "sha1.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// A Lua script and its SHA-1. Make each once (a function-local static): the hash is computed
/// when it is made.
class script {
 public:
  /// `text` must outlive the script (a string literal).
  explicit script(std::string_view text) : text_(text), sha_(sha1_hex(text)) {}
  /// The script's text, for EVAL.
  std::string_view text() const noexcept { return text_; }
  /// Its lowercase hex SHA-1, for EVALSHA.
  const std::string& sha() const noexcept { return sha_; }

 private:
  std::string_view text_;
  std::string sha_;
};

/// True when `r` says the server does not have the script (EVALSHA's NOSCRIPT).
REDIS_TASKS_DECL bool is_noscript(const reply& r);

/// Queues `s` with `keys` and `args` (containers of std::string_view): by EVALSHA, or with
/// its text (EVAL) when `with_text`. The arguments are not copied and must outlive the next
/// flush.
template <class Keys, class Args>
void queue_script_of(connection& c, const script& s, bool with_text, const Keys& keys,
                     const Args& args) {
  const std::string numkeys = std::to_string(keys.size());
  c.begin_command(3 + keys.size() + args.size());
  c.arg(with_text ? "EVAL" : "EVALSHA");
  c.arg(with_text ? s.text() : std::string_view(s.sha()));
  c.arg(numkeys);  // short: copied into the request now
  for (const auto& k : keys)
    c.arg(k);
  for (const auto& a : args)
    c.arg(a);
  c.end_command();
}

/// Queues `s` with `keys` and `args`: by EVALSHA, or with its text (EVAL) when `with_text`.
/// The arguments are not copied and must outlive the next flush.
REDIS_TASKS_DECL void queue_script(connection& c, const script& s, bool with_text,
                                   std::initializer_list<std::string_view> keys,
                                   std::initializer_list<std::string_view> args);

/// Runs `s` and returns its reply: EVALSHA, then EVAL if the server did not have it. An error
/// reply is thrown as a `reply_error` naming `what`, `subject` (quoted) and the endpoint, inside
/// the run, so that the client follows MOVED/ASK and a demoted master's READONLY. The message is
/// only made when there is an error.
template <class Keys, class Args>
reply call_script_of(connection& c, const script& s, std::string_view what,
                     std::string_view subject, const Keys& keys, const Args& args) {
  for (const bool with_text : {false, true}) {
    c.begin_request();
    queue_script_of(c, s, with_text, keys, args);
    c.flush();
    reply r = c.read();
    if (!with_text && is_noscript(r)) continue;
    if (r.is_error()) {
      throw reply_error(
          r.str(), std::string(what) + " " + quote_for_message(subject) + " on " + c.endpoint());
    }
    return r;
  }
  throw error("unreachable");  // the loop returns or throws
}

/// Runs `s` (see `call_script_of`) with `keys` and `args`.
REDIS_TASKS_DECL reply call_script(connection& c, const script& s, std::string_view what,
                                   std::string_view subject,
                                   std::initializer_list<std::string_view> keys,
                                   std::initializer_list<std::string_view> args);

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/script.ipp"
#endif
