// Numbers as stored text, and which Redis type each C++ type maps to; how the commands behind
// RedisSet and RedisGet fail when a (scripted) server answers what they do not expect.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <sys/socket.h>
#include <sys/time.h>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"
#include "test_support.hpp"

namespace d = redis_tasks::detail;
using Catch::Matchers::Contains;

template <class N>
std::string text(N v) {
  d::number_buffer buf;
  return std::string(d::format_number(v, buf));
}

TEST_CASE("integers are stored in decimal over their full range") {
  CHECK(text(0) == "0");
  CHECK(text(std::numeric_limits<long long>::min()) == "-9223372036854775808");
  CHECK(text(std::numeric_limits<unsigned long long>::max()) == "18446744073709551615");
  CHECK(d::parse_number<long long>("-9223372036854775808", "k") ==
        std::numeric_limits<long long>::min());
  CHECK(d::parse_number<unsigned long long>("18446744073709551615", "k") ==
        std::numeric_limits<unsigned long long>::max());
  CHECK(text(true) == "1");
  CHECK(text(false) == "0");
  CHECK(d::parse_number<bool>("1", "k"));
  CHECK_FALSE(d::parse_number<bool>("0", "k"));
}

TEST_CASE("doubles use the shortest text that reads back bit-exactly") {
  CHECK(text(0.1) == "0.1");
  CHECK(text(2.5) == "2.5");
  CHECK(text(1e300) == "1e+300");
  CHECK(text(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(text(-std::numeric_limits<double>::infinity()) == "-inf");
  CHECK(std::isinf(d::parse_number<double>("inf", "k")));
  CHECK(d::parse_number<double>("-inf", "k") < 0);
  CHECK(std::isinf(d::parse_number<double>("+inf", "k")));
  // Redis prints scores with %.17g; those must read back to the same double.
  CHECK(d::parse_number<double>("0.10000000000000001", "k") == 0.1);

  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isnan(v)) continue;
    const double back = d::parse_number<double>(text(v), "k");
    REQUIRE(std::memcmp(&back, &v, sizeof v) == 0);
  }
  const float f = 0.3f;
  CHECK(d::parse_number<float>(text(f), "k") == f);
}

