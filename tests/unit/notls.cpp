// A build without TLS (REDIS_TASKS_TLS 0, set for this target alone): no OpenSSL header is
// included, and every way of asking for TLS is a config_error when the task is built.
#include <redis_tasks/redis_tasks.hpp>
#include "catch.hpp"
#include "thrown.hpp"

#if defined(OPENSSL_SSL_H) || defined(HEADER_SSL_H) || defined(OPENSSL_CRYPTO_H)
#error "an OpenSSL header was included in a build without TLS"
#endif

static_assert(!redis_tasks::tls_supported);

using Catch::Matchers::Contains;
using redis_tasks::config_error;
using redis_tasks::RedisGet;

// What the error must say: what was left out, and how to get it. (A macro: Catch2 2's combined
// matchers point at their parts, so a function could not return one.)
#define SAYS_TLS_LEFT_OUT \
  Contains("leaves TLS out") && Contains("REDIS_TASKS_TLS") && Contains("OpenSSL")

TEST_CASE("TLS settings are a config_error in a build without TLS") {
  SECTION("tls_params.enabled") {
    RedisGet<>::config c;
    c.host = "cache.internal";
    c.redis_key = "k";
    c.redis_connection_params.tls.enabled = true;
    CHECK_THAT(test_support::thrown<config_error>([&] { RedisGet<> t(c); }),
               SAYS_TLS_LEFT_OUT && Contains("cache.internal:6379"));
  }
  SECTION("a rediss:// URL in a JSON config") {
    const auto c = nlohmann::json{{"url", "rediss://cache.internal:6390"}, {"redis_key", "k"}}
                       .get<RedisGet<>::config>();
    CHECK_THAT(test_support::thrown<config_error>([&] { RedisGet<> t(c); }),
               SAYS_TLS_LEFT_OUT && Contains("cache.internal:6390"));
  }
  SECTION("ssl and ssl_ca_path in redis_connection_params") {
    RedisGet<>::config c;
    c.redis_key = "k";
    c.redis_connection_params = redis_tasks::connection_params::from_json(
        nlohmann::json{{"ssl", true}, {"ssl_ca_path", "/etc/redis/cas"}});
    CHECK_THAT(test_support::thrown<config_error>([&] { RedisGet<> t(c); }), SAYS_TLS_LEFT_OUT);
  }
  SECTION("a connection_handle") {
    redis_tasks::connection_handle::settings s;
    s.redis_connection_params.tls.enabled = true;
    CHECK_THAT(test_support::thrown<config_error>([&] { redis_tasks::connection_handle::make(s); }),
               SAYS_TLS_LEFT_OUT);
  }
}

TEST_CASE("Without TLS, plain settings still make tasks") {
  RedisGet<>::config c;
  c.redis_key = "k";
  c.redis_connection_params.tls.ca_certs = "/unused/when/tls/is/off.crt";
  CHECK_NOTHROW(RedisGet<>(c));
}
