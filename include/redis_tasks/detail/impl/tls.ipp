// The bodies of tls.hpp (see ../tls.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#if REDIS_TASKS_TLS
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {
#if REDIS_TASKS_TLS

REDIS_TASKS_DECL std::string openssl_error_text() {
  std::string text;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    if (text.empty()) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      const char* reason = ERR_reason_error_string(e);
      text = reason != nullptr ? reason : buf;
    }
  }
  return text;
}

REDIS_TASKS_DECL tls_context::~tls_context() {
  SSL_CTX_free(ctx_);
}

REDIS_TASKS_DECL tls_context::tls_context(const tls_params& p) : params_(p) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw config_error("TLS: cannot create a context: " + openssl_error_text());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // Partial writes: SSL_write returns once a record is out, so `written` in write_all counts
  // only whole records the server can decrypt. Without it a large write could send several
  // records and then fail reporting nothing written, and the request would be resent.
  SSL_CTX_set_mode(ctx_, SSL_MODE_AUTO_RETRY | SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (p.cert_reqs == tls_verify::none) {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    // OpenSSL takes any name as a CA folder and looks in it only during handshakes.
    if (!p.ca_path.empty()) check_ca_path(p.ca_path);
    if (!p.ca_certs.empty() || !p.ca_path.empty()) {
      if (SSL_CTX_load_verify_locations(ctx_, p.ca_certs.empty() ? nullptr : p.ca_certs.c_str(),
                                        p.ca_path.empty() ? nullptr : p.ca_path.c_str()) != 1) {
        fail("cannot load the trusted CAs from " + (p.ca_certs.empty()
                                                        ? "ssl_ca_path '" + p.ca_path + "'"
                                                        : "ssl_ca_certs '" + p.ca_certs + "'"));
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
      fail("cannot load the system's trusted CAs; set ssl_ca_certs");
    }
  }
  if (!p.certfile.empty() || !p.keyfile.empty()) {
    if (p.certfile.empty() || p.keyfile.empty()) {
      fail("mutual TLS needs both ssl_certfile and ssl_keyfile");
    }
    if (SSL_CTX_use_certificate_chain_file(ctx_, p.certfile.c_str()) != 1) {
      fail("cannot load the client certificate ssl_certfile '" + p.certfile + "'");
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, p.keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
      fail("cannot load the client key ssl_keyfile '" + p.keyfile + "'");
    }
    if (SSL_CTX_check_private_key(ctx_) != 1) {
      fail("ssl_keyfile does not belong to the certificate in ssl_certfile");
    }
  }
}

REDIS_TASKS_DECL void tls_context::check_ca_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail("ssl_ca_path '" + path + "' cannot be read: " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    fail("ssl_ca_path '" + path +
         "' is not a folder; it names a folder of hashed CA certificates (for a PEM file "
         "use ssl_ca_certs)");
  }
  if (::access(path.c_str(), R_OK | X_OK) != 0) {
    fail("ssl_ca_path '" + path + "' cannot be read: " + errno_text(errno));
  }
}

