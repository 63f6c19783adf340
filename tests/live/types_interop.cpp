// Interoperability with a client we did not write: what RedisSet stores, redis-cli reads back
// exactly; what redis-cli stores, RedisGet reads back exactly. redis-cli prints raw bytes when
// its stdout is not a terminal, and redis-cli's own quoting with --no-raw.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using redis_tasks::sorted_set;
using test_support::config_for;
using test_support::fixture;
using test_support::redis_cli;

namespace {

std::string interop_key(const std::string& stem) {
  static std::atomic<int> n{0};
  return test_support::unique_key("interop/" + stem + "#" + std::to_string(n++));
}

using test_support::get;
using test_support::put;

/// redis-cli's raw output split into lines (for replies without line breaks in them).
std::vector<std::string> cli_lines(int port, std::vector<std::string> args) {
  std::istringstream in(redis_cli(port, std::move(args)));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

/// Undoes redis-cli's quoting of one bulk string ("a\x00b\r\n" and friends).
std::string unquote(const std::string& q) {
  REQUIRE(q.size() >= 2);
  REQUIRE(q.front() == '"');
  REQUIRE(q.back() == '"');
  std::string out;
  for (std::size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] != '\\') {
      out.push_back(q[i]);
      continue;
    }
    const char c = q[++i];
    switch (c) {
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'x':
        out.push_back(static_cast<char>(std::stoi(q.substr(i + 1, 2), nullptr, 16)));
        i += 2;
        break;
      default:
        out.push_back(c);  // \" and \\.
    }
  }
  return out;
}

/// The elements of an array reply, from redis-cli --no-raw ("1) \"a\"" per line); binary-safe.
std::vector<std::string> cli_array(int port, std::vector<std::string> args) {
  args.insert(args.begin(), "--no-raw");
  const std::string text = redis_cli(port, std::move(args));
  std::vector<std::string> out;
  if (text == "(empty array)\n" || text == "(empty list or set)\n") return out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto paren = line.find(") ");
    REQUIRE(paren != std::string::npos);
    out.push_back(unquote(line.substr(paren + 2)));
  }
  return out;
}

/// A bulk string reply as redis-cli --no-raw prints it, unquoted.
std::string cli_string(int port, std::vector<std::string> args) {
  args.insert(args.begin(), "--no-raw");
  std::string text = redis_cli(port, std::move(args));
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  text.pop_back();
  return unquote(text);
}

/// Runs a redis-cli script (one command per line, redis-cli's own quoting) from stdin.
void cli_script(int port, const std::string& script) {
  redis_cli(port, {}, script);
}

using test_support::same_bits;

double text_to_double(const std::string& s) {
  return std::strtod(s.c_str(), nullptr);
}

using test_support::all_bytes;

const std::string tricky = std::string("a\0b\r\n\"q\"\\ \xff\xfe\t", 13);

using test_support::inf;

}  // namespace

// ---- the library writes, redis-cli reads -----------------------------------------------------

TEST_CASE("interop: strings written by the library, read by redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("str");
  REQUIRE(put(port, key, tricky));
  // redis-cli's own quoting, compared as text.
  CHECK(redis_cli(port, {"--no-raw", "GET", key}) ==
        "\"a\\x00b\\r\\n\\\"q\\\"\\\\ \\xff\\xfe\\t\"\n");
  // Raw output is the bytes and a line break.
  REQUIRE(put(port, key, all_bytes()));
  CHECK(redis_cli(port, {"GET", key}) == all_bytes() + "\n");
  CHECK(redis_cli(port, {"STRLEN", key}) == "256\n");
}

TEST_CASE("interop: numbers written by the library are plain text to redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("num");
  const auto shown = [&](auto v) {
    REQUIRE(put(port, key, v));
    return redis_cli(port, {"GET", key});
  };
  CHECK(shown(std::numeric_limits<long long>::min()) == "-9223372036854775808\n");
  CHECK(shown(std::numeric_limits<unsigned long long>::max()) == "18446744073709551615\n");
  CHECK(shown(-7) == "-7\n");
  CHECK(shown(0.1) == "0.1\n");
  CHECK(shown(1e300) == "1e+300\n");
  CHECK(shown(-2.5e-7) == "-2.5e-07\n");
  CHECK(shown(inf) == "inf\n");
  CHECK(shown(-inf) == "-inf\n");
  CHECK(shown(0.1f) == "0.1\n");
  CHECK(shown(true) == "1\n");
  CHECK(shown(false) == "0\n");
  // Redis itself takes them as numbers.
  REQUIRE(put(port, key, 41));
  CHECK(redis_cli(port, {"INCR", key}) == "42\n");
  REQUIRE(put(port, key, 0.1));
  CHECK(redis_cli(port, {"INCRBYFLOAT", key, "0.2"}) == "0.3\n");
}

