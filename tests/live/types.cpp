// RedisSet<T>/RedisGet<T> with Redis's native types against a real server: every row of
// API.md's Values table round-trips, numbers are exact, a key of the wrong type or text that is
// not the requested number is a type_error, and ex/px/nx/xx mean for a collection what they
// mean for SET.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using redis_tasks::sorted_set;
using test_support::config_for;
using test_support::fixture;

// User types, in a namespace of their own so that ADL finds their to_json/from_json.
namespace types_test {

/// Stored as JSON through nlohmann's ADL hooks.
struct order {
  std::string id;
  int qty = 0;
  std::vector<double> prices;
  bool operator==(const order& o) const { return id == o.id && qty == o.qty && prices == o.prices; }
};
void to_json(nlohmann::json& j, const order& o) {
  j = {{"id", o.id}, {"qty", o.qty}, {"prices", o.prices}};
}
void from_json(const nlohmann::json& j, order& o) {
  j.at("id").get_to(o.id);
  j.at("qty").get_to(o.qty);
  j.at("prices").get_to(o.prices);
}

/// Stored as a hash through value_traits.
struct point {
  double x = 0;
  double y = 0;
  bool operator==(const point& o) const { return x == o.x && y == o.y; }
};

/// Stored as a Redis string holding a number through value_traits.
struct celsius {
  double degrees = 0;
  bool operator==(const celsius& o) const { return degrees == o.degrees; }
};

/// Stored as a sorted set through value_traits.
struct leaderboard {
  std::map<std::string, long long> points;
  bool operator==(const leaderboard& o) const { return points == o.points; }
};

/// Has both to_json and value_traits: the trait wins, so it is a list, not JSON text.
struct tags {
  std::vector<std::string> names;
  bool operator==(const tags& o) const { return names == o.names; }
};
void to_json(nlohmann::json& j, const tags& t) {
  j = t.names;
}
void from_json(const nlohmann::json& j, tags& t) {
  j.get_to(t.names);
}

/// Stored through value_traits as another value_traits type (a celsius, so a number).
struct reading {
  celsius temperature;
  bool operator==(const reading& o) const { return temperature == o.temperature; }
};

/// Enums of this namespace are stored by name, through one partial specialization.
enum class color { red, green, blue };
template <class T>
inline constexpr bool is_named_enum = std::is_same_v<T, color>;

/// One score, stored as a sorted set through value_traits.
struct score {
  double value = 0;
};

/// Read with std::map::at, which throws std::out_of_range for a missing field.
struct labelled {
  std::string label;
};

}  // namespace types_test

template <>
struct redis_tasks::value_traits<types_test::labelled> {
  using storage_type = std::map<std::string, std::string>;
  static storage_type to_storage(const types_test::labelled& l) { return {{"label", l.label}}; }
  static types_test::labelled from_storage(const storage_type& s) { return {s.at("label")}; }
};

template <>
struct redis_tasks::value_traits<types_test::point> {
  using storage_type = std::map<std::string, double>;
  static storage_type to_storage(const types_test::point& p) { return {{"x", p.x}, {"y", p.y}}; }
  static types_test::point from_storage(storage_type s) {
    if (s.size() != 2 || !s.count("x") || !s.count("y")) {
      throw redis_tasks::type_error("a point needs exactly the fields x and y");
    }
    return {s["x"], s["y"]};
  }
};

template <>
struct redis_tasks::value_traits<types_test::celsius> {
  using storage_type = double;
  static storage_type to_storage(const types_test::celsius& c) { return c.degrees; }
  static types_test::celsius from_storage(storage_type d) { return {d}; }
};

template <>
struct redis_tasks::value_traits<types_test::leaderboard> {
  using storage_type = redis_tasks::sorted_set<std::string>;
  static storage_type to_storage(const types_test::leaderboard& b) {
    storage_type s;
    for (const auto& [name, pts] : b.points)
      s.add(name, static_cast<double>(pts));
    return s;
  }
  static types_test::leaderboard from_storage(storage_type s) {
    types_test::leaderboard b;
    for (const auto& e : s)
      b.points[e.member] = static_cast<long long>(e.score);
    return b;
  }
};

template <>
struct redis_tasks::value_traits<types_test::tags> {
  using storage_type = std::vector<std::string>;
  static storage_type to_storage(const types_test::tags& t) { return t.names; }
  static types_test::tags from_storage(storage_type v) { return {std::move(v)}; }
};

template <>
struct redis_tasks::value_traits<types_test::reading> {
  using storage_type = types_test::celsius;
  static storage_type to_storage(const types_test::reading& r) { return r.temperature; }
  static types_test::reading from_storage(storage_type c) { return {c}; }
};

template <class T>
struct redis_tasks::value_traits<T, std::enable_if_t<types_test::is_named_enum<T>>> {
  using storage_type = std::string;
  static storage_type to_storage(T c) {
    static const char* const names[] = {"red", "green", "blue"};
    return names[static_cast<int>(c)];
  }
  static T from_storage(const storage_type& s) {
    if (s == "red") return T::red;
    if (s == "green") return T::green;
    if (s == "blue") return T::blue;
    throw redis_tasks::type_error("not a color name");
  }
};

template <>
struct redis_tasks::value_traits<types_test::score> {
  using storage_type = redis_tasks::sorted_set<std::string>;
  static storage_type to_storage(const types_test::score& s) { return {{"score", s.value}}; }
  static types_test::score from_storage(const storage_type& z) {
    return {z.empty() ? 0.0 : z.begin()->score};
  }
};

namespace {

/// A key no other test (or earlier call) used.
std::string fresh_key(const std::string& stem) {
  static std::atomic<int> n{0};
  return test_support::unique_key("types/" + stem + "#" + std::to_string(n++));
}

using test_support::get;
using test_support::put;

template <class T = redis_tasks::reply>
T exec(int port, std::vector<std::string> args) {
  auto c = config_for<RedisExecute<T>>(port);
  c.redis_cmd = redis_tasks::command{std::move(args)};
  return RedisExecute<T>(c).run();
}

std::string type_of(int port, const std::string& key) {
  return exec<std::string>(port, {"TYPE", key});
}
long long pttl(int port, const std::string& key) {
  return exec<long long>(port, {"PTTL", key});
}
bool exists(int port, const std::string& key) {
  return exec<long long>(port, {"EXISTS", key}) == 1;
}
std::optional<std::string> raw_get(int port, const std::string& key) {
  return exec<std::optional<std::string>>(port, {"GET", key});
}
std::vector<std::string> raw_lrange(int port, const std::string& key) {
  return exec<std::vector<std::string>>(port, {"LRANGE", key, "0", "-1"});
}

using test_support::same_bits;

/// Writes `v` to a fresh key, checks that Redis holds it as `redis_type`, reads it back as T.
template <class T>
std::optional<T> round_trip(int port, const T& v, const char* redis_type) {
  const std::string key = fresh_key("rt");
  REQUIRE(put(port, key, v));
  CHECK(type_of(port, key) == redis_type);
  return get<T>(port, key);
}

using test_support::all_bytes;

/// Binary strings: NUL, CR LF, RESP look-alikes, bytes that are not UTF-8.
std::vector<std::string> binary_strings() {
  return {"",
          "hello",
          std::string("a\0b", 3),
          std::string(1, '\0'),
          "\r\n",
          "*1\r\n$3\r\nfoo\r\n",
          "\xff\xfe\x80",
          "caf\xc3\xa9 \xe2\x9c\x93",
          "\"quoted\" and \\backslash\\",
          all_bytes()};
}

using test_support::inf;

/// A port nothing listens on: a task that reached for the network there would fail with a
/// connection_error, so a config_error proves the check came first.
constexpr int closed_port = 1;

}  // namespace

