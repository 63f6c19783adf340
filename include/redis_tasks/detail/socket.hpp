// Sockets owned by the library: connecting with a deadline, keepalive, timeouts, and a byte
// stream interface that plain TCP/unix sockets (and TLS) implement. hiredis is used only to
// parse replies, so one code path serves every hiredis version and every transport.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../errors.hpp"

namespace redis_tasks::detail {

using clock = std::chrono::steady_clock;

/// Thrown when a write failed before any byte of the request left: the command cannot have run,
/// so it may be sent again on a fresh connection.
class not_sent_error : public connection_error {
 public:
  using connection_error::connection_error;
};

inline std::string errno_text(int e) {
  char buf[256];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return std::string(strerror_r(e, buf, sizeof buf));
#else
  if (strerror_r(e, buf, sizeof buf) != 0) return "error " + std::to_string(e);
  return std::string(buf);
#endif
}

inline std::string ms_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

/// Owns a file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  int release() noexcept {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Sets (or clears, for 0) the kernel's per-call receive and send timeouts.
inline void set_io_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  if (t.count() > 0) {
    tv.tv_sec = static_cast<time_t>(t.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  }
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline void set_blocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0) return;
  flags = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  ::fcntl(fd, F_SETFL, flags);
}

inline int remaining_ms(clock::time_point deadline) {
  if (deadline == clock::time_point::max()) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(left.count());
}

/// Connects a non-blocking socket to `addr`, waiting until `deadline`; returns 0 or an errno.
inline int connect_with_deadline(int fd, const sockaddr* addr, socklen_t len,
                                 clock::time_point deadline) {
  if (::connect(fd, addr, len) == 0) return 0;
  if (errno != EINPROGRESS && errno != EAGAIN) return errno;
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    const int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return errno;
    if (rc == 0) return ETIMEDOUT;
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) return errno;
    return err;
  }
}

/// Options for opening a socket.
struct socket_options {
  std::chrono::milliseconds connect_timeout{0};  ///< 0: no limit
  bool keepalive = true;                         ///< TCP keepalive probes
  std::chrono::seconds keepalive_interval{15};   ///< idle time and probe interval
};

/// Opens a TCP connection to host:port (every address the name resolves to, in order).
/// Throws `timeout_error` when the deadline passes, `connection_error` otherwise.
inline unique_fd connect_tcp(const std::string& host, int port, const socket_options& o,
                             const std::string& endpoint) {
  const auto deadline =
      o.connect_timeout.count() > 0 ? clock::now() + o.connect_timeout : clock::time_point::max();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (gai != 0) {
    throw connection_error("cannot resolve host of " + endpoint + ": " + gai_strerror(gai) +
                           "; check the `host` setting");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  int last_err = ECONNREFUSED;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    unique_fd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      last_err = errno;
      continue;
    }
    const int err = connect_with_deadline(fd.get(), a->ai_addr, a->ai_addrlen, deadline);
    if (err == 0) {
      set_blocking(fd.get(), true);
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (o.keepalive) {
        ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        int secs =
            static_cast<int>(o.keepalive_interval.count() > 0 ? o.keepalive_interval.count() : 15);
        int count = 3;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof secs);
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
      }
      return fd;
    }
    last_err = err;
    if (err == ETIMEDOUT && remaining_ms(deadline) == 0) {
      throw timeout_error("connecting to " + endpoint + " timed out after " +
                          ms_text(o.connect_timeout) +
                          "; check that the server is reachable or raise connect_timeout");
    }
  }
  throw connection_error("cannot connect to " + endpoint + ": " + errno_text(last_err) +
                         "; check that redis-server is running there");
}

/// Opens a unix-socket connection to `path`.
inline unique_fd connect_unix(const std::string& path, const socket_options& o,
                              const std::string& endpoint) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    throw config_error("unix socket path is too long (" + std::to_string(path.size()) +
                       " bytes, at most " + std::to_string(sizeof addr.sun_path - 1) + ")");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd)
    throw connection_error("cannot create a socket for " + endpoint + ": " + errno_text(errno));
  const auto deadline =
      o.connect_timeout.count() > 0 ? clock::now() + o.connect_timeout : clock::time_point::max();
  const int err = connect_with_deadline(fd.get(), reinterpret_cast<const sockaddr*>(&addr),
                                        sizeof addr, deadline);
  if (err == ETIMEDOUT) {
    throw timeout_error("connecting to " + endpoint + " timed out after " +
                        ms_text(o.connect_timeout));
  }
  if (err != 0) {
    throw connection_error("cannot connect to " + endpoint + ": " + errno_text(err) +
                           "; check the unix_socket path and that redis-server listens on it");
  }
  set_blocking(fd.get(), true);
  return fd;
}

