// RedisExecute against a real server: argument vectors, every RESP2 reply printed as redis-cli
// prints it and converted to JSON (binary data included), typed results, refused commands,
// blocking commands and run() precedence.
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <initializer_list>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>
#if __has_include(<ranges>)
#include <ranges>
#endif

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;
using redis_tasks::command;
using redis_tasks::RedisExecute;
using redis_tasks::reply;
using redis_tasks::reply_type;
using test_support::config_for;
using test_support::fixture;
using test_support::redis_cli;
using test_support::unique_key;
using test_support::wait_until;
using args = std::vector<std::string>;

using test_support::thrown;

namespace {

/// Runs `cmd` with a fresh RedisExecute<T> (tasks with the same settings share one pool).
template <class T = reply>
T exec_as(int port, command cmd) {
  auto c = config_for<RedisExecute<T>>(port);
  c.redis_cmd = std::move(cmd);
  return RedisExecute<T>(c).run();
}

/// Runs an argument vector; a braced list such as {"PING"} means arguments, not a line.
template <class T = reply>
T exec_as(int port, std::initializer_list<std::string> a) {
  return exec_as<T>(port, command{args(a)});
}

template <class T = reply>
T exec_as(int port, const args& a) {
  return exec_as<T>(port, command{a});
}

reply exec(int port, std::initializer_list<std::string> a) {
  return exec_as<reply>(port, a);
}
reply exec(int port, const args& a) {
  return exec_as<reply>(port, a);
}

std::string base64_decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) break;  // '=' padding ends the data
    bits = (bits << 6) | static_cast<unsigned>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return out;
}

/// Undoes the documented JSON rule for text: a JSON string, or {"$binary": base64}.
std::string text_from_json(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  REQUIRE(j.is_object());
  REQUIRE(j.size() == 1);
  return base64_decode(j.at("$binary").get<std::string>());
}

/// The code() of the reply_error that `f` throws, or "" when it throws none.
template <class F>
std::string reply_code(F&& f) {
  try {
    f();
  } catch (const redis_tasks::reply_error& e) {
    return e.code();
  }
  return "";
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(gen() & 0xFF);
  return s;
}

/// How redis-cli prints the reply to `a` in a terminal (`--no-raw`).
std::string cli_prints(int port, const args& a) {
  args cli = {"--no-raw"};
  cli.insert(cli.end(), a.begin(), a.end());
  return redis_cli(port, cli);
}

/// How the library prints the reply to `a`: `to_string()`, or for an error reply (which
/// RedisExecute throws) the error reply built from the server's message.
std::string lib_prints(int port, const args& a) {
  try {
    return exec(port, a).to_string() + "\n";
  } catch (const redis_tasks::reply_error& e) {
    return reply::make_error(e.server_message()).to_string() + "\n";
  }
}

template <class T = reply>
RedisExecute<T> task_with_timeout(int port, std::chrono::milliseconds socket_timeout,
                                  std::size_t pool_size = 8, const std::string& client_name = "") {
  auto c = config_for<RedisExecute<T>>(port);
  c.redis_connection_params.socket_timeout = socket_timeout;
  c.redis_connection_params.pool_size = pool_size;
  c.redis_connection_params.client_name = client_name;
  return RedisExecute<T>(c);
}

/// Waits until one client named `name` waits in a blocking command on the server, and returns
/// its id.
std::string blocked_client(int port, const std::string& name) {
  wait_until([&] { return test_support::blocked_client_ids(port, name).size() == 1; }, 10s,
             "a blocking command of client " + name + " to wait on the server");
  return test_support::blocked_client_ids(port, name).at(0);
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

using test_support::with_key;

}  // namespace

// ---- argument vectors ------------------------------------------------------------------------

TEST_CASE("argument vectors go out as they are: binary-safe, 1 MiB, no splitting") {
  const int port = fixture("plain").port;
  const std::string key = unique_key(std::string("vec key\0with nul", 16));
  std::string big = random_bytes(1 << 20, 7);
  big += std::string("\0\r\n*1\r\n$4\r\nPING\r\n", 18);  // protocol bytes are data too
  CHECK(exec(port, {"SET", key, big}) == reply::make_status("OK"));
  CHECK(exec_as<std::string>(port, {"GET", key}) == big);
  CHECK(exec_as<long long>(port, {"STRLEN", key}) == static_cast<long long>(big.size()));

  // redis-cli (another client) reads back the same bytes.
  const std::string plain_key = unique_key("vec-binary");
  const std::string binary("a\0b\r\nc\xff", 7);
  exec(port, {"SET", plain_key, binary});
  CHECK(redis_cli(port, {"--raw", "GET", plain_key}) == binary + "\n");

  // Quotes, spaces and backslashes are not interpreted.
  const std::string list = unique_key("vec-list");
  const args items = {"a b", "\"q\"", "'s'", "", "x\\ny", "\\x41", " "};
  args rpush = {"RPUSH", list};
  rpush.insert(rpush.end(), items.begin(), items.end());
  CHECK(exec_as<long long>(port, rpush) == static_cast<long long>(items.size()));
  CHECK(exec_as<args>(port, {"LRANGE", list, "0", "-1"}) == items);
}

