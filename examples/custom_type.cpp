// Storing your own type: specialize redis_tasks::value_traits once, and RedisSet<point> and
// RedisGet<point> work like the tasks for built-in types. Here a point is a Redis hash
// {x: ..., y: ...}, so redis-cli (HGETALL example:point) and other clients can read it too.
// Usage: custom_type [host] [port]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include <redis_tasks/redis_tasks.hpp>

struct point {
  double x = 0;
  double y = 0;
};

// The one customization point: what a point is stored as (any type the library stores), and
// the conversions both ways.
template <>
struct redis_tasks::value_traits<point> {
  using storage_type = std::map<std::string, double>;  // a Redis hash, numbers as exact text

  static storage_type to_storage(const point& p) { return {{"x", p.x}, {"y", p.y}}; }

  static point from_storage(const storage_type& fields) {
    const auto x = fields.find("x");
    const auto y = fields.find("y");
    if (x == fields.end() || y == fields.end()) {
      // The key holds a hash, but not one of ours: say so as the library does.
      throw redis_tasks::type_error("a point needs the hash fields x and y");
    }
    return {x->second, y->second};
  }
};

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::string host = argc > 1 ? argv[1] : "localhost";
  const int port = argc > 2 ? std::atoi(argv[2]) : 6379;

  try {
    redis_tasks::RedisSet<point> save(
        {.host = host, .port = port, .redis_key = "example:point", .ex = 60s});
    save.run({.redis_val = point{1.5, -0.1}});  // MULTI, DEL, HSET x 1.5 y -0.1, PEXPIRE, EXEC

    redis_tasks::RedisGet<point> load({.host = host, .port = port, .redis_key = "example:point"});
    const std::optional<point> p = load.run();  // std::nullopt: no such key

    // The same key read as its storage type shows what Redis holds.
    redis_tasks::RedisGet<std::map<std::string, std::string>> raw(
        {.host = host, .port = port, .redis_key = "example:point"});
    const auto fields = raw.run().value_or(std::map<std::string, std::string>{});

    if (p) std::cout << "point: (" << p->x << ", " << p->y << ")\n";
    std::cout << "stored as a hash:";
    for (const auto& [field, text] : fields)
      std::cout << " " << field << "=" << text;
    std::cout << "\n";
  } catch (const redis_tasks::error& e) {
    std::cerr << "redis_tasks error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
