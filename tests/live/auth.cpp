// Passwords from secret providers: success, wrong password, missing secret, ACL users — and no
// password in any message.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using redis_tasks::MapSecretProvider;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using test_support::fixture;
using test_support::unique_key;

namespace {

template <class Task>
typename Task::config auth_config(std::map<std::string, std::string> secrets,
                                  std::optional<std::string> secret_name = "REDIS_PASSWORD") {
  auto c = test_support::config_for<Task>(fixture("auth").port);
  c.password_secret = std::move(secret_name);
  c.secrets = std::make_shared<MapSecretProvider>(std::move(secrets));
  return c;
}

}  // namespace

TEST_CASE("the password from the secret authenticates") {
  auto sc = auth_config<RedisSet<>>({{"REDIS_PASSWORD", test_support::auth_password}});
  sc.redis_key = unique_key("auth");
  sc.redis_val = "ok";
  CHECK(RedisSet<>(sc).run());
  auto gc = auth_config<RedisGet<>>({{"REDIS_PASSWORD", test_support::auth_password}});
  gc.redis_key = sc.redis_key;
  CHECK(RedisGet<>(gc).run() == "ok");
}

TEST_CASE("an ACL user with its password authenticates") {
  auto gc = auth_config<RedisGet<>>({{"ALICE", test_support::acl_password}}, "ALICE");
  gc.redis_connection_params.username = test_support::acl_user;
  gc.redis_key = unique_key("acl");
  CHECK(RedisGet<>(gc).run() == std::nullopt);
}

TEST_CASE("a wrong password is an auth_error that never shows the password") {
  const std::string wrong = "wrong-password-123";
  auto gc = auth_config<RedisGet<>>({{"REDIS_PASSWORD", wrong}});
  gc.redis_key = "k";
  try {
    RedisGet<>(gc).run();
    FAIL("expected auth_error");
  } catch (const redis_tasks::auth_error& e) {
    const std::string what = e.what();
    CHECK(what.find(wrong) == std::string::npos);
    CHECK(what.find("REDIS_PASSWORD") != std::string::npos);
    CHECK(what.find("127.0.0.1:" + std::to_string(fixture("auth").port)) != std::string::npos);
  }
  auto acl = auth_config<RedisGet<>>({{"P", wrong}}, "P");
  acl.redis_connection_params.username = test_support::acl_user;
  acl.redis_key = "k";
  CHECK_THROWS_AS(RedisGet<>(acl).run(), redis_tasks::auth_error);
}

TEST_CASE("a missing secret means no AUTH, and the auth_error names the secret") {
  auto gc = auth_config<RedisGet<>>({}, "MY_REDIS_SECRET");
  gc.redis_key = "k";
  try {
    RedisGet<>(gc).run();
    FAIL("expected auth_error");
  } catch (const redis_tasks::auth_error& e) {
    CHECK(std::string(e.what()).find("MY_REDIS_SECRET") != std::string::npos);
  }
  // Same with a db to select: the server refuses SELECT before AUTH.
  gc.db = 2;
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::auth_error);
}

TEST_CASE("auth errors are not retried and are not connection errors") {
  auto gc = auth_config<RedisGet<>>({{"REDIS_PASSWORD", "nope"}});
  gc.redis_key = "k";
  gc.task.max_retries = 3;
  gc.task.retry_delay = std::chrono::seconds(10);
  std::vector<std::string> attempts;  // each attempt's error type, as the run hook hears it
  gc.task.on_run = [&](const redis_tasks::run_event& e) { attempts.emplace_back(e.error_type); };
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(RedisGet<>(gc).run(), redis_tasks::auth_error);
  CHECK(attempts == std::vector<std::string>{"auth_error"});              // one attempt, no retry
  CHECK(std::chrono::steady_clock::now() - start < gc.task.retry_delay);  // nor a retry's wait
}

TEST_CASE("the default provider reads the environment variable REDIS_PASSWORD") {
  ::setenv("REDIS_TASKS_TEST_AUTH", test_support::auth_password.c_str(), 1);
  auto gc = test_support::config_for<RedisGet<>>(fixture("auth").port);
  gc.password_secret = "REDIS_TASKS_TEST_AUTH";
  gc.redis_key = unique_key("env");
  CHECK(RedisGet<>(gc).run() == std::nullopt);
}

TEST_CASE("a password for a server without one is an auth_error that says so") {
  auto gc = test_support::config_for<RedisGet<>>(fixture("plain").port);
  gc.password_secret = "REDIS_PASSWORD";
  gc.secrets = std::make_shared<MapSecretProvider>(
      std::map<std::string, std::string>{{"REDIS_PASSWORD", "pw-xyz"}});
  gc.redis_key = "k";
  try {
    RedisGet<>(gc).run();
    FAIL("expected auth_error");
  } catch (const redis_tasks::auth_error& e) {
    const std::string what = e.what();
    CHECK(what.find("no password set") != std::string::npos);
    CHECK(what.find("pw-xyz") == std::string::npos);
  }
}