TEST_CASE("interop: lists written by the library, read by redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("list");
  const std::vector<std::string> v{tricky, "", "plain", all_bytes(), "plain", "\n"};
  REQUIRE(put(port, key, v));
  CHECK(redis_cli(port, {"TYPE", key}) == "list\n");
  CHECK(cli_array(port, {"LRANGE", key, "0", "-1"}) == v);
  CHECK(cli_string(port, {"LINDEX", key, "0"}) == tricky);

  const std::deque<double> d{0.1, 1e300, inf, -inf, 5e-324, -0.0, 3};
  REQUIRE(put(port, key, d));
  CHECK(cli_lines(port, {"LRANGE", key, "0", "-1"}) ==
        std::vector<std::string>{"0.1", "1e+300", "inf", "-inf", "5e-324", "-0", "3"});
  const std::list<long long> l{std::numeric_limits<long long>::min(), 0, 5};
  REQUIRE(put(port, key, l));
  CHECK(cli_lines(port, {"LRANGE", key, "0", "-1"}) ==
        std::vector<std::string>{"-9223372036854775808", "0", "5"});
  CHECK(redis_cli(port, {"LLEN", key}) == "3\n");
}

TEST_CASE("interop: sets written by the library, read by redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("set");
  const std::set<std::string> s{tricky, "", "x", all_bytes()};
  REQUIRE(put(port, key, s));
  CHECK(redis_cli(port, {"TYPE", key}) == "set\n");
  const auto members = cli_array(port, {"SMEMBERS", key});
  CHECK(std::set<std::string>(members.begin(), members.end()) == s);
  CHECK(members.size() == s.size());
  CHECK(redis_cli(port, {"SISMEMBER", key, "x"}) == "1\n");

  const std::unordered_set<int> n{-5, 0, 12};
  REQUIRE(put(port, key, n));
  auto lines = cli_lines(port, {"SMEMBERS", key});
  CHECK(std::set<std::string>(lines.begin(), lines.end()) ==
        std::set<std::string>{"-5", "0", "12"});
}

TEST_CASE("interop: hashes written by the library, read by redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("hash");
  const std::map<std::string, std::string> m{
      {tricky, "t"}, {"", "empty field"}, {"e", ""}, {"bytes", all_bytes()}};
  REQUIRE(put(port, key, m));
  CHECK(redis_cli(port, {"TYPE", key}) == "hash\n");
  const auto flat = cli_array(port, {"HGETALL", key});
  REQUIRE(flat.size() == 2 * m.size());
  std::map<std::string, std::string> back;
  for (std::size_t i = 0; i < flat.size(); i += 2)
    back[flat[i]] = flat[i + 1];
  CHECK(back == m);
  CHECK(cli_string(port, {"HGET", key, "bytes"}) == all_bytes());

  const std::unordered_map<std::string, double> d{{"tenth", 0.1}, {"inf", inf}, {"big", 1e300}};
  REQUIRE(put(port, key, d));
  CHECK(redis_cli(port, {"HGET", key, "tenth"}) == "0.1\n");
  CHECK(redis_cli(port, {"HGET", key, "inf"}) == "inf\n");
  CHECK(redis_cli(port, {"HGET", key, "big"}) == "1e+300\n");
  CHECK(redis_cli(port, {"HINCRBYFLOAT", key, "tenth", "0.2"}) == "0.3\n");
}

