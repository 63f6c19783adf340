// Numbers as stored text, and which Redis type each C++ type maps to.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"

namespace d = redis_tasks::detail;

template <class N>
std::string text(N v) {
  d::number_buffer buf;
  return std::string(d::format_number(v, buf));
}

TEST_CASE("integers are stored in decimal over their full range") {
  CHECK(text(0) == "0");
  CHECK(text(std::numeric_limits<long long>::min()) == "-9223372036854775808");
  CHECK(text(std::numeric_limits<unsigned long long>::max()) == "18446744073709551615");
  CHECK(d::parse_number<long long>("-9223372036854775808", "k") ==
        std::numeric_limits<long long>::min());
  CHECK(d::parse_number<unsigned long long>("18446744073709551615", "k") ==
        std::numeric_limits<unsigned long long>::max());
  CHECK(text(true) == "1");
  CHECK(text(false) == "0");
  CHECK(d::parse_number<bool>("1", "k"));
  CHECK_FALSE(d::parse_number<bool>("0", "k"));
}

TEST_CASE("doubles use the shortest text that reads back bit-exactly") {
  CHECK(text(0.1) == "0.1");
  CHECK(text(2.5) == "2.5");
  CHECK(text(1e300) == "1e+300");
  CHECK(text(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(text(-std::numeric_limits<double>::infinity()) == "-inf");
  CHECK(std::isinf(d::parse_number<double>("inf", "k")));
  CHECK(d::parse_number<double>("-inf", "k") < 0);
  CHECK(std::isinf(d::parse_number<double>("+inf", "k")));
  // Redis prints scores with %.17g; those must read back to the same double.
  CHECK(d::parse_number<double>("0.10000000000000001", "k") == 0.1);

  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isnan(v)) continue;
    const double back = d::parse_number<double>(text(v), "k");
    REQUIRE(std::memcmp(&back, &v, sizeof v) == 0);
  }
  const float f = 0.3f;
  CHECK(d::parse_number<float>(text(f), "k") == f);
}

TEST_CASE("text that is not the requested number is a type_error naming the subject") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_AS(d::parse_number<int>("12x", "key \"n\""), redis_tasks::type_error);
  CHECK_THROWS_WITH(d::parse_number<int>("abc", "key \"n\""),
                    Contains("key \"n\"") && Contains("not an integer"));
  CHECK_THROWS_AS(d::parse_number<int>("", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<int>(" 1", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<std::int8_t>("300", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<unsigned>("-1", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<long long>("1.5", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<bool>("true", "k"), redis_tasks::type_error);
  CHECK_THROWS_AS(d::parse_number<double>("1.5.2", "k"), redis_tasks::type_error);
}

struct custom_point {
  int x;
};
template <>
struct redis_tasks::value_traits<custom_point> {
  using storage_type = std::string;
  static storage_type to_storage(const custom_point& p) { return std::to_string(p.x); }
  static custom_point from_storage(storage_type s) { return {std::stoi(s)}; }
};

struct json_thing {
  int a;
};
void to_json(nlohmann::json& j, const json_thing& t) {
  j = {{"a", t.a}};
}
void from_json(const nlohmann::json& j, json_thing& t) {
  t.a = j.at("a").get<int>();
}

TEST_CASE("each C++ type maps to the Redis type of API.md's Values table") {
  using d::category;
  using d::category_of;
  STATIC_REQUIRE(category_of<std::string>() == category::string);
  STATIC_REQUIRE(category_of<std::string_view>() == category::string);
  STATIC_REQUIRE(category_of<int>() == category::number);
  STATIC_REQUIRE(category_of<double>() == category::number);
  STATIC_REQUIRE(category_of<bool>() == category::number);
  STATIC_REQUIRE(category_of<std::vector<std::string>>() == category::list);
  STATIC_REQUIRE(category_of<std::deque<int>>() == category::list);
  STATIC_REQUIRE(category_of<std::list<double>>() == category::list);
  STATIC_REQUIRE(category_of<std::set<std::string>>() == category::set);
  STATIC_REQUIRE(category_of<std::unordered_set<int>>() == category::set);
  STATIC_REQUIRE(category_of<std::map<std::string, int>>() == category::hash);
  STATIC_REQUIRE(category_of<std::unordered_map<std::string, std::string>>() == category::hash);
  STATIC_REQUIRE(category_of<redis_tasks::sorted_set<std::string>>() == category::zset);
  STATIC_REQUIRE(category_of<redis_tasks::value>() == category::any);
  STATIC_REQUIRE(category_of<nlohmann::json>() == category::json);
  STATIC_REQUIRE(category_of<json_thing>() == category::json);
  STATIC_REQUIRE(category_of<custom_point>() == category::user);
  // Containers of things that are not strings or numbers are stored as JSON text.
  STATIC_REQUIRE(category_of<std::vector<json_thing>>() == category::json);
  STATIC_REQUIRE(category_of<std::vector<std::vector<int>>>() == category::json);
  // A type the library cannot store is refused at compile time.
  STATIC_REQUIRE(category_of<std::FILE*>() == category::none);
}

TEST_CASE("sorted sets compare by content, not order") {
  redis_tasks::sorted_set<std::string> a{{"a", 1.0}, {"b", 2.5}};
  redis_tasks::sorted_set<std::string> b{{"b", 2.5}, {"a", 1.0}};
  redis_tasks::sorted_set<std::string> c{{"b", 2.0}, {"a", 1.0}};
  CHECK(a == b);
  CHECK(a != c);
}
