// The redis-cli line splitter, checked against the rules of redis-cli's sdssplitargs, and
// the pure command helpers of RedisExecute: labels, refused commands, block times.
#include <array>
#include <chrono>
#include <deque>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#if __has_include(<ranges>)
#include <ranges>
#endif

#include <redis_tasks/command.hpp>
#include <redis_tasks/tasks.hpp>
#include "catch.hpp"

using redis_tasks::split_command_line;
using args = std::vector<std::string>;

TEST_CASE("plain words split on spaces, tabs and line breaks") {
  CHECK(split_command_line("SET key value") == args{"SET", "key", "value"});
  CHECK(split_command_line("  SET\tkey \r\n value  ") == args{"SET", "key", "value"});
  CHECK(split_command_line("").empty());
  CHECK(split_command_line(" \t\r\n").empty());
}

TEST_CASE("double quotes keep spaces and understand redis-cli escapes") {
  CHECK(split_command_line(R"(SET k "hello world")") == args{"SET", "k", "hello world"});
  CHECK(split_command_line(R"("a\nb\rc\td\be\af")") == args{std::string("a\nb\rc\td\be\af")});
  CHECK(split_command_line(R"("q\"uote" "back\\slash")") == args{"q\"uote", "back\\slash"});
  CHECK(split_command_line(R"("\x41\x62\x00z")") == args{std::string("Ab\0z", 4)});
  CHECK(split_command_line(R"("\xff")") == args{std::string(1, '\xff')});
  // Any other escaped character stands for itself, and a bad \x escape loses its backslash.
  CHECK(split_command_line(R"("\q")") == args{"q"});
  CHECK(split_command_line(R"("\xzz")") == args{"xzz"});
  CHECK(split_command_line(R"("" x)") == args{"", "x"});
}

TEST_CASE("single quotes take everything literally except \\'") {
  CHECK(split_command_line(R"('a\nb')") == args{"a\\nb"});
  CHECK(split_command_line(R"('it\'s')") == args{"it's"});
  CHECK(split_command_line(R"('' '')") == args{"", ""});
}

TEST_CASE("a quoted part may follow text in the same word") {
  CHECK(split_command_line(R"(foo"bar baz")") == args{"foobar baz"});
  CHECK(split_command_line(R"(foo'bar' x)") == args{"foobar", "x"});
  CHECK(split_command_line(R"(a"" b)") == args{"a", "b"});
}

TEST_CASE("vertical tab and form feed separate only between words") {
  CHECK(split_command_line("a\vb") == args{"a\vb"});
  CHECK(split_command_line("\va b") == args{"a", "b"});
  CHECK(split_command_line("\"x\"\vy") == args{"x", "y"});
}

