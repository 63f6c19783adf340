// A user's file that includes only <redis_tasks/tasks.hpp> and stores no JSON: in compiled mode
// it must not parse the whole of nlohmann/json (run-consumer-test checks the headers it opens).
// Sets a key on the server at argv[1], reads it back with RedisGet and RedisExecute, and says
// which standard and whether TLS it was built with, as main.cpp does.
#include <cstdlib>
#include <iostream>
#include <string>

#include <redis_tasks/tasks.hpp>

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
  set_cfg.redis_val = "from-lean-consumer";
  const redis_tasks::RedisSet<std::string> set_task(set_cfg);

  redis_tasks::RedisGet<std::string>::config get_cfg;
  get_cfg.host = set_cfg.host;
  get_cfg.port = set_cfg.port;
  get_cfg.password_secret = std::nullopt;
  get_cfg.redis_key = set_cfg.redis_key;
  const redis_tasks::RedisGet<std::string> get_task(get_cfg);

  redis_tasks::RedisExecute<long long>::config strlen_cfg;
  strlen_cfg.host = set_cfg.host;
  strlen_cfg.port = set_cfg.port;
  strlen_cfg.password_secret = std::nullopt;
  strlen_cfg.redis_cmd = redis_tasks::command({"STRLEN", argv[2]});
  const redis_tasks::RedisExecute<long long> strlen_task(strlen_cfg);

  if (!set_task.run()) return 1;
  const auto v = get_task.run();
  const long long length = strlen_task.run();
  std::cout << "redis_tasks " << redis_tasks::version.major << "." << redis_tasks::version.minor
            << " C++ " << __cplusplus << " TLS " << (redis_tasks::tls_supported ? "on" : "off")
            << " read back: " << v.value_or("(nothing)") << " (" << length << " bytes)\n";
  return v == std::string("from-lean-consumer") && length == static_cast<long long>(v->size()) ? 0
                                                                                               : 1;
}
