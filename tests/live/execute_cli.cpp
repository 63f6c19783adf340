// RedisExecute's command lines against redis-cli itself: every line of the table is run through
// the library and, against another key, typed into redis-cli (REPL mode, which splits lines with
// sdssplitargs); both must leave the same data behind and get the same reply, or both must refuse
// the line.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using redis_tasks::command;
using redis_tasks::RedisExecute;
using redis_tasks::reply;
using test_support::config_for;
using test_support::fixture;
using test_support::redis_cli;
using test_support::unique_key;

using test_support::thrown;

namespace {

/// One line of the table. `{k}` stands for the key; a line that must not split gives where
/// its bad quote is, counted from the end of the line (the key comes before it).
struct cli_case {
  std::string line;
  bool splits = true;
  std::size_t bad_quote_from_end = 0;
};

using test_support::with_key;

reply execute(int port, command cmd) {
  auto c = config_for<RedisExecute<>>(port);
  c.redis_cmd = std::move(cmd);
  return RedisExecute<>(c).run();
}

/// The key's type and whole content, read back with binary-safe commands.
std::pair<std::string, reply> snapshot(int port, const std::string& key) {
  const std::string type = execute(port, {"TYPE", key}).str();
  if (type == "string") return {type, execute(port, {"GET", key})};
  if (type == "list") return {type, execute(port, {"LRANGE", key, "0", "-1"})};
  if (type == "hash") return {type, execute(port, {"HGETALL", key})};
  if (type == "zset") return {type, execute(port, {"ZRANGE", key, "0", "-1", "WITHSCORES"})};
  if (type == "set") {
    // SMEMBERS order is an implementation detail; compare the members sorted.
    auto c = config_for<RedisExecute<std::set<std::string>>>(port);
    c.redis_cmd = command{std::vector<std::string>{"SMEMBERS", key}};
    std::vector<reply> members;
    for (auto& m : RedisExecute<std::set<std::string>>(c).run()) {
      members.push_back(reply::make_string(m));
    }
    return {type, reply::make_array(std::move(members))};
  }
  return {type, reply()};
}

/// What redis-cli prints for a reply when its output is not a terminal (raw mode).
std::string raw_output(const reply& r) {
  if (r.type() == redis_tasks::reply_type::integer) return std::to_string(r.integer()) + "\n";
  return r.str() + "\n";
}

const std::vector<cli_case> table = {
    // Plain words and the separators redis-cli knows.
    {R"(SET {k} "a b\x41")"},
    {R"(RPUSH {k} plain words here)"},
    {"RPUSH\t{k}\ta\tb"},
    {"RPUSH {k} a\rb c"},
    {"   RPUSH   {k}   lead   trail   "},
    {"\vRPUSH {k} a\vb \fc"},       // \v and \f skip before a word, but do not end one
    {"RPUSH {k} \"x\"\fy 'z'\vw"},  // ... and may follow a closing quote
    {R"(rpush {k} lower case command)"},
    {R"("RPUSH" {k} 'quoted' "command")"},
    {R"(RPUSH '{k}' "key in single quotes")"},
    {R"(RPUSH "{k}" 'key in double quotes')"},
    // Double quotes and their escapes.
    {R"(RPUSH {k} "hello world" 'single quoted' bare)"},
    {R"(RPUSH {k} "\n\r\t\b\a")"},
    {R"(RPUSH {k} "\\" "\"" "\\\"")"},
    {R"(RPUSH {k} "\x00\x01\xff\xFe\x7f\x80")"},
    {R"(RPUSH {k} "\x41\x4a\x4A" "\\x41")"},
    {R"(RPUSH {k} "\xzz" "\x4" "\xg1" "\x")"},  // bad \x escapes lose only the backslash
    {R"(RPUSH {k} "\q\w\e\0\ \'")"},            // any other escaped character is itself
    {R"(RPUSH {k} "\r\n" "\"quoted\"")"},
    {R"(RPUSH {k} "tab\there" 'tab\there')"},
    {R"(RPUSH {k} "a\\" b)"},
    {R"(RPUSH {k} "\xc3\xa9" caf\xc3\xa9 "é ü 日本")"},  // \x means nothing outside quotes
    {R"(RPUSH {k} "\x41B\x43" D\x45)"},
    // Single quotes: only \' is an escape.
    {R"(RPUSH {k} 'x\'y' "" "\t")"},
    {R"(RPUSH {k} 'a\nb' 'a\\b' 'x"y')"},
    {R"(RPUSH {k} 'it\\'s')"},
    {R"(RPUSH {k} "\"" '\'' "'" '"')"},
    {R"(RPUSH {k} "it's" 'say "hi"')"},
    // Empty arguments, and quotes that start in the middle of a word.
    {R"(RPUSH {k} '' '' "")"},
    {R"(RPUSH {k} "ends with space " ' ' "  ")"},
    {R"(RPUSH {k} foo"bar baz" qux)"},
    {R"(RPUSH {k} foo'bar baz')"},
    {R"(RPUSH {k} a"" b'' c)"},
    {R"(RPUSH {k} a"b" c)"},
    {R"(RPUSH {k} a\"b")"},
    {R"(RPUSH {k} "#" ; & | $HOME `x` * ~)"},
    // Other commands and types.
    {R"(SET {k} "")"},
    {R"(SET {k} "a b" EX 1000)"},
    {R"(MSET {k} "multi\nline")"},
    {R"(APPEND {k} "\x41\x42\x00")"},
    {R"(SETRANGE {k} 2 "\x00\x00abc")"},
    {R"(HSET {k} "field one" "value one" f2 'v 2')"},
    {R"(SADD {k} a "a" 'a' b "b c")"},
    {R"(ZADD {k} 1 "m 1" 2.5 'm\'2')"},
    // Lines that do not split: unbalanced quotes, and closing quotes glued to more text.
    {R"(RPUSH {k} "abc)", false, 4},
    {R"(RPUSH {k} 'abc)", false, 4},
    {R"(RPUSH {k} "abc\")", false, 6},
    {R"(RPUSH {k} 'abc\')", false, 6},
    {R"(RPUSH {k} "abc\)", false, 5},
    {R"(RPUSH {k} "a"b)", false, 2},
    {R"(RPUSH {k} 'a'b)", false, 2},
    {R"(RPUSH {k} "x""y")", false, 4},
    {R"(RPUSH {k} ok "a" b")", false, 1},
    {R"(RPUSH {k} x')", false, 1},
    {R"(RPUSH {k} a""b)", false, 2},
    {R"(RPUSH {k} "a"'b')", false, 4},
};

}  // namespace

TEST_CASE("command lines split exactly as redis-cli splits them") {
  const int port = fixture("plain").port;
  REQUIRE(table.size() >= 40);
  int row = 0;
  for (const auto& c : table) {
    const std::string lib_key = unique_key("cli" + std::to_string(row) + "-lib");
    const std::string cli_key = unique_key("cli" + std::to_string(row) + "-cli");
    const std::string lib_line = with_key(c.line, lib_key);
    const std::string cli_line = with_key(c.line, cli_key);
    ++row;
    INFO("row " << row << ": " << c.line);
    const std::string cli_out = redis_cli(port, {}, cli_line + "\n");

    if (c.splits) {
      reply lib_reply;
      REQUIRE_NOTHROW(lib_reply = execute(port, command(lib_line)));
      CHECK(cli_out == raw_output(lib_reply));
      const auto lib = snapshot(port, lib_key);
      const auto cli = snapshot(port, cli_key);
      CHECK(lib.first != "none");  // the line did something, so equal effects mean something
      CHECK(lib.first == cli.first);
      CHECK(lib.second == cli.second);
      CHECK(lib.second.to_json() == cli.second.to_json());
    } else {
      const std::string column =
          "column " + std::to_string(lib_line.size() - c.bad_quote_from_end + 1);
      CHECK_THAT(thrown<redis_tasks::config_error>([&] { (void)command(lib_line); }),
                 Catch::Matchers::Contains(column) && Catch::Matchers::Contains("quote"));
      CHECK(cli_out == "Invalid argument(s)\n");
      CHECK(execute(port, {"EXISTS", cli_key}).integer() == 0);
    }
  }
}

TEST_CASE("a refused line sends nothing: the task and its connection work afterwards") {
  const int port = fixture("plain").port;
  const std::string key = unique_key("after-bad-line");
  auto c = config_for<RedisExecute<long long>>(port);
  c.redis_cmd = command{std::vector<std::string>{"INCR", key}};
  RedisExecute<long long> incr(c);
  CHECK(incr.run() == 1);
  CHECK_THROWS_AS(incr.run({.redis_cmd = R"(INCR ")" + key}), redis_tasks::config_error);
  CHECK(incr.run() == 2);
}

TEST_CASE("the same line typed into redis-cli and given to RedisExecute gets the same reply") {
  // Reading commands too: what redis-cli prints in raw mode is what the library got.
  const int port = fixture("plain").port;
  const std::string key = unique_key("cli-read");
  execute(port, {"RPUSH", key, "a b", "", "c\"d", std::string("\x01\xff", 2)});
  const std::vector<std::string> lines = {
      "LLEN " + key,
      "LINDEX " + key + " 0",
      "LINDEX '" + key + "' 2",
      R"(ECHO "tab\there")",
      R"(ECHO 'single \'quoted\'')",
      R"(ECHO "\x41\x42")",
      "LPOS " + key + R"( "a b")",
      "LPOS " + key + R"( "c\"d")",
      "LPOS " + key + R"( "\x01\xff")",
  };
  for (const auto& line : lines) {
    INFO(line);
    CHECK(redis_cli(port, {}, line + "\n") == raw_output(execute(port, command(line))));
  }
}
