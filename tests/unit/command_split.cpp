// The redis-cli line splitter, checked against the rules of redis-cli's sdssplitargs.
#include <string>
#include <vector>

#include "catch.hpp"
#include <redis_tasks/command.hpp>

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
  CHECK_THROWS_WITH(split_command_line(R"(SET "a"b)"),
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