TEST_CASE("interop: sorted sets written by the library, read by redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("zset");
  const sorted_set<std::string> z{{"b", 1},       {"a", 1},       {"top", inf},    {"bottom", -inf},
                                  {"tenth", 0.1}, {"big", 1e300}, {"tiny", 5e-324}};
  REQUIRE(put(port, key, z));
  CHECK(redis_cli(port, {"TYPE", key}) == "zset\n");
  const auto lines = cli_lines(port, {"ZRANGE", key, "0", "-1", "WITHSCORES"});
  const std::vector<std::string> members{"bottom", "tiny", "tenth", "a", "b", "big", "top"};
  const std::vector<double> scores{-inf, 5e-324, 0.1, 1, 1, 1e300, inf};
  REQUIRE(lines.size() == 2 * members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    CAPTURE(i, lines[2 * i + 1]);
    CHECK(lines[2 * i] == members[i]);
    // Redis prints scores in its own notation (%.17g here); the double is the same.
    CHECK(same_bits(text_to_double(lines[2 * i + 1]), scores[i]));
  }
  CHECK(redis_cli(port, {"ZSCORE", key, "top"}) == "inf\n");
  CHECK(redis_cli(port, {"ZSCORE", key, "bottom"}) == "-inf\n");
  CHECK(redis_cli(port, {"ZCARD", key}) == "7\n");
}

TEST_CASE("interop: JSON written by the library is its JSON text to redis-cli") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("json");
  const nlohmann::json j = {{"name", "caf\xc3\xa9"}, {"n", {1, 2.5, nullptr}}, {"ok", true}};
  REQUIRE(put(port, key, j));
  CHECK(redis_cli(port, {"GET", key}) == j.dump() + "\n");
  CHECK(nlohmann::json::parse(cli_string(port, {"GET", key})) == j);
}

TEST_CASE("interop: redis-cli sees the TTL of a collection the library wrote") {
  const int port = fixture("plain").port;
  const std::string key = interop_key("ttl");
  REQUIRE(put(port, key, std::set<std::string>{"a"}, {.ex = 100s}));
  const long long ms = std::stoll(redis_cli(port, {"PTTL", key}));
  CHECK(ms > 95000);
  CHECK(ms <= 100000);
  REQUIRE(put(port, key, std::set<std::string>{"a"}));
  CHECK(redis_cli(port, {"TTL", key}) == "-1\n");
}

// ---- redis-cli writes, the library reads -----------------------------------------------------

TEST_CASE("interop: values written by redis-cli, read by the library") {
  const int port = fixture("plain").port;
  const std::string l = interop_key("cli-list"), s = interop_key("cli-set"),
                    h = interop_key("cli-hash"), z = interop_key("cli-zset"),
                    n = interop_key("cli-nums"), sn = interop_key("cli-snums"),
                    hn = interop_key("cli-hnums");
  // redis-cli's quoting: "\x00", "\r\n" and friends inside double quotes.
  cli_script(port, "RPUSH " + l +
                       " \"a\\x00b\" \"\\r\\n\" \"\\xff\\xfe\" \"\" plain \"two words\"\n"
                       "SADD " +
                       s +
                       " x \"y\\x00\" \"\"\n"
                       "HSET " +
                       h +
                       " \"f\\x00\" \"v\\r\\n\" \"\" empty plain \"\"\n"
                       "ZADD " +
                       z +
                       " 1 b 1 a 0.5 c +inf top -inf bottom 0.1 tenth 1e300 big\n"
                       "RPUSH " +
                       n +
                       " 1 -2 18446744073709551615 0\n"
                       "SADD " +
                       sn +
                       " 5 10 -9223372036854775808\n"
                       "HSET " +
                       hn + " a 1.5 b -inf c 0.1 d 5e-324\n");
  CHECK(get<std::vector<std::string>>(port, l) == std::vector<std::string>{std::string("a\0b", 3),
                                                                           "\r\n", "\xff\xfe", "",
                                                                           "plain", "two words"});
  CHECK(get<std::list<std::string>>(port, l)->size() == 6);
  CHECK(get<std::set<std::string>>(port, s) ==
        std::set<std::string>{"x", std::string("y\0", 2), ""});
  CHECK(get<std::unordered_map<std::string, std::string>>(port, h) ==
        std::unordered_map<std::string, std::string>{
            {std::string("f\0", 2), "v\r\n"}, {"", "empty"}, {"plain", ""}});

  const auto zs = get<sorted_set<std::string>>(port, z);
  REQUIRE(zs);
  std::vector<std::string> members;
  std::vector<double> scores;
  for (const auto& e : *zs) {
    members.push_back(e.member);
    scores.push_back(e.score);
  }
  CHECK(members == std::vector<std::string>{"bottom", "tenth", "c", "a", "b", "big", "top"});
  const std::vector<double> expected{-inf, 0.1, 0.5, 1, 1, 1e300, inf};
  REQUIRE(scores.size() == expected.size());
  for (std::size_t i = 0; i < scores.size(); ++i)
    CHECK(same_bits(scores[i], expected[i]));

  CHECK_THROWS_AS(get<std::deque<unsigned long long>>(port, n), redis_tasks::type_error);  // -2
  CHECK(get<std::vector<std::string>>(port, n) ==
        std::vector<std::string>{"1", "-2", "18446744073709551615", "0"});
  CHECK(get<std::set<long long>>(port, sn) ==
        std::set<long long>{5, 10, std::numeric_limits<long long>::min()});
  const auto hd = get<std::map<std::string, double>>(port, hn);
  REQUIRE(hd);
  CHECK(hd->at("a") == 1.5);
  CHECK(hd->at("b") == -inf);
  CHECK(same_bits(hd->at("c"), 0.1));
  CHECK(same_bits(hd->at("d"), 5e-324));
}