TEST_CASE("a command is built from any range of string-like values") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("ranges");
  const std::string spaced = "one arg";

  const std::list<std::string> from_list{"RPUSH", key, spaced};
  const std::deque<const char*> from_deque{"RPUSH", key.c_str(), "two words"};
  const std::array<std::string_view, 3> from_array{"RPUSH", key, "x y"};
  const char* from_c_array[] = {"RPUSH", key.c_str(), "c array"};
  std::vector<std::string_view> from_views{"RPUSH", key, spaced};
  for (const command& c : {command{from_list}, command{from_deque}, command{from_array},
                           command{from_c_array}, command{from_views}}) {
    REQUIRE(c.args().size() == 3);
    CHECK(c.args()[1] == key);
    exec_as<long long>(port, c);
  }
  CHECK(exec_as<args>(port, {"LRANGE", key, "0", "-1"}) ==
        args{"one arg", "two words", "x y", "c array", "one arg"});

#if defined(__cpp_lib_ranges) && __cpp_lib_ranges >= 201911L && \
    !(defined(__clang__) && __clang_major__ < 16)  // clang 14 cannot compile libstdc++ 12 views
  // Views, including one that can only be iterated when not const.
  const args words{"RPUSH", key, "", "keep me", "", "and me"};
  auto non_empty = words | std::views::filter([](const std::string& s) { return !s.empty(); });
  CHECK(command{non_empty}.args() == args{"RPUSH", key, "keep me", "and me"});
  const args lower{"rpush", "x"};
  auto upper = lower | std::views::transform([](const std::string& s) { return s + "!"; });
  CHECK(command{upper}.args() == args{"rpush!", "x!"});
#endif

  CHECK(command{std::vector<std::string>{}}.empty());
  auto c = config_for<RedisExecute<>>(port);
  c.redis_cmd = command{std::vector<std::string>{}};
  CHECK_THAT(thrown<redis_tasks::config_error>([&] { (void)RedisExecute<>(c); }),
             Contains("empty"));
  CHECK_THAT(thrown<redis_tasks::config_error>([&] {
               RedisExecute<>(config_for<RedisExecute<>>(port)).run({.redis_cmd = "  "});
             }),
             Contains("empty"));
}

// ---- replies: printed as redis-cli prints them ------------------------------------------------

