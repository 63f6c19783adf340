// reply: JSON conversion (including binary data) and redis-cli style printing.
#include <limits>
#include <string>

#include "catch.hpp"
#include <redis_tasks/reply.hpp>

using redis_tasks::reply;
using redis_tasks::reply_type;
using nlohmann::json;

TEST_CASE("scalar replies convert to JSON") {
  CHECK(reply().to_json().is_null());
  CHECK(reply::make_status("OK").to_json() == "OK");
  CHECK(reply::make_integer(-42).to_json() == -42);
  CHECK(reply::make_string("héllo").to_json() == "héllo");
  CHECK(reply::make_boolean(true).to_json() == true);
  CHECK(reply::make_double(2.5).to_json() == 2.5);
  CHECK(reply::make_double(std::numeric_limits<double>::infinity()).to_json() == "inf");
  CHECK(reply::make_double(-std::numeric_limits<double>::infinity()).to_json() == "-inf");
  CHECK(reply::make_big_number("123456789012345678901234567890").to_json() ==
        "123456789012345678901234567890");
  CHECK(reply::make_error("ERR boom").to_json() == json{{"error", "ERR boom"}});
}

TEST_CASE("bulk strings that are not UTF-8 become base64 objects, losslessly") {
  const std::string bytes("\xff\x00\x01\xc3(", 5);
  const json j = reply::make_string(bytes).to_json();
  REQUIRE(j.is_object());
  CHECK(j.at("$binary") == "/wABwyg=");
  CHECK_NOTHROW(j.dump());
  // Overlong encodings and surrogates are not valid UTF-8 either.
  CHECK(reply::make_string("\xc0\xaf").to_json().is_object());
  CHECK(reply::make_string("\xed\xa0\x80").to_json().is_object());
  CHECK(reply::make_string("\xf0\x9f\x98\x80").to_json() == "\xf0\x9f\x98\x80");
}

TEST_CASE("aggregates convert to arrays and objects") {
  const reply arr = reply::make_array({reply::make_integer(1), reply::make_string("a"), reply()});
  CHECK(arr.to_json() == json::array({1, "a", nullptr}));

  const reply map = reply::make_aggregate(
      reply_type::map, {reply::make_string("k"), reply::make_integer(1), reply::make_string("j"),
                        reply::make_array({})});
  CHECK(map.to_json() == json{{"k", 1}, {"j", json::array()}});

  // A map whose keys are not all text (or repeat) keeps its pairs.
  const reply odd = reply::make_aggregate(
      reply_type::map, {reply::make_integer(1), reply::make_string("x"), reply::make_integer(2),
                        reply::make_string("y")});
  CHECK(odd.to_json() == json::array({json::array({1, "x"}), json::array({2, "y"})}));
}

TEST_CASE("to_string prints like redis-cli") {
  CHECK(reply::make_status("OK").to_string() == "OK");
  CHECK(reply::make_integer(5).to_string() == "(integer) 5");
  CHECK(reply().to_string() == "(nil)");
  CHECK(reply::make_error("ERR x").to_string() == "(error) ERR x");
  CHECK(reply::make_string(std::string("a\"b\\\n\x01 \x7f", 8)).to_string() ==
        R"("a\"b\\\n\x01 \x7f")");
  CHECK(reply::make_array({}).to_string() == "(empty array)");
  CHECK(reply::make_array({reply::make_array({reply::make_string("a"), reply::make_string("b")}),
                           reply::make_string("c")})
            .to_string() == "1) 1) \"a\"\n   2) \"b\"\n2) \"c\"");
  std::vector<reply> ten;
  for (int i = 0; i < 10; ++i) ten.push_back(reply::make_integer(i));
  const std::string s = reply::make_array(ten).to_string();
  CHECK(s.substr(0, 15) == " 1) (integer) 0");
  CHECK(s.find("\n10) (integer) 9") != std::string::npos);
  const reply map = reply::make_aggregate(
      reply_type::map,
      {reply::make_string("k"), reply::make_string("v"), reply::make_string("list"),
       reply::make_array({reply::make_integer(1), reply::make_integer(2)})});
  CHECK(map.to_string() ==
        "1# \"k\" => \"v\"\n2# \"list\" => \n   1) (integer) 1\n   2) (integer) 2");
  CHECK(reply::make_boolean(false).to_string() == "(false)");
  CHECK(reply::make_double(1.5, "1.5").to_string() == "(double) 1.5");
}

TEST_CASE("replies compare deeply") {
  CHECK(reply::make_array({reply::make_integer(1)}) == reply::make_array({reply::make_integer(1)}));
  CHECK(reply::make_string("a") != reply::make_status("a"));
}
