// The sentinel lookup against sentinels that answer badly: one refuses us (NOAUTH), one names a
// master whose port is not a number. Each is one bad sentinel among several, so the lookup goes
// on to the next; only when every sentinel answers so does the run fail, with our error types.
// The sentinels are fakes that answer raw RESP; the master is a private redis-server.
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::fake_server;
using test_support::redis_process;

namespace {

// What the library sends a sentinel when no sentinel password or client name is configured.
const std::string lookup_command =
    "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$1\r\nm\r\n";

const std::string noauth_answer = "-NOAUTH Authentication required.\r\n";

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

// The answer of a sentinel that names a master at 127.0.0.1 with `port` (any text).
std::string master_answer(const std::string& port) {
  return "*2\r\n" + bulk("127.0.0.1") + bulk(port);
}

// A sentinel that answers every lookup, on every connection it gets, with `answer`; it counts
// the lookups, and anything else it is sent makes `unexpected` true (and ends the connection).
class fake_sentinel {
 public:
  explicit fake_sentinel(std::string answer)
      : answer_(std::move(answer)), server_([this](int fd) { serve(fd); }) {}

  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  int asked() const { return asked_; }
  bool unexpected() const { return unexpected_; }

 private:
  void serve(int fd) {
    std::string got;
    char buf[4096];
    for (;;) {
      if (got.size() >= lookup_command.size()) {
        if (got.compare(0, lookup_command.size(), lookup_command) != 0) {
          unexpected_ = true;
          return;
        }
        got.erase(0, lookup_command.size());
        ++asked_;
        if (::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(answer_.size())) {
          return;
        }
        continue;
      }
      if (lookup_command.compare(0, got.size(), got) != 0) {
        unexpected_ = true;
        return;
      }
      // Wait for more in short slices, so the server can stop while a client idles here.
      pollfd p{fd, POLLIN, 0};
      const int ready = ::poll(&p, 1, 50);
      if (ready < 0) return;
      if (ready == 0) {
        if (server_.stopping()) return;
        continue;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;  // the client hung up
      got.append(buf, static_cast<std::size_t>(n));
    }
  }

  std::string answer_;
  std::atomic<int> asked_{0};
  std::atomic<bool> unexpected_{false};
  fake_server server_;  // last: its handlers use the members above, and it joins them first
};

template <class Task>
typename Task::config sentinel_config(const std::vector<std::string>& sentinels) {
  // host/port point nowhere useful: only the sentinels are asked.
  auto c = test_support::config_for<Task>(1);
  c.redis_connection_params.sentinel.sentinels = sentinels;
  c.redis_connection_params.sentinel.master_name = "m";
  c.redis_connection_params.connect_timeout = 2000ms;
  c.redis_connection_params.socket_timeout = 5000ms;
  c.redis_connection_params.shared_pool = false;  // every task looks the master up itself
  return c;
}

}  // namespace

TEST_CASE("a sentinel that refuses us or names a bad port does not stop the lookup") {
  redis_process master;
  fake_sentinel refuses(noauth_answer);
  fake_sentinel bad_port(master_answer("notaport"));
  fake_sentinel good(master_answer(std::to_string(master.port())));
  const std::vector<std::string> sentinels = {refuses.address(), bad_port.address(),
                                              good.address()};
  const std::string key = test_support::unique_key("sentinel_lookup");

  auto sc = sentinel_config<RedisSet<std::string>>(sentinels);
  sc.redis_key = key;
  sc.redis_val = "through the third sentinel";
  bool stored = false;
  REQUIRE_NOTHROW(stored = RedisSet<std::string>(sc).run());
  CHECK(stored);
  // The write reached the real master (checked with a client we did not write).
  CHECK(test_support::redis_cli(master.port(), {"GET", key}) == "through the third sentinel\n");
  // Each sentinel was asked, in order, until the third answered.
  CHECK(refuses.asked() >= 1);
  CHECK(bad_port.asked() >= 1);
  CHECK(good.asked() >= 1);

  // A second task (its own lookup) reads it back through the same sentinels.
  auto gc = sentinel_config<RedisGet<std::string>>(sentinels);
  gc.redis_key = key;
  std::optional<std::string> got;
  REQUIRE_NOTHROW(got = RedisGet<std::string>(gc).run());
  CHECK(got == "through the third sentinel");
  CHECK(good.asked() >= 2);

  for (const auto* s : {&refuses, &bad_port, &good})
    CHECK_FALSE(s->unexpected());
}

TEST_CASE("every sentinel refusing us or naming a bad port fails the run with our errors") {
  SECTION("every sentinel answers NOAUTH: auth_error") {
    fake_sentinel s1(noauth_answer);
    fake_sentinel s2(noauth_answer);
    fake_sentinel s3(noauth_answer);
    auto c = sentinel_config<RedisGet<std::string>>({s1.address(), s2.address(), s3.address()});
    c.redis_key = "k";
    // thrown<auth_error> reports any other exception type (std::exception included) as such.
    const std::string what =
        test_support::thrown<redis_tasks::auth_error>([&] { RedisGet<std::string>(c).run(); });
    CHECK_THAT(what, Contains("cannot find the master 'm'"));
    CHECK_THAT(what, Contains("requires a password"));
    CHECK_THAT(what, !Contains("another exception") && !Contains("no exception"));
    for (const auto* s : {&s1, &s2, &s3}) {
      CHECK(s->asked() >= 1);
      CHECK_FALSE(s->unexpected());
    }
  }
  SECTION("every sentinel names a port that is not one: connection_error") {
    const std::string port = GENERATE(as<std::string>{}, "notaport", "", "65536", "0", "-1",
                                      "6379x", " 6379", "99999999999999999999");
    CAPTURE(port);
    fake_sentinel s1(master_answer(port));
    fake_sentinel s2(master_answer(port));
    fake_sentinel s3(master_answer(port));
    auto c = sentinel_config<RedisGet<std::string>>({s1.address(), s2.address(), s3.address()});
    c.redis_key = "k";
    // Neither std::invalid_argument nor std::out_of_range from a port conversion.
    const std::string what = test_support::thrown<redis_tasks::connection_error>(
        [&] { RedisGet<std::string>(c).run(); });
    CHECK_THAT(what, Contains("cannot find the master 'm'"));
    CHECK_THAT(what, Contains("not host:port"));
    CHECK_THAT(what, !Contains("another exception") && !Contains("no exception"));
    for (const auto* s : {&s1, &s2, &s3}) {
      CHECK(s->asked() >= 1);
      CHECK_FALSE(s->unexpected());
    }
  }
}