TEST_CASE("interop: strings and numbers written by redis-cli, read by the library") {
  const int port = fixture("plain").port;
  const std::string k = interop_key("cli-str");
  const auto set_by_cli = [&](const std::string& text) {
    REQUIRE(redis_cli(port, {"SET", k, text}) == "OK\n");
  };
  set_by_cli("18446744073709551615");
  CHECK(get<unsigned long long>(port, k) == std::numeric_limits<unsigned long long>::max());
  set_by_cli("-9223372036854775808");
  CHECK(get<long long>(port, k) == std::numeric_limits<long long>::min());
  set_by_cli("0.1");
  CHECK(same_bits(*get<double>(port, k), 0.1));
  set_by_cli("0.10000000000000001");  // %.17g, as older Redis prints 0.1
  CHECK(same_bits(*get<double>(port, k), 0.1));
  set_by_cli("+inf");
  CHECK(get<double>(port, k) == inf);
  set_by_cli("-inf");
  CHECK(get<double>(port, k) == -inf);
  set_by_cli("1");
  CHECK(get<bool>(port, k) == true);
  set_by_cli("{\"a\":[1,2,{\"b\":null}],\"s\":\"caf\xc3\xa9\"}");
  CHECK(get<nlohmann::json>(port, k) ==
        nlohmann::json{{"a", {1, 2, {{"b", nullptr}}}}, {"s", "caf\xc3\xa9"}});

  // Redis's own arithmetic, read back exactly.
  REQUIRE(redis_cli(port, {"SET", k, "10"}) == "OK\n");
  redis_cli(port, {"INCRBY", k, "-15"});
  CHECK(get<int>(port, k) == -5);
  redis_cli(port, {"INCRBYFLOAT", k, "5.1"});
  CHECK(get<double>(port, k) == 0.1);

  // Every byte, through redis-cli -x (the last argument read from stdin).
  REQUIRE(redis_cli(port, {"-x", "SET", k}, all_bytes()) == "OK\n");
  CHECK(get<std::string>(port, k) == all_bytes());
}

TEST_CASE("interop: RedisGet<value> reads what redis-cli wrote, by its type") {
  const int port = fixture("plain").port;
  using redis_tasks::value;
  const std::string s = interop_key("v-s"), l = interop_key("v-l"), st = interop_key("v-st"),
                    h = interop_key("v-h"), z = interop_key("v-z");
  cli_script(port, "SET " + s + " \"a\\x00\"\nRPUSH " + l + " b a\nSADD " + st + " q\nHSET " + h +
                       " f v\nZADD " + z + " 2 y 1 x\n");
  CHECK(get<value>(port, s) == value{std::string("a\0", 2)});
  CHECK(get<value>(port, l) == value{std::vector<std::string>{"b", "a"}});
  CHECK(get<value>(port, st) == value{std::set<std::string>{"q"}});
  CHECK(get<value>(port, h) == value{std::map<std::string, std::string>{{"f", "v"}}});
  CHECK(get<value>(port, z) == value{sorted_set<std::string>{{"x", 1}, {"y", 2}}});
}

TEST_CASE("interop: a redis-cli key of another type is a type_error for the library") {
  const int port = fixture("plain").port;
  const std::string l = interop_key("cli-wrong");
  redis_cli(port, {"LPUSH", l, "x"});
  CHECK_THROWS_WITH(get<std::string>(port, l), Contains(l) && Contains("list"));
  CHECK_THROWS_AS((get<std::map<std::string, std::string>>(port, l)), redis_tasks::type_error);
  const std::string s = interop_key("cli-text");
  redis_cli(port, {"SET", s, "abc"});
  CHECK_THROWS_WITH(get<int>(port, s), Contains(s));
}