TEST_CASE("to_string() prints every RESP2 reply exactly as redis-cli --no-raw does") {
  const int port = fixture("plain").port;
  const std::string str = unique_key("print-str");
  const std::string list = unique_key("print-list");
  const std::string hash = unique_key("print-hash");
  const std::string zset = unique_key("print-zset");
  const std::string stream = unique_key("print-stream");
  const std::string counter = unique_key("print-counter");
  exec(port, {"SET", str, "a\"b\\\n\x01 \xc3\xa9 \x7f\xff"});
  exec(port, {"RPUSH", list, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"});
  exec(port, {"HSET", hash, "field", "value", "empty", ""});
  exec(port, {"ZADD", zset, "1.5", "m1", "-inf", "m2"});
  exec(port, {"XADD", stream, "1-1", "f", "v", "g", "w"});
  exec(port, {"XADD", stream, "2-1", "h", "x y"});
  exec(port, {"SET", counter, "-41"});

  const std::vector<args> commands = {
      {"GET", str},                                      // bulk string with escapes
      {"GET", unique_key("print-missing")},              // nil
      {"LRANGE", list, "0", "-1"},                       // 12 elements: two-digit indexes
      {"LRANGE", unique_key("print-empty"), "0", "-1"},  // empty array
      {"HGETALL", hash},
      {"ZRANGE", zset, "0", "-1", "WITHSCORES"},
      {"INCRBY", counter, "0"},              // integer (idempotent: both clients run it)
      {"SET", unique_key("print-ok"), "x"},  // status
      {"PING"},
      {"INCR", str},                 // error
      {"XRANGE", stream, "-", "+"},  // nested arrays
      {"COMMAND", "INFO", "get"},    // deep nesting, statuses, empty arrays
      {"EVAL", "return {1, {err='boom'}, {ok='fine'}, false, {}, 'x'}", "0"},  // nested error
      {"EVAL", "local t={} for i=1,11 do t[i]={i, 'v'} end return {t, {{t}}, 'end'}", "0"},
      {"EVAL", "return '\\255\\0a'", "0"},  // binary bulk string
      {"EVAL", "return redis.status_reply('FINE')", "0"},
      {"EVAL", "return -7", "0"},
  };
  for (const auto& a : commands) {
    INFO(a[0] << " " << (a.size() > 1 ? a[1] : ""));
    const std::string expected = cli_prints(port, a);
    REQUIRE_FALSE(expected.empty());
    CHECK(lib_prints(port, a) == expected);
  }
}

// ---- replies: JSON ----------------------------------------------------------------------------

TEST_CASE("to_json() maps every RESP2 reply, and binary bulk strings survive losslessly") {
  const int port = fixture("plain").port;
  std::string all_bytes;
  for (int b = 0; b < 256; ++b)
    all_bytes.push_back(static_cast<char>(b));
  const std::string bin = unique_key("json-binary");
  exec(port, {"SET", bin, all_bytes});

  const json j = exec_as<json>(port, {"GET", bin});
  REQUIRE(j.is_object());
  CHECK(j.size() == 1);
  CHECK(base64_decode(j.at("$binary").get<std::string>()) == all_bytes);
  // The JSON text itself is valid and decodes to the same bytes.
  std::string text;
  REQUIRE_NOTHROW(text = j.dump());
  CHECK(text_from_json(json::parse(text)) == all_bytes);

  // Mixed list: UTF-8 stays a string, the rest is base64; every element decodes back.
  const std::string list = unique_key("json-list");
  const args items = {"plain",    "h\xc3\xa9llo \xf0\x9f\x98\x80",
                      "",         std::string("nul\0inside", 10),
                      "\xc3(",    "\xed\xa0\x80",
                      "\xff\xfe", random_bytes(4096, 11)};
  args rpush = {"RPUSH", list};
  rpush.insert(rpush.end(), items.begin(), items.end());
  exec(port, rpush);
  const json arr = json::parse(exec_as<json>(port, {"LRANGE", list, "0", "-1"}).dump());
  REQUIRE(arr.is_array());
  REQUIRE(arr.size() == items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    INFO("element " << i);
    CHECK(text_from_json(arr[i]) == items[i]);
  }
  CHECK(arr[0] == "plain");
  CHECK(arr[1].is_string());
  CHECK(arr[3].is_string());  // NUL is valid UTF-8: a JSON string with \u0000
  CHECK(arr[4].is_object());  // broken sequence
  CHECK(arr[5].is_object());  // surrogate
  CHECK(arr[6].is_object());

  // Binary hash fields and values (RESP2: a flat array).
  const std::string hash = unique_key("json-hash");
  exec(port, {"HSET", hash, "\xff field", "\x80"});
  CHECK(exec_as<json>(port, {"HGETALL", hash}) ==
        json::array({json{{"$binary", "/yBmaWVsZA=="}}, json{{"$binary", "gA=="}}}));

  // The other reply types.
  CHECK(exec_as<json>(port, {"GET", unique_key("json-missing")}).is_null());
  CHECK(exec_as<json>(port, {"INCRBY", unique_key("json-int"), "-42"}) == -42);
  CHECK(exec_as<json>(port, {"PING"}) == "PONG");
  CHECK(exec_as<json>(port, {"LRANGE", unique_key("json-empty"), "0", "-1"}) == json::array());
  CHECK(exec_as<json>(port, {"EVAL", "return {1, {err='boom'}, {ok='fine'}, false, {{}}}", "0"}) ==
        json::array({1, json{{"error", "boom"}}, "fine", nullptr, json::array({json::array()})}));
  // A top-level error is still a reply_error, also for T = json.
  CHECK_THROWS_AS(exec_as<json>(port, {"NO-SUCH-COMMAND"}), redis_tasks::reply_error);
}

// ---- typed results ----------------------------------------------------------------------------

TEST_CASE("RedisExecute<long long>, <int> and <double>") {
  const int port = fixture("plain").port;
  const std::string n = unique_key("typed-n");
  CHECK(exec_as<long long>(port, command("INCR " + n)) == 1);
  CHECK(exec_as<long long>(port, command("INCRBY " + n + " 41")) == 42);
  CHECK(exec_as<long long>(port, command("GET " + n)) == 42);  // decimal text
  CHECK(exec_as<int>(port, command("GET " + n)) == 42);
  CHECK(exec_as<double>(port, command("INCRBYFLOAT " + n + " 0.5")) == 42.5);
  CHECK(exec_as<double>(port, command("STRLEN " + n)) == 4.0);
  const std::string z = unique_key("typed-z");
  exec(port, {"ZADD", z, "1.25", "a", "inf", "b"});
  CHECK(exec_as<double>(port, {"ZSCORE", z, "a"}) == 1.25);
  CHECK(exec_as<double>(port, {"ZSCORE", z, "b"}) == std::numeric_limits<double>::infinity());

  const std::string word = unique_key("typed-word");
  exec(port, {"SET", word, "not-a-number"});
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<long long>(port, {"GET", word});
             }),
             Contains("reply to GET") && Contains("bulk string of 12 bytes") &&
                 Contains("not an integer") && Contains("long long"));
  try {
    exec_as<long long>(port, {"GET", word});
  } catch (const redis_tasks::type_error& e) {
    CHECK(std::string(e.what()).find("not-a-number") == std::string::npos);  // no value content
  }
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<double>(port, {"GET", word});
             }),
             Contains("not a number"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<long long>(port, {"EVAL", "return {1}", "0"});
             }),
             Contains("reply to EVAL") && Contains("an array of 1 elements"));
  CHECK_THAT(
      thrown<redis_tasks::type_error>([&] {
        exec_as<long long>(port, {"ZRANGE", z, "0", "-1"});
      }),
      Contains("reply to ZRANGE") && Contains("an array of 2 elements") && Contains("long long"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<double>(port, {"GET", unique_key("typed-none")});
             }),
             Contains("nil") && Contains("std::optional"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<int>(port, {"INCRBY", unique_key("typed-big"), "5000000000"});
             }),
             Contains("outside the range"));
  CHECK_THAT(thrown<redis_tasks::type_error>(
                 [&] { exec_as<long long>(port, command("CONFIG GET maxmemory")); }),
             Contains("reply to CONFIG GET"));
}

