// Config merging and validation: every mistake is a config_error raised before any I/O.
// The tasks point at a port where nothing listens, so a connection attempt would show up as a
// connection_error instead.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::config_error;

namespace {
using test_support::closed_port;

// A user type stored as a hash through value_traits (as examples/custom_type.cpp does); it has
// no from_json of its own.
struct json_point {
  double x = 0;
  double y = 0;
};

// A user type whose storage type JSON cannot give: only a run can supply its value.
struct any_holder {
  redis_tasks::value v;
};

template <class Task>
typename Task::config cfg() {
  typename Task::config c;
  c.host = "127.0.0.1";
  c.port = closed_port;
  c.password_secret = std::nullopt;
  return c;
}
}  // namespace

template <>
struct redis_tasks::value_traits<json_point> {
  using storage_type = std::map<std::string, double>;
  static storage_type to_storage(const json_point& p) { return {{"x", p.x}, {"y", p.y}}; }
  static json_point from_storage(const storage_type& f) {
    const auto x = f.find("x");
    const auto y = f.find("y");
    if (x == f.end() || y == f.end()) throw redis_tasks::type_error("a point needs x and y");
    return {x->second, y->second};
  }
};

template <>
struct redis_tasks::value_traits<any_holder> {
  using storage_type = redis_tasks::value;
  static storage_type to_storage(const any_holder& h) { return h.v; }
  static any_holder from_storage(storage_type v) { return {std::move(v)}; }
};

TEST_CASE("RedisSet without key or value is a config_error before any I/O") {
  using Set = redis_tasks::RedisSet<std::string>;
  Set no_key(cfg<Set>());
  CHECK_THROWS_AS(no_key.run({.redis_val = "v"}), config_error);
  CHECK_THROWS_WITH(no_key.run({.redis_val = "v"}), Contains("redis_key is missing"));
  auto c = cfg<Set>();
  c.redis_key = "k";
  Set no_val(c);
  CHECK_THROWS_WITH(no_val.run(), Contains("redis_val is missing"));
  // With both given the task does try to connect: proof that the checks above ran first.
  CHECK_THROWS_AS(no_val.run({.redis_val = "v"}), redis_tasks::connection_error);
}

TEST_CASE("chainable setters fill configs and overrides, and designated initializers still work") {
  using Set = redis_tasks::RedisSet<std::string>;
  redis_tasks::task_options named;
  named.name = "named";
  const auto c = Set::config{}
                     .with_host("h")
                     .with_port(7000)
                     .with_db(2)
                     .with_password_secret(std::nullopt)
                     .with_redis_key("k")
                     .with_redis_val("v")
                     .with_px(500ms)
                     .with_xx(true)
                     .with_fence_token(7)
                     .with_task(named);
  CHECK(c.host == "h");
  CHECK(c.port == 7000);
  CHECK(c.db == 2);
  CHECK_FALSE(c.password_secret.has_value());
  CHECK(c.redis_key == "k");
  CHECK(c.redis_val == "v");
  CHECK(c.px == 500ms);
  CHECK_FALSE(c.ex.has_value());
  CHECK(c.xx);
  CHECK(c.fence_token == 7u);
  CHECK(c.task.name == "named");
  const auto o = Set::overrides{}.with_redis_key("o").with_ex(5s).with_nx(true);
  CHECK(o.redis_key == "o");
  CHECK(o.ex == 5s);
  CHECK(o.nx == true);
  CHECK_FALSE(o.redis_val.has_value());
  const auto g = redis_tasks::RedisGet<long long>::config{}.with_redis_key("n").with_db(1);
  CHECK(g.redis_key == "n");
  CHECK(redis_tasks::RedisGet<long long>::overrides{}.with_redis_key("m").redis_key == "m");
  const auto e = redis_tasks::RedisExecute<>::config{}.with_redis_cmd({"GET", "k"});
  CHECK(e.redis_cmd->args() == std::vector<std::string>{"GET", "k"});
  CHECK(redis_tasks::RedisExecute<>::overrides{}.with_redis_cmd("INCR n").redis_cmd ==
        redis_tasks::command({"INCR", "n"}));
  // Still aggregates: C++20 designated initializers.
  const Set::config d{.redis_key = "k", .redis_val = "v", .nx = true};
  CHECK(d.nx);
  STATIC_REQUIRE(std::is_aggregate_v<Set::config>);
  STATIC_REQUIRE(std::is_aggregate_v<Set::overrides>);
  STATIC_REQUIRE(std::is_aggregate_v<redis_tasks::RedisExecute<>::overrides>);
}

