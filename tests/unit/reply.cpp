// reply: JSON conversion (including binary data), redis-cli style printing, and the RESP
// parser that builds replies from the wire.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <redis_tasks/detail/resp.hpp>
#include <redis_tasks/reply.hpp>
#include "catch.hpp"
#include "test_support.hpp"

using nlohmann::json;
using redis_tasks::reply;
using redis_tasks::reply_type;

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

  const reply map =
      reply::make_aggregate(reply_type::map, {reply::make_string("k"), reply::make_integer(1),
                                              reply::make_string("j"), reply::make_array({})});
  CHECK(map.to_json() == json{{"k", 1}, {"j", json::array()}});

  // A map whose keys are not all text (or repeat) keeps its pairs.
  const reply odd =
      reply::make_aggregate(reply_type::map, {reply::make_integer(1), reply::make_string("x"),
                                              reply::make_integer(2), reply::make_string("y")});
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
  for (int i = 0; i < 10; ++i)
    ten.push_back(reply::make_integer(i));
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

TEST_CASE("RESP3 replies print as redis-cli 7.0 prints them (redis-cli -3 --no-raw)") {
  // Expected texts were taken from redis-cli 7.0 against Lua scripts under redis.setresp(3).
  const auto s = [](const char* t) { return reply::make_string(t); };
  const reply set = reply::make_aggregate(reply_type::set, {s("a"), s("b")});
  CHECK(set.to_string() == "1~ \"a\"\n2~ \"b\"");
  CHECK(reply::make_aggregate(reply_type::set, {}).to_string() == "(empty set)");
  CHECK(reply::make_aggregate(reply_type::map, {}).to_string() == "(empty hash)");
  CHECK(reply::make_aggregate(reply_type::push, {}).to_string() == "(empty push)");
  CHECK(reply::make_aggregate(reply_type::map,
                              {s("k"), reply::make_aggregate(reply_type::set, {s("x")})})
            .to_string() == "1# \"k\" => 1~ \"x\"");
  const reply one_two = reply::make_array({reply::make_integer(1), reply::make_integer(2)});
  const reply three = reply::make_array({reply::make_integer(3)});
  CHECK(reply::make_aggregate(reply_type::map, {s("a"), one_two, s("b"), three}).to_string() ==
        "1# \"a\" => \n   1) (integer) 1\n   2) (integer) 2\n2# \"b\" => 1) (integer) 3");
  CHECK(reply::make_aggregate(reply_type::map, {s("a"), reply::make_array({one_two, three})})
            .to_string() ==
        "1# \"a\" => \n   1) 1) (integer) 1\n      2) (integer) 2\n   2) 1) (integer) 3");
  CHECK(reply::make_aggregate(reply_type::map, {s("c"), reply::make_array({})}).to_string() ==
        "1# \"c\" => (empty array)");
  CHECK(reply::make_boolean(true).to_string() == "(true)");
  CHECK(reply::make_double(3.14, "3.1400000000000001").to_string() ==
        "(double) 3.1400000000000001");
  CHECK(reply::make_double(std::numeric_limits<double>::infinity(), "inf").to_string() ==
        "(double) inf");
  CHECK(reply::make_verbatim("hello\nworld").to_string() == "hello\nworld");
  // redis-cli 7.0 cannot print big numbers (it exits); 7.2 prints them like this.
  CHECK(reply::make_big_number("1234567890123456789012").to_string() ==
        "(big number) 1234567890123456789012");
  // Errors inside arrays, as a script can return them.
  CHECK(reply::make_array({reply::make_integer(1), reply::make_error("boom"),
                           reply::make_status("fine"), reply()})
            .to_string() == "1) (integer) 1\n2) (error) boom\n3) fine\n4) (nil)");
}