// ---- strings ---------------------------------------------------------------------------------

TEST_CASE("types: strings round-trip byte for byte, binary included") {
  const int port = fixture("plain").port;
  for (const auto& s : binary_strings()) {
    CAPTURE(s.size());
    const std::string key = fresh_key("str");
    REQUIRE(put(port, key, s));
    CHECK(raw_get(port, key) == s);  // what the server holds, read by plain GET
    CHECK(get<std::string>(port, key) == s);
  }
  // Long values are sent from the caller's memory rather than copied: the same bytes arrive.
  std::string big;
  for (int i = 0; i < 3000; ++i)
    big += all_bytes();
  CHECK(round_trip(port, big, "string") == big);
}

TEST_CASE("types: std::string_view is stored as a string and read back as std::string") {
  const int port = fixture("plain").port;
  const std::string backing = std::string("view\0with NUL", 13) + "and more";
  const std::string_view v(backing.data(), 13);
  const std::string key = fresh_key("sv");
  REQUIRE(put(port, key, v));
  CHECK(get<std::string>(port, key) == std::string(v));
  CHECK(raw_get(port, key)->size() == 13);
}

TEST_CASE("types: RedisSet<std::string_view> keeps its own copy of the config's value") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("sv-owned");
  auto c = config_for<RedisSet<std::string_view>>(port);
  c.redis_key = key;
  std::string buffer = std::string("first\0value", 11);
  c.redis_val = std::string_view(buffer);
  RedisSet<std::string_view> task(c);
  buffer.assign(buffer.size(), 'x');  // the viewed buffer is reused after the task is built
  buffer.shrink_to_fit();
  RedisSet<std::string_view> copy = task;  // copies share the owned value
  REQUIRE(copy.run());
  CHECK(raw_get(port, key) == std::string("first\0value", 11));
  CHECK(task.settings().redis_val == std::string_view("first\0value", 11));
}

// ---- bytes -----------------------------------------------------------------------------------

TEST_CASE("types: byte vectors are one binary string, read back byte for byte") {
  const int port = fixture("plain").port;
  for (const auto& s : binary_strings()) {
    CAPTURE(s.size());
    const std::vector<std::uint8_t> u8(s.begin(), s.end());
    CHECK(round_trip(port, u8, "string") == u8);
    std::vector<std::byte> b(s.size());
    if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());  // no memcpy from/to null
    const std::string key = fresh_key("bytes");
    REQUIRE(put(port, key, b));
    CHECK(raw_get(port, key) == s);  // one string holding exactly these bytes, not a list
    CHECK(get<std::vector<std::byte>>(port, key) == b);
    CHECK(get<std::vector<std::uint8_t>>(port, key) == u8);
    CHECK(get<std::string>(port, key) == s);
  }
  // A string written by anyone reads back as bytes, and so does an RedisExecute reply.
  const std::string key = fresh_key("bytes-raw");
  REQUIRE(put(port, key, std::string("\0\xff\x01", 3)));
  CHECK(get<std::vector<std::uint8_t>>(port, key) == std::vector<std::uint8_t>{0x00, 0xFF, 0x01});
  CHECK(exec<std::vector<std::uint8_t>>(port, {"GET", key}) ==
        std::vector<std::uint8_t>{0x00, 0xFF, 0x01});
  // Bytes inside containers are binary strings too.
  const std::vector<std::vector<std::uint8_t>> list{{0x00, 0xFF}, {}, {'a'}};
  CHECK(round_trip(port, list, "list") == list);
}

// ---- numbers ---------------------------------------------------------------------------------

namespace {

template <class N>
void check_integers(int port, std::initializer_list<N> values) {
  for (N v : values) {
    const std::string key = fresh_key("int");
    CAPTURE(v);
    REQUIRE(put(port, key, v));
    CHECK(raw_get(port, key) == std::to_string(v));  // plain decimal
    CHECK(get<N>(port, key) == v);
  }
}

}  // namespace

TEST_CASE("types: integers round-trip over their full range, stored in decimal") {
  const int port = fixture("plain").port;
  using std::numeric_limits;
  check_integers<int>(port, {0, -1, 42, numeric_limits<int>::min(), numeric_limits<int>::max()});
  check_integers<long long>(
      port, {numeric_limits<long long>::min(), numeric_limits<long long>::max(), -1234567890123LL});
  check_integers<unsigned long long>(port, {0ULL, numeric_limits<unsigned long long>::max(),
                                            numeric_limits<unsigned long long>::max() - 1});
  check_integers<unsigned>(port, {0U, numeric_limits<unsigned>::max()});
  check_integers<short>(port, {numeric_limits<short>::min(), numeric_limits<short>::max()});
  check_integers<std::int8_t>(port, {numeric_limits<std::int8_t>::min(), std::int8_t{127}});
  check_integers<std::uint8_t>(port, {std::uint8_t{0}, std::uint8_t{255}});
  check_integers<std::uint64_t>(port, {numeric_limits<std::uint64_t>::max()});
}

TEST_CASE("types: a stored integer is a number to Redis (INCRBY, DECRBY)") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("incr");
  REQUIRE(put(port, key, std::numeric_limits<long long>::max() - 5));
  CHECK(exec<long long>(port, {"INCRBY", key, "5"}) == std::numeric_limits<long long>::max());
  REQUIRE(put(port, key, std::numeric_limits<long long>::min()));
  CHECK(exec<long long>(port, {"INCRBY", key, "1"}) == std::numeric_limits<long long>::min() + 1);
}

TEST_CASE("types: doubles round-trip bit-exactly in the shortest text, infinities as inf") {
  const int port = fixture("plain").port;
  using L = std::numeric_limits<double>;
  struct sample {
    double v;
    const char* text;  // nullptr: only check the round trip
  };
  const sample samples[] = {{0.1, "0.1"},
                            {1.0 / 3.0, "0.3333333333333333"},
                            {1e300, "1e+300"},
                            {-1e-300, "-1e-300"},
                            {2.5, "2.5"},
                            {1e23, "1e+23"},
                            {0.0, "0"},
                            {-0.0, "-0"},
                            {inf, "inf"},
                            {-inf, "-inf"},
                            {L::denorm_min(), "5e-324"},
                            {L::min(), "2.2250738585072014e-308"},
                            {L::min() / 3, nullptr},  // another subnormal
                            {L::max(), "1.7976931348623157e+308"},
                            {L::lowest(), "-1.7976931348623157e+308"},
                            {9007199254740993.0, "9007199254740992"},
                            {123456789.125, "123456789.125"}};
  for (const auto& s : samples) {
    const std::string key = fresh_key("dbl");
    CAPTURE(s.v);
    REQUIRE(put(port, key, s.v));
    if (s.text) CHECK(raw_get(port, key) == s.text);
    const auto back = get<double>(port, key);
    REQUIRE(back);
    CHECK(same_bits(*back, s.v));
  }

  // NaN has no promised spelling, but it reads back as NaN.
  const std::string nan_key = fresh_key("nan");
  REQUIRE(put(port, nan_key, std::numeric_limits<double>::quiet_NaN()));
  const auto nan_back = get<double>(port, nan_key);
  REQUIRE(nan_back);
  CHECK(std::isnan(*nan_back));
}