TEST_CASE("RedisExecute<bool> and <std::string>") {
  const int port = fixture("plain").port;
  const std::string k = unique_key("typed-bool");
  CHECK(exec_as<bool>(port, {"SET", k, "1"}));              // OK
  CHECK_FALSE(exec_as<bool>(port, {"SET", k, "x", "NX"}));  // nil: not set
  CHECK(exec_as<bool>(port, {"EXISTS", k}));                // 1
  CHECK_FALSE(exec_as<bool>(port, {"EXISTS", unique_key("typed-nothing")}));
  CHECK(exec_as<bool>(port, {"GET", k}));  // text "1"
  exec(port, {"SET", k, "yes"});
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<bool>(port, {"GET", k});
             }),
             Contains("reply to GET") && Contains("bool"));
  CHECK_THROWS_AS(exec_as<bool>(port, {"PING"}), redis_tasks::type_error);
  CHECK_THROWS_AS(exec_as<bool>(port, {"LRANGE", k + "l", "0", "-1"}), redis_tasks::type_error);

  CHECK(exec_as<std::string>(port, {"GET", k}) == "yes");
  CHECK(exec_as<std::string>(port, {"PING"}) == "PONG");
  CHECK(exec_as<std::string>(port, {"TYPE", k}) == "string");
  CHECK(exec_as<std::string>(port, {"INCR", unique_key("typed-s")}) == "1");
  CHECK(exec_as<std::string>(port, {"ECHO", std::string("\0\xff", 2)}) == std::string("\0\xff", 2));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::string>(port, {"GET", unique_key("typed-none")});
             }),
             Contains("reply to GET was nil") && Contains("std::optional<std::string>"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::string>(port, {"LRANGE", k + "l", "0", "-1"});
             }),
             Contains("an array of 0 elements"));
}