REDIS_TASKS_DECL void tls_context::fail(const std::string& what) {
  const std::string why = openssl_error_text();
  SSL_CTX_free(ctx_);
  ctx_ = nullptr;
  throw config_error("TLS: " + what + (why.empty() ? "" : " (" + why + ")"));
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a closed connection and
// would kill the application. This BIO is the socket BIO with send(MSG_NOSIGNAL) instead.
// Declared here, where OpenSSL's BIO types are known, before their bodies (for builds with
// -Wmissing-declarations).
REDIS_TASKS_DECL int nosigpipe_write(BIO* b, const char* data, int len);
REDIS_TASKS_DECL int nosigpipe_read(BIO* b, char* out, int len);
REDIS_TASKS_DECL int nosigpipe_puts(BIO* b, const char* s);
REDIS_TASKS_DECL BIO_METHOD* nosigpipe_socket_method();

REDIS_TASKS_DECL int nosigpipe_write(BIO* b, const char* data, int len) {
  int fd = -1;
  BIO_get_fd(b, &fd);
  errno = 0;
  const auto r = static_cast<int>(::send(fd, data, static_cast<std::size_t>(len), MSG_NOSIGNAL));
  BIO_clear_retry_flags(b);
  if (r <= 0 && BIO_sock_should_retry(r)) BIO_set_retry_write(b);
  return r;
}

REDIS_TASKS_DECL int nosigpipe_read(BIO* b, char* out, int len) {
  int fd = -1;
  BIO_get_fd(b, &fd);
  errno = 0;
  const auto r = static_cast<int>(::recv(fd, out, static_cast<std::size_t>(len), 0));
  BIO_clear_retry_flags(b);
  if (r <= 0 && BIO_sock_should_retry(r)) BIO_set_retry_read(b);
  return r;
}

REDIS_TASKS_DECL int nosigpipe_puts(BIO* b, const char* s) {
  return nosigpipe_write(b, s, static_cast<int>(std::strlen(s)));
}

REDIS_TASKS_DECL BIO_METHOD* nosigpipe_socket_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "redis_tasks socket");
    const BIO_METHOD* base = BIO_s_socket();
    BIO_meth_set_write(m, nosigpipe_write);
    BIO_meth_set_read(m, nosigpipe_read);
    BIO_meth_set_puts(m, nosigpipe_puts);
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base));
    BIO_meth_set_create(m, BIO_meth_get_create(base));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(base));
    return m;
  }();
  return method;
}

REDIS_TASKS_DECL bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

REDIS_TASKS_DECL tls_stream::tls_stream(unique_fd fd, const tls_context& ctx,
                                        const std::string& host, std::string endpoint,
                                        const connect_bound& bound)
    : fd_(std::move(fd)), endpoint_(std::move(endpoint)) {
  set_blocking(fd_.get(), false);
  ERR_clear_error();
  ssl_ = SSL_new(ctx.get());
  if (ssl_ == nullptr) throw connection_error("TLS to " + endpoint_ + ": " + openssl_error_text());
  BIO* bio = BIO_new(nosigpipe_socket_method());
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw connection_error("TLS to " + endpoint_ + ": " + openssl_error_text());
  }
  BIO_set_fd(bio, fd_.get(), BIO_NOCLOSE);
  SSL_set_bio(ssl_, bio, bio);

  const auto& p = ctx.params();
  const std::string name = p.server_hostname.empty() ? host : p.server_hostname;
  const bool by_ip = is_ip_address(name);
  if (!by_ip && !name.empty()) {
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
  }
  if (p.cert_reqs != tls_verify::none && p.check_hostname && !name.empty()) {
    X509_VERIFY_PARAM* vp = SSL_get0_param(ssl_);
    const int ok = by_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(vp, name.c_str(), name.size());
    if (ok != 1) {
      SSL_free(ssl_);
      throw config_error("TLS: cannot check the host name '" + name + "'");
    }
  }
  expected_name_ = name;
  // What the verification trusted, for the hint when it fails: name the settings in use.
  const std::string certs = p.ca_certs.empty() ? "" : "ssl_ca_certs '" + p.ca_certs + "'";
  const std::string path = p.ca_path.empty() ? "" : "ssl_ca_path '" + p.ca_path + "'";
  trusted_ = certs.empty() ? (path.empty() ? "the system's CAs" : path)
                           : (path.empty() ? certs : certs + " and " + path);
  trust_settings_ = certs.empty() ? (path.empty() ? "" : "ssl_ca_path")
                                  : (path.empty() ? "ssl_ca_certs" : "ssl_ca_certs or ssl_ca_path");
  add_ca_ = trust_settings_.empty() ? "set ssl_ca_certs to the CA that signed it"
                                    : "add the CA that signed it to " + trust_settings_;
  if (!path.empty()) add_ca_ += " (a folder needs its hash links: run `openssl rehash` on it)";

  for (;;) {
    errno = 0;
    const int rc = SSL_connect(ssl_);
    if (rc == 1) break;
    const int err = SSL_get_error(ssl_, rc);
    const int saved_errno = errno;
    bool ready = true;
    if (err == SSL_ERROR_WANT_READ) {
      ready = wait_fd(fd_.get(), POLLIN, bound.deadline);
    } else if (err == SSL_ERROR_WANT_WRITE) {
      ready = wait_fd(fd_.get(), POLLOUT, bound.deadline);
    } else if (err == SSL_ERROR_SYSCALL && saved_errno == EINTR) {
      continue;
    } else {
      const std::string why = handshake_failure(err, saved_errno);
      SSL_free(ssl_);
      ssl_ = nullptr;
      throw connection_error(why);
    }
    if (!ready) {
      failed_ = true;
      ERR_clear_error();
      SSL_free(ssl_);
      ssl_ = nullptr;
      throw timeout_error("TLS handshake with " + endpoint_ + " took longer than " + bound.what +
                          "; is the server speaking TLS on that port?" + bound.hint);
    }
  }
}

