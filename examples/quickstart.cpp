// Quick start: store a value with RedisSet, read it back with RedisGet, count with RedisExecute.
// Usage: quickstart [host] [port]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include <redis_tasks/redis_tasks.hpp>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::string host = argc > 1 ? argv[1] : "localhost";
  const int port = argc > 2 ? std::atoi(argv[2]) : 6379;

  try {
    redis_tasks::RedisSet<std::string> set_task(
        {.host = host, .port = port, .redis_key = "greeting", .redis_val = "hello", .ex = 60s});
    const bool stored = set_task.run();                                   // values from the config
    const bool again = set_task.run({.redis_key = "other", .nx = true});  // runtime overrides

    redis_tasks::RedisGet<std::string> get_task(
        {.host = host, .port = port, .redis_key = "greeting"});
    const std::optional<std::string> greeting = get_task.run();  // std::nullopt: no such key

    redis_tasks::RedisExecute<long long> incr(
        {.host = host, .port = port, .redis_cmd = "INCRBY visits 5"});
    const long long visits = incr.run();

    std::cout << "stored: " << stored << ", stored other: " << again << "\n"
              << "greeting: " << greeting.value_or("(none)") << "\n"
              << "visits: " << visits << "\n";
  } catch (const redis_tasks::error& e) {
    std::cerr << "redis_tasks error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
