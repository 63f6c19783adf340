// TLS: all three tasks over TLS and mutual TLS against TLS-only servers, and a clear
// connection_error, within the connect timeout, for every way it can go wrong.
#include <chrono>
#include <string>

#include "catch.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;

namespace {

using test_support::certs;

std::vector<std::string> tls_server_args(const std::string& cert, bool want_client_cert) {
  const std::string d = certs();
  return {"--tls-cert-file",       d + "/" + cert + ".crt",        "--tls-key-file",
          d + "/" + cert + ".key", "--tls-ca-cert-file",           d + "/ca.crt",
          "--tls-auth-clients",    want_client_cert ? "yes" : "no"};
}

redis_tasks::tls_params trusting_ca() {
  redis_tasks::tls_params t;
  t.enabled = true;
  t.ca_certs = certs() + "/ca.crt";
  return t;
}

template <class Task>
typename Task::config tls_config(int port, redis_tasks::tls_params t,
                                 const char* host = "localhost") {
  auto c = test_support::config_for<Task>(port);
  c.host = host;
  c.redis_connection_params.tls = std::move(t);
  c.redis_connection_params.connect_timeout = 2000ms;
  return c;
}

// Runs a RedisGet and returns the connection_error text (fails the test if none is thrown).
std::string connect_failure(int port, redis_tasks::tls_params t, const char* host = "localhost",
                            std::chrono::milliseconds connect_timeout = 2000ms) {
  auto c = tls_config<RedisGet<>>(port, std::move(t), host);
  c.redis_connection_params.connect_timeout = connect_timeout;
  c.redis_key = "k";
  const auto start = std::chrono::steady_clock::now();
  try {
    RedisGet<>(c).run();
  } catch (const redis_tasks::connection_error& e) {
    CHECK(std::chrono::steady_clock::now() - start < connect_timeout + 1s);
    const std::string what = e.what();
    CHECK_THAT(what, Contains(":" + std::to_string(port)));
    return what;
  }
  FAIL("expected a connection_error");
  return {};
}

}  // namespace

TEST_CASE("all three tasks run over TLS") {
  test_support::redis_process server(tls_server_args("server", false), true);
  const std::string key = test_support::unique_key("tls");
  auto sc = tls_config<RedisSet<>>(server.port(), trusting_ca());
  sc.redis_key = key;
  sc.redis_val = std::string("over\0tls", 8);
  CHECK(RedisSet<>(sc).run());
  auto gc = tls_config<RedisGet<>>(server.port(), trusting_ca());
  gc.redis_key = key;
  CHECK(RedisGet<>(gc).run() == std::string("over\0tls", 8));
  auto ec = tls_config<RedisExecute<long long>>(server.port(), trusting_ca());
  ec.redis_cmd = redis_tasks::command{std::vector<std::string>{"STRLEN", key}};
  CHECK(RedisExecute<long long>(ec).run() == 8);

  // A 1 MiB value crosses many TLS records both ways.
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 7)
    big[i] = static_cast<char>(i % 251);
  CHECK(RedisSet<>(sc).run({.redis_val = big}));
  CHECK(RedisGet<>(gc).run() == big);

  // Connecting by IP checks the certificate's IP address entry.
  auto by_ip = tls_config<RedisGet<>>(server.port(), trusting_ca(), "127.0.0.1");
  by_ip.redis_key = key;
  CHECK(RedisGet<>(by_ip).run() == big);
}

TEST_CASE("ssl_ca_path trusts a folder of hashed CA certificates") {
  test_support::redis_process server(tls_server_args("server", false), true);
  redis_tasks::tls_params t;
  t.enabled = true;
  t.ca_path = certs() + "/ca-path";  // ca.crt and its <hash>.0 link, by make-test-certs
  const std::string key = test_support::unique_key("tls-ca-path");
  auto sc = tls_config<RedisSet<>>(server.port(), t);
  sc.redis_key = key;
  sc.redis_val = "hashed";
  CHECK(RedisSet<>(sc).run());
  auto gc = tls_config<RedisGet<>>(server.port(), t);
  gc.redis_key = key;
  CHECK(RedisGet<>(gc).run() == "hashed");

  SECTION("with ssl_ca_certs too, either one may hold the CA") {
    auto both = t;
    both.ca_certs = certs() + "/other-ca.crt";
    auto c = tls_config<RedisGet<>>(server.port(), both, "127.0.0.1");
    c.redis_key = key;
    CHECK(RedisGet<>(c).run() == "hashed");
  }
  SECTION("a certificate from a CA not in the folder: the hint names ssl_ca_path") {
    test_support::redis_process untrusted(tls_server_args("untrusted", false), true);
    const std::string what = connect_failure(untrusted.port(), t);
    CHECK_THAT(what, Contains("not signed by a trusted CA") &&
                         Contains("ssl_ca_path '" + t.ca_path) && Contains("openssl rehash"));
    CHECK_THAT(what, !Contains("ssl_ca_certs"));
  }
  SECTION("a missing folder is a config_error when the task is built") {
    auto missing = t;
    missing.ca_path = certs() + "/no-such-folder";
    CHECK_THAT(test_support::thrown<redis_tasks::config_error>(
                   [&] { RedisGet<>(tls_config<RedisGet<>>(server.port(), missing)); }),
               Contains("ssl_ca_path '" + missing.ca_path + "' cannot be read") &&
                   Contains("No such file"));
  }
  SECTION("a file is not a folder") {
    auto file = t;
    file.ca_path = certs() + "/ca.crt";
    CHECK_THAT(
        test_support::thrown<redis_tasks::config_error>(
            [&] { RedisGet<>(tls_config<RedisGet<>>(server.port(), file)); }),
        Contains("ssl_ca_path '" + file.ca_path + "' is not a folder") && Contains("ssl_ca_certs"));
  }
}