REDIS_TASKS_DECL bool tls_stream::has_buffered() noexcept {
  return SSL_has_pending(ssl_) != 0;
}

REDIS_TASKS_DECL tls_stream::~tls_stream() {
  if (ssl_ != nullptr) {
    // Best effort close_notify, never waiting (the socket is non-blocking); never in a child
    // after fork, where it would end the parent's session on the shared socket.
    if (!failed_ && !abandoned_) SSL_shutdown(ssl_);
    SSL_free(ssl_);
  }
}

REDIS_TASKS_DECL std::size_t tls_stream::read_some(char* buf, std::size_t n,
                                                   clock::time_point deadline) {
  const int want = n > 1 << 30 ? 1 << 30 : static_cast<int>(n);
  // A reply is usually still on its way: wait for it first, which saves an SSL_read (and
  // its recv) that would only want more. Bytes OpenSSL holds already need no wait.
  if (SSL_has_pending(ssl_) == 0 && !wait_fd(fd_.get(), POLLIN, deadline)) {
    failed_ = true;
    return 0;
  }
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_read(ssl_, buf, want);
    if (r > 0) {
      received_any_ = true;
      return static_cast<std::size_t>(r);
    }
    const int err = SSL_get_error(ssl_, r);
    const int saved_errno = errno;
    if (!await(err, deadline)) return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
        (err == SSL_ERROR_SYSCALL && saved_errno == EINTR)) {
      continue;
    }
    io_failure(r, err, saved_errno, "reading from");
  }
}

REDIS_TASKS_DECL bool tls_stream::write_all(const iovec* iov, int n, std::size_t& written,
                                            clock::time_point deadline) {
  for (int i = 0; i < n; ++i) {
    const char* data = static_cast<const char*>(iov[i].iov_base);
    std::size_t left = iov[i].iov_len;
    while (left > 0) {
      ERR_clear_error();
      errno = 0;
      // A retried SSL_write must repeat the same buffer and length, which this loop does.
      const int chunk = left > (1u << 30) ? 1 << 30 : static_cast<int>(left);
      const int w = SSL_write(ssl_, data, chunk);
      if (w <= 0) {
        const int err = SSL_get_error(ssl_, w);
        const int saved_errno = errno;
        if (!await(err, deadline)) return false;
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
            (err == SSL_ERROR_SYSCALL && saved_errno == EINTR)) {
          continue;
        }
        try {
          io_failure(w, err, saved_errno, "writing to");
        } catch (const connection_error& e) {
          if (written == 0) throw not_sent_error(e.what());
          throw;
        }
      }
      written += static_cast<std::size_t>(w);
      data += w;
      left -= static_cast<std::size_t>(w);
    }
  }
  return true;
}

REDIS_TASKS_DECL bool tls_stream::idle_and_intact() {
  if (failed_) return false;
  if (SSL_pending(ssl_) > 0) return false;  // unasked-for application data
  char c;
  const ssize_t r = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  if (r == 0) return false;
  // Bytes are waiting: maybe only TLS housekeeping (session tickets, key updates), maybe a
  // close_notify or data. Let OpenSSL look (the socket is non-blocking).
  ERR_clear_error();
  const int p = SSL_peek(ssl_, &c, 1);
  const int err = p > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, p);
  ERR_clear_error();
  // A fatal error (or a close_notify) ends the session: no SSL_shutdown after it.
  if (p <= 0 && err != SSL_ERROR_WANT_READ) failed_ = true;
  return p <= 0 && err == SSL_ERROR_WANT_READ;
}

