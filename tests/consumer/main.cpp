// A user's program (C++17 or later): sets and reads back a key on the server at argv[1], and
// says which standard and whether TLS it was built with, for run-consumer-test to check.
#include <cstdlib>
#include <iostream>
#include <string>

#include <redis_tasks/redis_tasks.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: consumer PORT KEY\n";
    return 2;
  }
  redis_tasks::RedisSet<std::string>::config set_cfg;
  set_cfg.host = "127.0.0.1";
  set_cfg.port = std::atoi(argv[1]);
  set_cfg.password_secret = std::nullopt;
  set_cfg.redis_key = argv[2];
  set_cfg.redis_val = "from-consumer";
  redis_tasks::RedisSet<std::string> set_task(set_cfg);

  redis_tasks::RedisGet<std::string>::config get_cfg;
  get_cfg.host = set_cfg.host;
  get_cfg.port = set_cfg.port;
  get_cfg.password_secret = std::nullopt;
  get_cfg.redis_key = set_cfg.redis_key;
  redis_tasks::RedisGet<std::string> get_task(get_cfg);

  if (!set_task.run()) return 1;
  const auto v = get_task.run();
  std::cout << "redis_tasks " << redis_tasks::version.major << "." << redis_tasks::version.minor
            << " C++ " << __cplusplus << " TLS " << (redis_tasks::tls_supported ? "on" : "off")
            << " read back: " << v.value_or("(nothing)") << "\n";
  return v == std::string("from-consumer") ? 0 : 1;
}