TEST_CASE("unbalanced or misplaced quotes are config errors that say where") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_AS(split_command_line(R"(SET k "abc)"), redis_tasks::config_error);
  CHECK_THROWS_WITH(split_command_line(R"(SET k "abc)"),
                    Contains("unbalanced double quote") && Contains("column 7"));
  CHECK_THROWS_WITH(split_command_line("SET k 'abc"), Contains("unbalanced single quote"));
  CHECK_THROWS_WITH(
      split_command_line(R"(SET "a"b)"),
      Contains("closing double quote not followed by a space") && Contains("column 7"));
  CHECK_THROWS_WITH(split_command_line("SET 'a'b"), Contains("closing single quote"));
  CHECK_THROWS_AS(split_command_line(R"("abc\)"), redis_tasks::config_error);
  CHECK_THROWS_AS(split_command_line(R"('a\\')"), redis_tasks::config_error);
}

TEST_CASE("split errors name the command but never echo its arguments") {
  try {
    split_command_line(R"(AUTH "s3cret-password)");
    FAIL("expected a config_error");
  } catch (const redis_tasks::config_error& e) {
    const std::string what = e.what();
    CHECK(what.find("AUTH") != std::string::npos);
    CHECK(what.find("s3cret") == std::string::npos);
  }
}

TEST_CASE("a NUL byte cannot be in a command line") {
  CHECK_THROWS_AS(split_command_line(std::string("SET k a\0b", 9)), redis_tasks::config_error);
}

TEST_CASE("command from a line, from a vector, or from any range of strings") {
  redis_tasks::command line("incrby counter 5");
  CHECK(line.args() == args{"incrby", "counter", "5"});
  CHECK(line.name() == "INCRBY");

  const std::string binary("a b\r\n\0c", 7);
  redis_tasks::command vec{std::vector<std::string>{"SET", "k k", binary}};
  CHECK(vec.args() == args{"SET", "k k", binary});

  std::vector<std::string_view> views{"GET", "x y"};
  redis_tasks::command from_views{views};
  CHECK(from_views.args() == args{"GET", "x y"});

  const char* raw[] = {"PING"};
  CHECK(redis_tasks::command{raw}.args() == args{"PING"});
  CHECK(redis_tasks::command().empty());
}

TEST_CASE("escapes in double quotes, as sdssplitargs reads them") {
  CHECK(split_command_line(R"("\xAb\xaB\x0a")") == args{std::string("\xab\xab\n")});
  CHECK(split_command_line(R"("\x4")") == args{"x4"});  // one hex digit is no \x escape
  CHECK(split_command_line(R"("\x" y)") == args{"x", "y"});
  CHECK(split_command_line(R"("\\x41")") == args{"\\x41"});  // an escaped backslash ends the escape
  CHECK(split_command_line(R"("a\ b" "\'")") == args{"a b", "'"});
  CHECK(split_command_line(R"(a\"b")") == args{"a\\b"});  // outside quotes, \ is a character
  CHECK(split_command_line(R"(x\x41 'y\x41')") == args{"x\\x41", "y\\x41"});
  CHECK(split_command_line(R"('a\\'b')") == args{"a\\'b"});  // only \' is an escape in '...'
  CHECK(split_command_line("\"\xc3\xa9\" \xff") == args{"\xc3\xa9", "\xff"});
}

TEST_CASE("split errors give the column of the quote at fault") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(split_command_line(R"(GET "a" b")"), Contains("column 10 of 10"));
  CHECK_THROWS_WITH(split_command_line(R"(GET 'a''b')"), Contains("column 7 of 10"));
  CHECK_THROWS_WITH(split_command_line(R"(GET "abc\")"), Contains("column 5 of 10"));
  CHECK_THROWS_WITH(split_command_line(R"(GET x"y"z)"), Contains("column 8 of 9"));
  CHECK_THROWS_WITH(split_command_line(R"(   "unclosed)"), Contains("column 4"));
  // The hint says how to send such an argument on purpose.
  CHECK_THROWS_WITH(split_command_line(R"(SET k "a)"), Contains("vector"));
}

TEST_CASE("a command is built from any range of string-like values, as it is") {
  const std::list<std::string> l{"SET", "k k", ""};
  CHECK(redis_tasks::command{l}.args() == args{"SET", "k k", ""});
  const std::deque<const char*> d{"GET", "a\"b"};
  CHECK(redis_tasks::command{d}.args() == args{"GET", "a\"b"});
  const std::array<std::string_view, 2> a{"ECHO", "'x'"};
  CHECK(redis_tasks::command{a}.args() == args{"ECHO", "'x'"});
  std::vector<std::string> moved{"PING"};
  CHECK(redis_tasks::command{std::move(moved)}.args() == args{"PING"});
#if defined(__cpp_lib_ranges) && __cpp_lib_ranges >= 201911L && \
    !(defined(__clang__) && __clang_major__ < 16)  // clang 14 cannot compile libstdc++ 12 views
  const args words{"RPUSH", "k", "", "x"};
  auto non_empty = words | std::views::filter([](const std::string& s) { return !s.empty(); });
  CHECK(redis_tasks::command{non_empty}.args() == args{"RPUSH", "k", "x"});
#endif
  // A string is a line, not a range of characters.
  CHECK(redis_tasks::command{std::string("GET k")}.args() == args{"GET", "k"});
  CHECK(redis_tasks::command{std::string_view("GET k")}.args() == args{"GET", "k"});
  CHECK(redis_tasks::command("GET k") == redis_tasks::command{args{"GET", "k"}});
  CHECK(redis_tasks::command("GET k") != redis_tasks::command{args{"GET", "K"}});
}

TEST_CASE("a brace list of any length is the command's arguments, each sent as it is") {
  using redis_tasks::command;
  const std::string key = "my key";
  const std::string_view value("a\0b", 3);
  // One element is a line (a command name never has spaces), as if the braces were not there.
  CHECK(command{"PING"}.args() == args{"PING"});
  CHECK(command{"INCR counter"}.args() == args{"INCR", "counter"});
  // Two elements used to be ambiguous (std::string's iterator-pair constructor).
  CHECK(command({"GET", key}).args() == args{"GET", "my key"});
  CHECK(command({"GET", "k"}).args() == args{"GET", "k"});
  CHECK(command({"SET", key, value}).args() == args{"SET", "my key", std::string("a\0b", 3)});
  CHECK(command({std::string("HSET"), std::string_view("h"), "f", key}).args() ==
        args{"HSET", "h", "f", "my key"});
  command assigned;
  assigned = {"GET", key};
  CHECK(assigned.args() == args{"GET", "my key"});
  // Wherever a command is taken: RedisExecute's config and overrides (and so run_many).
  redis_tasks::RedisExecute<>::config cfg;
  cfg.redis_cmd = {"GET", key};
  CHECK(cfg.redis_cmd->args() == args{"GET", "my key"});
  redis_tasks::RedisExecute<>::overrides o{{"SET", key, "v"}};
  CHECK(o.redis_cmd->args() == args{"SET", "my key", "v"});
  const std::vector<redis_tasks::RedisExecute<>::overrides> batch{{{"GET", key}}, {{"PING"}}};
  CHECK(batch[0].redis_cmd->args() == args{"GET", "my key"});
  CHECK(batch[1].redis_cmd->args() == args{"PING"});
  // A single string is still a redis-cli style line.
  CHECK(command("SET k \"a b\"").args() == args{"SET", "k", "a b"});
  cfg.redis_cmd = "GET k";
  CHECK(cfg.redis_cmd->args() == args{"GET", "k"});
}

TEST_CASE("command_label adds the subcommand of container commands, and nothing else") {
  using redis_tasks::command;
  using redis_tasks::detail::command_label;
  CHECK(command_label(command("config get maxmemory")) == "CONFIG GET");
  CHECK(command_label(command("CLIENT LIST")) == "CLIENT LIST");
  CHECK(command_label(command("XINFO STREAM s")) == "XINFO STREAM");
  CHECK(command_label(command("CLIENT NO-EVICT on")) == "CLIENT NO-EVICT");
  CHECK(command_label(command("GET secret-key")) == "GET");
  CHECK(command_label(command(R"(CONFIG "get x")")) == "CONFIG");
  CHECK(command_label(command("CONFIG")) == "CONFIG");
}

TEST_CASE("refused_command_hint names what to use instead, and other commands pass") {
  using redis_tasks::command;
  using redis_tasks::detail::refused_command_hint;
  for (const char* line : {"SELECT 1",
                           "select 1",
                           "AUTH p",
                           "HELLO 3",
                           "MULTI",
                           "EXEC",
                           "DISCARD",
                           "WATCH k",
                           "UNWATCH",
                           "SUBSCRIBE c",
                           "PSUBSCRIBE c",
                           "SSUBSCRIBE c",
                           "UNSUBSCRIBE",
                           "PUNSUBSCRIBE",
                           "SUNSUBSCRIBE",
                           "MONITOR",
                           "SYNC",
                           "PSYNC ? -1",
                           "QUIT",
                           "RESET",
                           "CLIENT REPLY OFF",
                           "client reply on",
                           "CLIENT TRACKING ON",
                           "CLIENT CACHING yes",
                           "CLIENT SETNAME x",
                           "CLIENT NO-EVICT on",
                           "CLIENT NO-TOUCH on",
                           "ASKING",
                           "READONLY",
                           "readwrite"}) {
    INFO(line);
    CHECK(refused_command_hint(command(line)) != nullptr);
  }
  for (const char* line : {"GET k", "PUBLISH c m", "CLIENT LIST", "CLIENT ID", "CLIENT GETNAME",
                           "SELECTED", "ECHO SELECT", "EVAL \"return 1\" 0", "SCRIPT FLUSH"}) {
    INFO(line);
    CHECK(refused_command_hint(command(line)) == nullptr);
  }
  CHECK(std::string(refused_command_hint(command("SELECT 1"))).find("`db`") != std::string::npos);
}

TEST_CASE("block_time reads a blocking command's own timeout as the server does") {
  using redis_tasks::command;
  using redis_tasks::detail::block_time;
  using ms = std::chrono::milliseconds;
  auto bt = [](const char* line) { return block_time(command(line)); };
  // Seconds, as a float, rounded up to whole milliseconds (Redis 7).
  CHECK(bt("BLPOP k 1") == ms(1000));
  CHECK(bt("blpop a b 2.5") == ms(2500));
  CHECK(bt("BRPOP k 0.0001") == ms(1));
  CHECK(bt("BRPOPLPUSH a b +1.5") == ms(1500));
  CHECK(bt("BLMOVE a b LEFT RIGHT 0x1p-1") == ms(500));
  CHECK(bt("BZPOPMIN z .25") == ms(250));
  CHECK(bt("BZPOPMAX z 1e-1") == ms(100));
  CHECK(bt("BLMPOP 2 1 k LEFT COUNT 3") == ms(2000));
  CHECK(bt("BZMPOP 3 1 z MIN") == ms(3000));
  // 0 is forever, and so is a wait too long to tell apart from it.
  CHECK(bt("BLPOP k 0") == ms(0));
  CHECK(bt("BLPOP k 1e12") == ms(0));
  // Timeouts the server rejects at once need no stretching.
  CHECK(bt("BLPOP k -1") == std::nullopt);
  CHECK(bt("BLPOP k soon") == std::nullopt);
  CHECK(bt("BLPOP k inf") == std::nullopt);
  CHECK(bt("BLPOP k nan") == std::nullopt);
  CHECK(bt("BLPOP k +-1") == std::nullopt);
  CHECK(bt("BLPOP") == std::nullopt);
  // Milliseconds, as an integer.
  CHECK(bt("WAIT 1 250") == ms(250));
  CHECK(bt("WAIT 1 0") == ms(0));
  CHECK(bt("WAIT 1 -1") == std::nullopt);
  CHECK(bt("WAIT 1 1.5") == std::nullopt);
  CHECK(bt("WAIT 1 9223372036854775807") == ms(0));
  CHECK(bt("WAITAOF 1 0 300") == ms(300));
  CHECK(bt("XREAD COUNT 2 BLOCK 100 STREAMS s 0") == ms(100));
  CHECK(bt("xread block 0 streams s $") == ms(0));
  CHECK(bt("XREAD COUNT 2 STREAMS block 0") == std::nullopt);  // keys named "block"
  CHECK(bt("XREAD STREAMS s 0") == std::nullopt);
  CHECK(bt("XREADGROUP GROUP block consumer STREAMS s >") == std::nullopt);
  CHECK(bt("XREADGROUP GROUP g block BLOCK 5 STREAMS s >") == ms(5));
  // Commands that do not block by design.
  CHECK(bt("GET k") == std::nullopt);
  CHECK(bt("LPOP k 1") == std::nullopt);
  CHECK(bt("XRANGE s - +") == std::nullopt);
}
