// run_many: a batch of overrides in one pipelined round trip, results in order, errors per item.
#include <chrono>
#include <string>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::fixture;

TEST_CASE("RedisSet::run_many stores every item, in order, with its own options") {
  const int port = fixture("plain").port;
  const std::string base = test_support::unique_key("batch-set");
  RedisSet<std::string> set(test_support::config_for<RedisSet<std::string>>(port));
  std::vector<RedisSet<std::string>::overrides> items;
  for (int i = 0; i < 1000; ++i) {
    items.push_back(
        {.redis_key = base + ":" + std::to_string(i), .redis_val = "v" + std::to_string(i)});
  }
  items[10].px = 60000ms;
  items[20].nx = true;  // absent until now: stored
  const auto results = set.run_many(items);
  REQUIRE(results.size() == items.size());
  for (const auto& r : results)
    CHECK(r.value());

  // nx on existing keys is false per item; a missing value fails that item alone, before I/O.
  std::vector<RedisSet<std::string>::overrides> again{
      {.redis_key = base + ":0", .redis_val = "new", .nx = true},
      {.redis_key = base + ":1"},
      {.redis_key = base + ":2", .redis_val = "replaced"},
      {.redis_key = base + ":3", .redis_val = "x", .ex = -1s}};
  const auto second = set.run_many(again);
  CHECK_FALSE(second[0].value());
  CHECK_FALSE(second[1].ok());
  CHECK_THROWS_AS(second[1].value(), redis_tasks::config_error);
  CHECK_THAT(second[1].error_message(), Contains("redis_val is missing"));
  CHECK(second[2].value());
  CHECK_FALSE(second[3].ok());

  RedisGet<std::string> get(test_support::config_for<RedisGet<std::string>>(port));
  CHECK(get.run({.redis_key = base + ":0"}) == "v0");
  CHECK(get.run({.redis_key = base + ":2"}) == "replaced");
  CHECK(get.run({.redis_key = base + ":999"}) == "v999");
  auto ttl = test_support::config_for<RedisExecute<long long>>(port);
  ttl.redis_cmd = redis_tasks::command{std::vector<std::string>{"PTTL", base + ":10"}};
  CHECK(RedisExecute<long long>(ttl).run() > 50000);
}

TEST_CASE("run_many with collections and JSON values") {
  const int port = fixture("plain").port;
  const std::string base = test_support::unique_key("batch-coll");
  RedisSet<std::vector<int>> set(test_support::config_for<RedisSet<std::vector<int>>>(port));
  const auto results =
      set.run_many({{.redis_key = base + ":a", .redis_val = std::vector<int>{1, 2}},
                    {.redis_key = base + ":b", .redis_val = std::vector<int>{}},
                    {.redis_key = base + ":a", .redis_val = std::vector<int>{3}, .nx = true}});
  CHECK(results[0].value());
  CHECK(results[1].value());
  CHECK_FALSE(results[2].value());
  RedisGet<std::vector<int>> get(test_support::config_for<RedisGet<std::vector<int>>>(port));
  const auto read = get.run_many({{.redis_key = base + ":a"}, {.redis_key = base + ":b"}});
  CHECK(read[0].value() == std::vector<int>{1, 2});
  CHECK(read[1].value() == std::nullopt);

  RedisSet<nlohmann::json> set_json(test_support::config_for<RedisSet<nlohmann::json>>(port));
  CHECK(set_json.run_many({{.redis_key = base + ":j", .redis_val = nlohmann::json{{"k", 1}}}})[0]
            .value());
  RedisGet<nlohmann::json> get_json(test_support::config_for<RedisGet<nlohmann::json>>(port));
  CHECK(get_json.run_many({{.redis_key = base + ":j"}})[0].value() == nlohmann::json{{"k", 1}});
}

TEST_CASE("RedisGet::run_many: values, missing keys and wrong types, each in its place") {
  const int port = fixture("plain").port;
  const std::string base = test_support::unique_key("batch-get");
  test_support::put<std::string>(port, base + ":s", "text");
  test_support::put<std::vector<std::string>>(port, base + ":l", {"x"});
  RedisGet<std::string> get(test_support::config_for<RedisGet<std::string>>(port));
  const auto results = get.run_many({{.redis_key = base + ":s"},
                                     {.redis_key = base + ":missing"},
                                     {.redis_key = base + ":l"},
                                     {},
                                     {.redis_key = base + ":s"}});
  CHECK(results[0].value() == "text");
  CHECK(results[1].value() == std::nullopt);
  CHECK_THROWS_AS(results[2].value(), redis_tasks::type_error);
  CHECK_THAT(results[2].error_message(), Contains("holds a list"));
  CHECK_THROWS_AS(results[3].value(), redis_tasks::config_error);
  CHECK(results[4].value() == "text");

  RedisGet<redis_tasks::value> any(test_support::config_for<RedisGet<redis_tasks::value>>(port));
  const auto mixed = any.run_many({{.redis_key = base + ":s"}, {.redis_key = base + ":l"}});
  CHECK(std::get<std::string>(*mixed[0].value()) == "text");
  CHECK(std::get<std::vector<std::string>>(*mixed[1].value()) == std::vector<std::string>{"x"});
}

TEST_CASE("RedisExecute::run_many: replies in order, errors per item, connection reused") {
  const int port = fixture("plain").port;
  const std::string key = test_support::unique_key("batch-exec");
  RedisExecute<long long> exec(test_support::config_for<RedisExecute<long long>>(port));
  std::vector<RedisExecute<long long>::overrides> items;
  for (int i = 0; i < 100; ++i)
    items.push_back({.redis_cmd = "INCR " + key});
  items.push_back({.redis_cmd = "NOSUCHCOMMAND"});
  items.push_back({.redis_cmd = "SELECT 1"});
  items.push_back({.redis_cmd = "GET " + key});
  items.push_back({.redis_cmd = "PING"});  // PONG is not a long long
  const auto results = exec.run_many(items);
  for (int i = 0; i < 100; ++i)
    CHECK(results[static_cast<std::size_t>(i)].value() == i + 1);
  CHECK_THROWS_AS(results[100].value(), redis_tasks::reply_error);
  CHECK_THROWS_AS(results[101].value(), redis_tasks::config_error);
  CHECK(results[102].value() == 100);
  CHECK_THROWS_AS(results[103].value(), redis_tasks::type_error);
  CHECK(exec.run({.redis_cmd = "INCR " + key}) == 101);
}

TEST_CASE("a batch against a dead server fails every item with connection_error") {
  auto c = test_support::config_for<RedisExecute<>>(1);
  RedisExecute<> exec(c);
  const auto results = exec.run_many({{.redis_cmd = "PING"}, {.redis_cmd = "PING"}});
  REQUIRE(results.size() == 2);
  for (const auto& r : results)
    CHECK_THROWS_AS(r.value(), redis_tasks::connection_error);
}
