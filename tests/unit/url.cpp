// Redis URLs into task configs.
#include <redis_tasks/redis_tasks.hpp>
#include <redis_tasks/detail/address.hpp>  // parse_redirect, split_host_port: internals under test
#include "catch.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::config_error;
using redis_tasks::parse_redis_url;

TEST_CASE("redis:// gives host, port, db and user") {
  const auto u = parse_redis_url("redis://alice@cache.internal:6380/4");
  CHECK(u.host == "cache.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 4);
  CHECK(u.params.username == "alice");
  CHECK_FALSE(u.password);
  CHECK_FALSE(u.params.tls.enabled);
  const auto d = parse_redis_url("redis://");
  CHECK(d.host == "localhost");
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
}

TEST_CASE("rediss:// turns TLS on, and options use redis-py names") {
  const auto u = parse_redis_url(
      "rediss://:p%40ss@[::1]:6390?ssl_cert_reqs=none&socket_timeout=2.5&client_name=etl&db=2");
  CHECK(u.params.tls.enabled);
  CHECK(u.params.tls.cert_reqs == redis_tasks::tls_verify::none);
  CHECK(u.host == "::1");
  CHECK(u.port == 6390);
  CHECK(u.db == 2);
  CHECK(u.password == "p@ss");
  CHECK(u.params.socket_timeout == 2500ms);
  CHECK(u.params.client_name == "etl");
}

TEST_CASE("unix:// names a socket") {
  const auto u = parse_redis_url("unix:///run/redis/redis.sock?db=3");
  CHECK(u.params.unix_socket == "/run/redis/redis.sock");
  CHECK(u.db == 3);
}

TEST_CASE("bad URLs are config errors that never show the password") {
  CHECK_THROWS_AS(parse_redis_url("http://host"), config_error);
  CHECK_THROWS_AS(parse_redis_url("localhost:6379"), config_error);
  CHECK_THROWS_AS(parse_redis_url("redis://host:port"), config_error);
  CHECK_THROWS_AS(parse_redis_url("redis://host/x"), config_error);
  CHECK_THROWS_AS(parse_redis_url("redis://host?bogus=1"), config_error);
  CHECK_THROWS_AS(parse_redis_url("unix://host/path"), config_error);
  try {
    parse_redis_url("redis://u:hunter2@host:notaport");
    FAIL("expected config_error");
  } catch (const config_error& e) {
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
  }
}

TEST_CASE("apply_url fills a task config, a password becomes a secret of that config") {
  redis_tasks::RedisGet<>::config c;
  c.redis_connection_params.pool_size = 3;
  redis_tasks::apply_url(c, "redis://:s3cret@db.example:7000/5?socket_connect_timeout=1");
  CHECK(c.host == "db.example");
  CHECK(c.port == 7000);
  CHECK(c.db == 5);
  CHECK(c.redis_connection_params.connect_timeout == 1000ms);
  CHECK(c.redis_connection_params.pool_size == 3);  // kept
  REQUIRE(c.secrets);
  REQUIRE(c.password_secret == "REDIS_PASSWORD");
  CHECK(c.secrets->get("REDIS_PASSWORD") == "s3cret");
}

TEST_CASE("cluster and sentinel URLs") {
  const auto c = parse_redis_url("redis+cluster://a:7000,b:7001,[::1]:7002?max_redirects=3");
  CHECK(c.params.cluster.enabled);
  CHECK(c.host == "a");
  CHECK(c.port == 7000);
  CHECK(c.params.cluster.seeds == std::vector<std::string>{"b:7001", "[::1]:7002"});
  CHECK(c.params.cluster.max_redirects == 3);

  const auto s = parse_redis_url(
      "rediss+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password_secret=SENTINEL_PW");
  CHECK(s.params.tls.enabled);
  CHECK(s.params.sentinel.sentinels == std::vector<std::string>{"s1:26379", "s2:26379"});
  CHECK(s.params.sentinel.master_name == "mymaster");
  CHECK(s.db == 2);
  CHECK(s.password == "pw");
  CHECK(s.params.sentinel.password_secret == "SENTINEL_PW");

  CHECK_THROWS_AS(parse_redis_url("redis+sentinel://s1:26379"), config_error);
  CHECK_THROWS_AS(parse_redis_url("redis://a:1,b:2"), config_error);
  CHECK_THROWS_AS(parse_redis_url("redis+mesh://a"), config_error);
}

TEST_CASE("cluster redirections: a node without a host is on the host that redirected") {
  using redis_tasks::detail::parse_redirect;
  using redis_tasks::detail::split_host_port;
  int slot = -1;
  std::string node;
  CHECK(parse_redirect("MOVED 3999 10.0.0.5:6381", slot, node, "10.0.0.1"));
  CHECK(slot == 3999);
  CHECK(node == "10.0.0.5:6381");
  CHECK(parse_redirect("ASK 1234 :6381", slot, node, "10.0.0.1"));
  CHECK(slot == 1234);
  CHECK(node == "10.0.0.1:6381");
  CHECK(split_host_port(node, "node") == std::pair<std::string, int>{"10.0.0.1", 6381});
  CHECK(parse_redirect("MOVED 7 :6381", slot, node, "::1"));
  CHECK(split_host_port(node, "node") == std::pair<std::string, int>{"::1", 6381});
  // An IPv6 node starts with ':' too, but has its host (it was taken for a host-less one).
  CHECK(parse_redirect("MOVED 8 ::1:6390", slot, node, "10.0.0.1"));
  CHECK(slot == 8);
  CHECK(split_host_port(node, "node") == std::pair<std::string, int>{"::1", 6390});
  CHECK_FALSE(parse_redirect("MOVED x12 a:1", slot, node, "h"));
  CHECK_FALSE(parse_redirect("MOVED 16384 a:1", slot, node, "h"));
  CHECK_FALSE(parse_redirect("MOVED 1", slot, node, "h"));
}

TEST_CASE("ssl_cert_reqs in a URL is taken as written: none turns checks off, empty never does") {
  using redis_tasks::tls_verify;
  CHECK(parse_redis_url("rediss://h?ssl_cert_reqs=none").params.tls.cert_reqs == tls_verify::none);
  CHECK(parse_redis_url("rediss://h?ssl_cert_reqs=optional").params.tls.cert_reqs ==
        tls_verify::optional);
  CHECK(parse_redis_url("rediss://h?ssl_cert_reqs=required").params.tls.cert_reqs ==
        tls_verify::required);
  CHECK(parse_redis_url("rediss://h").params.tls.cert_reqs == tls_verify::required);
  // An empty value, no value, or a word that other options read as null: an error that says
  // what is accepted, never verification off.
  for (const char* url : {"rediss://h?ssl_cert_reqs=", "rediss://h?ssl_cert_reqs",
                          "rediss://h?ssl_cert_reqs=null", "rediss://h?ssl_cert_reqs=None",
                          "rediss://h?ssl_cert_reqs=NONE", "rediss://h?ssl_cert_reqs=0"}) {
    INFO(url);
    CHECK_THROWS_WITH(parse_redis_url(url),
                      Contains("`ssl_cert_reqs` must be \"required\", \"optional\" or \"none\""));
  }
  // ... also over a config that had turned verification off: the URL's bad value is refused,
  // not ignored.
  redis_tasks::connection_params relaxed;
  relaxed.tls.cert_reqs = tls_verify::none;
  CHECK_THROWS_AS(parse_redis_url("rediss://h?ssl_cert_reqs=", relaxed), config_error);
}

TEST_CASE("configs given the same URL password share one secret provider") {
  using Get = redis_tasks::RedisGet<>;
  const std::string url = "redis://:pw1@cache.internal:7000/1";
  // Six tasks configured from one URL: one provider, hence one pool key.
  std::vector<Get::config> six(6);
  for (auto& c : six)
    redis_tasks::apply_url(c, url);
  REQUIRE(six[0].secrets);
  for (const auto& c : six)
    CHECK(c.secrets == six[0].secrets);
  CHECK(six[0].secrets->get("REDIS_PASSWORD") == "pw1");
  redis_tasks::RedisSet<>::config set_cfg;  // another task type, same URL
  redis_tasks::apply_url(set_cfg, url);
  CHECK(set_cfg.secrets == six[0].secrets);

  // Another password, or the same one under another secret name: another provider.
  Get::config other;
  redis_tasks::apply_url(other, "redis://:pw2@cache.internal:7000/1");
  CHECK(other.secrets != six[0].secrets);
  CHECK(other.secrets->get("REDIS_PASSWORD") == "pw2");
  CHECK(six[0].secrets->get("REDIS_PASSWORD") == "pw1");
  Get::config renamed;
  renamed.password_secret = "CACHE_PW";
  redis_tasks::apply_url(renamed, url);
  CHECK(renamed.secrets != six[0].secrets);
  CHECK(renamed.secrets->get("CACHE_PW") == "pw1");
  CHECK_FALSE(renamed.secrets->get("REDIS_PASSWORD"));

  // A config with its own provider: one chain per (URL password, own provider) pair, asking
  // the URL first.
  auto own = std::make_shared<redis_tasks::MapSecretProvider>(
      std::map<std::string, std::string>{{"REDIS_PASSWORD", "own"}, {"X", "x"}});
  auto own2 = std::make_shared<redis_tasks::MapSecretProvider>(
      std::map<std::string, std::string>{{"X", "x"}});
  Get::config c1, c2, c3, c4;
  c1.secrets = own;
  c2.secrets = own;
  c3.secrets = own2;
  c4.secrets = own;
  redis_tasks::apply_url(c1, url);
  redis_tasks::apply_url(c2, url);
  redis_tasks::apply_url(c3, url);
  redis_tasks::apply_url(c4, "redis://:pw2@cache.internal:7000/1");
  CHECK(c1.secrets == c2.secrets);
  CHECK(c1.secrets != own);
  CHECK(c1.secrets != six[0].secrets);
  CHECK(c1.secrets != c3.secrets);
  CHECK(c1.secrets != c4.secrets);
  CHECK(c1.secrets->get("REDIS_PASSWORD") == "pw1");
  CHECK(c1.secrets->get("X") == "x");
  CHECK(c4.secrets->get("REDIS_PASSWORD") == "pw2");

  // The sharing keeps nothing alive: a provider (or chain) goes with the last config that
  // holds it, and the next config from that URL gets a new one.
  Get::config lone;
  redis_tasks::apply_url(lone, "redis://:pw3@cache.internal:7000/1");
  std::weak_ptr<const redis_tasks::SecretProvider> gone = lone.secrets;
  lone.secrets.reset();
  CHECK(gone.expired());
  std::weak_ptr<const redis_tasks::SecretProvider> chain_gone = c1.secrets;
  c1.secrets.reset();
  CHECK_FALSE(chain_gone.expired());  // c2 still holds it
  c2.secrets.reset();
  CHECK(chain_gone.expired());
  Get::config again;
  redis_tasks::apply_url(again, "redis://:pw3@cache.internal:7000/1");
  CHECK(again.secrets->get("REDIS_PASSWORD") == "pw3");
}