TEST_CASE("types: random doubles round-trip bit-exactly, as a string and in a list") {
  const int port = fixture("plain").port;
  std::mt19937_64 rng(20240603);
  std::vector<double> values;
  while (values.size() < 3000) {
    const std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isnan(v)) values.push_back(v);
  }
  for (std::size_t i = 0; i < 50; ++i) {
    const auto back = round_trip(port, values[i], "string");
    REQUIRE(back);
    CHECK(same_bits(*back, values[i]));
  }
  const auto list = round_trip(port, values, "list");
  REQUIRE(list);
  REQUIRE(list->size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i, values[i]);
    CHECK(same_bits((*list)[i], values[i]));
  }
}

TEST_CASE("types: a stored double is a number to Redis (INCRBYFLOAT)") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("incrbyfloat");
  REQUIRE(put(port, key, 0.5));
  CHECK(exec<double>(port, {"INCRBYFLOAT", key, "0.25"}) == 0.75);
  REQUIRE(put(port, key, 1e300));
  CHECK(exec<double>(port, {"INCRBYFLOAT", key, "0"}) == 1e300);
}

TEST_CASE("types: floats round-trip bit-exactly in their own shortest text") {
  const int port = fixture("plain").port;
  using L = std::numeric_limits<float>;
  const float samples[] = {0.1f,          1.0f / 3.0f,     L::max(),    L::lowest(),
                           L::min(),      L::denorm_min(), 16777217.0f, -0.0f,
                           L::infinity(), -L::infinity()};
  for (float f : samples) {
    const std::string key = fresh_key("flt");
    CAPTURE(f);
    REQUIRE(put(port, key, f));
    const auto back = get<float>(port, key);
    REQUIRE(back);
    CHECK(same_bits(*back, f));
  }
  const std::string key = fresh_key("flt-text");
  REQUIRE(put(port, key, 0.1f));
  CHECK(raw_get(port, key) == "0.1");  // float's shortest form, not 0.10000000149011612
  CHECK(get<double>(port, key) == 0.1);
}

TEST_CASE("types: bool is stored as 1 and 0") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("bool");
  REQUIRE(put(port, key, true));
  CHECK(raw_get(port, key) == "1");
  CHECK(get<bool>(port, key) == true);
  REQUIRE(put(port, key, false));
  CHECK(raw_get(port, key) == "0");
  CHECK(get<bool>(port, key) == false);
  CHECK(get<int>(port, key) == 0);
}

// ---- lists -----------------------------------------------------------------------------------

TEST_CASE("types: vector, deque and list are Redis lists, order and duplicates kept") {
  const int port = fixture("plain").port;
  SECTION("strings, binary included") {
    std::vector<std::string> v = binary_strings();
    v.push_back("hello");  // a duplicate
    v.push_back("");
    CHECK(round_trip(port, v, "list") == v);
    const std::list<std::string> l(v.rbegin(), v.rend());
    CHECK(round_trip(port, l, "list") == l);
    const std::deque<std::string> d(v.begin(), v.end());
    CHECK(round_trip(port, d, "list") == d);
  }
  SECTION("numbers") {
    using std::numeric_limits;
    const std::deque<int> d{3, -1, 3, numeric_limits<int>::min(), numeric_limits<int>::max()};
    CHECK(round_trip(port, d, "list") == d);
    const std::vector<long long> ll{numeric_limits<long long>::max(),
                                    numeric_limits<long long>::min(), 0};
    CHECK(round_trip(port, ll, "list") == ll);
    const std::list<unsigned long long> ull{numeric_limits<unsigned long long>::max(), 7, 0};
    CHECK(round_trip(port, ull, "list") == ull);
    const std::vector<bool> b{true, false, false, true};
    CHECK(round_trip(port, b, "list") == b);
    const std::vector<float> f{0.1f, -2.5f, numeric_limits<float>::infinity()};
    CHECK(round_trip(port, f, "list") == f);

    const std::list<double> dl{0.1, -inf, inf, 1e300, 5e-324, -0.0, 0.1};
    const std::string key = fresh_key("dlist");
    REQUIRE(put(port, key, dl));
    CHECK(raw_lrange(port, key) ==
          std::vector<std::string>{"0.1", "-inf", "inf", "1e+300", "5e-324", "-0", "0.1"});
    const auto back = get<std::list<double>>(port, key);
    REQUIRE(back);
    REQUIRE(back->size() == dl.size());
    auto it = back->begin();
    for (double x : dl)
      CHECK(same_bits(*it++, x));
  }
  SECTION("more elements than one command carries, in order") {
    std::deque<std::string> d;
    for (int i = 0; i < 2500; ++i)
      d.push_back("e" + std::to_string(i));
    const std::string key = fresh_key("chunks");
    REQUIRE(put(port, key, d));
    CHECK(exec<long long>(port, {"LLEN", key}) == 2500);
    CHECK(get<std::deque<std::string>>(port, key) == d);
    const auto raw = raw_lrange(port, key);
    CHECK(std::equal(raw.begin(), raw.end(), d.begin(), d.end()));
  }
}

// ---- sets ------------------------------------------------------------------------------------

TEST_CASE("types: set and unordered_set are Redis sets") {
  const int port = fixture("plain").port;
  const auto bin = binary_strings();
  const std::set<std::string> s(bin.begin(), bin.end());
  CHECK(round_trip(port, s, "set") == s);
  const std::unordered_set<std::string> us(bin.begin(), bin.end());
  CHECK(round_trip(port, us, "set") == us);
  const std::set<int> si{-5, 0, 7, std::numeric_limits<int>::min()};
  CHECK(round_trip(port, si, "set") == si);
  const std::unordered_set<unsigned long long> su{0,
                                                  std::numeric_limits<unsigned long long>::max()};
  CHECK(round_trip(port, su, "set") == su);
  const std::set<double> sd{0.1, inf, -inf, 5e-324, 1e300};
  CHECK(round_trip(port, sd, "set") == sd);
  std::unordered_set<long long> big;
  for (long long i = 0; i < 3000; ++i)
    big.insert(i * 7919 - 100000);
  const std::string key = fresh_key("bigset");
  REQUIRE(put(port, key, big));
  CHECK(exec<long long>(port, {"SCARD", key}) == 3000);
  CHECK(get<std::unordered_set<long long>>(port, key) == big);
  // The same members, read as another set type and as text.
  const auto as_text = get<std::set<std::string>>(port, key);
  REQUIRE(as_text);
  CHECK(as_text->count("-100000") == 1);
}

// ---- hashes ----------------------------------------------------------------------------------

TEST_CASE("types: map and unordered_map with string fields are Redis hashes") {
  const int port = fixture("plain").port;
  std::map<std::string, std::string> m;
  for (const auto& s : binary_strings())
    m[s] = "value of " + s;
  m["empty value"] = "";
  CHECK(round_trip(port, m, "hash") == m);
  const std::unordered_map<std::string, std::string> um(m.begin(), m.end());
  CHECK(round_trip(port, um, "hash") == um);

  const std::unordered_map<std::string, int> counts{{"a", 1}, {"b", -2}, {"max", INT32_MAX}};
  CHECK(round_trip(port, counts, "hash") == counts);
  const std::map<std::string, double> d{
      {"pi", 3.141592653589793}, {"inf", inf}, {"-inf", -inf}, {"tenth", 0.1}, {"tiny", 5e-324}};
  const std::string key = fresh_key("hash-d");
  REQUIRE(put(port, key, d));
  CHECK(exec<std::string>(port, {"HGET", key, "tenth"}) == "0.1");
  CHECK(exec<std::string>(port, {"HGET", key, "-inf"}) == "-inf");
  CHECK(get<std::map<std::string, double>>(port, key) == d);
  const std::map<std::string, bool> flags{{"on", true}, {"off", false}};
  CHECK(round_trip(port, flags, "hash") == flags);
  const std::unordered_map<std::string, unsigned long long> big{
      {"max", std::numeric_limits<unsigned long long>::max()}};
  CHECK(round_trip(port, big, "hash") == big);

  std::map<std::string, std::string> many;
  for (int i = 0; i < 3000; ++i)
    many["f" + std::to_string(i)] = std::to_string(i * i);
  CHECK(round_trip(port, many, "hash") == many);
}