TEST_CASE("RedisGet and RedisExecute without key or command are config errors") {
  using Get = redis_tasks::RedisGet<std::string>;
  CHECK_THROWS_WITH(Get(cfg<Get>()).run(), Contains("redis_key is missing"));
  using Exec = redis_tasks::RedisExecute<>;
  CHECK_THROWS_WITH(Exec(cfg<Exec>()).run(), Contains("redis_cmd is missing"));
  CHECK_THROWS_WITH(Exec(cfg<Exec>()).run({.redis_cmd = "   "}), Contains("redis_cmd is empty"));
  CHECK_THROWS_AS(Exec(cfg<Exec>()).run({.redis_cmd = "SET k \"open"}), config_error);
}

TEST_CASE("ex with px, nx with xx, and non-positive expiries are config errors") {
  using Set = redis_tasks::RedisSet<std::string>;
  auto both_expiry = cfg<Set>();
  both_expiry.ex = 10s;
  both_expiry.px = 500ms;
  CHECK_THROWS_WITH(Set(both_expiry), Contains("both ex and px"));
  auto both_cond = cfg<Set>();
  both_cond.nx = true;
  both_cond.xx = true;
  CHECK_THROWS_WITH(Set(both_cond), Contains("both nx and xx"));
  auto zero = cfg<Set>();
  zero.ex = 0s;
  CHECK_THROWS_WITH(Set(zero), Contains("ex must be positive"));
  auto negative = cfg<Set>();
  negative.px = -5ms;
  CHECK_THROWS_WITH(Set(negative), Contains("px must be positive"));

  auto ok = cfg<Set>();
  ok.redis_key = "k";
  ok.redis_val = "v";
  Set task(ok);
  CHECK_THROWS_WITH(task.run({.ex = 1s, .px = 1ms}), Contains("both ex and px"));
  CHECK_THROWS_WITH(task.run({.nx = true, .xx = true}), Contains("both nx and xx"));
  CHECK_THROWS_WITH(task.run({.ex = -1s}), Contains("ex must be positive"));
  CHECK_THROWS_WITH(task.run({.px = 0ms}), Contains("px must be positive"));
  // One spelling per run is fine (and then the task tries the network).
  CHECK_THROWS_AS(task.run({.px = 5ms, .nx = true, .xx = false}), redis_tasks::connection_error);
}

