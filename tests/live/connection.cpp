// Connecting: unreachable ports, connect timeouts, unix sockets, client names.
#include <chrono>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::fixture;
using test_support::unique_key;

TEST_CASE("an unreachable port gives connection_error within the connect timeout") {
  // A loopback port held by a socket that is bound but never listens: no other process can
  // listen there, the kernel cannot pick it as our own source port (no self-connect), and a
  // connect to it is refused (RST) at once.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(holder >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);

  const auto connect_timeout = 300ms;
  auto gc = test_support::config_for<RedisGet<>>(port);
  gc.redis_key = "k";
  gc.redis_connection_params.connect_timeout = connect_timeout;
  // Far beyond the bound checked below: if a failed connect waited for a read or write on
  // the socket, the run would take this long and the time check would fail.
  gc.redis_connection_params.socket_timeout = 10s;
  gc.redis_connection_params.shared_pool = false;
  RedisGet<> task(gc);
  // Several runs: a failed connect leaves nothing behind that makes the next one slower.
  for (int attempt = 0; attempt < 3; ++attempt) {
    INFO("attempt " << attempt);
    const auto start = std::chrono::steady_clock::now();
    std::string message;
    bool timed_out = false;
    bool got_connection_error = false;
    try {
      task.run();
    } catch (const redis_tasks::timeout_error& e) {
      timed_out = true;
      message = e.what();
    } catch (const redis_tasks::connection_error& e) {
      got_connection_error = true;
      message = e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    INFO(message);
    CHECK(got_connection_error);
    CHECK_FALSE(timed_out);  // refused, not a timeout of any kind
    CHECK(message.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(message.find("socket_timeout") == std::string::npos);
    // Generous margin for a loaded machine, yet far below socket_timeout.
    CHECK(took < connect_timeout + 2s);
  }
  ::close(holder);
}

TEST_CASE("a connect that cannot complete is a timeout_error within connect_timeout") {
  // A listening socket whose accept backlog is full: further SYNs get no answer.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 0) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  // Fill the backlog with connections that are never accepted.
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(c);
  }
  auto gc = test_support::config_for<RedisGet<>>(port);
  gc.redis_key = "k";
  gc.redis_connection_params.connect_timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  // Either the SYN is dropped (connect times out) or the connection completes into the
  // backlog and the handshake-less first command times out: both are timeout_errors.
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::timeout_error);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < 300ms + 10s);  // bounded: connect_timeout, then socket_timeout at most
  for (int c : fillers)
    ::close(c);
  ::close(fd);
}

TEST_CASE("unix sockets work") {
  const auto server = fixture("plain");
  auto sc = test_support::config_for<RedisSet<>>(0);
  sc.redis_connection_params.unix_socket = server.unix_socket();
  sc.redis_key = unique_key("unix");
  sc.redis_val = "via-unix";
  CHECK(RedisSet<>(sc).run());
  auto gc = test_support::config_for<RedisGet<>>(server.port);
  gc.redis_key = sc.redis_key;
  CHECK(RedisGet<>(gc).run() == "via-unix");

  auto missing = test_support::config_for<RedisGet<>>(0);
  missing.redis_connection_params.unix_socket = server.dir + "/nope.sock";
  missing.redis_key = "k";
  CHECK_THROWS_AS(RedisGet<>(missing).run(), redis_tasks::connection_error);
}

TEST_CASE("a socket_timeout on a server that never answers is a timeout_error") {
  // A listening socket that accepts (the kernel does) but never replies.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto gc = test_support::config_for<RedisGet<>>(ntohs(addr.sin_port));
  gc.redis_key = "k";
  gc.redis_connection_params.socket_timeout = 200ms;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::timeout_error);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 150ms);
  CHECK(took < 2s);
  ::close(fd);
}

TEST_CASE("client_name is set on the connection") {
  const int port = fixture("plain").port;
  const std::string name = "named" + std::to_string(::getpid());
  auto gc = test_support::config_for<RedisGet<>>(port);
  gc.redis_key = unique_key("name");
  gc.redis_connection_params.client_name = name;
  REQUIRE_FALSE(RedisGet<>(gc).run());
  // The pool keeps the connection open while a task using it is alive.
  RedisGet<> held(gc);
  REQUIRE_FALSE(held.run());
  CHECK(test_support::redis_cli(port, {"CLIENT", "LIST"}).find("name=" + name + " ") !=
        std::string::npos);
}

TEST_CASE("tasks configured from one URL with a password share one pool") {
  const int port = fixture("auth").port;
  const std::string name = "urlpool" + std::to_string(::getpid());
  const std::string url = "redis://:" + test_support::auth_password +
                          "@127.0.0.1:" + std::to_string(port) + "/0?client_name=" + name;
  std::vector<std::unique_ptr<RedisGet<>>> tasks;
  for (int i = 0; i < 6; ++i) {
    RedisGet<>::config c;
    redis_tasks::apply_url(c, url);
    c.redis_key = unique_key("urlpool");
    tasks.push_back(std::make_unique<RedisGet<>>(c));
  }
  // One after another: each run finds the connection the previous one gave back to the pool
  // they share (six pools would hold six connections).
  for (auto& t : tasks)
    REQUIRE_FALSE(t->run());
  CHECK(test_support::clients_named(port, name,
                                    {"--no-auth-warning", "-a", test_support::auth_password}) == 1);
}