// ---- sorted sets -----------------------------------------------------------------------------

namespace {

template <class E>
std::vector<E> members_of(const sorted_set<E>& z) {
  std::vector<E> out;
  for (const auto& e : z)
    out.push_back(e.member);
  return out;
}

}  // namespace

TEST_CASE("types: sorted_set is a Redis sorted set, read back by ascending score, ties by member") {
  const int port = fixture("plain").port;
  SECTION("string members") {
    const sorted_set<std::string> z{{"b", 1.0},     {"a", 1.0},       {"c", 0.5},
                                    {"top", inf},   {"bottom", -inf}, {"tiny", 5e-324},
                                    {"tenth", 0.1}, {"big", 1e300},   {std::string("\0x", 2), 2}};
    const auto back = round_trip(port, z, "zset");
    REQUIRE(back);
    CHECK(*back == z);
    CHECK(members_of(*back) == std::vector<std::string>{"bottom", "tiny", "tenth", "c", "a", "b",
                                                        std::string("\0x", 2), "big", "top"});
    const std::vector<double> scores{-inf, 5e-324, 0.1, 0.5, 1, 1, 2, 1e300, inf};
    REQUIRE(back->size() == scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) {
      CAPTURE(i);
      CHECK(same_bits(back->entries()[i].score, scores[i]));
    }
  }
  SECTION("numeric members: ties are ordered as Redis orders the member text") {
    const sorted_set<int> z{{9, 1.0}, {10, 1.0}, {-3, 2.0}, {7, -1.0}};
    const auto back = round_trip(port, z, "zset");
    REQUIRE(back);
    CHECK(members_of(*back) == std::vector<int>{7, 10, 9, -3});  // "10" < "9"
    const sorted_set<double> zd{{0.1, 0.1}, {inf, 3}};
    CHECK(round_trip(port, zd, "zset") == zd);
  }
  SECTION("random scores, more entries than one command carries") {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> dist(-1e6, 1e6);
    sorted_set<std::string> z;
    for (int i = 0; i < 3000; ++i)
      z.add("m" + std::to_string(i), dist(rng));
    const auto back = round_trip(port, z, "zset");
    REQUIRE(back);
    CHECK(*back == z);
    for (std::size_t i = 1; i < back->size(); ++i) {
      REQUIRE(back->entries()[i - 1].score <= back->entries()[i].score);
    }
  }
}

// ---- JSON ------------------------------------------------------------------------------------

TEST_CASE("types: nlohmann::json is a string holding the JSON text") {
  const int port = fixture("plain").port;
  const nlohmann::json j = {
      {"name", "caf\xc3\xa9 \xe2\x9c\x93"},           {"list", {1, 2, 3}},
      {"nested", {{"a", nullptr}, {"b", true}}},      {"pi", 3.141592653589793},
      {"big", std::numeric_limits<long long>::min()}, {"nul", std::string("a\0b", 3)}};
  const std::string key = fresh_key("json");
  REQUIRE(put(port, key, j));
  CHECK(type_of(port, key) == "string");
  CHECK(raw_get(port, key) == j.dump());
  CHECK(get<nlohmann::json>(port, key) == j);
  for (const nlohmann::json& scalar :
       {nlohmann::json(42), nlohmann::json("text"), nlohmann::json(nullptr),
        nlohmann::json::array(), nlohmann::json(0.1)}) {
    CHECK(round_trip(port, scalar, "string") == scalar);
  }
}

TEST_CASE("types: a type with to_json/from_json is stored as JSON") {
  const int port = fixture("plain").port;
  const types_test::order o{"A-17", 3, {9.99, 0.1}};
  const std::string key = fresh_key("order");
  REQUIRE(put(port, key, o));
  CHECK(type_of(port, key) == "string");
  CHECK(nlohmann::json::parse(*raw_get(port, key)) == nlohmann::json(o));
  CHECK(get<types_test::order>(port, key) == o);
  CHECK(get<nlohmann::json>(port, key) == nlohmann::json(o));
  // Containers of such types, or of containers, are JSON too.
  const std::vector<types_test::order> orders{o, {"B", 0, {}}};
  CHECK(round_trip(port, orders, "string") == orders);
  const std::vector<std::vector<int>> grid{{1, 2}, {}, {3}};
  CHECK(round_trip(port, grid, "string") == grid);
}

// ---- value_traits ----------------------------------------------------------------------------

TEST_CASE("types: value_traits stores a user type as any storable type") {
  const int port = fixture("plain").port;
  SECTION("as a hash") {
    const types_test::point p{1.5, -0.1};
    const std::string key = fresh_key("point");
    REQUIRE(put(port, key, p));
    CHECK(type_of(port, key) == "hash");
    CHECK(exec<std::string>(port, {"HGET", key, "y"}) == "-0.1");
    CHECK(get<types_test::point>(port, key) == p);
  }
  SECTION("as a number") {
    CHECK(round_trip(port, types_test::celsius{21.5}, "string") == types_test::celsius{21.5});
  }
  SECTION("as a sorted set") {
    const types_test::leaderboard b{{{"ann", 30}, {"bob", 10}, {"cy", 20}}};
    const std::string key = fresh_key("board");
    REQUIRE(put(port, key, b));
    CHECK(exec<std::vector<std::string>>(port, {"ZRANGE", key, "0", "-1"}) ==
          std::vector<std::string>{"bob", "cy", "ann"});
    CHECK(get<types_test::leaderboard>(port, key) == b);
  }
  SECTION("as another value_traits type") {
    const types_test::reading r{{-40.5}};
    const std::string key = fresh_key("reading");
    REQUIRE(put(port, key, r));
    CHECK(raw_get(port, key) == "-40.5");
    CHECK(get<types_test::reading>(port, key) == r);
  }
  SECTION("through a partial specialization (the Enable parameter)") {
    const std::string key = fresh_key("color");
    REQUIRE(put(port, key, types_test::color::blue));
    CHECK(raw_get(port, key) == "blue");
    CHECK(get<types_test::color>(port, key) == types_test::color::blue);
    CHECK(round_trip(port, std::vector<std::string>{"red"}, "list"));  // unrelated types unchanged
  }
  SECTION("the trait wins over to_json") {
    const types_test::tags t{{"x", "y", "x"}};
    CHECK(round_trip(port, t, "list") == t);
  }
  SECTION("from_storage may refuse what it reads") {
    const std::string key = fresh_key("bad-point");
    exec(port, {"HSET", key, "x", "1"});
    CHECK_THROWS_AS(get<types_test::point>(port, key), redis_tasks::type_error);
  }
  SECTION("any other exception from from_storage becomes a type_error naming the key") {
    const std::string key = fresh_key("no-label");
    exec(port, {"HSET", key, "other", "1"});
    try {
      (void)get<types_test::labelled>(port, key);
      FAIL("expected type_error");
    } catch (const redis_tasks::type_error& e) {
      CHECK_THAT(e.what(), Catch::Matchers::Contains(key));
    }
  }
  SECTION("a missing key is nullopt; from_storage is not called") {
    CHECK(get<types_test::point>(port, fresh_key("none")) == std::nullopt);
  }
}

