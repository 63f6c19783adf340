// Instantiates every task for every value type in C++17, so that a template that only compiles
// in C++20 fails the build. Runs nothing against a server.
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

}  // namespace

int main() {
  set_and_get<std::string>();
  set_and_get<long long>();
  set_and_get<double>();
  set_and_get<bool>();
  set_and_get<std::vector<std::string>>();
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
