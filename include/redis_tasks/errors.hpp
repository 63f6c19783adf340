// The exception types of redis_tasks. Every message names what it is about (key, command,
// endpoint) and never contains a password or a stored value.
#pragma once

#include "version.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Base of every exception the library throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad or missing arguments, found before any network I/O.
class config_error : public error {
 public:
  using error::error;
};

/// Cannot connect, or the connection was lost.
class connection_error : public error {
 public:
  using error::error;
};

/// Connecting, reading or writing took longer than its timeout.
class timeout_error : public connection_error {
 public:
  using connection_error::connection_error;
};

/// The server refused the credentials, or demanded some that were not configured.
class auth_error : public error {
 public:
  using error::error;
};

/// The server answered with an error reply; `code()` is its leading word (e.g. `WRONGTYPE`).
class reply_error : public error {
 public:
  /// `server_message` is the error text as the server sent it; `context` names the command.
  /// The message (`what()`) leaves out the arguments Redis echoes back ("unknown command
  /// 'X', with args beginning with: ..."), since they may be values or secrets.
  reply_error(std::string server_message, std::string_view context)
      : error(std::string(context) + ": " + without_echoed_args(server_message)),
        server_message_(std::move(server_message)) {}

  /// The leading word of the server's message, such as `ERR`, `WRONGTYPE` or `MOVED`.
  REDIS_TASKS_DECL std::string code() const;

  /// The server's message exactly as it was received (echoed arguments included).
  const std::string& server_message() const noexcept { return server_message_; }

 private:
  REDIS_TASKS_DECL static std::string without_echoed_args(const std::string& m);

  std::string server_message_;
};

/// A reply, or the type of a stored key, does not fit the requested C++ type.
class type_error : public error {
 public:
  using error::error;
};

/// A lease (a lock or a semaphore permit) is no longer held, or a fenced write came from a
/// holder that a later one has superseded. Never retried.
class lease_lost_error : public error {
 public:
  using error::error;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/errors.ipp"
#endif