// ---- RedisGet<value> -------------------------------------------------------------------------

TEST_CASE("types: RedisGet<value> returns whatever the key holds, chosen by TYPE") {
  const int port = fixture("plain").port;
  using redis_tasks::value;
  const std::string s = fresh_key("v-string"), l = fresh_key("v-list"), st = fresh_key("v-set"),
                    h = fresh_key("v-hash"), z = fresh_key("v-zset");
  REQUIRE(put(port, s, std::string("a\0b", 3)));
  REQUIRE(put(port, l, std::vector<std::string>{"x", "y", "x"}));
  REQUIRE(put(port, st, std::set<std::string>{"p", "q"}));
  REQUIRE(put(port, h, std::map<std::string, std::string>{{"f", "v"}, {"g", ""}}));
  REQUIRE(put(port, z, sorted_set<std::string>{{"hi", 2}, {"lo", 1}}));

  CHECK(get<value>(port, s) == value{std::string("a\0b", 3)});
  CHECK(get<value>(port, l) == value{std::vector<std::string>{"x", "y", "x"}});
  CHECK(get<value>(port, st) == value{std::set<std::string>{"p", "q"}});
  CHECK(get<value>(port, h) == value{std::map<std::string, std::string>{{"f", "v"}, {"g", ""}}});
  const auto zv = get<value>(port, z);
  REQUIRE(zv);
  REQUIRE(std::holds_alternative<sorted_set<std::string>>(*zv));
  CHECK(members_of(std::get<sorted_set<std::string>>(*zv)) == std::vector<std::string>{"lo", "hi"});
  CHECK(get<value>(port, fresh_key("v-none")) == std::nullopt);

  // A type that value has no alternative for.
  const std::string stream = fresh_key("v-stream");
  exec(port, {"XADD", stream, "*", "field", "value"});
  CHECK_THROWS_AS(get<value>(port, stream), redis_tasks::type_error);
  CHECK_THROWS_WITH(get<value>(port, stream), Contains(stream) && Contains("stream"));
}

TEST_CASE("types: RedisSet<value> stores each alternative as its Redis type") {
  const int port = fixture("plain").port;
  using redis_tasks::value;
  const value samples[] = {
      value{std::string("text")}, value{std::vector<std::string>{"b", "a", "b"}},
      value{std::set<std::string>{"m", "n"}}, value{std::map<std::string, std::string>{{"k", "v"}}},
      value{sorted_set<std::string>{{"z", 1}}}};
  const char* types[] = {"string", "list", "set", "hash", "zset"};
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(round_trip(port, samples[i], types[i]) == samples[i]);
  }
}

// ---- missing keys ----------------------------------------------------------------------------

namespace {

template <class T>
void check_missing(int port, const std::string& key) {
  INFO("reading as " << redis_tasks::detail::type_label<T>());
  CHECK(get<T>(port, key) == std::nullopt);
}

template <class... T>
void check_all_missing(int port) {
  const std::string key = fresh_key("missing");
  (check_missing<T>(port, key), ...);
}

}  // namespace

TEST_CASE("types: a missing key is std::nullopt for every T") {
  const int port = fixture("plain").port;
  check_all_missing<std::string, int, long long, unsigned long long, double, float, bool,
                    std::vector<std::string>, std::deque<int>, std::list<double>,
                    std::set<std::string>, std::unordered_set<int>,
                    std::map<std::string, std::string>, std::unordered_map<std::string, double>,
                    sorted_set<std::string>, sorted_set<int>, nlohmann::json, types_test::order,
                    types_test::point, types_test::celsius, types_test::leaderboard,
                    types_test::tags, redis_tasks::value>(port);
}

// ---- empty collections -----------------------------------------------------------------------

TEST_CASE("types: an empty collection deletes the key and returns true") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("empty");
  SECTION("plain write, whatever the key held") {
    REQUIRE(put(port, key, std::string("was a string")));
    CHECK(put(port, key, std::vector<std::string>{}));
    CHECK_FALSE(exists(port, key));
    REQUIRE(put(port, key, std::set<int>{1, 2}));
    CHECK(put(port, key, std::map<std::string, int>{}));
    CHECK_FALSE(exists(port, key));
    CHECK(put(port, key, sorted_set<std::string>{}));  // no key before, none after
    CHECK_FALSE(exists(port, key));
    CHECK(get<std::vector<std::string>>(port, key) == std::nullopt);
  }
  SECTION("nx: prevented while the key exists; true and still absent otherwise") {
    REQUIRE(put(port, key, std::list<int>{1}));
    CHECK_FALSE(put(port, key, std::list<int>{}, {.nx = true}));
    CHECK(get<std::list<int>>(port, key) == std::list<int>{1});
    REQUIRE(exec<long long>(port, {"DEL", key}) == 1);
    CHECK(put(port, key, std::list<int>{}, {.nx = true}));
    CHECK_FALSE(exists(port, key));
  }
  SECTION("xx: prevented while the key is absent; deletes it otherwise") {
    CHECK_FALSE(put(port, key, std::unordered_set<std::string>{}, {.xx = true}));
    CHECK_FALSE(exists(port, key));
    REQUIRE(put(port, key, std::unordered_set<std::string>{"a"}));
    CHECK(put(port, key, std::unordered_set<std::string>{}, {.xx = true}));
    CHECK_FALSE(exists(port, key));
  }
  SECTION("with an expiry: nothing is left to expire") {
    REQUIRE(put(port, key, std::vector<int>{1}));
    CHECK(put(port, key, std::vector<int>{}, {.ex = 100s}));
    CHECK_FALSE(exists(port, key));
  }
}

// ---- errors ----------------------------------------------------------------------------------

namespace {

/// What `f` throws as a type_error (fails the test if it throws nothing or something else).
template <class F>
std::string type_error_text(F&& f) {
  try {
    f();
  } catch (const redis_tasks::type_error& e) {
    return e.what();
  }
  FAIL("no type_error was thrown");
  return {};
}

}  // namespace

TEST_CASE("types: reading a key of another Redis type is a type_error naming key, type, T") {
  const int port = fixture("plain").port;
  const std::string s = fresh_key("wt-string"), l = fresh_key("wt-list"), st = fresh_key("wt-set"),
                    h = fresh_key("wt-hash"), z = fresh_key("wt-zset");
  REQUIRE(put(port, s, std::string("text")));
  REQUIRE(put(port, l, std::vector<std::string>{"a"}));
  REQUIRE(put(port, st, std::set<std::string>{"a"}));
  REQUIRE(put(port, h, std::map<std::string, std::string>{{"a", "b"}}));
  REQUIRE(put(port, z, sorted_set<std::string>{{"a", 1}}));

  struct expectation {
    std::string message;
    const std::string& key;
    const char* holds;
    const char* expects;
  };
  const expectation cases[] = {
      {type_error_text([&] { get<std::string>(port, l); }), l, "holds a list", "expects a string"},
      {type_error_text([&] { get<long long>(port, h); }), h, "holds a hash", "a number"},
      {type_error_text([&] { get<std::vector<std::string>>(port, s); }), s, "holds a string",
       "expects a list"},
      {type_error_text([&] { get<std::deque<int>>(port, z); }), z, "holds a zset",
       "expects a list"},
      {type_error_text([&] { get<std::set<std::string>>(port, h); }), h, "holds a hash",
       "expects a set"},
      {type_error_text([&] { get<std::unordered_map<std::string, int>>(port, st); }), st,
       "holds a set", "expects a hash"},
      {type_error_text([&] { get<sorted_set<std::string>>(port, l); }), l, "holds a list",
       "expects a sorted set"},
      {type_error_text([&] { get<nlohmann::json>(port, st); }), st, "holds a set", "JSON"},
      {type_error_text([&] { get<types_test::point>(port, l); }), l, "holds a list",
       "expects a hash"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.message);
    CHECK_THAT(c.message, Contains(c.key) && Contains(c.holds) && Contains(c.expects));
  }
  // The key was only read: it still holds what it held.
  CHECK(type_of(port, l) == "list");
}

