// Instantiates every task for every value type in C++17, so that a template that only compiles
// in C++20 fails the build. Runs nothing against a server.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <unordered_map>
#include <unordered_set>

#include <redis_tasks/redis_tasks.hpp>

namespace {

template <class T>
void set_and_get() {
  typename redis_tasks::RedisSet<T>::config sc;
  sc.password_secret = std::nullopt;
  redis_tasks::RedisSet<T> set_task(sc);
  typename redis_tasks::RedisGet<T>::config gc;
  redis_tasks::RedisGet<T> get_task(gc);
  // Instantiate run() without calling it.
  bool (redis_tasks::RedisSet<T>::*set_run)(const typename redis_tasks::RedisSet<T>::overrides&)
      const = &redis_tasks::RedisSet<T>::run;
  auto get_run = &redis_tasks::RedisGet<T>::run;
  (void)set_run;
  (void)get_run;
}

template <class T>
void execute() {
  typename redis_tasks::RedisExecute<T>::config c;
  c.redis_cmd = "PING";
  redis_tasks::RedisExecute<T> task(c);
  auto run = &redis_tasks::RedisExecute<T>::run;
  (void)run;
}

// The C++17 way to build tasks and their overrides: chainable setters, no designated
// initializers. Builds the tasks (no I/O happens before run()).
void chained_setters() {
  using namespace std::chrono_literals;
  const std::string key = "greeting";
  redis_tasks::RedisSet<std::string> set_task(redis_tasks::RedisSet<std::string>::config{}
                                                  .with_host("localhost")
                                                  .with_port(6379)
                                                  .with_password_secret(std::nullopt)
                                                  .with_redis_key(key)
                                                  .with_redis_val("hello")
                                                  .with_ex(60s));
  const auto once =
      redis_tasks::RedisSet<std::string>::overrides{}.with_redis_key("other").with_nx(true);
  redis_tasks::RedisGet<std::string> get_task(
      redis_tasks::RedisGet<std::string>::config{}.with_redis_key(key).with_db(0));
  const auto other = redis_tasks::RedisGet<std::string>::overrides{}.with_redis_key("other");
  redis_tasks::RedisExecute<long long> exec(
      redis_tasks::RedisExecute<long long>::config{}.with_redis_cmd({"INCRBY", key, "5"}));
  const auto get = redis_tasks::RedisExecute<>::overrides{}.with_redis_cmd({"GET", key});
  // Brace lists of any length are commands, in C++17 too.
  redis_tasks::RedisExecute<>::overrides two{{"GET", key}};
  const redis_tasks::command one{"PING"};
  (void)set_task;
  (void)once;
  (void)get_task;
  (void)other;
  (void)exec;
  (void)get;
  (void)two;
  (void)one;
}

}  // namespace

int main() {
  chained_setters();
  set_and_get<std::string>();
  set_and_get<long long>();
  set_and_get<double>();
  set_and_get<bool>();
  set_and_get<std::vector<std::string>>();
  set_and_get<std::vector<std::uint8_t>>();
  set_and_get<std::vector<std::byte>>();
  {
    // Set only: RedisGet<std::string_view> is refused at compile time.
    redis_tasks::RedisSet<std::string_view>::config c;
    c.redis_val = std::string_view("viewed");
    redis_tasks::RedisSet<std::string_view> set_view(c);
    (void)set_view;
  }
  set_and_get<std::deque<int>>();
  set_and_get<std::list<double>>();
  set_and_get<std::set<std::string>>();
  set_and_get<std::unordered_set<long>>();
  set_and_get<std::map<std::string, std::string>>();
  set_and_get<std::unordered_map<std::string, double>>();
  set_and_get<redis_tasks::sorted_set<std::string>>();
  set_and_get<nlohmann::json>();
  set_and_get<redis_tasks::value>();
  execute<redis_tasks::reply>();
  execute<long long>();
  execute<double>();
  execute<bool>();
  execute<std::string>();
  execute<std::optional<std::string>>();
  execute<std::vector<std::string>>();
  execute<std::map<std::string, long long>>();
  execute<nlohmann::json>();
  execute<redis_tasks::value>();
  return 0;
}