TEST_CASE("to_json keeps its two special objects unambiguous") {
  const auto s = [](const std::string& t) { return reply::make_string(t); };
  // A map whose only key is "$binary" or "error" would read back as binary data or an error.
  const reply binary_lookalike = reply::make_aggregate(reply_type::map, {s("$binary"), s("AAAA")});
  CHECK(binary_lookalike.to_json() == json::array({json::array({"$binary", "AAAA"})}));
  const reply error_lookalike = reply::make_aggregate(reply_type::map, {s("error"), s("x")});
  CHECK(error_lookalike.to_json() == json::array({json::array({"error", "x"})}));
  // With more keys it is an ordinary object.
  CHECK(reply::make_aggregate(reply_type::map, {s("$binary"), s("1"), s("b"), s("2")}).to_json() ==
        json{{"$binary", "1"}, {"b", "2"}});
  // Binary keys and repeated keys keep the pairs.
  CHECK(reply::make_aggregate(reply_type::map, {s("\xff"), s("v")}).to_json() ==
        json::array({json::array({json{{"$binary", "/w=="}}, "v"})}));
  CHECK(reply::make_aggregate(reply_type::map, {s("k"), s("1"), s("k"), s("2")}).to_json() ==
        json::array({json::array({"k", "1"}), json::array({"k", "2"})}));
  // Errors and statuses with binary text, NaN doubles, sets and pushes.
  CHECK(reply::make_error("\xff").to_json() == json{{"error", {{"$binary", "/w=="}}}});
  CHECK(reply::make_status("\xfe").to_json() == json{{"$binary", "/g=="}});
  CHECK(reply::make_double(std::nan("")).to_json() == "nan");
  CHECK(reply::make_aggregate(reply_type::set, {s("a")}).to_json() == json::array({"a"}));
  CHECK(reply::make_aggregate(reply_type::push, {s("m"), reply::make_integer(1)}).to_json() ==
        json::array({"m", 1}));
  CHECK(reply::make_verbatim("text", "mkd").to_json() == "text");
}

TEST_CASE("to_json of any bytes dumps without throwing and decodes to the same bytes") {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all.push_back(static_cast<char>(b));
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    const std::string bytes = all.substr(all.size() - len);
    const json j = reply::make_string(bytes).to_json();
    std::string text;
    REQUIRE_NOTHROW(text = j.dump());
    const json back = json::parse(text);
    if (back.is_string()) {
      CHECK(back.get<std::string>() == bytes);
    } else {
      // base64 of the exact bytes: same length rule, same alphabet
      CHECK(back.at("$binary").get<std::string>().size() == (bytes.size() + 2) / 3 * 4);
    }
  }
  CHECK(redis_tasks::detail::base64_encode("") == "");
  CHECK(redis_tasks::detail::base64_encode("f") == "Zg==");
  CHECK(redis_tasks::detail::base64_encode("fo") == "Zm8=");
  CHECK(redis_tasks::detail::base64_encode("foo") == "Zm9v");
  CHECK(redis_tasks::detail::base64_encode("foob") == "Zm9vYg==");
  CHECK(redis_tasks::detail::base64_encode(std::string("\0\xff\xfe", 3)) == "AP/+");
}

TEST_CASE("the RESP parser builds every RESP2 reply, fed in pieces") {
  static const char wire[] =
      "+OK\r\n-ERR bad thing\r\n:-12\r\n$5\r\na\r\nb\0\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
      "*3\r\n:1\r\n*2\r\n$1\r\nx\r\n$-1\r\n+st\r\n";
  const std::string bytes(wire, sizeof wire - 1);  // it holds a NUL byte
  const std::vector<reply> expected = {
      reply::make_status("OK"),
      reply::make_error("ERR bad thing"),
      reply::make_integer(-12),
      reply::make_string(std::string("a\r\nb\0", 5)),
      reply::make_string(""),
      reply(),
      reply(),
      reply::make_array({}),
      reply::make_array({reply::make_integer(1),
                         reply::make_array({reply::make_string("x"), reply()}),
                         reply::make_status("st")}),
  };
  for (std::size_t piece : {std::size_t(1), std::size_t(3), bytes.size()}) {
    INFO("pieces of " << piece << " bytes");
    redis_tasks::detail::reply_parser parser;
    std::vector<reply> got;
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      parser.feed(bytes.data() + at, std::min(piece, bytes.size() - at));
      reply r;
      while (parser.next(r))
        got.push_back(std::move(r));
    }
    CHECK(got == expected);
  }
  redis_tasks::detail::reply_parser bad;
  bad.feed("?what\r\n", 7);
  reply r;
  CHECK_THROWS_AS(bad.next(r), redis_tasks::connection_error);
}