TEST_CASE("types: reading a list as bytes is a type_error that says what the key holds") {
  const int port = fixture("plain").port;
  const std::string l = fresh_key("bytes-list");
  REQUIRE(put(port, l, std::vector<int>{1, 2, 3}));
  const std::string message = type_error_text([&] { get<std::vector<std::uint8_t>>(port, l); });
  CHECK_THAT(message, Contains(l) && Contains("holds a list") &&
                          Contains("RedisGet<std::vector<std::uint8_t>> expects a string") &&
                          Contains("std::vector<int>"));
  CHECK(type_of(port, l) == "list");
}

TEST_CASE("types: text that is not the requested number is a type_error naming the key") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("nan-text");
  const auto check_refused = [&](const std::string& stored, auto read) {
    CAPTURE(stored);
    REQUIRE(exec<std::string>(port, {"SET", key, stored}) == "OK");
    const std::string msg = type_error_text(read);
    CHECK_THAT(msg, Contains(key));
    // A stored value's content never appears in a message. The names the test generated (the
    // key, with a pid and a random number in it; the server's port) are left out of the search:
    // their digits may happen to spell a value like "300".
    std::string rest = msg;
    for (const std::string& generated : {key, std::to_string(port)}) {
      for (auto at = rest.find(generated); at != std::string::npos; at = rest.find(generated, at))
        rest.replace(at, generated.size(), "<generated>");
    }
    CAPTURE(rest);
    if (stored.size() > 2) CHECK_THAT(rest, !Contains(stored));
  };
  check_refused("12abc", [&] { get<int>(port, key); });
  check_refused("1.5", [&] { get<long long>(port, key); });
  check_refused(" 42", [&] { get<long long>(port, key); });
  check_refused("0x10", [&] { get<int>(port, key); });
  check_refused("300", [&] { get<std::int8_t>(port, key); });
  check_refused("-1", [&] { get<unsigned>(port, key); });
  check_refused("99999999999999999999", [&] { get<long long>(port, key); });
  check_refused("secret-ish", [&] { get<double>(port, key); });
  check_refused("1e400", [&] { get<double>(port, key); });
  check_refused("1.5.2", [&] { get<double>(port, key); });
  check_refused("", [&] { get<double>(port, key); });
  check_refused("true", [&] { get<bool>(port, key); });
  check_refused("2", [&] { get<bool>(port, key); });

  const std::string l = fresh_key("nan-list");
  exec(port, {"RPUSH", l, "1", "2", "three"});
  CHECK_THAT(type_error_text([&] { get<std::vector<int>>(port, l); }), Contains(l));
  const std::string h = fresh_key("nan-hash");
  exec(port, {"HSET", h, "a", "1.5", "b", "zz"});
  CHECK_THAT(type_error_text([&] { get<std::map<std::string, double>>(port, h); }), Contains(h));
  const std::string z = fresh_key("nan-zset");
  exec(port, {"ZADD", z, "1", "one", "2", "2"});
  CHECK_THAT(type_error_text([&] { get<sorted_set<int>>(port, z); }), Contains(z));
  CHECK(get<sorted_set<std::string>>(port, z) == sorted_set<std::string>{{"one", 1}, {"2", 2}});
}

TEST_CASE("types: malformed JSON, or JSON of the wrong shape, is a type_error naming the key") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("badjson");
  for (const char* text : {"{\"id\": ", "not json", "", "{\"id\":\"x\"} trailing", "[1,2,"}) {
    CAPTURE(text);
    REQUIRE(exec<std::string>(port, {"SET", key, text}) == "OK");
    CHECK_THAT(type_error_text([&] { get<nlohmann::json>(port, key); }), Contains(key));
    CHECK_THAT(type_error_text([&] { get<types_test::order>(port, key); }), Contains(key));
  }
  // Valid JSON that does not make an order.
  for (const char* text : {"{\"id\": 5, \"qty\": 1, \"prices\": []}", "{\"id\": \"x\"}", "[]"}) {
    CAPTURE(text);
    REQUIRE(exec<std::string>(port, {"SET", key, text}) == "OK");
    CHECK(get<nlohmann::json>(port, key) == nlohmann::json::parse(text));
    CHECK_THAT(type_error_text([&] { get<types_test::order>(port, key); }), Contains(key));
  }
}

TEST_CASE("types: JSON that cannot be written is a config_error, and nothing is written") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("bad-utf8");
  REQUIRE(put(port, key, nlohmann::json{{"kept", true}}));
  CHECK_THROWS_AS(put(port, key, nlohmann::json{{"bad", "\xff not UTF-8"}}),
                  redis_tasks::config_error);
  CHECK(get<nlohmann::json>(port, key) == nlohmann::json{{"kept", true}});
}

TEST_CASE("types: a NaN score is a config_error before any I/O, and nothing is written") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  {
    auto c = config_for<RedisSet<sorted_set<std::string>>>(closed_port);
    c.redis_key = "k";
    c.redis_val = sorted_set<std::string>{{"a", 1}, {"b", nan}};
    CHECK_THROWS_AS(RedisSet<sorted_set<std::string>>(c).run(), redis_tasks::config_error);
    CHECK_THROWS_AS(RedisSet<sorted_set<std::string>>(c).run(
                        {.redis_val = sorted_set<std::string>{{"x", -nan}}}),
                    redis_tasks::config_error);
  }
  {
    auto c = config_for<RedisSet<redis_tasks::value>>(closed_port);
    c.redis_key = "k";
    c.redis_val = redis_tasks::value{sorted_set<std::string>{{"a", nan}}};
    CHECK_THROWS_AS(RedisSet<redis_tasks::value>(c).run(), redis_tasks::config_error);
  }
  const int port = fixture("plain").port;
  const std::string key = fresh_key("nan-score");
  REQUIRE(put(port, key, sorted_set<std::string>{{"kept", 1}}));
  CHECK_THROWS_AS(put(port, key, sorted_set<std::string>{{"a", nan}}), redis_tasks::config_error);
  // Through value_traits the score is only seen after to_storage: still a config_error.
  CHECK_THROWS_AS(put(port, key, types_test::score{nan}), redis_tasks::config_error);
  CHECK(get<sorted_set<std::string>>(port, key) == sorted_set<std::string>{{"kept", 1}});
}

