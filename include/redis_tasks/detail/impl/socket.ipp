// The bodies of socket.hpp (see ../socket.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../fork.hpp"
#include "../socket.hpp"

#include <arpa/inet.h>
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
#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

// Name resolution and connecting, used only by the bodies below (declared here, so that
// files including socket.hpp do not parse <netdb.h>).

/// Connects a non-blocking socket to `addr`, waiting until `deadline`; returns 0 or an errno
/// (ETIMEDOUT when the deadline passed).
REDIS_TASKS_DECL int connect_with_deadline(int fd, const sockaddr* addr, socklen_t len,
                                           clock::time_point deadline);

/// One name lookup, shared by the callers waiting for it and the thread that runs it: a
/// caller may stop waiting at its deadline and go, and the thread finishes on its own.
struct resolution {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int gai = 0;
  std::shared_ptr<addrinfo> result;                        // shared by every caller of this lookup
  std::uint64_t generation = fork_registry::generation();  // a parent's runs no thread here
};

/// The lookups under way, one per host and port: callers that need the same name while it is
/// looked up wait for the same lookup, and at most `max_lookups` run at once, so a resolver
/// that never answers cannot make threads pile up.
class resolver_flights {
 public:
  static constexpr std::size_t max_lookups = 32;

  /// The registry of this copy of the library (never destroyed: lookups may outlive main).
  REDIS_TASKS_DECL static resolver_flights& instance();

  /// The lookup of `host`:`service` under way, or a new one (started on its own thread).
  /// Throws `connection_error` when too many are under way or no thread can be had.
  REDIS_TASKS_DECL std::shared_ptr<resolution> start(const std::string& host,
                                                     const std::string& service,
                                                     const addrinfo& hints);

 private:
  resolver_flights() = default;
  fork_safe_lock lock_;
  std::map<std::string, std::shared_ptr<resolution>> running_;
};

/// Resolves host:port to stream socket addresses, giving up at `deadline`. getaddrinfo cannot
/// be interrupted and its own timeouts (resolv.conf's, several seconds per server and try) know
/// nothing of ours, so a name that is not a numeric address is looked up on a thread of its own
/// (see resolver_flights) and waited for with the deadline. Returns the list, or null with
/// `gai` set (EAI_AGAIN when the deadline passed).
REDIS_TASKS_DECL std::shared_ptr<addrinfo> resolve_host(const std::string& host, int port,
                                                        clock::time_point deadline, int& gai);

REDIS_TASKS_DECL std::string errno_text(int e) {
  char buf[256];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return std::string(strerror_r(e, buf, sizeof buf));
#else
  if (strerror_r(e, buf, sizeof buf) != 0) return "error " + std::to_string(e);
  return std::string(buf);
#endif
}

REDIS_TASKS_DECL auto unique_fd::operator=(unique_fd&& o) noexcept -> unique_fd& {
  if (this != &o) reset(o.release());
  return *this;
}

REDIS_TASKS_DECL int unique_fd::release() noexcept {
  int f = fd_;
  fd_ = -1;
  return f;
}

REDIS_TASKS_DECL void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

REDIS_TASKS_DECL void set_io_timeout(int fd, std::chrono::microseconds t) {
  timeval tv{};
  if (t.count() > 0) {
    const auto secs = t.count() / 1000000;
    tv.tv_sec = static_cast<time_t>(secs > INT_MAX ? INT_MAX : secs);
    tv.tv_usec = static_cast<suseconds_t>(t.count() % 1000000);
  }
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

REDIS_TASKS_DECL void set_blocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0) return;
  flags = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  ::fcntl(fd, F_SETFL, flags);
}

REDIS_TASKS_DECL int connect_with_deadline(int fd, const sockaddr* addr, socklen_t len,
                                           clock::time_point deadline) {
  if (::connect(fd, addr, len) == 0) return 0;
  // EINTR: connecting goes on in the background, as with EINPROGRESS. EAGAIN on a unix socket
  // means its listen backlog is full, not that connecting goes on.
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  if (!wait_fd(fd, POLLOUT, deadline)) return ETIMEDOUT;
  int err = 0;
  socklen_t elen = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) return errno;
  return err;
}

REDIS_TASKS_DECL auto resolver_flights::instance() -> resolver_flights& {
  // Never destroyed, in static storage (as fork_registry, and for the same reasons).
  alignas(resolver_flights) static unsigned char storage[sizeof(resolver_flights)];
  static auto* r = ::new (storage) resolver_flights();
  return *r;
}