TEST_CASE("the RESP parser knows when a reply has begun") {
  // A subscriber waits on its socket only when no reply has begun; and a large bulk string is
  // read past hiredis only at a reply's start. Asking for a reply with nothing buffered must
  // not make it look begun.
  redis_tasks::detail::reply_parser parser;
  reply r;
  CHECK(parser.at_reply_start());
  CHECK_FALSE(parser.next(r));
  CHECK(parser.at_reply_start());
  const std::string two = "+OK\r\n*2\r\n$1\r\na\r\n";
  parser.feed(two.data(), two.size());
  CHECK_FALSE(parser.at_reply_start());
  REQUIRE(parser.next(r));
  CHECK(r == reply::make_status("OK"));
  CHECK_FALSE(parser.at_reply_start());  // half of the array is there
  CHECK_FALSE(parser.next(r));
  CHECK_FALSE(parser.at_reply_start());
  parser.feed("$1\r\nb\r\n", 7);
  REQUIRE(parser.next(r));
  CHECK(r.elements().size() == 2);
  CHECK(parser.at_reply_start());
  CHECK_FALSE(parser.next(r));
  CHECK(parser.at_reply_start());
  parser.feed("", 0);
  CHECK(parser.at_reply_start());
}

TEST_CASE("bulk_header reads only complete plain bulk string headers") {
  using redis_tasks::detail::bulk_header;
  std::size_t len = 7;
  const std::string big = "$1048576\r\nxy";
  CHECK(bulk_header(big.data(), big.size(), len) == 10);
  CHECK(len == 1048576);
  const std::string empty = "$0\r\n";
  CHECK(bulk_header(empty.data(), empty.size(), len) == 4);
  CHECK(len == 0);
  const std::string longest = "$000000000000000012\r\n";  // 18 digits
  CHECK(bulk_header(longest.data(), longest.size(), len) == 21);
  CHECK(len == 12);
  len = 7;
  // Left to hiredis: not a bulk string, nil, a sign, 19 digits, no digits, an incomplete line.
  for (const std::string wire : {"+OK\r\n", "$-1\r\n", "$+5\r\n", "$1234567890123456789\r\n",
                                 "$\r\n\r\n", "$12\r", "$12", "$12\rx", "*1\r\n"}) {
    INFO(wire);
    CHECK(bulk_header(wire.data(), wire.size(), len) == 0);
    CHECK(len == 7);
  }
}

#ifdef REDIS_REPLY_MAP
// hiredis 1.x only: the RESP3 types arrive as their own reply types.
TEST_CASE("the RESP parser builds RESP3 replies (hiredis 1.x)") {
  const std::string wire =
      "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n~1\r\n:2\r\n"
      ",3.5\r\n#t\r\n#f\r\n=8\r\ntxt:abcd\r\n(12345678901234567890\r\n>2\r\n+message\r\n+x\r\n_"
      "\r\n";
  redis_tasks::detail::reply_parser parser;
  parser.feed(wire.data(), wire.size());
  std::vector<reply> got;
  reply r;
  while (parser.next(r))
    got.push_back(std::move(r));
  REQUIRE(got.size() == 8);
  CHECK(got[7].is_nil());
  CHECK(got[0].type() == reply_type::map);
  CHECK(got[0].to_json() == json{{"a", 1}, {"b", json::array({2})}});
  CHECK(got[0].elements().at(3).type() == reply_type::set);
  CHECK(got[1].type() == reply_type::double_value);
  CHECK(got[1].number() == 3.5);
  CHECK(got[1].to_string() == "(double) 3.5");
  CHECK(got[2] == reply::make_boolean(true));
  CHECK(got[3] == reply::make_boolean(false));
  CHECK(got[4] == reply::make_verbatim("abcd", "txt"));
  CHECK(got[5] == reply::make_big_number("12345678901234567890"));
  CHECK(got[6].type() == reply_type::push);
  CHECK(got[6].to_json() == json::array({"message", "x"}));
}
#endif
