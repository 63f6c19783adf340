// RedisExecute<T>'s conversions from a reply.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"
#include "thrown.hpp"

using redis_tasks::from_reply;
using redis_tasks::reply;
using redis_tasks::reply_type;
using redis_tasks::type_error;

TEST_CASE("numbers and booleans") {
  CHECK(from_reply<long long>(reply::make_integer(7), "r") == 7);
  CHECK(from_reply<long long>(reply::make_string("-12"), "r") == -12);
  CHECK(from_reply<int>(reply::make_integer(7), "r") == 7);
  CHECK_THROWS_AS(from_reply<int>(reply::make_integer(1LL << 40), "r"), type_error);
  CHECK_THROWS_AS(from_reply<unsigned>(reply::make_integer(-1), "r"), type_error);
  CHECK(from_reply<double>(reply::make_string("2.5"), "r") == 2.5);
  CHECK(from_reply<double>(reply::make_integer(3), "r") == 3.0);
  CHECK(from_reply<double>(reply::make_double(1.25), "r") == 1.25);
  CHECK(from_reply<bool>(reply::make_status("OK"), "r"));
  CHECK_FALSE(from_reply<bool>(reply(), "r"));
  CHECK(from_reply<bool>(reply::make_integer(1), "r"));
  CHECK_FALSE(from_reply<bool>(reply::make_integer(0), "r"));
  CHECK_THROWS_AS(from_reply<bool>(reply::make_string("yes"), "r"), type_error);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_array({}), "r"), type_error);
}

TEST_CASE("strings, optionals and containers") {
  CHECK(from_reply<std::string>(reply::make_string("x"), "r") == "x");
  CHECK(from_reply<std::string>(reply::make_integer(5), "r") == "5");
  CHECK_THROWS_AS(from_reply<std::string>(reply(), "r"), type_error);
  CHECK_FALSE(from_reply<std::optional<std::string>>(reply(), "r"));
  CHECK(from_reply<std::optional<std::string>>(reply::make_string("v"), "r") == "v");
  const reply arr = reply::make_array({reply::make_string("1"), reply::make_integer(2)});
  CHECK(from_reply<std::vector<long long>>(reply(arr), "r") == std::vector<long long>{1, 2});
  CHECK(from_reply<std::vector<std::string>>(reply(arr), "r") ==
        std::vector<std::string>{"1", "2"});
  CHECK(from_reply<std::set<std::string>>(reply(arr), "r") == std::set<std::string>{"1", "2"});
  const reply flat = reply::make_array({reply::make_string("f"), reply::make_string("v")});
  CHECK(from_reply<std::map<std::string, std::string>>(reply(flat), "r") ==
        std::map<std::string, std::string>{{"f", "v"}});
  using string_map = std::map<std::string, std::string>;
  CHECK_THROWS_AS(from_reply<string_map>(reply::make_array({reply::make_string("odd")}), "r"),
                  type_error);
  CHECK(from_reply<std::vector<std::optional<std::string>>>(
            reply::make_array({reply(), reply::make_string("a")}), "r") ==
        std::vector<std::optional<std::string>>{std::nullopt, "a"});
}

TEST_CASE("byte vectors convert from one string, byte for byte") {
  const std::string raw("\0\xFFz", 3);
  const auto u8 = from_reply<std::vector<std::uint8_t>>(reply::make_string(raw), "r");
  CHECK(u8 == std::vector<std::uint8_t>{0x00, 0xFF, 'z'});
  const auto b = from_reply<std::vector<std::byte>>(reply::make_string(raw), "r");
  REQUIRE(b.size() == 3);
  CHECK(b[1] == std::byte{0xFF});
  CHECK(from_reply<std::optional<std::vector<std::uint8_t>>>(reply(), "r") == std::nullopt);
  // An array is not bytes: read it as std::vector<int>.
  CHECK_THROWS_WITH(
      from_reply<std::vector<std::uint8_t>>(reply::make_array({reply::make_integer(1)}), "r"),
      "r was an array of 1 elements, which does not convert to "
      "std::vector<std::uint8_t>");
  CHECK(from_reply<std::vector<int>>(reply::make_array({reply::make_integer(1)}), "r") ==
        std::vector<int>{1});
}