TEST_CASE("mutual TLS with a client certificate") {
  test_support::redis_process server(tls_server_args("server", true), true);
  auto t = trusting_ca();
  t.certfile = certs() + "/client.crt";
  t.keyfile = certs() + "/client.key";
  auto sc = tls_config<RedisSet<>>(server.port(), t);
  sc.redis_key = test_support::unique_key("mtls");
  sc.redis_val = "mutual";
  CHECK(RedisSet<>(sc).run());
  auto gc = tls_config<RedisGet<>>(server.port(), t);
  gc.redis_key = sc.redis_key;
  CHECK(RedisGet<>(gc).run() == "mutual");

  // Without a client certificate the server refuses, and the error says why.
  const std::string what = connect_failure(server.port(), trusting_ca());
  CHECK_THAT(what, Contains("client certificate"));
}

TEST_CASE("verification failures name their cause") {
  test_support::redis_process good(tls_server_args("server", false), true);
  test_support::redis_process untrusted(tls_server_args("untrusted", false), true);
  test_support::redis_process expired(tls_server_args("expired", false), true);
  test_support::redis_process selfsigned(tls_server_args("selfsigned", false), true);

  SECTION("a certificate from an unknown CA") {
    CHECK_THAT(connect_failure(untrusted.port(), trusting_ca()),
               Contains("certificate verify failed") && Contains("trusted CA") &&
                   Contains("ssl_ca_certs '" + certs() + "/ca.crt'"));
  }
  SECTION("a self-signed certificate") {
    CHECK_THAT(connect_failure(selfsigned.port(), trusting_ca()),
               Contains("certificate verify failed") && Contains("not signed by a trusted CA"));
  }
  SECTION("the wrong CA trusted") {
    auto t = trusting_ca();
    t.ca_certs = certs() + "/other-ca.crt";
    CHECK_THAT(connect_failure(good.port(), t), Contains("not signed by a trusted CA"));
  }
  SECTION("a certificate for another host name") {
    auto t = trusting_ca();
    t.server_hostname = "db.example.com";
    CHECK_THAT(connect_failure(good.port(), t),
               Contains("not for 'db.example.com'") && Contains("ssl_server_hostname"));
  }
  SECTION("by IP, ssl_server_hostname is the name checked") {
    auto t = trusting_ca();
    t.server_hostname = "localhost";
    REQUIRE(t.check_hostname);
    auto c = tls_config<RedisGet<>>(good.port(), t, "127.0.0.1");
    c.redis_key = "k";
    CHECK(RedisGet<>(c).run() == std::nullopt);
    // The certificate holds 127.0.0.1 too, so only the name can make this fail.
    t.server_hostname = "db.example.com";
    CHECK_THAT(connect_failure(good.port(), t, "127.0.0.1"),
               Contains("certificate verify failed") && Contains("not for 'db.example.com'") &&
                   Contains("ssl_server_hostname"));
  }
  SECTION("an expired certificate") {
    CHECK_THAT(connect_failure(expired.port(), trusting_ca()), Contains("expired"));
  }
  SECTION("ssl_cert_reqs optional checks the certificate as required does") {
    // README: `optional` is the same as `required` for a client (a server always presents a
    // certificate), so a trusted one passes and every bad one fails the same way.
    auto t = trusting_ca();
    t.cert_reqs = redis_tasks::tls_verify::optional;
    auto c = tls_config<RedisGet<>>(good.port(), t);
    c.redis_key = "k";
    CHECK(RedisGet<>(c).run() == std::nullopt);
    CHECK_THAT(connect_failure(untrusted.port(), t), Contains("not signed by a trusted CA"));
    CHECK_THAT(connect_failure(selfsigned.port(), t), Contains("not signed by a trusted CA"));
    CHECK_THAT(connect_failure(expired.port(), t), Contains("expired"));
    t.server_hostname = "db.example.com";
    CHECK_THAT(connect_failure(good.port(), t), Contains("not for 'db.example.com'"));
  }
  SECTION("ssl_cert_reqs none accepts any server certificate") {
    redis_tasks::tls_params t;
    t.enabled = true;
    t.cert_reqs = redis_tasks::tls_verify::none;
    for (int port : {untrusted.port(), expired.port(), selfsigned.port()}) {
      auto c = tls_config<RedisGet<>>(port, t);
      c.redis_key = "k";
      CHECK(RedisGet<>(c).run() == std::nullopt);
    }
  }
  SECTION("ssl_check_hostname off accepts a certificate for another name") {
    auto t = trusting_ca();
    t.server_hostname = "db.example.com";
    t.check_hostname = false;
    auto c = tls_config<RedisGet<>>(good.port(), t);
    c.redis_key = "k";
    CHECK(RedisGet<>(c).run() == std::nullopt);
  }
}

