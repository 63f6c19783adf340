// TLS over the library's own socket, with OpenSSL. Without it (REDIS_TASKS_TLS 0) this header
// includes nothing of OpenSSL, and asking for TLS is a config_error when the task is built.
//
// Why not hiredis_ssl: Debian 12 and Ubuntu 22.04 ship hiredis 0.14, which has no TLS at all.
// Since the library already owns the socket and uses hiredis only to parse replies, TLS is one
// more `stream`: the same code path, timeouts, error messages and reply parsing on every
// hiredis version, instead of two transports that behave differently.
#pragma once

#include "../version.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "../connection.hpp"
#include "../errors.hpp"
#include "socket.hpp"

#if REDIS_TASKS_TLS
// OpenSSL's SSL_CTX and SSL by their struct names (the typedefs of every OpenSSL since 1.1.0), so
// that files including this header parse nothing of OpenSSL; impl/tls.ipp includes it.
struct ssl_ctx_st;
struct ssl_st;
#endif

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

#if REDIS_TASKS_TLS

/// The oldest OpenSSL error in this thread's queue as text (and clears the queue).
REDIS_TASKS_DECL std::string openssl_error_text();

/// An SSL_CTX made from `tls_params`: trusted CAs, client certificate, verification mode.
/// Built when the task is built, so unreadable files are `config_error`s before any I/O.
class tls_context {
 public:
  REDIS_TASKS_DECL explicit tls_context(const tls_params& p);
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  REDIS_TASKS_DECL ~tls_context();

  ssl_ctx_st* get() const noexcept { return ctx_; }
  const tls_params& params() const noexcept { return params_; }

 private:
  REDIS_TASKS_DECL void check_ca_path(const std::string& path);

  [[noreturn]] REDIS_TASKS_DECL void fail(const std::string& what);

  tls_params params_;
  ssl_ctx_st* ctx_ = nullptr;
};

REDIS_TASKS_DECL bool is_ip_address(const std::string& host);

/// A TLS connection on a connected socket, which stays non-blocking: every wait for the peer is
/// a poll against the deadline of the call, so signals (EINTR) and slow peers never end or
/// stretch it. The handshake runs in the constructor, by the connect deadline.
class tls_stream : public stream {
 public:
  REDIS_TASKS_DECL tls_stream(unique_fd fd, const tls_context& ctx, const std::string& host,
                              std::string endpoint, const connect_bound& bound);

  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  REDIS_TASKS_DECL ~tls_stream() override;

  int native_handle() const noexcept override { return fd_.get(); }
  REDIS_TASKS_DECL bool has_buffered() noexcept override;

  REDIS_TASKS_DECL std::size_t read_some(char* buf, std::size_t n,
                                         clock::time_point deadline) override;

  REDIS_TASKS_DECL bool write_all(const iovec* iov, int n, std::size_t& written,
                                  clock::time_point deadline) override;

  REDIS_TASKS_DECL bool idle_and_intact() override;

  void abandon() noexcept override { abandoned_ = true; }

 private:
  // For an SSL call that wants to wait: waits for the socket as OpenSSL asks, by `deadline`.
  // False when the deadline passed (the stream is then unusable: a TLS record may be half
  // read or written). True for every other outcome, which the caller sorts out.
  REDIS_TASKS_DECL bool await(int err, clock::time_point deadline);

  REDIS_TASKS_DECL std::string handshake_failure(int err, int saved_errno);

  REDIS_TASKS_DECL static std::string hint_for(const std::string& ossl);

  [[noreturn]] REDIS_TASKS_DECL void io_failure(int r, int err, int saved_errno, const char* what);

  unique_fd fd_;
  ssl_st* ssl_ = nullptr;
  std::string endpoint_;
  std::string expected_name_;
  std::string trusted_;         // e.g. "ssl_ca_path '/etc/redis/cas'"
  std::string trust_settings_;  // the settings in use: "ssl_ca_certs", "ssl_ca_path", both or ""
  std::string add_ca_;          // what to do when the issuer is not trusted
  bool failed_ = false;         // no close_notify: the session is broken or was never set up
  bool abandoned_ = false;      // inherited through fork(): the parent's session, not ours
  bool received_any_ = false;
};

/// The TLS context for a server set's settings: the task's files are read now, so a missing
/// one is a config_error when the task is built.
REDIS_TASKS_DECL std::shared_ptr<const tls_context> make_tls_context(
    const tls_params& p, const std::string& /*endpoint*/);

/// A TLS session on the connected socket `fd` to `host`, its handshake done by `bound`.
REDIS_TASKS_DECL std::unique_ptr<stream> make_tls_stream(unique_fd fd, const tls_context& ctx,
                                                         const std::string& host,
                                                         std::string endpoint,
                                                         const connect_bound& bound);

#else

/// Never defined: a build without TLS has no context to make.
class tls_context;

/// A build without TLS cannot speak it: a config_error, when the task is built, that says how
/// to get a build with TLS.
inline std::shared_ptr<const tls_context> make_tls_context(const tls_params& /*p*/,
                                                           const std::string& endpoint) {
  throw config_error(
      "TLS (ssl, a rediss:// URL) is set for " + endpoint +
      ", but this build of redis_tasks leaves TLS out (REDIS_TASKS_TLS is 0): configure "
      "redis_tasks with -DREDIS_TASKS_TLS=ON (it needs OpenSSL 1.1.1 or newer, on Debian "
      "libssl-dev), or without CMake define REDIS_TASKS_TLS=1 and link -lssl -lcrypto");
}

/// Never called without TLS: no tls_context can be made.
inline std::unique_ptr<stream> make_tls_stream(unique_fd /*fd*/, const tls_context& /*ctx*/,
                                               const std::string& /*host*/, std::string endpoint,
                                               const connect_bound& /*bound*/) {
  throw config_error("TLS is on for " + endpoint + " in a build without TLS");
}

#endif

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/tls.ipp"
#endif