TEST_CASE("RedisExecute<std::optional<T>>, <std::vector<T>> and <std::map<std::string, T>>") {
  const int port = fixture("plain").port;
  const std::string s = unique_key("typed-o");
  exec(port, {"SET", s, "v"});
  CHECK(exec_as<std::optional<std::string>>(port, {"GET", s}) == "v");
  CHECK(exec_as<std::optional<std::string>>(port, {"GET", s + "-none"}) == std::nullopt);
  CHECK(exec_as<std::optional<double>>(port, {"ZSCORE", s + "-z", "m"}) == std::nullopt);
  CHECK(exec_as<std::optional<args>>(port, {"LPOP", s + "-l", "2"}) == std::nullopt);

  const std::string l = unique_key("typed-l");
  exec(port, {"RPUSH", l, "a", "", "c"});
  CHECK(exec_as<args>(port, {"LRANGE", l, "0", "-1"}) == args{"a", "", "c"});
  CHECK(exec_as<args>(port, {"LRANGE", l + "-none", "0", "-1"}).empty());
  CHECK(exec_as<std::set<std::string>>(port, {"LRANGE", l, "0", "-1"}) ==
        std::set<std::string>{"", "a", "c"});
  CHECK(exec_as<std::vector<std::optional<std::string>>>(port, {"MGET", l + "-none", s}) ==
        std::vector<std::optional<std::string>>{std::nullopt, "v"});
  CHECK(exec_as<std::vector<long long>>(port, {"EVAL", "return {1, 2, '3'}", "0"}) ==
        std::vector<long long>{1, 2, 3});
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::vector<long long>>(port, {"LRANGE", l, "0", "-1"});
             }),
             Contains("reply to LRANGE (element 0)"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<args>(port, {"GET", s});
             }),
             Contains("reply to GET was a bulk string") && Contains("std::vector<std::string>"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<args>(port, {"LPOP", s + "-l", "2"});
             }),
             Contains("nil") && Contains("std::optional"));

  const std::string st = unique_key("typed-stream");
  exec(port, {"XADD", st, "1-1", "f", "v"});
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::vector<args>>(port, {"XRANGE", st, "-", "+"});
             }),
             Contains("reply to XRANGE (element 0) (element 1) was an array"));

  const std::string h = unique_key("typed-h");
  exec(port, {"HSET", h, "a", "1", "b", "-2"});
  CHECK(exec_as<std::map<std::string, std::string>>(port, {"HGETALL", h}) ==
        std::map<std::string, std::string>{{"a", "1"}, {"b", "-2"}});
  CHECK(exec_as<std::map<std::string, long long>>(port, {"HGETALL", h}) ==
        std::map<std::string, long long>{{"a", 1}, {"b", -2}});
  const std::string z = unique_key("typed-zm");
  exec(port, {"ZADD", z, "1.5", "x", "2", "y"});
  CHECK(exec_as<std::map<std::string, double>>(port, {"ZRANGE", z, "0", "-1", "WITHSCORES"}) ==
        std::map<std::string, double>{{"x", 1.5}, {"y", 2.0}});
  CHECK(exec_as<std::map<std::string, std::string>>(port, command("CONFIG GET maxmemory-policy"))
            .count("maxmemory-policy") == 1);
  exec(port, {"HSET", h, "c", "text"});
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::map<std::string, long long>>(port, {"HGETALL", h});
             }),
             Contains("reply to HGETALL (value 2)"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<std::map<std::string, std::string>>(port, {"LRANGE", l, "0", "-1"});
             }),
             Contains("an array of 3 elements") && Contains("std::map<std::string"));
  CHECK_THROWS_AS((exec_as<std::map<std::string, std::string>>(port, {"INCR", s + "-i"})),
                  redis_tasks::type_error);
}

TEST_CASE("RedisExecute<reply>, <nlohmann::json> and <redis_tasks::value>") {
  const int port = fixture("plain").port;
  const std::string l = unique_key("typed-any");
  exec(port, {"RPUSH", l, "a", "b"});
  CHECK(RedisExecute<>([&] {
          auto c = config_for<RedisExecute<>>(port);
          c.redis_cmd = "LRANGE " + l + " 0 -1";
          return c;
        }())
            .run() == reply::make_array({reply::make_string("a"), reply::make_string("b")}));
  CHECK(exec(port, {"PING"}) == reply::make_status("PONG"));
  CHECK(exec(port, {"LLEN", l}) == reply::make_integer(2));
  CHECK(exec(port, {"GET", l + "-none"}).is_nil());

  CHECK(exec_as<json>(port, {"LRANGE", l, "0", "-1"}) == json::array({"a", "b"}));

  using redis_tasks::value;
  CHECK(std::get<args>(exec_as<value>(port, {"LRANGE", l, "0", "-1"})) == args{"a", "b"});
  exec(port, {"SET", l + "-s", "text"});
  CHECK(std::get<std::string>(exec_as<value>(port, {"GET", l + "-s"})) == "text");
  CHECK(std::get<std::string>(exec_as<value>(port, {"INCR", l + "-n"})) == "1");
  CHECK(exec_as<std::optional<value>>(port, {"GET", l + "-none"}) == std::nullopt);
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<value>(port, {"GET", l + "-none"});
             }),
             Contains("nil") && Contains("redis_tasks::value"));
  CHECK_THAT(thrown<redis_tasks::type_error>([&] {
               exec_as<value>(port, {"EVAL", "return {{1}}", "0"});
             }),
             Contains("(element 0) was an array"));
}

TEST_CASE("a server error reply is a reply_error with the server's message and code()") {
  const int port = fixture("plain").port;
  const std::string s = unique_key("err-str");
  exec(port, {"SET", s, "abc"});
  try {
    exec_as<long long>(port, {"INCR", s});
    FAIL("expected reply_error");
  } catch (const redis_tasks::reply_error& e) {
    CHECK(e.code() == "ERR");
    CHECK(e.server_message() == "ERR value is not an integer or out of range");
    CHECK_THAT(e.what(), Contains("INCR") && Contains("127.0.0.1:" + std::to_string(port)) &&
                             Contains(e.server_message()));
  }
  // Every T, even those that could hold an error, throws for a top-level error reply.
  CHECK(reply_code([&] { exec(port, {"LPUSH", s, "x"}); }) == "WRONGTYPE");
  CHECK_THROWS_AS(exec_as<json>(port, {"LPUSH", s, "x"}), redis_tasks::reply_error);
  CHECK_THROWS_AS(exec_as<std::optional<std::string>>(port, {"LPUSH", s, "x"}),
                  redis_tasks::reply_error);
  CHECK_THAT(thrown<redis_tasks::reply_error>(
                 [&] { exec_as(port, command("CONFIG SET no-such-parameter 1")); }),
             Contains("CONFIG SET on 127.0.0.1"));
  // An error nested in an array is kept by reply and json, and thrown by the typed results.
  const args nested = {"EVAL", "return {'a', {err='NESTED inside'}}", "0"};
  CHECK(exec(port, nested).elements().at(1) == reply::make_error("NESTED inside"));
  CHECK_THAT(thrown<redis_tasks::reply_error>([&] { exec_as<args>(port, nested); }),
             Contains("reply to EVAL (element 1)") && Contains("NESTED inside"));
  CHECK(reply_code([&] { exec_as<args>(port, nested); }) == "NESTED");
}