TEST_CASE("bad connection settings are config errors when the task is built") {
  using Get = redis_tasks::RedisGet<std::string>;
  auto port = cfg<Get>();
  port.port = 70000;
  CHECK_THROWS_WITH(Get(port), Contains("port 70000"));
  auto db = cfg<Get>();
  db.db = -1;
  CHECK_THROWS_WITH(Get(db), Contains("db -1"));
  auto host = cfg<Get>();
  host.host.clear();
  CHECK_THROWS_AS(Get(host), config_error);
  auto timeout = cfg<Get>();
  timeout.redis_connection_params.socket_timeout = -1ms;
  CHECK_THROWS_AS(Get(timeout), config_error);
  auto pool = cfg<Get>();
  pool.redis_connection_params.pool_size = 0;
  CHECK_THROWS_AS(Get(pool), config_error);
  auto name = cfg<Get>();
  name.redis_connection_params.client_name = "two words";
  CHECK_THROWS_AS(Get(name), config_error);
  auto retries = cfg<Get>();
  retries.task.max_retries = -1;
  CHECK_THROWS_AS(Get(retries), config_error);
  auto secret = cfg<Get>();
  secret.password_secret = "";
  CHECK_THROWS_AS(Get(secret), config_error);
  auto links = cfg<Get>();
  links.redis_connection_params.multiplex.enabled = true;
  links.redis_connection_params.multiplex.connections = 0;
  CHECK_THROWS_WITH(Get(links), Contains("multiplex.connections is 0"));
  links.redis_connection_params.multiplex.connections = 65;
  CHECK_THROWS_WITH(Get(links), Contains("1 to 64"));
  auto in_flight = cfg<Get>();
  in_flight.redis_connection_params.multiplex.enabled = true;
  in_flight.redis_connection_params.multiplex.max_in_flight = 0;
  CHECK_THROWS_WITH(Get(in_flight), Contains("multiplex.max_in_flight"));
}

TEST_CASE("multiplexing settings load from JSON") {
  using nlohmann::json;
  using redis_tasks::connection_params;
  const auto p = connection_params::from_json(json{{"multiplex_connections", 3},
                                                   {"multiplex_max_in_flight", 64},
                                                   {"multiplex_max_bytes_in_flight", 4096}});
  CHECK(p.multiplex.enabled);  // giving a count turns it on
  CHECK(p.multiplex.connections == 3);
  CHECK(p.multiplex.max_in_flight == 64);
  CHECK(p.multiplex.max_bytes_in_flight == 4096);
  CHECK_FALSE(connection_params::from_json(json{{"multiplex", false}}).multiplex.enabled);
  CHECK_THROWS_WITH(connection_params::from_json(json{{"multiplex_connections", 0}}),
                    Contains("multiplex_connections"));
  CHECK_THROWS_AS(connection_params::from_json(json{{"multiplex", "yes"}}), config_error);
}

TEST_CASE("connection_params load redis-py names from JSON") {
  const auto p =
      redis_tasks::connection_params::from_json(nlohmann::json{{"socket_timeout", 2.5},
                                                               {"socket_connect_timeout", 1},
                                                               {"socket_keepalive", false},
                                                               {"username", "alice"},
                                                               {"client_name", "etl"},
                                                               {"unix_socket_path", "/tmp/r.sock"},
                                                               {"health_check_interval", 10},
                                                               {"max_connections", 4}});
  CHECK(p.socket_timeout == 2500ms);
  CHECK(p.connect_timeout == 1000ms);
  CHECK_FALSE(p.keepalive);
  CHECK(p.username == "alice");
  CHECK(p.client_name == "etl");
  CHECK(p.unix_socket == "/tmp/r.sock");
  CHECK(p.health_check_interval == 10000ms);
  CHECK(p.pool_size == 4);
  CHECK(redis_tasks::connection_params::from_json(nlohmann::json{{"socket_timeout", nullptr}})
            .socket_timeout == 0ms);
  CHECK(redis_tasks::connection_params::from_json(nullptr).pool_size ==
        redis_tasks::connection_params{}.pool_size);
}

TEST_CASE("unknown or mistyped connection parameters are config errors") {
  using redis_tasks::connection_params;
  CHECK_THROWS_WITH(
      connection_params::from_json(nlohmann::json{{"sockettimeout", 1}}),
      Contains("unknown parameter `sockettimeout`") && Contains("accepted: socket_timeout"));
  CHECK_THROWS_WITH(connection_params::from_json(nlohmann::json{{"socket_timeout", "1"}}),
                    Contains("`socket_timeout` must be"));
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json{{"socket_timeout", -1}}),
                  config_error);
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json{{"max_connections", 0}}),
                  config_error);
  CHECK_THROWS_AS(connection_params::from_json(nlohmann::json::array()), config_error);
}