TEST_CASE("error replies are reply errors with the server's code") {
  try {
    from_reply<long long>(reply::make_error("WRONGTYPE Operation against a key"), "reply to INCR");
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.code() == "WRONGTYPE");
    CHECK(e.server_message() == "WRONGTYPE Operation against a key");
    CHECK(std::string(e.what()).find("reply to INCR") != std::string::npos);
  }
}

TEST_CASE("type errors name the command and what came back") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(
      from_reply<long long>(reply::make_array({reply()}), "reply to HGETALL"),
      Contains("reply to HGETALL") && Contains("array of 1 elements") && Contains("long long"));
}

TEST_CASE("value and json") {
  CHECK(std::get<std::string>(from_reply<redis_tasks::value>(reply::make_string("s"), "r")) == "s");
  CHECK(std::get<std::vector<std::string>>(from_reply<redis_tasks::value>(
            reply::make_array({reply::make_string("a")}), "r")) == std::vector<std::string>{"a"});
  CHECK(from_reply<nlohmann::json>(reply::make_integer(3), "r") == 3);
  CHECK(from_reply<reply>(reply::make_integer(3), "r") == reply::make_integer(3));
}

using test_support::thrown;

namespace {}  // namespace

TEST_CASE("type errors say what came back, never its content") {
  using Catch::Matchers::Contains;
  const reply secret = reply::make_string("hunter2-is-my-password");
  const std::string msg =
      thrown<type_error>([&] { from_reply<long long>(reply(secret), "reply to GET"); });
  CHECK_THAT(msg, Contains("reply to GET was a bulk string of 22 bytes that is not an integer") &&
                      Contains("long long"));
  CHECK(msg.find("hunter2") == std::string::npos);
  CHECK(thrown<type_error>([&] { from_reply<double>(reply(secret), "r"); }).find("hunter2") ==
        std::string::npos);
  CHECK_THAT(thrown<type_error>([] { from_reply<int>(reply::make_string("99999999999"), "r"); }),
             Contains("not in the range of an integer type"));
  CHECK_THAT(thrown<type_error>([] { from_reply<unsigned>(reply::make_integer(-1), "r"); }),
             Contains("the integer -1, outside the range"));
  CHECK_THAT(thrown<type_error>([] { from_reply<std::string>(reply(), "reply to GET"); }),
             Contains("reply to GET was nil") && Contains("use std::optional<std::string>"));
  CHECK_THAT(thrown<type_error>([] { from_reply<long long>(reply::make_status("PONG"), "r"); }),
             Contains("a status"));
  CHECK_THAT(
      thrown<type_error>([] {
        from_reply<std::string>(reply::make_aggregate(reply_type::map, {reply(), reply()}), "r");
      }),
      Contains("a map of 1 entries"));
  CHECK_THAT(thrown<type_error>([] {
               from_reply<std::string>(reply::make_aggregate(reply_type::attribute, {}), "r");
             }),
             Contains("an attribute"));
}

TEST_CASE("a failing element is named by its place, outermost first") {
  using Catch::Matchers::Contains;
  const reply nested =
      reply::make_array({reply::make_array({reply::make_string("a")}),
                         reply::make_array({reply::make_string("b"), reply::make_array({})})});
  CHECK_THAT(thrown<type_error>([&] {
               from_reply<std::vector<std::vector<std::string>>>(reply(nested), "reply to X");
             }),
             Contains("reply to X (element 1) (element 1) was an array of 0 elements"));
  const reply hash = reply::make_array({reply::make_string("f"), reply::make_string("1"),
                                        reply::make_string("g"), reply::make_string("x")});
  CHECK_THAT(thrown<type_error>([&] {
               from_reply<std::map<std::string, long long>>(reply(hash), "reply to HGETALL");
             }),
             Contains("reply to HGETALL (value 1) was a bulk string of 1 bytes"));
  const reply bad_key = reply::make_array({reply::make_array({}), reply::make_string("1")});
  CHECK_THAT(thrown<type_error>(
                 [&] { from_reply<std::map<std::string, std::string>>(reply(bad_key), "r"); }),
             Contains("r (key 0) was an array"));
  // An error among the elements is a reply_error that says where it was.
  const reply with_error =
      reply::make_array({reply::make_integer(1), reply::make_error("OOPS no")});
  try {
    from_reply<std::vector<long long>>(reply(with_error), "reply to EVAL");
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.code() == "OOPS");
    CHECK(std::string(e.what()).find("reply to EVAL (element 1)") != std::string::npos);
  }
  const reply deep = reply::make_array({reply::make_array({}), reply::make_array({with_error})});
  try {
    from_reply<std::vector<std::vector<std::vector<long long>>>>(reply(deep), "reply to EVAL");
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.server_message() == "OOPS no");
    CHECK(std::string(e.what()) == "reply to EVAL (element 1) (element 0) (element 1): OOPS no");
  }
  // ... which reply and json keep as values.
  CHECK(from_reply<reply>(reply(with_error), "r") == with_error);
  CHECK(from_reply<nlohmann::json>(reply(with_error), "r") ==
        nlohmann::json::array({1, {{"error", "OOPS no"}}}));
}