// ---- commands that would corrupt a shared connection -----------------------------------------

TEST_CASE("commands that would change the shared connection are config errors with a hint") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("refused");
  const std::string client_name = "refused-" + std::to_string(::getpid());
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"SELECT 1", "`db`"},
      {"select 2", "`db`"},
      {"AUTH secret", "password_secret"},
      {"AUTH user secret", "password_secret"},
      {"HELLO 3", "connection settings"},
      {"HELLO", "connection settings"},
      {"MULTI", "EVAL"},
      {"EXEC", "EVAL"},
      {"DISCARD", "EVAL"},
      {"WATCH " + key, "EVAL"},
      {"UNWATCH", "EVAL"},
      {"SUBSCRIBE ch", "dedicated connection"},
      {"PSUBSCRIBE ch*", "dedicated connection"},
      {"SSUBSCRIBE ch", "dedicated connection"},
      {"UNSUBSCRIBE", "dedicated connection"},
      {"PUNSUBSCRIBE", "dedicated connection"},
      {"SUNSUBSCRIBE", "dedicated connection"},
      {"MONITOR", "redis-cli"},
      {"SYNC", "redis-cli"},
      {"PSYNC ? -1", "redis-cli"},
      {"QUIT", "closed by the library"},
      {"RESET", "closed by the library"},
      {"CLIENT REPLY OFF", "answers later commands"},
      {"client reply skip", "answers later commands"},
      {"CLIENT TRACKING on", "answers later commands"},
      {"CLIENT CACHING yes", "answers later commands"},
      {"CLIENT SETNAME " + client_name, "client_name"},
      {"CLIENT NO-EVICT on", "later run"},
      {"SCRIPT DEBUG sync", "Lua debugger"},
      {"READONLY", "handled by the library"},
      {"ASKING", "handled by the library"},
  };
  // A task on a port where nothing listens: a refusal must come before any network I/O.
  auto nowhere = config_for<RedisExecute<>>(1);
  nowhere.redis_connection_params.connect_timeout = 200ms;
  for (const auto& entry : refused) {
    const std::string& line = entry.first;  // not a structured binding: lambdas capture it
    const std::string& hint = entry.second;
    INFO(line);
    auto c = config_for<RedisExecute<>>(port);
    c.redis_cmd = line;
    const std::string name = command(line).name();
    CHECK_THAT(thrown<redis_tasks::config_error>([&] { (void)RedisExecute<>(c); }),
               Contains(name) && Contains(hint) && Contains("shared"));
    CHECK_THAT(thrown<redis_tasks::config_error>(
                   [&] { RedisExecute<>(nowhere).run({.redis_cmd = line}); }),
               Contains(hint));
    // As an argument vector, too.
    CHECK_THROWS_AS(RedisExecute<>(nowhere).run({.redis_cmd = command{command(line).args()}}),
                    redis_tasks::config_error);
  }
  // The same task keeps working on its (unchanged) connection: db 0, replies on.
  auto c = config_for<RedisExecute<long long>>(port);
  c.redis_connection_params.pool_size = 1;
  c.redis_connection_params.shared_pool = false;
  c.redis_cmd = command{args{"INCR", key}};
  RedisExecute<long long> task(c);
  CHECK(task.run() == 1);
  for (const auto& r : refused) {
    CHECK_THROWS_AS(task.run({.redis_cmd = r.first}), redis_tasks::config_error);
  }
  CHECK(task.run() == 2);
  CHECK(redis_cli(port, {"-n", "0", "GET", key}) == "2\n");
  CHECK(test_support::clients_named(port, client_name) == 0);
  // Look-alikes that do not change the connection run.
  CHECK(exec(port, {"PUBLISH", unique_key("ch"), "m"}) == reply::make_integer(0));
  CHECK(exec(port, {"CLIENT", "ID"}).type() == reply_type::integer);
  CHECK(exec(port, {"ECHO", "SELECT 1"}) == reply::make_string("SELECT 1"));
}

// ---- blocking commands ------------------------------------------------------------------------