TEST_CASE("an empty or null ssl_cert_reqs is a config_error, never verification off") {
  using redis_tasks::connection_params;
  using redis_tasks::tls_verify;
  for (const auto& v : {nlohmann::json(""), nlohmann::json(nullptr), nlohmann::json(0),
                        nlohmann::json("None"), nlohmann::json(false)}) {
    INFO(v.dump());
    CHECK_THROWS_WITH(connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", v}}),
                      Contains("`ssl_cert_reqs` must be \"required\", \"optional\" or \"none\""));
  }
  CHECK_THROWS_WITH(connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", nullptr}}),
                    Contains("got null"));
  CHECK_THROWS_WITH(connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", ""}}),
                    Contains("got an empty string"));
  CHECK(connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", "none"}}).tls.cert_reqs ==
        tls_verify::none);
  CHECK(connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", "required"}}).tls.cert_reqs ==
        tls_verify::required);
  CHECK(connection_params::from_json(nlohmann::json::object()).tls.cert_reqs ==
        tls_verify::required);
}

TEST_CASE("commands that would corrupt a shared connection are refused with a hint") {
  using Exec = redis_tasks::RedisExecute<>;
  Exec task(cfg<Exec>());
  CHECK_THROWS_WITH(task.run({.redis_cmd = "select 2"}), Contains("`db` field"));
  CHECK_THROWS_WITH(task.run({.redis_cmd = "AUTH x"}), Contains("password_secret"));
  CHECK_THROWS_AS(task.run({.redis_cmd = "MULTI"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "subscribe ch"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "MONITOR"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "client reply off"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "QUIT"}), config_error);
  CHECK_THROWS_AS(task.run({.redis_cmd = "HELLO 3"}), config_error);
  auto c = cfg<Exec>();
  c.redis_cmd = "SELECT 1";
  CHECK_THROWS_AS(Exec(c), config_error);
  // An ordinary command passes the checks and reaches the network.
  CHECK_THROWS_AS(task.run({.redis_cmd = "CLIENT LIST"}), redis_tasks::connection_error);
}