/// A connected byte stream. Reads and writes block up to the socket timeout and throw
/// `timeout_error` / `connection_error`; `endpoint` names the peer in messages.
class stream {
 public:
  virtual ~stream() = default;
  /// Reads at least one byte into `buf`; throws on EOF, error or timeout.
  virtual std::size_t read_some(char* buf, std::size_t n) = 0;
  /// Writes `n` segments completely; returns normally or throws. `written` counts bytes
  /// accepted so far, so the caller knows whether anything left.
  virtual void write_all(const iovec* iov, int n, std::size_t& written) = 0;
  /// True when the connection is idle and intact: no EOF and no unexpected bytes waiting.
  virtual bool idle_and_intact() = 0;
  /// Changes the per-call I/O timeout (0: none).
  virtual void set_timeout(std::chrono::milliseconds t) = 0;
};

/// A plain TCP or unix socket.
class plain_stream : public stream {
 public:
  plain_stream(unique_fd fd, std::string endpoint, std::chrono::milliseconds timeout)
      : fd_(std::move(fd)), endpoint_(std::move(endpoint)), timeout_(timeout) {
    set_io_timeout(fd_.get(), timeout_);
  }

  std::size_t read_some(char* buf, std::size_t n) override {
    for (;;) {
      const ssize_t r = ::recv(fd_.get(), buf, n, 0);
      if (r > 0) {
        received_any_ = true;
        return static_cast<std::size_t>(r);
      }
      const int e = errno;
      if (r < 0 && e == EINTR) continue;
      if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
        throw timeout_error("no reply from " + endpoint_ + " within socket_timeout " +
                            ms_text(timeout_));
      }
      // A server that closes before saying anything may be a TLS-only one hearing plain text.
      const std::string hint =
          received_any_ ? std::string()
                        : " before it sent anything; if the server accepts only TLS, turn ssl on "
                          "(a rediss:// URL)";
      if (r == 0) {
        throw connection_error("connection to " + endpoint_ + " closed by the server" + hint);
      }
      throw connection_error("reading from " + endpoint_ + " failed: " + errno_text(e) +
                             (e == ECONNRESET ? hint : std::string()));
    }
  }

  void write_all(const iovec* iov, int n, std::size_t& written) override {
    iovec local[64];
    while (n > 0) {
      const int batch = n < 64 ? n : 64;
      for (int i = 0; i < batch; ++i)
        local[i] = iov[i];
      int first = 0;
      while (first < batch) {
        msghdr msg{};
        msg.msg_iov = local + first;
        msg.msg_iovlen = static_cast<std::size_t>(batch - first);
        // One piece (every small request) goes by send(): the kernel then skips copying and
        // checking a msghdr and an iovec array (about 0.5% of a loopback round trip).
        const ssize_t w = batch - first == 1 ? ::send(fd_.get(), local[first].iov_base,
                                                      local[first].iov_len, MSG_NOSIGNAL)
                                             : ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            throw timeout_error("writing to " + endpoint_ + " timed out after socket_timeout " +
                                ms_text(timeout_));
          }
          const std::string what = "writing to " + endpoint_ + " failed: " + errno_text(errno);
          if (written == 0) throw not_sent_error(what);
          throw connection_error(what);
        }
        written += static_cast<std::size_t>(w);
        auto left = static_cast<std::size_t>(w);
        while (first < batch && left >= local[first].iov_len) {
          left -= local[first].iov_len;
          ++first;
        }
        if (first < batch) {
          local[first].iov_base = static_cast<char*>(local[first].iov_base) + left;
          local[first].iov_len -= left;
        }
      }
      iov += batch;
      n -= batch;
    }
  }

  bool idle_and_intact() override {
    char c;
    const ssize_t r = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void set_timeout(std::chrono::milliseconds t) override {
    if (t == timeout_) return;
    timeout_ = t;
    set_io_timeout(fd_.get(), t);
  }

 private:
  unique_fd fd_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  bool received_any_ = false;
};

}  // namespace redis_tasks::detail
