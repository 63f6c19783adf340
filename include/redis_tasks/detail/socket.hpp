// Sockets owned by the library: name resolution and connecting against a deadline, keepalive,
// and a byte stream interface that plain TCP/unix sockets (and TLS) implement, every read and
// write bounded by an absolute deadline. hiredis is used only to parse replies, so one code
// path serves every hiredis version and every transport.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include <sys/uio.h>  // iovec

#include "../errors.hpp"
#include "deadline.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Thrown when a write failed before any byte of the request left: the command cannot have run,
/// so it may be sent again on a fresh connection.
class not_sent_error : public connection_error {
 public:
  using connection_error::connection_error;
};

REDIS_TASKS_DECL std::string errno_text(int e);

/// Owns a file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  REDIS_TASKS_DECL unique_fd& operator=(unique_fd&& o) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  REDIS_TASKS_DECL int release() noexcept;
  REDIS_TASKS_DECL void reset(int fd = -1) noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Sets the kernel's per-call receive and send timeouts (0: none).
REDIS_TASKS_DECL void set_io_timeout(int fd, std::chrono::microseconds t);

REDIS_TASKS_DECL void set_blocking(int fd, bool blocking);

/// Options for opening a socket.
struct socket_options {
  bool keepalive = true;                        ///< TCP keepalive probes
  std::chrono::seconds keepalive_interval{15};  ///< idle time and probe interval
};

/// What bounds a connect, for messages: e.g. "connect_timeout 5000 ms".
struct connect_bound {
  clock::time_point deadline = no_deadline;  ///< when connecting must be done
  std::string what;                          ///< what set it
  std::string hint;                          ///< what to do about it
};

/// Opens a TCP connection to host:port (every address the name resolves to, in order), name
/// resolution included, by `bound.deadline`. The socket is returned non-blocking.
/// Throws `timeout_error` when the deadline passes, `connection_error` otherwise.
REDIS_TASKS_DECL unique_fd connect_tcp(const std::string& host, int port, const socket_options& o,
                                       const std::string& endpoint, const connect_bound& bound);

/// Opens a unix-socket connection to `path` by `bound.deadline`; the socket is returned
/// non-blocking.
REDIS_TASKS_DECL unique_fd connect_unix(const std::string& path, const std::string& endpoint,
                                        const connect_bound& bound);

/// A connected byte stream. Every call waits at most until the deadline it is given.
class stream {
 public:
  virtual ~stream() = default;
  /// Reads at least one byte into `buf`, waiting until `deadline`; returns 0 when the deadline
  /// passed first. Throws `connection_error` on EOF or error. Signals never end the wait.
  virtual std::size_t read_some(char* buf, std::size_t n, clock::time_point deadline) = 0;
  /// Writes `n` segments completely by `deadline`; returns false when the deadline passed first.
  /// `written` counts bytes accepted so far, so the caller knows whether anything left; a
  /// failure with nothing written is a `not_sent_error`.
  virtual bool write_all(const iovec* iov, int n, std::size_t& written,
                         clock::time_point deadline) = 0;
  /// True when the connection is idle and intact: no EOF and no unexpected bytes waiting.
  virtual bool idle_and_intact() = 0;
  /// In a child process after fork(): let the connection go without a word to the server (the
  /// parent still uses it); only this process's descriptor is closed.
  virtual void abandon() noexcept = 0;
  /// The socket's descriptor, to wait on it along with others (a subscriber's wake-up).
  virtual int native_handle() const noexcept = 0;
  /// True when bytes already received wait in the stream itself (decrypted TLS data), so a
  /// read returns at once although the socket may show nothing.
  virtual bool has_buffered() noexcept = 0;
};

/// A plain TCP or unix socket.
///
/// The socket stays in blocking mode with kernel timeouts a little shorter than
/// `socket_timeout`: while a deadline is at least that far away, a read is one blocking recv
/// (as raw hiredis does it), and the kernel timeout keeps it from overrunning the deadline. A
/// nearer deadline (task.timeout, the rest of a reply's socket_timeout, a signal) switches to
/// non-blocking calls and poll against the deadline itself.
class plain_stream : public stream {
 public:
  REDIS_TASKS_DECL plain_stream(unique_fd fd, std::string endpoint,
                                std::chrono::milliseconds socket_timeout);

  REDIS_TASKS_DECL std::size_t read_some(char* buf, std::size_t n,
                                         clock::time_point deadline) override;

  REDIS_TASKS_DECL bool write_all(const iovec* iov, int n, std::size_t& written,
                                  clock::time_point deadline) override;

  REDIS_TASKS_DECL bool idle_and_intact() override;

  void abandon() noexcept override {}  // closing a descriptor says nothing to the server

  int native_handle() const noexcept override { return fd_.get(); }
  bool has_buffered() noexcept override { return false; }  // the kernel holds every byte

 private:
  // True when one blocking call, which the kernel timeout ends, cannot overrun `deadline`.
  REDIS_TASKS_DECL bool may_block(clock::time_point deadline) const;

  // How late the kernel may end a call with a timeout: timer ticks (HZ=100: 10 ms).
  static constexpr std::chrono::microseconds kernel_slack{20000};

  unique_fd fd_;
  std::string endpoint_;
  std::chrono::microseconds kernel_timeout_{0};  // 0: the kernel never ends a call
  bool received_any_ = false;
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/socket.ipp"
#endif