TEST_CASE("plain text and TLS do not mix, and the error says so") {
  test_support::redis_process plain;
  test_support::redis_process tls_only(tls_server_args("server", false), true);

  SECTION("a TLS client on a plain-text port") {
    const std::string what = connect_failure(plain.port(), trusting_ca(), "localhost", 1000ms);
    CHECK_THAT(what, Contains("TLS"));
  }
  SECTION("a plain client on a TLS port") {
    auto c = test_support::config_for<RedisGet<>>(tls_only.port());
    c.redis_key = "k";
    c.redis_connection_params.connect_timeout = 1000ms;
    c.redis_connection_params.socket_timeout = 1000ms;
    try {
      RedisGet<>(c).run();
      FAIL("expected connection_error");
    } catch (const redis_tasks::connection_error& e) {
      CHECK_THAT(e.what(), Contains("ssl on") || Contains("TLS"));
    }
  }
}

TEST_CASE("unreadable TLS files are config errors when the task is built") {
  auto t = trusting_ca();
  t.ca_certs = "/nonexistent/ca.crt";
  CHECK_THROWS_AS(RedisGet<>(tls_config<RedisGet<>>(1, t)), redis_tasks::config_error);
  auto half = trusting_ca();
  half.certfile = certs() + "/client.crt";
  CHECK_THROWS_WITH(RedisGet<>(tls_config<RedisGet<>>(1, half)), Contains("both ssl_certfile"));
  auto mismatched = trusting_ca();
  mismatched.certfile = certs() + "/client.crt";
  mismatched.keyfile = certs() + "/server.key";
  CHECK_THROWS_AS(RedisGet<>(tls_config<RedisGet<>>(1, mismatched)), redis_tasks::config_error);
}

TEST_CASE("TLS settings load from redis-py names") {
  const auto p = redis_tasks::connection_params::from_json(
      nlohmann::json{{"ssl", true},
                     {"ssl_ca_certs", "/a/ca.crt"},
                     {"ssl_ca_path", "/a/cas"},
                     {"ssl_certfile", "/a/c.crt"},
                     {"ssl_keyfile", "/a/c.key"},
                     {"ssl_cert_reqs", "none"},
                     {"ssl_check_hostname", false},
                     {"ssl_server_hostname", "redis.internal"}});
  CHECK(p.tls.enabled);
  CHECK(p.tls.ca_certs == "/a/ca.crt");
  CHECK(p.tls.ca_path == "/a/cas");
  CHECK(p.tls.certfile == "/a/c.crt");
  CHECK(p.tls.keyfile == "/a/c.key");
  CHECK(p.tls.cert_reqs == redis_tasks::tls_verify::none);
  CHECK_FALSE(p.tls.check_hostname);
  CHECK(p.tls.server_hostname == "redis.internal");
  CHECK(redis_tasks::connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", "optional"}})
            .tls.cert_reqs == redis_tasks::tls_verify::optional);
  CHECK_THROWS_AS(
      redis_tasks::connection_params::from_json(nlohmann::json{{"ssl_cert_reqs", "maybe"}}),
      redis_tasks::config_error);
}

TEST_CASE("a rediss:// URL turns TLS on") {
  test_support::redis_process server(tls_server_args("server", false), true);
  redis_tasks::RedisExecute<std::string>::config c;
  redis_tasks::apply_url(c, "rediss://localhost:" + std::to_string(server.port()) +
                                "/0?ssl_ca_certs=" + certs() + "/ca.crt");
  c.password_secret = std::nullopt;
  c.redis_cmd = "PING";
  CHECK(redis_tasks::RedisExecute<std::string>(c).run() == "PONG");
}

TEST_CASE("a rediss:// URL turns verification off only with ssl_cert_reqs=none, spelled out") {
  test_support::redis_process untrusted(tls_server_args("untrusted", false), true);
  const std::string base = "rediss://localhost:" + std::to_string(untrusted.port()) + "/0";
  auto config = [](const std::string& url) {
    RedisGet<>::config c;
    redis_tasks::apply_url(c, url);
    c.password_secret = std::nullopt;
    c.redis_key = "k";
    c.redis_connection_params.connect_timeout = 2000ms;
    return c;
  };
  // `none` reaches the connection as a word (the URL's other options read it as null).
  CHECK(RedisGet<>(config(base + "?ssl_cert_reqs=none")).run() == std::nullopt);
  // An empty value is refused before any I/O, rather than dropping verification.
  CHECK_THROWS_WITH(config(base + "?ssl_cert_reqs="),
                    Contains("\"required\", \"optional\" or \"none\""));
  // `optional` verifies: the untrusted certificate is refused.
  CHECK_THROWS_AS(RedisGet<>(config(base + "?ssl_cert_reqs=optional")).run(),
                  redis_tasks::connection_error);
}