TEST_CASE("blocking commands wait their own timeout, beyond socket_timeout, and return nil") {
  const int port = fixture("plain").port;
  const std::string k = unique_key("block");
  exec(port, {"XGROUP", "CREATE", k + ":g", "grp", "$", "MKSTREAM"});
  // Each waits 500 ms on the server; the socket timeout is 200 ms.
  const std::vector<std::string> lines = {
      "BLPOP {k} 0.5",
      "BRPOP {k} {k}:other 0.5",
      "BRPOPLPUSH {k} {k}:dst 0.5",
      "BLMOVE {k} {k}:dst LEFT RIGHT 0.5",
      "BZPOPMIN {k}:z 0.5",
      "BZPOPMAX {k}:z +0.5",
      "BLMPOP 0.5 1 {k} LEFT",
      "BZMPOP 0.5 1 {k}:z MIN COUNT 2",
      "XREAD COUNT 1 BLOCK 500 STREAMS {k}:s $",
      "XREADGROUP GROUP grp consumer BLOCK 500 STREAMS {k}:g >",
      "WAIT 1 500",
  };
  auto task = task_with_timeout(port, 200ms);
  for (const auto& line : lines) {
    const std::string cmd = with_key(line, k);
    INFO(cmd);
    const auto t0 = std::chrono::steady_clock::now();
    reply r;
    REQUIRE_NOTHROW(r = task.run({.redis_cmd = cmd}));
    // The server's 500 ms, not the 200 ms socket_timeout. (No upper bound: it would measure
    // the machine's load, and a command that never returned would hit the test's timeout.)
    CHECK(since(t0) >= 450ms);
    if (line.rfind("WAIT", 0) == 0) {
      CHECK(r == reply::make_integer(0));  // no replica acknowledged
    } else {
      CHECK(r.is_nil());
    }
  }
  // The typed result of a timed-out pop is std::nullopt.
  auto typed = task_with_timeout<std::optional<args>>(port, 200ms);
  CHECK(typed.run({.redis_cmd = "BLPOP " + k + " 0.3"}) == std::nullopt);
  // A socket timeout still applies to a command that does not block by design.
  CHECK_FALSE(redis_tasks::detail::block_time(command("GET x")).has_value());
}

TEST_CASE("data pushed while a blocking command waits is its reply") {
  const int port = fixture("plain").port;
  const std::string k = unique_key("block-push");
  const std::string name = unique_key("block-push-client");
  auto task = task_with_timeout<args>(port, 200ms, 8, name);
  auto got =
      std::async(std::launch::async, [&] { return task.run({.redis_cmd = "BLPOP " + k + " 5"}); });
  const std::string id = blocked_client(port, name);
  // Two socket timeouts pass (the point of the test); the BLPOP still waits, on the same
  // connection.
  std::this_thread::sleep_for(400ms);
  CHECK(test_support::blocked_client_ids(port, name) == std::vector<std::string>{id});
  exec(port, {"RPUSH", k, "late value"});
  CHECK(got.get() == args{k, "late value"});
}

TEST_CASE("a block time of 0 waits without limit, as in redis-cli") {
  const int port = fixture("plain").port;
  const std::string k = unique_key("block-forever");
  const std::string name = unique_key("block-forever-client");
  auto list_task = task_with_timeout<args>(port, 200ms, 8, name);
  const auto t0 = std::chrono::steady_clock::now();
  auto got = std::async(std::launch::async,
                        [&] { return list_task.run({.redis_cmd = "BRPOP " + k + " 0"}); });
  // Whatever fails, the data arrives, so that the test never waits forever for the command.
  bool pushed = false;
  test_support::at_scope_exit push_on_failure([&] {
    if (!pushed) exec(port, {"RPUSH", k, "finally"});
  });
  const std::string id = blocked_client(port, name);
  // Six socket timeouts pass (the point of the test); the BRPOP still waits, on the same
  // connection.
  std::this_thread::sleep_for(1200ms);
  CHECK(test_support::blocked_client_ids(port, name) == std::vector<std::string>{id});
  exec(port, {"RPUSH", k, "finally"});
  pushed = true;
  CHECK(got.get() == args{k, "finally"});
  CHECK(since(t0) >= 1200ms);

  // XREAD ... $ reads only entries added after it blocked: the entry is added only then.
  auto stream_task = task_with_timeout<json>(port, 200ms, 8, name);
  auto entries = std::async(std::launch::async, [&] {
    return stream_task.run({.redis_cmd = "XREAD BLOCK 0 STREAMS " + k + ":s $"});
  });
  bool added = false;
  test_support::at_scope_exit add_on_failure([&] {
    if (!added) exec(port, {"XADD", k + ":s", "*", "f", "v"});
  });
  const std::string stream_id = blocked_client(port, name);
  std::this_thread::sleep_for(700ms);  // three socket timeouts pass, as above
  CHECK(test_support::blocked_client_ids(port, name) == std::vector<std::string>{stream_id});
  exec(port, {"XADD", k + ":s", "5-1", "f", "v"});
  added = true;
  CHECK(entries.get() == json::parse(R"([[")" + k + R"(:s", [["5-1", ["f", "v"]]]]])"));
}