REDIS_TASKS_DECL auto resolver_flights::start(const std::string& host, const std::string& service,
                                              const addrinfo& hints)
    -> std::shared_ptr<resolution> {
  const std::string key = host + '\x1f' + service;
  const std::lock_guard<std::mutex> g(lock_.mutex());
  auto found = running_.find(key);
  if (found != running_.end()) {
    if (found->second->generation == fork_registry::generation()) return found->second;
    running_.erase(found);  // started before a fork: its thread is in the parent
  }
  if (running_.size() >= max_lookups) {
    throw connection_error("cannot resolve '" + host + "': " + std::to_string(max_lookups) +
                           " name lookups are already waiting for the DNS resolver; check "
                           "the resolver (/etc/resolv.conf) or use addresses");
  }
  auto job = std::make_shared<resolution>();
  try {
    std::thread([this, job, key, host, service, hints] {
      addrinfo* out = nullptr;
      const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &out);
      {
        const std::lock_guard<std::mutex> lock(job->mutex);
        job->gai = rc;
        job->result = std::shared_ptr<addrinfo>(out, [](addrinfo* a) {
          if (a != nullptr) ::freeaddrinfo(a);
        });
        job->done = true;
      }
      job->done_cv.notify_all();
      const std::lock_guard<std::mutex> g2(lock_.mutex());
      auto it = running_.find(key);
      if (it != running_.end() && it->second == job) running_.erase(it);
    }).detach();
  } catch (const std::system_error& e) {
    throw connection_error("cannot resolve '" + host + "': no thread for the lookup (" + e.what() +
                           ")");
  }
  running_.emplace(key, job);
  return job;
}

REDIS_TASKS_DECL std::shared_ptr<addrinfo> resolve_host(const std::string& host, int port,
                                                        clock::time_point deadline, int& gai) {
  const std::string service = std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (gai == 0) {  // an address: nothing to look up
    return std::shared_ptr<addrinfo>(res, [](addrinfo* a) { ::freeaddrinfo(a); });
  }
  hints.ai_flags = AI_NUMERICSERV;
  if (host == "localhost") {
    // Answered from /etc/hosts (RFC 6761 keeps it off the DNS): no thread needed.
    gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (gai == 0) return std::shared_ptr<addrinfo>(res, [](addrinfo* a) { ::freeaddrinfo(a); });
    return nullptr;
  }
  auto job = resolver_flights::instance().start(host, service, hints);
  std::unique_lock<std::mutex> lock(job->mutex);
  if (!wait_until(job->done_cv, lock, deadline, [&] { return job->done; })) {
    gai = EAI_AGAIN;
    return nullptr;
  }
  gai = job->gai;
  return gai == 0 ? job->result : nullptr;
}

REDIS_TASKS_DECL unique_fd connect_tcp(const std::string& host, int port, const socket_options& o,
                                       const std::string& endpoint, const connect_bound& bound) {
  int gai = 0;
  const std::shared_ptr<addrinfo> res = resolve_host(host, port, bound.deadline, gai);
  if (!res) {
    if (gai == EAI_AGAIN && clock::now() >= bound.deadline) {
      throw timeout_error("resolving the host name of " + endpoint + " took longer than " +
                          bound.what + "; check the DNS resolver or use an address" + bound.hint);
    }
    throw connection_error("cannot resolve host of " + endpoint + ": " + gai_strerror(gai) +
                           "; check the `host` setting");
  }
  int last_err = ECONNREFUSED;
  for (addrinfo* a = res.get(); a != nullptr; a = a->ai_next) {
    unique_fd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      last_err = errno;
      continue;
    }
    const int err = connect_with_deadline(fd.get(), a->ai_addr, a->ai_addrlen, bound.deadline);
    if (err == 0) {
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (o.keepalive) {
        ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        // The kernel takes at most 32767 s here.
        const long long want = o.keepalive_interval.count() > 0 ? o.keepalive_interval.count() : 15;
        int secs = static_cast<int>(want > 32767 ? 32767 : want);
        int count = 3;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof secs);
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
      }
      return fd;
    }
    last_err = err;
    if (err == ETIMEDOUT && clock::now() >= bound.deadline) {
      throw timeout_error("connecting to " + endpoint + " took longer than " + bound.what +
                          "; check that the server is reachable" + bound.hint);
    }
  }
  throw connection_error("cannot connect to " + endpoint + ": " + errno_text(last_err) +
                         "; check that redis-server is running there");
}

