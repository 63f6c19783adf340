// The transport against absolute deadlines: one task shared across fork(), signals that never end
// or fail a wait, replies that trickle in, name resolution that never answers, and the largest
// durations meaning "no limit". Every server here is a private one started by the test.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::redis_process;

namespace {

using steady = std::chrono::steady_clock;

using test_support::certs;

// A private server, plain or TLS-only (with the fixture's server certificate, which holds
// 127.0.0.1: connecting by address keeps name lookups, and their threads, out of these tests).
std::unique_ptr<redis_process> start_server(bool tls) {
  if (!tls) return std::make_unique<redis_process>();
  const std::string d = certs();
  return std::make_unique<redis_process>(
      std::vector<std::string>{"--tls-cert-file", d + "/server.crt", "--tls-key-file",
                               d + "/server.key", "--tls-ca-cert-file", d + "/ca.crt",
                               "--tls-auth-clients", "no"},
      true);
}

template <class Task>
typename Task::config config_for(const redis_process& server, bool tls) {
  auto c = test_support::config_for<Task>(server.port());
  c.redis_connection_params.connect_timeout = 5000ms;
  if (tls) {
    c.redis_connection_params.tls.enabled = true;
    c.redis_connection_params.tls.ca_certs = certs() + "/ca.crt";
  }
  return c;
}

// How many clients named `name` the server has (CLIENT LIST, by redis-cli, over TLS if need be).
std::size_t clients_named(const redis_process& server, bool tls, const std::string& name) {
  std::vector<std::string> options;
  if (tls) options = {"--tls", "--cacert", certs() + "/ca.crt"};
  return test_support::clients_named(server.port(), name, options);
}

// Stress size, fewer under sanitizers (REDIS_TASKS_STRESS_RUNS, as in faults.cpp).
int stress_runs() {
  const char* v = std::getenv("REDIS_TASKS_STRESS_RUNS");
  return v != nullptr ? std::atoi(v) : 20000;
}

using test_support::wait_child;

// In a child after fork(): says why it fails, then exits with `code` (no Catch2 here).
[[noreturn]] void child_exit(int code, const std::string& why = {}) {
  if (!why.empty()) std::fprintf(stderr, "child: %s\n", why.c_str());
  ::_exit(code);
}

// Signals caught by `signal_storm`'s handler.
std::atomic<int> signals_caught{0};
static_assert(std::atomic<int>::is_always_lock_free, "counted in a signal handler");

void count_signal(int) {
  signals_caught.fetch_add(1, std::memory_order_relaxed);
}

// SIGUSR1 to this thread every 2 ms while it lives, with a handler that only counts (installed
// with `flags`, e.g. SA_RESTART); the old handler comes back at the end.
class signal_storm {
 public:
  explicit signal_storm(int flags) : target_(::pthread_self()) {
    struct sigaction sa {};
    sa.sa_handler = count_signal;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    REQUIRE(::sigaction(SIGUSR1, &sa, &old_) == 0);
    start_ = signals_caught.load();
    sender_ = std::thread([this] {
      while (!stop_) {
        ::pthread_kill(target_, SIGUSR1);
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  signal_storm(const signal_storm&) = delete;
  signal_storm& operator=(const signal_storm&) = delete;
  ~signal_storm() {
    stop_ = true;
    sender_.join();
    // A signal sent to this thread is handled, at the latest, as join() returns to user mode,
    // so none is left pending for the old handler (SIGUSR1's default ends the process).
    ::sigaction(SIGUSR1, &old_, nullptr);
  }
  // Signals handled since the storm began.
  int count() const { return signals_caught.load() - start_; }

 private:
  pthread_t target_;
  struct sigaction old_ {};
  int start_ = 0;
  std::atomic<bool> stop_{false};
  std::thread sender_;
};

// Waits (on another thread than the storm's target) until `n` more signals have been handled:
// the target is then surely in the middle of the wait the caller holds it in.
bool await_signals(int n) {
  const int from = signals_caught.load();
  const auto deadline = steady::now() + 10s;
  while (signals_caught.load() - from < n) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Forwards bytes between `a` and `b` until either side closes.
void pump(int a, int b) {
  char buf[16384];
  for (;;) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, 100) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0) continue;
      const ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      const int to = i == 0 ? b : a;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::send(to, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

// A blocking TCP connection to 127.0.0.1:port, or -1.
int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// 1. fork(): one task object, used by the parent and by the child, each on its own connections.

namespace {

void fork_shares_one_task(bool tls) {
  const auto server = start_server(tls);
  const std::string key_parent = test_support::unique_key("fork:parent");
  const std::string key_child = test_support::unique_key("fork:child");
  auto sc = config_for<RedisSet<>>(*server, tls);
  RedisSet<> set(sc);
  REQUIRE(set.run({.redis_key = key_parent, .redis_val = "parent-value"}));
  REQUIRE(set.run({.redis_key = key_child, .redis_val = "child-value"}));

  // The GET task and a CLIENT ID task share one pool (equal settings, shared_pool): used one
  // after the other, they use its one connection, whose id tells whether it is still the same.
  auto gc = config_for<RedisGet<std::string>>(*server, tls);
  gc.redis_connection_params.client_name = "forked";
  gc.redis_key = key_parent;
  RedisGet<std::string> get(gc);
  auto ic = config_for<RedisExecute<long long>>(*server, tls);
  ic.redis_connection_params.client_name = "forked";
  ic.redis_cmd = "CLIENT ID";
  RedisExecute<long long> client_id(ic);

  REQUIRE(get.run() == "parent-value");  // the pool now holds an idle connection
  const long long parent_id = client_id.run();
  REQUIRE(clients_named(*server, tls, "forked") == 1);

  const int runs = stress_runs();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      for (int i = 0; i < runs; ++i) {
        const auto v = get.run({.redis_key = key_child});
        if (v != std::optional<std::string>("child-value")) {
          child_exit(1, "run " + std::to_string(i) + " read '" + v.value_or("(nil)") +
                            "', not child-value");
        }
      }
      if (client_id.run() == parent_id) child_exit(2, "the child used the parent's connection");
    } catch (const std::exception& e) {
      child_exit(3, e.what());
    }
    child_exit(0);
  }

  int wrong = 0;
  std::string failure;
  try {
    for (int i = 0; i < runs; ++i) {
      if (get.run() != std::optional<std::string>("parent-value")) ++wrong;
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const int child = wait_child(pid, 300s);
  CHECK(failure == "");
  CHECK(wrong == 0);
  CHECK(child == 0);  // 1: a wrong value, 2: the parent's connection, 3: an exception

  // The child is gone, and took only its own connection with it: the parent's is the same one
  // (no close_notify from the child ended its TLS session; a reconnect would show a new id).
  CHECK(client_id.run() == parent_id);
  CHECK(get.run() == "parent-value");
  test_support::wait_until([&] { return clients_named(*server, tls, "forked") == 1; }, 10s,
                           "the server to see the child's connection closed");
}

// A child that only destroys the task (its pool and the parent's idle connection with it) must
// say nothing on the shared socket either.
void fork_child_destroys_task(bool tls) {
  const auto server = start_server(tls);
  auto gc = config_for<RedisGet<std::string>>(*server, tls);
  gc.redis_connection_params.client_name = "forked";
  gc.redis_key = test_support::unique_key("fork:destroy");
  std::optional<RedisGet<std::string>> get(gc);
  REQUIRE(get->run() == std::nullopt);
  auto ic = config_for<RedisExecute<long long>>(*server, tls);
  ic.redis_connection_params.client_name = "forked";
  ic.redis_cmd = "CLIENT ID";
  std::optional<RedisExecute<long long>> client_id(ic);
  const long long parent_id = client_id->run();

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    get.reset();
    client_id.reset();  // the last task of the pool: the pool and its idle connection go
    child_exit(0);
  }
  REQUIRE(wait_child(pid, 60s) == 0);
  CHECK(client_id->run() == parent_id);
  CHECK(get->run() == std::nullopt);
}

}  // namespace

TEST_CASE("fork: parent and child run one task, each on its own connection") {
  fork_shares_one_task(false);
}

#if REDIS_TASKS_TLS
TEST_CASE("fork over TLS: parent and child run one task, each on its own session") {
  fork_shares_one_task(true);
}
#endif

TEST_CASE("fork: a child that destroys the task leaves the parent's connection alone") {
  SECTION("plain") {
    fork_child_destroys_task(false);
  }
  if (redis_tasks::tls_supported) {
    SECTION("TLS: no close_notify from the child") {
      fork_child_destroys_task(true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Signals: a storm of handled signals neither ends nor fails a wait.

namespace {

void blpop_through_signal_storm(bool tls, int flags) {
  const auto server = start_server(tls);
  auto c = config_for<RedisExecute<>>(*server, tls);
  c.redis_connection_params.shared_pool = false;  // connecting, TLS included, is in the storm
  c.redis_cmd = redis_tasks::command{
      std::vector<std::string>{"BLPOP", test_support::unique_key("storm:empty"), "1"}};
  RedisExecute<> blpop(c);

  std::optional<redis_tasks::reply> r;
  std::string failure;
  steady::duration took{};
  int signals = 0;
  {
    signal_storm storm(flags);
    const auto start = steady::now();
    try {
      r = blpop.run();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    took = steady::now() - start;
    signals = storm.count();
  }
  CHECK(failure == "");
  REQUIRE(r);
  CHECK(r->is_nil());  // BLPOP timed out on the server after its 1 s
  CHECK(took >= 900ms);
  CHECK(took < 6s);      // the reply's own bound is 1 s of blocking plus socket_timeout (10 s)
  CHECK(signals >= 50);  // about 500 at one per 2 ms: the waits really were interrupted
}

}  // namespace

TEST_CASE("a signal every 2 ms: BLPOP 1 still waits its second and returns nil") {
  SECTION("plain, SA_RESTART") {
    blpop_through_signal_storm(false, SA_RESTART);
  }
  SECTION("plain, without SA_RESTART") {
    blpop_through_signal_storm(false, 0);
  }
}

#if REDIS_TASKS_TLS
TEST_CASE("a signal every 2 ms over TLS: BLPOP 1 still waits its second and returns nil") {
  SECTION("SA_RESTART") {
    blpop_through_signal_storm(true, SA_RESTART);
  }
  SECTION("without SA_RESTART") {
    blpop_through_signal_storm(true, 0);
  }
}
#endif

// 6. Signals in the handshake: the server side holds the client in the handshake until it has
// surely been interrupted many times.
TEST_CASE("signals during the handshake are not an error") {
  SECTION("plain: waiting for the reply to CLIENT SETNAME") {
    std::atomic<bool> held{false};
    test_support::fake_server slow([&](int fd) {
      test_support::read_until(fd, "$6\r\nstormy\r\n");
      held = await_signals(50);
      const std::string ok = "+OK\r\n";
      ::send(fd, ok.data(), ok.size(), MSG_NOSIGNAL);
      test_support::read_until(fd, "$1\r\nk\r\n");
      const std::string value = "$5\r\nhello\r\n";
      ::send(fd, value.data(), value.size(), MSG_NOSIGNAL);
      test_support::read_until(fd, "never");  // until the client hangs up
    });
    auto c = test_support::config_for<RedisGet<>>(slow.port());
    c.redis_key = "k";
    c.redis_connection_params.shared_pool = false;
    c.redis_connection_params.client_name = "stormy";
    RedisGet<> get(c);
    std::optional<std::string> v;
    {
      signal_storm storm(SA_RESTART);
      CHECK_NOTHROW(v = get.run());
    }
    CHECK(held);
    CHECK(v == "hello");
  }
  SECTION("TLS: waiting for the server's hello") {
    const auto server = start_server(true);
    std::atomic<bool> held{false};
    // A proxy that forwards nothing until the client has been interrupted many times in
    // SSL_connect, waiting for the server's first handshake message.
    test_support::fake_server proxy([&](int fd) {
      held = await_signals(50);
      const int upstream = connect_loopback(server->port());
      if (upstream < 0) return;
      pump(fd, upstream);
      ::close(upstream);
    });
    auto c = config_for<RedisGet<>>(*server, true);
    c.port = proxy.port();
    c.redis_key = "k";
    c.redis_connection_params.shared_pool = false;
    RedisGet<> get(c);
    std::optional<std::string> v{"not run"};
    {
      signal_storm storm(0);
      CHECK_NOTHROW(v = get.run());
    }
    CHECK(held);
    CHECK(v == std::nullopt);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. A reply that trickles in: the bound is for the whole reply (and run), not for each read.

namespace {

struct trickled_run {
  std::string what;  // the timeout_error's message, or what happened instead
  steady::duration took{};
  int sent = 0;  // bytes of the reply the server had sent when the client gave up
};

// A GET against a server that answers with a 61-byte reply, one byte every 100 ms: about 6 s
// for the whole reply, and never 100 ms without a byte. `bound` sets the timeouts.
template <class Bound>
trickled_run get_trickled_reply(Bound&& bound) {
  const std::string body(54, 'x');
  const std::string reply = "$" + std::to_string(body.size()) + "\r\n" + body + "\r\n";
  std::atomic<int> sent{0};
  test_support::fake_server trickle([&](int fd) {
    test_support::read_until(fd, "$1\r\nk\r\n");
    for (const char ch : reply) {
      if (::send(fd, &ch, 1, MSG_NOSIGNAL) != 1) return;  // the client gave up
      ++sent;
      std::this_thread::sleep_for(100ms);
    }
  });
  auto c = test_support::config_for<RedisGet<>>(trickle.port());
  c.redis_key = "k";
  c.redis_connection_params.shared_pool = false;
  c.redis_connection_params.connect_timeout = 1000ms;
  bound(c);
  trickled_run r;
  const auto start = steady::now();
  r.what = test_support::thrown<redis_tasks::timeout_error>([&] { RedisGet<>(c).run(); });
  r.took = steady::now() - start;
  r.sent = sent;
  return r;
}

}  // namespace

TEST_CASE("a reply trickling in byte by byte is bounded by task.timeout") {
  const auto r = get_trickled_reply([](RedisGet<>::config& c) {
    c.task.timeout = 1000ms;
    REQUIRE(c.redis_connection_params.socket_timeout == 10000ms);
  });
  CHECK_THAT(r.what, Contains("task.timeout"));
  CHECK(r.took >= 900ms);
  CHECK(r.took < 3s);  // the whole reply would take 6 s
  CHECK(r.sent >= 3);  // bytes did arrive while the client waited
}

TEST_CASE("a reply trickling in byte by byte is bounded by socket_timeout as a whole") {
  const auto r = get_trickled_reply([](RedisGet<>::config& c) {
    c.redis_connection_params.socket_timeout = 1000ms;
    REQUIRE(c.task.timeout == 0ms);
  });
  CHECK_THAT(r.what, Contains("socket_timeout"));
  CHECK(r.took >= 900ms);
  CHECK(r.took < 3s);  // a timeout per read would have let the run succeed after 6 s
  CHECK(r.sent >= 3);
}

// ---------------------------------------------------------------------------------------------
// 4. Name resolution: bounded by connect_timeout, however long the resolver would wait.

namespace {

constexpr int cannot_isolate = 77;  // no permission for a mount namespace here
constexpr int resolver_never_asked = 78;

// In a child: a mount namespace of its own whose /etc/resolv.conf names a server on
// 127.0.0.87:53 that never answers (glibc would wait 5 s x 2 attempts).
[[noreturn]] void resolve_against_silent_dns() {
  if (::unshare(CLONE_NEWNS) != 0) {
    child_exit(errno == EPERM ? cannot_isolate : 10,
               std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno));
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    child_exit(errno == EPERM ? cannot_isolate : 11,
               std::string("making mounts private: ") + std::strerror(errno));
  }
  char path[] = "/tmp/redis_tasks_resolv.XXXXXX";
  const int tmp = ::mkstemp(path);
  if (tmp < 0) child_exit(12, "mkstemp failed");
  const std::string conf = "nameserver 127.0.0.87\noptions timeout:5 attempts:2\n";
  if (::write(tmp, conf.data(), conf.size()) != static_cast<ssize_t>(conf.size())) {
    child_exit(13, "cannot write the resolv.conf");
  }
  ::close(tmp);
  const int mounted = ::mount(path, "/etc/resolv.conf", nullptr, MS_BIND, nullptr);
  const int mount_errno = errno;
  ::unlink(path);  // the bind mount keeps the file while it is needed
  if (mounted != 0) {
    child_exit(mount_errno == EPERM ? cannot_isolate : 14,
               std::string("bind-mounting /etc/resolv.conf: ") + std::strerror(mount_errno));
  }
  const int dns = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(53);
  ::inet_pton(AF_INET, "127.0.0.87", &addr.sin_addr);
  if (dns < 0 || ::bind(dns, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    child_exit(errno == EACCES || errno == EPERM ? cannot_isolate : 15,
               std::string("binding 127.0.0.87:53: ") + std::strerror(errno));
  }

  RedisGet<>::config c;
  c.host = "never-answers.redis-tasks.test";
  c.port = 6379;
  c.password_secret = std::nullopt;
  c.redis_key = "k";
  c.redis_connection_params.shared_pool = false;
  c.redis_connection_params.connect_timeout = 300ms;
  std::string what;
  bool timed_out = false;
  const auto start = steady::now();
  try {
    RedisGet<>(c).run();
    child_exit(20, "the run succeeded");
  } catch (const redis_tasks::timeout_error& e) {
    timed_out = true;
    what = e.what();
  } catch (const std::exception& e) {
    what = e.what();
  }
  const auto took = steady::now() - start;
  char query[512];
  const bool asked = ::recv(dns, query, sizeof query, MSG_DONTWAIT) > 0;
  if (!asked && !timed_out) {
    child_exit(resolver_never_asked, "the resolver sent no query (" + what + ")");
  }
  if (!timed_out) child_exit(21, "not a timeout_error: " + what);
  if (took >= 2s) {
    child_exit(22, "took " +
                       std::to_string(
                           std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
                       " ms: " + what);
  }
  if (what.find("resolving") == std::string::npos ||
      what.find("connect_timeout") == std::string::npos) {
    child_exit(23, "the message names neither resolving nor connect_timeout: " + what);
  }
  if (!asked) child_exit(24, "timed out, yet the silent name server was never asked: " + what);
  child_exit(0);
}

}  // namespace

TEST_CASE("resolving a name whose DNS server never answers ends at connect_timeout") {
  // The name must go to DNS: /etc/hosts must not know it.
  std::ifstream hosts("/etc/hosts");
  std::stringstream text;
  text << hosts.rdbuf();
  REQUIRE(text.str().find("redis-tasks.test") == std::string::npos);

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) resolve_against_silent_dns();
  const int code = wait_child(pid, 60s);
  if (code == cannot_isolate) {
    WARN("no permission for a mount namespace here (unshare/mount/bind): test skipped");
    return;
  }
  if (code == resolver_never_asked) {
    WARN("the resolver sent no query (no usable address family?): test skipped");
    return;
  }
  // 20: the run succeeded, 21: not a timeout_error, 22: took 2 s or more, 23: the message,
  // 24: the silent server was never asked; the child's stderr says more.
  CHECK(code == 0);
}

// ---------------------------------------------------------------------------------------------
// 5. The largest durations mean "no limit", without overflow (for UBSan).

TEST_CASE("the largest durations mean no limit") {
  using std::chrono::milliseconds;
  for (const bool tls : {false, true}) {
    if (tls && !redis_tasks::tls_supported) continue;  // a build without TLS
    INFO((tls ? "TLS" : "plain"));
    const auto server = start_server(tls);
    auto limitless = [&](auto c) {
      auto& p = c.redis_connection_params;
      p.connect_timeout = milliseconds::max();
      p.socket_timeout = milliseconds::max();
      p.pool_wait_timeout = milliseconds::max();
      p.health_check_interval = milliseconds::max();
      p.keepalive_interval = std::chrono::seconds::max();
      p.shared_pool = false;
      c.task.timeout = milliseconds::max();
      c.task.retry_delay = milliseconds::max();
      return c;
    };
    const std::string key = test_support::unique_key("limitless");
    auto sc = limitless(config_for<RedisSet<>>(*server, tls));
    sc.redis_key = key;
    sc.redis_val = "no limit";
    CHECK(RedisSet<>(sc).run());
    auto gc = limitless(config_for<RedisGet<>>(*server, tls));
    gc.redis_key = key;
    RedisGet<> get(gc);
    CHECK(get.run() == "no limit");
    CHECK(get.run() == "no limit");  // a pooled connection, checked before reuse
    auto ec = limitless(config_for<RedisExecute<>>(*server, tls));
    ec.redis_cmd = redis_tasks::command{
        std::vector<std::string>{"BLPOP", test_support::unique_key("limitless:empty"), "0.1"}};
    RedisExecute<> blpop(ec);
    CHECK(blpop.run().is_nil());
    CHECK(blpop.run().is_nil());
  }
}

// A fork that lands while other threads are inside runs (holding the pool's lock, or a
// connection on loan) must leave the child a pool it can use: the library's locks are held by
// the forking thread across fork(). Under ThreadSanitizer a multi-threaded fork is its own
// hazard (the sanitizer's locks), so the test runs in the other builds only.
TEST_CASE("fork while other threads run: every child can run the task") {
#if defined(__SANITIZE_THREAD__)
  WARN("skipped under ThreadSanitizer, which does not support a multi-threaded fork well");
#else
  const auto server = start_server(false);
  auto gc = config_for<RedisGet<std::string>>(*server, false);
  gc.redis_key = "fork-load";
  gc.task.timeout = 5000ms;
  auto sc = config_for<RedisSet<std::string>>(*server, false);
  sc.redis_key = "fork-load";
  sc.redis_val = "v";
  REQUIRE(RedisSet<std::string>(sc).run());
  const RedisGet<std::string> get(gc);
  std::atomic<bool> stop{false};
  std::atomic<int> busy_runs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        try {
          if (get.run() == std::optional<std::string>("v")) ++busy_runs;
        } catch (...) {
        }
      }
    });
  }
  const test_support::at_scope_exit join([&] {
    stop = true;
    for (auto& t : threads)
      t.join();
  });
  test_support::wait_until([&] { return busy_runs.load() > 100; }, 10s, "the threads to run");
  int hung = 0;
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        child_exit(get.run() == std::optional<std::string>("v") ? 0 : 1, "wrong value");
      } catch (const std::exception& e) {
        child_exit(2, e.what());
      }
    }
    REQUIRE(pid > 0);
    const int code = wait_child(pid, 10s);
    if (code == -2) ++hung;
    if (code != 0 && code != -2) ++failed;
  }
  CHECK(hung == 0);
  CHECK(failed == 0);
#endif
}