TEST_CASE("RESP3 replies convert too") {
  using string_map = std::map<std::string, std::string>;
  const reply map =
      reply::make_aggregate(reply_type::map, {reply::make_string("a"), reply::make_integer(1),
                                              reply::make_string("b"), reply::make_double(2.5)});
  CHECK(from_reply<string_map>(reply(map), "r") == string_map{{"a", "1"}, {"b", "2.5"}});
  CHECK(from_reply<std::map<std::string, double>>(reply(map), "r") ==
        std::map<std::string, double>{{"a", 1.0}, {"b", 2.5}});
  CHECK(std::get<string_map>(from_reply<redis_tasks::value>(reply(map), "r")).size() == 2);
  const reply set = reply::make_aggregate(reply_type::set, {reply::make_string("x")});
  CHECK(std::get<std::set<std::string>>(from_reply<redis_tasks::value>(reply(set), "r")) ==
        std::set<std::string>{"x"});
  CHECK(from_reply<std::vector<std::string>>(reply(set), "r") == std::vector<std::string>{"x"});
  CHECK(from_reply<bool>(reply::make_boolean(true), "r"));
  CHECK_FALSE(from_reply<bool>(reply::make_boolean(false), "r"));
  CHECK(from_reply<long long>(reply::make_double(3.0), "r") == 3);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_double(3.5), "r"), type_error);
  CHECK_THROWS_AS(from_reply<int>(reply::make_double(1e12), "r"), type_error);
  CHECK_THROWS_AS(from_reply<unsigned>(reply::make_double(-1.0), "r"), type_error);
  CHECK(from_reply<double>(reply::make_big_number("12345678901234567890"), "r") ==
        12345678901234567890.0);
  CHECK(from_reply<long long>(reply::make_big_number("-42"), "r") == -42);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_big_number("12345678901234567890"), "r"),
                  type_error);
  CHECK(from_reply<std::string>(reply::make_verbatim("text"), "r") == "text");
  CHECK(from_reply<std::string>(reply::make_double(0.5, "0.5"), "r") == "0.5");
  try {
    (void)from_reply<redis_tasks::value>(reply::make_boolean(true), "r");
    FAIL("expected type_error");
  } catch (const type_error& e) {
    CHECK(std::string(e.what()).find("redis_tasks::value") != std::string::npos);
  }
}

TEST_CASE("numbers from text as the server writes them") {
  CHECK(from_reply<double>(reply::make_string("inf"), "r") ==
        std::numeric_limits<double>::infinity());
  CHECK(from_reply<double>(reply::make_string("-inf"), "r") ==
        -std::numeric_limits<double>::infinity());
  CHECK(from_reply<double>(reply::make_string("+1.5"), "r") == 1.5);
  CHECK(from_reply<double>(reply::make_string("1e3"), "r") == 1000.0);
  CHECK(from_reply<long long>(reply::make_string("-9223372036854775808"), "r") ==
        std::numeric_limits<long long>::min());
  CHECK_THROWS_AS(from_reply<long long>(reply::make_string("+1"), "r"), type_error);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_string(" 1"), "r"), type_error);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_string("1.0"), "r"), type_error);
  CHECK_THROWS_AS(from_reply<long long>(reply::make_string(""), "r"), type_error);
  CHECK_THROWS_AS(from_reply<double>(reply::make_string("1,5"), "r"), type_error);
  CHECK(from_reply<std::optional<long long>>(reply(), "r") == std::nullopt);
  CHECK(from_reply<std::optional<std::vector<std::string>>>(reply(), "r") == std::nullopt);
}
