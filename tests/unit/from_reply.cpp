// RedisExecute<T>'s conversions from a reply.
#include "catch.hpp"
#include <redis_tasks/redis_tasks.hpp>

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
  CHECK(from_reply<std::vector<std::string>>(reply(arr), "r") == std::vector<std::string>{"1", "2"});
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
  CHECK_THROWS_WITH(from_reply<long long>(reply::make_array({reply()}), "reply to HGETALL"),
                    Contains("reply to HGETALL") && Contains("array of 1 elements") &&
                        Contains("long long"));
}

TEST_CASE("value and json") {
  CHECK(std::get<std::string>(from_reply<redis_tasks::value>(reply::make_string("s"), "r")) == "s");
  CHECK(std::get<std::vector<std::string>>(from_reply<redis_tasks::value>(
            reply::make_array({reply::make_string("a")}), "r")) == std::vector<std::string>{"a"});
  CHECK(from_reply<nlohmann::json>(reply::make_integer(3), "r") == 3);
  CHECK(from_reply<reply>(reply::make_integer(3), "r") == reply::make_integer(3));
}