REDIS_TASKS_DECL bool tls_stream::await(int err, clock::time_point deadline) {
  bool ready = true;
  if (err == SSL_ERROR_WANT_READ) ready = wait_fd(fd_.get(), POLLIN, deadline);
  if (err == SSL_ERROR_WANT_WRITE) ready = wait_fd(fd_.get(), POLLOUT, deadline);
  if (!ready) failed_ = true;
  return ready;
}

REDIS_TASKS_DECL std::string tls_stream::handshake_failure(int err, int saved_errno) {
  failed_ = true;
  const long verify = SSL_get_verify_result(ssl_);
  const std::string ossl = openssl_error_text();
  const std::string prefix = "TLS handshake with " + endpoint_ + " failed: ";
  if (verify != X509_V_OK) {
    std::string hint;
    switch (verify) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        hint = "the server's certificate is not for '" + expected_name_ +
               "'; connect by the name in the certificate or set ssl_server_hostname";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        hint = "the server's certificate has expired; renew it on the server";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        hint = "the server's certificate is not valid yet; check the clocks";
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        hint = "the server's certificate is not signed by a trusted CA (trusted: " + trusted_ +
               "); " + add_ca_;
        break;
      default:
        hint = "check " + (trust_settings_.empty() ? trusted_ : trust_settings_) +
               " and the server's certificate";
        break;
    }
    return prefix + "certificate verify failed (" + X509_verify_cert_error_string(verify) +
           "): " + hint;
  }
  if (ossl.find("wrong version number") != std::string::npos ||
      ossl.find("unknown protocol") != std::string::npos ||
      ossl.find("packet length too long") != std::string::npos ||
      ossl.find("record layer failure") != std::string::npos) {
    return prefix + "the server did not answer in TLS (" + ossl +
           "); is this a plain-text port? Use the server's TLS port, or turn ssl off";
  }
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    const std::string detail =
        !ossl.empty() ? ossl : (saved_errno != 0 ? errno_text(saved_errno) : std::string());
    return prefix + "the server closed the connection during the handshake" +
           (detail.empty() ? "" : " (" + detail + ")") +
           "; is the server speaking TLS, and does it want a client certificate?";
  }
  return prefix + (ossl.empty() ? "error " + std::to_string(err) : ossl) + hint_for(ossl);
}

REDIS_TASKS_DECL std::string tls_stream::hint_for(const std::string& ossl) {
  if (ossl.find("certificate required") != std::string::npos ||
      ossl.find("handshake failure") != std::string::npos) {
    return "; the server may require a client certificate: set ssl_certfile and ssl_keyfile";
  }
  if (ossl.find("unknown ca") != std::string::npos ||
      ossl.find("bad certificate") != std::string::npos) {
    return "; the server did not accept the client certificate";
  }
  return "";
}

REDIS_TASKS_DECL void tls_stream::io_failure(int r, int err, int saved_errno, const char* what) {
  const std::string ossl = openssl_error_text();
  failed_ = true;
  // With TLS 1.3 a server that rejects the client's certificate (or wants one) hangs up right
  // after the handshake; depending on timing we see its alert, a reset or an EOF.
  const std::string early =
      received_any_ ? std::string()
                    : "; the server hung up right after the TLS handshake: it may require a "
                      "client certificate (set ssl_certfile and ssl_keyfile) or have rejected "
                      "the one given";
  if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && r == 0)) {
    throw connection_error("TLS connection to " + endpoint_ + " closed by the server" + early);
  }
  if (err == SSL_ERROR_SYSCALL) {
    throw connection_error(
        std::string(what) + " " + endpoint_ +
        " failed: " + (saved_errno != 0 ? errno_text(saved_errno) : "connection lost") + early);
  }
  throw connection_error(std::string("TLS error ") + what + " " + endpoint_ + ": " + ossl +
                         hint_for(ossl));
}

REDIS_TASKS_DECL std::shared_ptr<const tls_context> make_tls_context(
    const tls_params& p, const std::string& /*endpoint*/) {
  return std::make_shared<const tls_context>(p);
}

REDIS_TASKS_DECL std::unique_ptr<stream> make_tls_stream(unique_fd fd, const tls_context& ctx,
                                                         const std::string& host,
                                                         std::string endpoint,
                                                         const connect_bound& bound) {
  return std::make_unique<tls_stream>(std::move(fd), ctx, host, std::move(endpoint), bound);
}

#endif
}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