// RedisSet::run (tasks.hpp) checks a value before it takes a connection only for sorted_set and
// value; a value_traits type's storage and a JSON value's text are made after connecting. The
// contract says "before any network I/O"; these fail until tasks.hpp checks them first.
TEST_CASE("types: unstorable user and JSON values are refused before any I/O") {
  {
    auto c = config_for<RedisSet<types_test::score>>(closed_port);
    c.redis_key = "k";
    c.redis_val = types_test::score{std::numeric_limits<double>::quiet_NaN()};
    CHECK_THROWS_AS(RedisSet<types_test::score>(c).run(), redis_tasks::config_error);
  }
  {
    auto c = config_for<RedisSet<nlohmann::json>>(closed_port);
    c.redis_key = "k";
    c.redis_val = nlohmann::json{{"bad", "\xff not UTF-8"}};
    CHECK_THROWS_AS(RedisSet<nlohmann::json>(c).run(), redis_tasks::config_error);
  }
}

// ---- ex / px / nx / xx -----------------------------------------------------------------------

TEST_CASE("types: ex and px give a collection a TTL, for every collection type") {
  const int port = fixture("plain").port;
  const auto check_ttl = [&](auto value) {
    const std::string key = fresh_key("ttl");
    REQUIRE(put(port, key, value, {.ex = 100s}));
    const long long from_ex = pttl(port, key);
    CHECK(from_ex > 95000);
    CHECK(from_ex <= 100000);
    // Seconds of room between the write and the PTTL, for a loaded machine.
    REQUIRE(put(port, key, value, {.px = 15000ms}));
    const long long from_px = pttl(port, key);
    CHECK(from_px > 0);
    CHECK(from_px <= 15000);
    // A write without an expiry clears the TTL, as SET does.
    REQUIRE(put(port, key, value));
    CHECK(pttl(port, key) == -1);
  };
  check_ttl(std::vector<std::string>{"a", "b"});
  check_ttl(std::set<int>{1, 2});
  check_ttl(std::map<std::string, std::string>{{"f", "v"}});
  check_ttl(sorted_set<std::string>{{"m", 1}});
  check_ttl(std::string("a string, for comparison"));
  check_ttl(nlohmann::json{{"a", 1}});
  check_ttl(types_test::point{1, 2});
}

TEST_CASE("types: a collection written with px expires") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("expires");
  // Long enough to be read back before it expires, even on a loaded machine.
  REQUIRE(put(port, key, std::vector<int>{1, 2, 3}, {.px = 1000ms}));
  CHECK(get<std::vector<int>>(port, key) == std::vector<int>{1, 2, 3});
  test_support::wait_until([&] { return get<std::vector<int>>(port, key) == std::nullopt; }, 10s,
                           "the list written with px 1000 ms to expire");
}

TEST_CASE("types: the config's expiry applies to collections, and a run's replaces it") {
  const int port = fixture("plain").port;
  auto c = config_for<RedisSet<std::vector<std::string>>>(port);
  c.redis_key = fresh_key("cfg-ttl");
  c.redis_val = std::vector<std::string>{"x"};
  c.ex = 100s;
  RedisSet<std::vector<std::string>> task(c);
  REQUIRE(task.run());
  CHECK(pttl(port, *c.redis_key) > 95000);
  REQUIRE(task.run({.px = 20000ms}));
  CHECK(pttl(port, *c.redis_key) <= 20000);
  CHECK(get<std::vector<std::string>>(port, *c.redis_key) == std::vector<std::string>{"x"});
}

TEST_CASE("types: nx and xx with collections mean what they mean for SET") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("cond");
  const std::vector<std::string> first{"1", "2", "3"}, second{"x"};
  SECTION("nx") {
    CHECK(put(port, key, first, {.nx = true}));
    CHECK(get<std::vector<std::string>>(port, key) == first);
    CHECK_FALSE(put(port, key, second, {.nx = true}));
    CHECK(get<std::vector<std::string>>(port, key) == first);
    // A key of another type exists too.
    const std::string s = fresh_key("cond-s");
    REQUIRE(put(port, s, std::string("text")));
    CHECK_FALSE(put(port, s, second, {.nx = true}));
    CHECK(type_of(port, s) == "string");
  }
  SECTION("xx") {
    CHECK_FALSE(put(port, key, first, {.xx = true}));
    CHECK_FALSE(exists(port, key));
    REQUIRE(put(port, key, std::string("text")));
    CHECK(put(port, key, first, {.xx = true}));
    CHECK(get<std::vector<std::string>>(port, key) == first);
    CHECK(put(port, key, second, {.xx = true}));
    CHECK(get<std::vector<std::string>>(port, key) == second);
  }
  SECTION("a prevented write leaves the TTL alone") {
    REQUIRE(put(port, key, first, {.ex = 100s}));
    CHECK_FALSE(put(port, key, second, {.px = 500ms, .nx = true}));
    CHECK(pttl(port, key) > 95000);
    CHECK(put(port, key, second, {.px = 5000ms, .xx = true}));
    CHECK(pttl(port, key) <= 5000);
  }
  SECTION("an expired key is absent for nx and xx") {
    REQUIRE(put(port, key, first, {.px = 50ms}));
    // Time passing is the point here: any look at the key (EXISTS, PTTL) would delete it once
    // expired, and the writes below would no longer meet an expired key that is still stored.
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(put(port, key, second, {.xx = true}));
    CHECK(put(port, key, second, {.nx = true}));
    CHECK(get<std::vector<std::string>>(port, key) == second);
  }
  SECTION("the config's condition, and a run's replacing it") {
    auto c = config_for<RedisSet<std::set<std::string>>>(port);
    c.redis_key = key;
    c.redis_val = std::set<std::string>{"cfg"};
    c.nx = true;
    RedisSet<std::set<std::string>> task(c);
    CHECK(task.run());
    CHECK_FALSE(task.run());
    CHECK(task.run({.redis_val = std::set<std::string>{"run"}, .xx = true}));
    CHECK(get<std::set<std::string>>(port, key) == std::set<std::string>{"run"});
  }
}

TEST_CASE("types: conditional writes leave no helper key behind, whatever the key's name") {
  const int port = fixture("plain").port;
  const std::string stem = fresh_key("names");
  for (const std::string& name :
       {stem + "{tag}rest", stem + "{}empty-tag", stem + "}brace", stem + "{open",
        stem + std::string("nul\0key", 7), stem + ":plain"}) {
    CAPTURE(name);
    // Only this test's keys: other tests may share the server. The stem has no glob characters.
    const auto ours = [&] {
      return exec<std::vector<std::string>>(port, {"KEYS", "*" + stem + "*"});
    };
    const std::vector<std::string> before = ours();
    CHECK_FALSE(put(port, name, std::vector<int>{1, 2}, {.xx = true}));
    CHECK(put(port, name, std::vector<int>{1, 2}, {.ex = 100s, .nx = true}));
    CHECK_FALSE(put(port, name, std::vector<int>{3}, {.nx = true}));
    CHECK(put(port, name, std::vector<int>{4, 5, 6}, {.xx = true}));
    CHECK(get<std::vector<int>>(port, name) == std::vector<int>{4, 5, 6});
    CHECK(pttl(port, name) == -1);  // the xx write had no expiry: the TTL is gone, as with SET
    CHECK(put(port, name, std::vector<int>{}, {.xx = true}));
    CHECK_FALSE(exists(port, name));
    CHECK(ours() == before);  // nothing new, in particular no swap key
  }
}