TEST_CASE("secret providers") {
  redis_tasks::MapSecretProvider map({{"A", "1"}});
  CHECK(map.get("A") == "1");
  CHECK_FALSE(map.get("B"));
  ::setenv("REDIS_TASKS_TEST_SECRET", "from-env", 1);
  CHECK(redis_tasks::EnvSecretProvider().get("REDIS_TASKS_TEST_SECRET") == "from-env");
  CHECK_FALSE(redis_tasks::EnvSecretProvider().get("REDIS_TASKS_TEST_SECRET_MISSING"));

  char tmpl[] = "/tmp/redis_tasks_secrets.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::filesystem::path dir(tmpl);
  {
    std::ofstream(dir / "REDIS_PASSWORD") << "pa ss\n";
    std::ofstream(dir / "CRLF") << "x\r\n";
  }
  redis_tasks::FileSecretProvider files(dir);
  CHECK(files.get("REDIS_PASSWORD") == "pa ss");
  CHECK(files.get("CRLF") == "x");
  CHECK_FALSE(files.get("missing"));
  CHECK_FALSE(files.get("../etc/passwd"));

  auto empty =
      std::make_shared<redis_tasks::MapSecretProvider>(std::map<std::string, std::string>{});
  auto file_ptr = std::make_shared<redis_tasks::FileSecretProvider>(dir);
  redis_tasks::ChainSecretProvider chain({empty, nullptr, file_ptr});
  CHECK(chain.get("REDIS_PASSWORD") == "pa ss");
  CHECK_FALSE(chain.get("none"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("task configs of user types and of value load from JSON") {
  using nlohmann::json;
  using PointSet = redis_tasks::RedisSet<json_point>;
  const json base = {{"host", "127.0.0.1"}, {"port", closed_port}, {"redis_key", "p"}};

  // Without redis_val: the value is given at run time.
  const auto no_val = base.get<PointSet::config>();
  CHECK(no_val.redis_key == "p");
  CHECK_FALSE(no_val.redis_val);
  CHECK(base.get<redis_tasks::RedisGet<json_point>::config>().redis_key == "p");

  // With redis_val: read as the storage type (a hash), then value_traits::from_storage.
  json with_val = base;
  with_val["redis_val"] = {{"x", 1.5}, {"y", -2}};
  const auto loaded = with_val.get<PointSet::config>();
  REQUIRE(loaded.redis_val);
  CHECK(loaded.redis_val->x == 1.5);
  CHECK(loaded.redis_val->y == -2);
  with_val["redis_val"] = nullptr;
  CHECK_FALSE(with_val.get<PointSet::config>().redis_val);
  // from_storage's type_error, and JSON of the wrong shape, name the field.
  with_val["redis_val"] = {{"x", 1}};
  CHECK_THROWS_WITH(with_val.get<PointSet::config>(),
                    Contains("config.redis_val") && Contains("a point needs x and y"));
  with_val["redis_val"] = "1,2";
  CHECK_THROWS_WITH(with_val.get<PointSet::config>(), Contains("config.redis_val: does not fit"));

  // value: loads without redis_val; with one, says to give the value at run time.
  using ValueSet = redis_tasks::RedisSet<redis_tasks::value>;
  const auto any = base.get<ValueSet::config>();
  CHECK(any.redis_key == "p");
  CHECK_FALSE(any.redis_val);
  CHECK(base.get<redis_tasks::RedisGet<redis_tasks::value>::config>().redis_key == "p");
  json value_val = base;
  value_val["redis_val"] = "text";
  CHECK_THROWS_AS(value_val.get<ValueSet::config>(), config_error);
  CHECK_THROWS_WITH(value_val.get<ValueSet::config>(),
                    Contains("config.redis_val") && Contains("give redis_val at run time"));

  // A user type whose storage JSON cannot give: the same.
  using HolderSet = redis_tasks::RedisSet<any_holder>;
  CHECK_FALSE(base.get<HolderSet::config>().redis_val);
  json holder_val = base;
  holder_val["redis_val"] = "text";
  CHECK_THROWS_WITH(holder_val.get<HolderSet::config>(),
                    Contains("config.redis_val") && Contains("give redis_val at run time"));

  // The tasks build from such configs (no I/O yet).
  CHECK_NOTHROW(PointSet(loaded));
  CHECK_NOTHROW(ValueSet(any));
}

TEST_CASE("JSON seconds round up to 1 ms, never down to 0 (no limit)") {
  using nlohmann::json;
  using redis_tasks::connection_params;
  auto ms = [](const char* name, double seconds) {
    const auto p = connection_params::from_json(json{{name, seconds}});
    const std::string n = name;
    if (n == "socket_timeout") return p.socket_timeout;
    if (n == "socket_connect_timeout") return p.connect_timeout;
    if (n == "health_check_interval") return p.health_check_interval;
    return p.pool_wait_timeout;
  };
  for (const char* name :
       {"socket_timeout", "socket_connect_timeout", "health_check_interval", "pool_wait_timeout"}) {
    CAPTURE(name);
    CHECK(ms(name, 0.0004) == 1ms);
    CHECK(ms(name, 1e-300) == 1ms);
    CHECK(ms(name, 0.0015) == 2ms);
    CHECK(ms(name, 2.5) == 2500ms);
    CHECK(ms(name, 1e9) == std::chrono::milliseconds(1'000'000'000'000LL));
    CHECK(ms(name, 0) == 0ms);
  }
  CHECK(connection_params::from_json(json{{"keepalive_interval", 0.2}}).keepalive_interval == 1s);
  CHECK(connection_params::from_json(json{{"keepalive_interval", 2.4}}).keepalive_interval == 2s);
  CHECK(connection_params::from_json(json{{"keepalive_interval", 0}}).keepalive_interval == 0s);

  using Get = redis_tasks::RedisGet<std::string>;
  const auto c = json{{"task", {{"retry_delay", 0.0001}, {"timeout", 0.0002}}}}.get<Get::config>();
  CHECK(c.task.retry_delay == 1ms);
  CHECK(c.task.timeout == 1ms);
  const auto z = json{{"task", {{"retry_delay", 0}, {"timeout", 2.5}}}}.get<Get::config>();
  CHECK(z.task.retry_delay == 0ms);
  CHECK(z.task.timeout == 2500ms);
}

TEST_CASE("negative, NaN or huge JSON seconds are config errors naming the field") {
  using nlohmann::json;
  using redis_tasks::connection_params;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const char* name : {"socket_timeout", "socket_connect_timeout", "health_check_interval",
                           "pool_wait_timeout", "keepalive_interval"}) {
    CAPTURE(name);
    for (const json& bad : {json(-1), json(-0.0001), json(nan), json(inf), json(-inf), json(1e10),
                            json(1e300), json(std::numeric_limits<unsigned long long>::max())}) {
      CAPTURE(bad.dump());
      CHECK_THROWS_AS(connection_params::from_json(json{{name, bad}}), config_error);
      CHECK_THROWS_WITH(connection_params::from_json(json{{name, bad}}),
                        Contains("`" + std::string(name) + "` must be a number of seconds"));
    }
  }
  CHECK_THROWS_WITH(connection_params::from_json(json{{"socket_timeout", nan}}), Contains("NaN"));
  CHECK_THROWS_WITH(connection_params::from_json(json{{"socket_timeout", -2}}), Contains("got -2"));

  using Get = redis_tasks::RedisGet<std::string>;
  for (const char* name : {"retry_delay", "timeout"}) {
    CAPTURE(name);
    for (const json& bad : {json(-1), json(nan), json(inf), json(1e10), json(1e300)}) {
      CAPTURE(bad.dump());
      CHECK_THROWS_WITH(
          (json{{"task", {{name, bad}}}}.get<Get::config>()),
          Contains("config.task." + std::string(name) + ": must be a number of seconds"));
    }
  }
}

TEST_CASE("out-of-range port, db and counts in JSON are config errors, never truncated") {
  using nlohmann::json;
  using Get = redis_tasks::RedisGet<std::string>;
  auto load = [](const json& j) { return j.get<Get::config>(); };
  CHECK(load(json{{"port", 1}}).port == 1);
  CHECK(load(json{{"port", 65535}}).port == 65535);
  CHECK(load(json{{"db", 0}}).db == 0);
  CHECK(load(json{{"db", std::numeric_limits<int>::max()}}).db == std::numeric_limits<int>::max());
  for (const json& bad : {json(0), json(-1), json(65536), json(4294973295LL),
                          json(std::numeric_limits<unsigned long long>::max())}) {
    CAPTURE(bad.dump());
    CHECK_THROWS_WITH(load(json{{"port", bad}}),
                      Contains("config.port: must be a whole number from 1 to 65535"));
  }
  CHECK_THROWS_WITH(load(json{{"port", 70000}}), Contains("got 70000"));
  CHECK_THROWS_WITH(load(json{{"port", 6379.5}}), Contains("config.port: must be a whole number"));
  for (const json& bad : {json(-1), json(2147483648LL), json(4294967296LL),
                          json(std::numeric_limits<unsigned long long>::max())}) {
    CAPTURE(bad.dump());
    CHECK_THROWS_WITH(load(json{{"db", bad}}),
                      Contains("config.db: must be a whole number from 0 to 2147483647"));
  }
  CHECK_THROWS_WITH(load(json{{"task", {{"max_retries", 4294967297LL}}}}),
                    Contains("config.task.max_retries: must be a whole number"));
  CHECK_THROWS_WITH(load(json{{"task", {{"max_retries", -1}}}}),
                    Contains("config.task.max_retries"));
  using Set = redis_tasks::RedisSet<std::string>;
  CHECK_THROWS_WITH(
      (json{{"ex", std::numeric_limits<unsigned long long>::max()}}.get<Set::config>()),
      Contains("config.ex: must be a whole number"));
  CHECK(json{{"ex", 10}, {"px", nullptr}}.get<Set::config>().ex == 10s);
  using redis_tasks::connection_params;
  CHECK_THROWS_WITH(connection_params::from_json(json{{"max_connections", 100001}}),
                    Contains("`max_connections` must be a whole number from 1 to 100000"));
  CHECK_THROWS_WITH(connection_params::from_json(
                        json{{"max_redirects", std::numeric_limits<unsigned long long>::max()}}),
                    Contains("`max_redirects` must be a whole number from 0 to 100"));
}

TEST_CASE("the unknown-parameter error lists every accepted connection parameter") {
  using nlohmann::json;
  using redis_tasks::connection_params;
  std::string message;
  try {
    connection_params::from_json(json{{"no_such_parameter", 1}});
  } catch (const config_error& e) {
    message = e.what();
  }
  REQUIRE_THAT(message, Contains("unknown parameter `no_such_parameter`"));
  const std::string list = message.substr(message.find("accepted: ") + 10);
  // Each listed name is accepted (the values are the right type for each).
  const std::map<std::string, json> sample = {
      {"socket_timeout", 1},
      {"socket_connect_timeout", 1},
      {"socket_keepalive", true},
      {"username", "u"},
      {"client_name", "c"},
      {"unix_socket_path", "/tmp/s"},
      {"health_check_interval", 1},
      {"max_connections", 2},
      {"pool_wait_timeout", 1},
      {"keepalive_interval", 1},
      {"shared_pool", true},
      {"ssl", false},
      {"ssl_ca_certs", "ca.pem"},
      {"ssl_ca_path", "/etc/ssl"},
      {"ssl_certfile", "c.pem"},
      {"ssl_keyfile", "k.pem"},
      {"ssl_cert_reqs", "none"},
      {"ssl_check_hostname", false},
      {"ssl_server_hostname", "h"},
      {"cluster", false},
      {"cluster_nodes", json::array({"h:1"})},
      {"max_redirects", 3},
      {"sentinels", json::array({"h:26379"})},
      {"sentinel_master", "m"},
      {"service_name", "m"},
      {"sentinel_password_secret", "S"},
      {"sentinel_username", "su"},
      {"multiplex", true},
      {"multiplex_connections", 4},
      {"multiplex_max_in_flight", 100},
      {"multiplex_max_bytes_in_flight", 1 << 20},
  };
  std::vector<std::string> listed;
  for (std::size_t start = 0; start <= list.size();) {
    const auto comma = list.find(", ", start);
    listed.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  CHECK(listed.size() == sample.size());
  for (const auto& name : listed) {
    CAPTURE(name);
    REQUIRE(sample.count(name) == 1);
    CHECK_NOTHROW(connection_params::from_json(json{{name, sample.at(name)}}));
  }
  CHECK(connection_params::from_json(json{{"service_name", "mymaster"}}).sentinel.master_name ==
        "mymaster");
}

TEST_CASE("a config with a connection handle may not set connection fields of its own") {
  auto handle = redis_tasks::connection_handle::make({});
  redis_tasks::RedisSet<std::string>::config c;
  c.connection = handle;
  CHECK_NOTHROW(redis_tasks::RedisSet<std::string>(c));
  c.db = 5;  // would be ignored: the handle's db 0 is used
  CHECK_THAT(test_support::thrown<redis_tasks::config_error>(
                 [&] { redis_tasks::RedisSet<std::string> t(c); }),
             Catch::Matchers::Contains("sets db") &&
                 Catch::Matchers::Contains("connection_handle::settings"));
  redis_tasks::RedisGet<std::string>::config g;
  g.connection = handle;
  g.redis_connection_params.pool_size = 2;
  CHECK_THROWS_AS(redis_tasks::RedisGet<std::string>(g), redis_tasks::config_error);
}

namespace {

// Runs `run` on a task that was moved from: a config_error naming the class, never a crash.
template <class Task, class Run>
void check_moved_from(const char* kind, Task task, Run run) {
  Task moved_to(std::move(task));
  CHECK_THROWS_MATCHES(
      run(task), config_error,
      Catch::Matchers::Message(std::string(kind) + ": this task was moved from and has no "
                                                   "settings left; run the task it was moved "
                                                   "to, or build a new one"));
  (void)moved_to;
}

template <class Task>
typename Task::config unreachable(const char* key) {
  typename Task::config c;
  c.port = 1;  // never dialled: the check comes first
  c.redis_key = key;
  return c;
}

}  // namespace

TEST_CASE("every task moved from throws config_error when run, before any I/O") {
  using namespace redis_tasks;
  auto set = unreachable<RedisSet<std::string>>("k");
  set.redis_val = "v";
  check_moved_from("RedisSet", RedisSet<std::string>(set), [](auto& t) { t.run(); });
  check_moved_from("RedisSet", RedisSet<std::string>(set), [](auto& t) { t.run_many({{}}); });
  check_moved_from("RedisGet", RedisGet<std::string>(unreachable<RedisGet<std::string>>("k")),
                   [](auto& t) { t.run(); });
  RedisExecute<std::string>::config exec;
  exec.port = 1;
  exec.redis_cmd = command("PING");
  check_moved_from("RedisExecute", RedisExecute<std::string>(exec), [](auto& t) { t.run(); });
  check_moved_from("RedisLock", RedisLock(unreachable<RedisLock>("k")), [](auto& t) { t.run(); });
  auto sem = unreachable<RedisSemaphore>("k");
  sem.limit = 2;
  check_moved_from("RedisSemaphore", RedisSemaphore(sem), [](auto& t) { t.run(); });
  auto rate = unreachable<RedisRateLimit>("k");
  rate.rate = 10;
  check_moved_from("RedisRateLimit", RedisRateLimit(rate), [](auto& t) { t.run(); });
  RedisPublish<std::string>::config pub;
  pub.port = 1;
  pub.channel = "ch";
  check_moved_from("RedisPublish", RedisPublish<std::string>(pub), [](auto& t) {
    RedisPublish<std::string>::overrides o;
    o.message = "m";
    t.run(o);
  });
  check_moved_from("RedisKeySensor",
                   RedisKeySensor<std::string>(unreachable<RedisKeySensor<std::string>>("k")),
                   [](auto& t) { t.run(); });
  RedisPubSubSensor::config sub;
  sub.port = 1;
  sub.channels = {"ch"};
  check_moved_from("RedisPubSubSensor", RedisPubSubSensor(sub), [](auto& t) { t.run(); });
  auto cache = unreachable<RedisCache<std::string>>("ns");
  cache.no_expiry = true;
  check_moved_from("RedisCache", RedisCache<std::string>(cache),
                   [](auto& t) { t.run([] { return std::string("x"); }); });
  check_moved_from("RedisStreamAdd",
                   RedisStreamAdd<std::string>(unreachable<RedisStreamAdd<std::string>>("s")),
                   [](auto& t) {
                     RedisStreamAdd<std::string>::overrides o;
                     o.redis_val = "v";
                     t.run(o);
                   });
  auto consumer = unreachable<RedisStreamConsumer<std::string>>("s");
  consumer.group = "g";
  check_moved_from("RedisStreamConsumer", RedisStreamConsumer<std::string>(consumer),
                   [](auto& t) { t.run(); });
  check_moved_from("RedisStreamConsumer", RedisStreamConsumer<std::string>(consumer),
                   [](auto& t) { t.ack(std::string("1-1")); });
}