TEST_CASE("text that is not the requested number is a type_error naming the subject") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_AS(d::parse_number<int>("12x", "key \"n\""), redis_tasks::type_error);
  CHECK_THROWS_WITH(d::parse_number<int>("abc", "key \"n\""),
                    Contains("key \"n\"") && Contains("not an integer"));
  CHECK_THROWS_AS(d::parse_number<int>("", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<int>(" 1", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<std::int8_t>("300", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<unsigned>("-1", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<long long>("1.5", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<bool>("true", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<double>("1.5.2", "k"), redis_tasks::type_error);
}

struct custom_point {
  int x;
};
template <>
struct redis_tasks::value_traits<custom_point> {
  using storage_type = std::string;
  static storage_type to_storage(const custom_point& p) { return std::to_string(p.x); }
  static custom_point from_storage(storage_type s) { return {std::stoi(s)}; }
};

struct json_thing {
  int a;
};
void to_json(nlohmann::json& j, const json_thing& t) {
  j = {{"a", t.a}};
}
void from_json(const nlohmann::json& j, json_thing& t) {
  t.a = j.at("a").get<int>();
}

TEST_CASE("each C++ type maps to the Redis type of API.md's Values table") {
  using d::category;
  using d::category_of;
  STATIC_REQUIRE(category_of<std::string>() == category::string);
  STATIC_REQUIRE(category_of<std::string_view>() == category::string);
  STATIC_REQUIRE(category_of<int>() == category::number);
  STATIC_REQUIRE(category_of<double>() == category::number);
  STATIC_REQUIRE(category_of<bool>() == category::number);
  STATIC_REQUIRE(category_of<std::vector<std::string>>() == category::list);
  STATIC_REQUIRE(category_of<std::deque<int>>() == category::list);
  STATIC_REQUIRE(category_of<std::list<double>>() == category::list);
  STATIC_REQUIRE(category_of<std::set<std::string>>() == category::set);
  STATIC_REQUIRE(category_of<std::unordered_set<int>>() == category::set);
  STATIC_REQUIRE(category_of<std::map<std::string, int>>() == category::hash);
  STATIC_REQUIRE(category_of<std::unordered_map<std::string, std::string>>() == category::hash);
  STATIC_REQUIRE(category_of<redis_tasks::sorted_set<std::string>>() == category::zset);
  STATIC_REQUIRE(category_of<redis_tasks::value>() == category::any);
  STATIC_REQUIRE(category_of<nlohmann::json>() == category::json);
  STATIC_REQUIRE(category_of<json_thing>() == category::json);
  STATIC_REQUIRE(category_of<custom_point>() == category::user);
  // Containers of things that are not strings or numbers are stored as JSON text.
  STATIC_REQUIRE(category_of<std::vector<json_thing>>() == category::json);
  STATIC_REQUIRE(category_of<std::vector<std::vector<int>>>() == category::json);
  // A type the library cannot store is refused at compile time.
  STATIC_REQUIRE(category_of<std::FILE*>() == category::none);
}

TEST_CASE("byte vectors are one binary string, not a list of numbers") {
  using d::category;
  using d::category_of;
  STATIC_REQUIRE(category_of<std::vector<std::uint8_t>>() == category::bytes);
  STATIC_REQUIRE(category_of<std::vector<std::byte>>() == category::bytes);
  STATIC_REQUIRE(d::kind_of(category::bytes) == d::redis_kind::string);
  // Other small integers stay lists of numbers; bytes inside containers are binary strings.
  STATIC_REQUIRE(category_of<std::vector<signed char>>() == category::list);
  STATIC_REQUIRE(category_of<std::deque<std::uint8_t>>() == category::list);
  STATIC_REQUIRE(category_of<std::vector<std::vector<std::uint8_t>>>() == category::list);
  STATIC_REQUIRE(category_of<std::map<std::string, std::vector<std::byte>>>() == category::hash);
  const std::vector<std::uint8_t> bytes{0x00, 0xFF, 'a', 0x00, 0x80};
  d::number_buffer buf;
  const std::string_view text = d::element_text(bytes, buf);
  CHECK(text == std::string_view("\0\xFF"
                                 "a\0\x80",
                                 5));
  CHECK(d::element_from_text<std::vector<std::uint8_t>>(std::string(text), "k") == bytes);
  const auto as_byte = d::element_from_text<std::vector<std::byte>>(std::string(text), "k");
  REQUIRE(as_byte.size() == 5);
  CHECK(as_byte[1] == std::byte{0xFF});
  CHECK(d::element_from_text<std::vector<std::byte>>(std::string(), "k").empty());
  CHECK(d::value_type_name<std::vector<std::uint8_t>>() == "std::vector<std::uint8_t>");
  CHECK(d::value_type_name<std::vector<std::byte>>() == "std::vector<std::byte>");
}

TEST_CASE("sorted sets compare by content, not order") {
  redis_tasks::sorted_set<std::string> a{{"a", 1.0}, {"b", 2.5}};
  redis_tasks::sorted_set<std::string> b{{"b", 2.5}, {"a", 1.0}};
  redis_tasks::sorted_set<std::string> c{{"b", 2.0}, {"a", 1.0}};
  CHECK(a == b);
  CHECK(a != c);
}

// ---- the commands behind RedisSet and RedisGet, against a scripted server ---------------------

namespace {

/// Serves one connection of a fake_server: reads each command (a RESP array of bulk strings)
/// and writes what `answer` returns for it, until the client hangs up (or is silent for 5 s).
void serve_commands(int fd,
                    const std::function<std::string(const std::vector<std::string>&)>& answer) {
  timeval quiet{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
  std::string buf;
  auto more = [&] {
    char tmp[4096];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
    return true;
  };
  auto line = [&](std::string& out) {
    std::size_t end;
    while ((end = buf.find("\r\n")) == std::string::npos) {
      if (!more()) return false;
    }
    out = buf.substr(0, end);
    buf.erase(0, end + 2);
    return true;
  };
  for (std::string header; line(header);) {
    if (header.empty() || header[0] != '*') return;
    std::vector<std::string> argv(std::stoul(header.substr(1)));
    for (auto& a : argv) {
      std::string len;
      if (!line(len) || len.empty() || len[0] != '$') return;
      const std::size_t n = std::stoul(len.substr(1));
      while (buf.size() < n + 2) {
        if (!more()) return;
      }
      a = buf.substr(0, n);
      buf.erase(0, n + 2);
    }
    const std::string reply = answer(argv);
    ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  }
}

/// Answers a collection write's MULTI, queued commands and EXEC as Redis does, except that
/// `exec` decides EXEC's reply from the number of commands queued and the connection's number
/// (1, 2, …).
struct transaction_server {
  explicit transaction_server(std::function<std::string(std::size_t, int)> exec_reply)
      : exec(std::move(exec_reply)) {}
  std::atomic<int> connections{0};
  std::function<std::string(std::size_t queued, int connection)> exec;
  test_support::fake_server server{[this](int fd) {
    const int number = ++connections;
    std::size_t queued = 0;
    serve_commands(fd, [&](const std::vector<std::string>& argv) -> std::string {
      if (argv[0] == "MULTI") {
        queued = 0;
        return "+OK\r\n";
      }
      if (argv[0] == "EXEC") return exec(queued, number);
      ++queued;
      return "+QUEUED\r\n";
    });
  }};
};

/// EXEC's reply when every queued command ran (each answering :1).
std::string exec_ran(std::size_t queued) {
  std::string r = "*" + std::to_string(queued) + "\r\n";
  for (std::size_t i = 0; i < queued; ++i)
    r += ":1\r\n";
  return r;
}

template <class Task>
typename Task::config scripted_config(int port, int max_retries) {
  auto c = test_support::config_for<Task>(port);
  c.redis_key = "k";
  c.redis_connection_params.shared_pool = false;
  c.redis_connection_params.socket_timeout = std::chrono::seconds(5);
  c.task.max_retries = max_retries;
  return c;
}

}  // namespace

TEST_CASE("a discarded transaction (EXEC nil) wrote nothing: a connection_error, retried") {
  using Set = redis_tasks::RedisSet<std::vector<std::string>>;
  transaction_server s([](std::size_t queued, int connection) {
    return connection == 1 ? std::string("*-1\r\n") : exec_ran(queued);
  });
  {
    auto c = scripted_config<Set>(s.server.port(), 0);
    c.redis_val = std::vector<std::string>{"a", "b"};
    try {
      Set(c).run();
      FAIL("expected connection_error");
    } catch (const redis_tasks::connection_error& e) {
      CHECK_THAT(std::string(e.what()), Contains("\"k\"") && Contains("wrote nothing"));
    }
  }
  // Nothing was written, so a task retry may run it again, on a new connection.
  s.connections = 0;
  auto c = scripted_config<Set>(s.server.port(), 1);
  c.redis_val = std::vector<std::string>{"a", "b"};
  CHECK(Set(c).run());
  CHECK(s.connections == 2);
}

TEST_CASE("an EXEC reply that does not match the transaction is a type_error, never retried") {
  using Set = redis_tasks::RedisSet<std::vector<std::string>>;
  transaction_server s([](std::size_t queued, int) { return exec_ran(queued - 1); });
  auto c = scripted_config<Set>(s.server.port(), 3);
  c.redis_val = std::vector<std::string>{"a", "b"};
  c.nx = true;
  try {
    Set(c).run();
    FAIL("expected type_error");
  } catch (const redis_tasks::type_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("\"k\"") && Contains("EXEC answered an array of") &&
                                          Contains("may or may not have been written") &&
                                          Contains("not retried"));
  }
  // The write may have happened: no retry, although max_retries allows 3.
  CHECK(s.connections == 1);
}

TEST_CASE("a key whose type keeps changing is a type_error that says how to read it") {
  // TYPE answers list, hash, set, list, …: each attempt of RedisGet<value> sees the type
  // change under it (TYPE, LRANGE refused with WRONGTYPE, TYPE again twice).
  std::atomic<int> connections{0};
  test_support::fake_server server([&](int fd) {
    ++connections;
    int types = 0;
    serve_commands(fd, [&](const std::vector<std::string>& argv) -> std::string {
      if (argv[0] == "TYPE") {
        static const char* const cycle[] = {"+list\r\n", "+hash\r\n", "+set\r\n"};
        return cycle[types++ % 3];
      }
      return "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    });
  });
  using Get = redis_tasks::RedisGet<redis_tasks::value>;
  try {
    Get(scripted_config<Get>(server.port(), 2)).run();
    FAIL("expected type_error");
  } catch (const redis_tasks::type_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("\"k\"") && Contains("100 times in a row") &&
                                          Contains("RedisGet<std::vector<std::string>>"));
  }
  CHECK(connections == 1);  // not retried
}