TEST_CASE("the stretched timeout is for that command only, and its expiry says so") {
  test_support::redis_process server;
  // One connection, so the command after the blocking one reuses its connection.
  auto task = task_with_timeout(server.port(), 200ms, 1);
  // Stretched to 20 000 + 200 ms for this call only; the list has an item, so it returns at
  // once.
  CHECK(redis_cli(server.port(), {"RPUSH", "k", "item"}) == "1\n");
  CHECK(task.run({.redis_cmd = "BLPOP k 20"}).to_json() == json::array({"k", "item"}));

  // While the server is paused it reads no client's commands, and answers them all when the
  // pause ends: a timeout_error before then is the point. A plain command times out after
  // socket_timeout, not after the stretched 20.2 s...
  const auto pause = 5s;
  CHECK(redis_cli(server.port(), {"CLIENT", "PAUSE", std::to_string(pause / 1ms), "ALL"}) ==
        "OK\n");
  const auto paused_at = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(task.run({.redis_cmd = "GET k"}), redis_tasks::timeout_error);
  // ... and a blocking one after its block time plus socket_timeout, with a message that says so.
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THAT(thrown<redis_tasks::timeout_error>([&] { task.run({.redis_cmd = "BLPOP k 0.3"}); }),
             Contains("BLPOP may block 300 ms") && Contains("socket_timeout 200 ms"));
  CHECK(since(t0) >= 450ms);
  CHECK(since(paused_at) < pause);  // both timed out while the server was paused
  // redis-cli's PING is answered when the pause is over; then the task works again.
  CHECK(redis_cli(server.port(), {"PING"}) == "PONG\n");
  CHECK(task.run({.redis_cmd = "PING"}) == reply::make_status("PONG"));
}

// ---- run() precedence ------------------------------------------------------------------------

TEST_CASE(
    "a run's redis_cmd wins over the config's, and none at all is a config_error before I/O") {
  const int port = fixture("plain").port;
  const std::string a = unique_key("prec-a");
  const std::string b = unique_key("prec-b");
  auto c = config_for<RedisExecute<long long>>(port);
  c.redis_cmd = "INCR " + a;
  RedisExecute<long long> task(c);
  CHECK(task.run() == 1);
  CHECK(task.run({.redis_cmd = "INCRBY " + b + " 10"}) == 10);
  CHECK(task() == 2);  // config again
  CHECK(task({.redis_cmd = command{args{"INCRBY", b, "5"}}}) == 15);
  CHECK(task.run({}) == 3);
  CHECK(task.settings().redis_cmd == command("INCR " + a));
  CHECK(exec_as<long long>(port, {"GET", a}) == 3);
  CHECK(exec_as<long long>(port, {"GET", b}) == 15);

  // Nothing to run, on a port where nothing listens: config_error, not connection_error.
  auto none = config_for<RedisExecute<>>(1);
  RedisExecute<> empty_task(none);
  CHECK_THAT(thrown<redis_tasks::config_error>([&] { empty_task.run(); }),
             Contains("redis_cmd is missing"));
  CHECK_THROWS_AS(empty_task.run({.redis_cmd = command()}), redis_tasks::config_error);
  // A refused command in the config is reported when the task is built.
  none.redis_cmd = "SELECT 3";
  CHECK_THROWS_AS(RedisExecute<>(none), redis_tasks::config_error);
  // A valid run command on the unreachable port does reach the network.
  CHECK_THROWS_AS(empty_task.run({.redis_cmd = "PING"}), redis_tasks::connection_error);
}

TEST_CASE("a run's redis_cmd replaces the config's SET, and a run without one uses the config's") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("override-set");
  auto c = config_for<RedisExecute<>>(port);
  c.redis_cmd = command{args{"SET", key, "from-config"}};
  RedisExecute<> task(c);

  // The run's command goes out, and only it: the key never holds the config's value.
  CHECK(task.run({.redis_cmd = command{args{"SET", key, "from-run"}}}) == reply::make_status("OK"));
  CHECK(redis_cli(port, {"GET", key}) == "from-run\n");
  CHECK(exec_as<std::string>(port, {"GET", key}) == "from-run");
  // The override did not change the task's settings.
  CHECK(task.settings().redis_cmd == command{args{"SET", key, "from-config"}});

  // Without an override the config's command runs.
  CHECK(task.run() == reply::make_status("OK"));
  CHECK(redis_cli(port, {"GET", key}) == "from-config\n");

  // And an override again, after a config run.
  CHECK(task.run({.redis_cmd = command{args{"SET", key, "from-run"}}}) == reply::make_status("OK"));
  CHECK(redis_cli(port, {"GET", key}) == "from-run\n");
  exec(port, {"DEL", key});
}