REDIS_TASKS_DECL unique_fd connect_unix(const std::string& path, const std::string& endpoint,
                                        const connect_bound& bound) {
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
  const int err = connect_with_deadline(fd.get(), reinterpret_cast<const sockaddr*>(&addr),
                                        sizeof addr, bound.deadline);
  if (err == ETIMEDOUT) {
    throw timeout_error("connecting to " + endpoint + " took longer than " + bound.what +
                        bound.hint);
  }
  if (err == EAGAIN) {
    throw connection_error("cannot connect to " + endpoint +
                           ": the server's listen backlog is full (it accepts no more "
                           "connections for now); task retries will try again");
  }
  if (err != 0) {
    throw connection_error("cannot connect to " + endpoint + ": " + errno_text(err) +
                           "; check the unix_socket path and that redis-server listens on it");
  }
  return fd;
}

REDIS_TASKS_DECL plain_stream::plain_stream(unique_fd fd, std::string endpoint,
                                            std::chrono::milliseconds socket_timeout)
    : fd_(std::move(fd)), endpoint_(std::move(endpoint)) {
  if (socket_timeout.count() > 0 && socket_timeout < std::chrono::hours(24) * 365) {
    // The kernel rounds its timeouts up to whole timer ticks (up to 10 ms each), so a
    // blocking call leaves room for that; a socket_timeout too short for the room always
    // takes the poll path.
    const auto st = std::chrono::duration_cast<std::chrono::microseconds>(socket_timeout);
    const auto margin = std::max<std::chrono::microseconds>(st / 16, 2 * kernel_slack);
    if (st > margin) kernel_timeout_ = st - margin;
  }
  set_blocking(fd_.get(), true);
  set_io_timeout(fd_.get(), kernel_timeout_);
}

REDIS_TASKS_DECL std::size_t plain_stream::read_some(char* buf, std::size_t n,
                                                     clock::time_point deadline) {
  for (;;) {
    const int flags = may_block(deadline) ? 0 : MSG_DONTWAIT;
    // Non-blocking, a reply is usually still on its way: wait for it first, which saves a
    // recv that would only say EAGAIN.
    if (flags != 0 && !wait_fd(fd_.get(), POLLIN, deadline)) return 0;
    const ssize_t r = ::recv(fd_.get(), buf, n, flags);
    if (r > 0) {
      received_any_ = true;
      return static_cast<std::size_t>(r);
    }
    const int e = errno;
    if (r < 0 && e == EINTR) continue;
    if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
      if (flags == 0) continue;  // the kernel timeout ran out; the loop looks at the deadline
      if (!wait_fd(fd_.get(), POLLIN, deadline)) return 0;
      continue;
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

REDIS_TASKS_DECL bool plain_stream::write_all(const iovec* iov, int n, std::size_t& written,
                                              clock::time_point deadline) {
  iovec local[64];
  while (n > 0) {
    const int batch = n < 64 ? n : 64;
    for (int i = 0; i < batch; ++i)
      local[i] = iov[i];
    int first = 0;
    while (first < batch) {
      const int flags = MSG_NOSIGNAL | (may_block(deadline) ? 0 : MSG_DONTWAIT);
      msghdr msg{};
      msg.msg_iov = local + first;
      msg.msg_iovlen = static_cast<std::size_t>(batch - first);
      // One piece (every small request) goes by send(): the kernel then skips copying and
      // checking a msghdr and an iovec array (about 0.5% of a loopback round trip).
      const ssize_t w = batch - first == 1
                            ? ::send(fd_.get(), local[first].iov_base, local[first].iov_len, flags)
                            : ::sendmsg(fd_.get(), &msg, flags);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if ((flags & MSG_DONTWAIT) == 0) continue;
          if (!wait_fd(fd_.get(), POLLOUT, deadline)) return false;
          continue;
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
  return true;
}

REDIS_TASKS_DECL bool plain_stream::idle_and_intact() {
  char c;
  const ssize_t r = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

REDIS_TASKS_DECL bool plain_stream::may_block(clock::time_point deadline) const {
  if (deadline == no_deadline) return true;
  if (kernel_timeout_.count() == 0) return false;
  return saturating_add(clock::now(), kernel_timeout_ + kernel_slack) <= deadline;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