namespace {

/// The part of a key that Redis Cluster hashes (its hash tag, or the whole key).
std::string hashed_part(const std::string& key) {
  const auto open = key.find('{');
  if (open == std::string::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

}  // namespace

TEST_CASE("types: the swap key of a conditional write hashes to the key's cluster slot") {
  // Not possible, and not tried: the empty key, and keys with a '}' but no hash tag ("{}x").
  for (const std::string key :
       {"plain", "{tag}rest", "a{tag}b{other}", "{open", "x{y", "{", "user:{1}", "a}{b}"}) {
    CAPTURE(key);
    const std::string swap = redis_tasks::detail::swap_key_for(key);
    CHECK(swap != key);
    CHECK(hashed_part(swap) == hashed_part(key));
  }
}

TEST_CASE("types: writing a collection replaces whatever the key held") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("replace");
  REQUIRE(put(port, key, std::vector<int>{1, 2, 3, 4, 5}));
  REQUIRE(put(port, key, std::vector<int>{9}));
  CHECK(raw_lrange(port, key) == std::vector<std::string>{"9"});  // nothing left of the old list
  REQUIRE(put(port, key, std::map<std::string, int>{{"a", 1}}));
  CHECK(type_of(port, key) == "hash");
  REQUIRE(put(port, key, std::map<std::string, int>{{"b", 2}}));
  CHECK(get<std::map<std::string, int>>(port, key) == std::map<std::string, int>{{"b", 2}});
  REQUIRE(put(port, key, sorted_set<std::string>{{"m", 1}}));
  REQUIRE(put(port, key, sorted_set<std::string>{{"n", 2}}));
  CHECK(get<sorted_set<std::string>>(port, key) == sorted_set<std::string>{{"n", 2}});
  REQUIRE(put(port, key, 42));
  CHECK(type_of(port, key) == "string");
  REQUIRE(put(port, key, std::set<std::string>{"s"}));
  CHECK(type_of(port, key) == "set");
}

TEST_CASE("types: collections go to the task's db, conditional writes included") {
  const int port = fixture("plain").port;
  const std::string key = fresh_key("db");
  auto c = config_for<RedisSet<std::vector<std::string>>>(port);
  c.db = 3;
  c.redis_key = key;
  c.redis_val = std::vector<std::string>{"in", "db3"};
  RedisSet<std::vector<std::string>> task(c);
  CHECK(task.run({.nx = true}));
  CHECK_FALSE(task.run({.nx = true}));
  CHECK(task.run({.redis_val = std::vector<std::string>{"again"}, .xx = true}));
  CHECK_FALSE(exists(port, key));  // not in db 0
  auto g = config_for<RedisGet<std::vector<std::string>>>(port);
  g.db = 3;
  g.redis_key = key;
  CHECK(RedisGet<std::vector<std::string>>(g).run() == std::vector<std::string>{"again"});
  auto e = config_for<RedisExecute<long long>>(port);
  e.db = 3;
  e.redis_cmd = redis_tasks::command{std::vector<std::string>{"DEL", key}};
  CHECK(RedisExecute<long long>(e).run() == 1);
}

// ---- large values ----------------------------------------------------------------------------

TEST_CASE("types: a million-element list round-trips", "[large]") {
  const int port = fixture("plain").port;
  std::vector<std::string> v;
  v.reserve(1'000'000);
  for (int i = 0; i < 1'000'000; ++i)
    v.push_back(std::to_string(i));
  const std::string key = fresh_key("million");
  REQUIRE(put(port, key, v, {.ex = 600s}));
  CHECK(exec<long long>(port, {"LLEN", key}) == 1'000'000);
  CHECK(exec<std::string>(port, {"LINDEX", key, "999999"}) == "999999");
  CHECK(pttl(port, key) > 500'000);
  CHECK(get<std::vector<std::string>>(port, key) == v);
  exec(port, {"UNLINK", key});
}

TEST_CASE("types: a hash of 100k fields round-trips", "[large]") {
  const int port = fixture("plain").port;
  std::unordered_map<std::string, std::string> h;
  h.reserve(100'000);
  for (int i = 0; i < 100'000; ++i)
    h["field:" + std::to_string(i)] = std::to_string(i * 31);
  const std::string key = fresh_key("100k");
  REQUIRE(put(port, key, h));
  CHECK(exec<long long>(port, {"HLEN", key}) == 100'000);
  CHECK(exec<std::string>(port, {"HGET", key, "field:99999"}) == std::to_string(99999 * 31));
  CHECK(get<std::unordered_map<std::string, std::string>>(port, key) == h);
  exec(port, {"UNLINK", key});
}

TEST_CASE("types: a list of long elements round-trips (sent from the caller's memory)", "[large]") {
  const int port = fixture("plain").port;
  std::vector<std::string> v;
  for (int i = 0; i < 300; ++i)
    v.push_back(std::string(20000 + i, static_cast<char>('a' + i % 26)));
  v.push_back(all_bytes());
  CHECK(round_trip(port, v, "list") == v);
}

TEST_CASE("types: value_type_name spells each storable type for messages") {
  namespace d = redis_tasks::detail;
  CHECK(d::value_type_name<std::string>() == "std::string");
  CHECK(d::value_type_name<std::deque<double>>() == "std::deque<double>");
  CHECK(d::value_type_name<std::list<unsigned long long>>() == "std::list<unsigned long long>");
  CHECK(d::value_type_name<std::unordered_set<int>>() == "std::unordered_set<int>");
  CHECK(d::value_type_name<std::unordered_map<std::string, bool>>() ==
        "std::unordered_map<std::string, bool>");
  CHECK(d::value_type_name<sorted_set<std::string>>() == "redis_tasks::sorted_set<std::string>");
  CHECK(d::value_type_name<redis_tasks::value>() == "redis_tasks::value");
  CHECK(d::value_type_name<types_test::order>() == "a JSON-convertible type");
  CHECK(d::value_type_name<types_test::point>() ==
        "a value_traits type stored as std::map<std::string, double>");
}

TEST_CASE("types: long double round-trips through its shortest text") {
  const int port = fixture("plain").port;
  for (long double v : {0.1L, 1.0L / 3.0L, std::numeric_limits<long double>::max(),
                        std::numeric_limits<long double>::denorm_min(),
                        -std::numeric_limits<long double>::infinity()}) {
    CAPTURE(v);
    CHECK(round_trip(port, v, "string") == v);
  }
}

TEST_CASE("types: a collection write the server refuses changes nothing") {
  // A server of our own whose memory limit the new list cannot fit in: a chunk is refused
  // while queuing (OOM), so the server discards the whole transaction.
  test_support::redis_process server({"--maxmemory", "3mb", "--maxmemory-policy", "noeviction"});
  const int port = server.port();
  const std::string key = fresh_key("oom");
  REQUIRE(put(port, key, std::vector<std::string>{"old", "list"}, {.ex = 100s}));
  std::vector<std::string> huge(20000, std::string(1000, 'x'));
  for (const bool conditional : {false, true}) {
    CAPTURE(conditional);
    try {
      put(port, key, huge,
          conditional ? RedisSet<std::vector<std::string>>::overrides{.xx = true}
                      : RedisSet<std::vector<std::string>>::overrides{});
      FAIL("the write was not refused");
    } catch (const redis_tasks::reply_error& e) {
      CHECK(e.code() == "OOM");
      CHECK_THAT(e.what(), Contains(key));
    }
    CHECK(get<std::vector<std::string>>(port, key) == std::vector<std::string>{"old", "list"});
    CHECK(pttl(port, key) > 90000);
    // The connection is still in step: the next write on it works.
    CHECK(put(port, key, std::vector<std::string>{"old", "list"}, {.ex = 100s}));
  }
  const auto keys = exec<std::vector<std::string>>(port, {"KEYS", "*"});
  CHECK(keys == std::vector<std::string>{key});  // no swap key left
}
