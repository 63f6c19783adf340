// A small workflow: tasks are built once, then each step runs them with runtime overrides.
//   1. fetch "orders" (here: generated), 2. compute a total per customer,
//   3. store each total with RedisSet (expiring in an hour), 4. count the run with RedisExecute,
//   5. read the totals back with RedisGet and report them.
// Usage: workflow [host] [port]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <redis_tasks/redis_tasks.hpp>

namespace {

struct order {
  std::string customer;
  long long cents;
};

std::vector<order> fetch_orders() {
  return {{"ada", 1250}, {"grace", 990}, {"ada", 300}, {"linus", 4200}, {"grace", 10}};
}

std::map<std::string, long long> totals_by_customer(const std::vector<order>& orders) {
  std::map<std::string, long long> totals;
  for (const auto& o : orders) totals[o.customer] += o.cents;
  return totals;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::string host = argc > 1 ? argv[1] : "localhost";
  const int port = argc > 2 ? std::atoi(argv[2]) : 6379;

  try {
    // Built once: connection settings and defaults. Each run supplies what varies.
    redis_tasks::RedisSet<long long> store_total(
        {.host = host, .port = port, .ex = 3600s, .task = {.name = "store-total"}});
    redis_tasks::RedisGet<long long> load_total({.host = host, .port = port});
    redis_tasks::RedisExecute<long long> count_runs(
        {.host = host, .port = port, .redis_cmd = "INCR workflow:runs"});

    const auto totals = totals_by_customer(fetch_orders());
    for (const auto& [customer, cents] : totals) {
      store_total.run({.redis_key = "workflow:total:" + customer, .redis_val = cents});
    }
    const long long run_number = count_runs.run();

    std::cout << "workflow run #" << run_number << "\n";
    for (const auto& entry : totals) {
      const auto stored = load_total.run({.redis_key = "workflow:total:" + entry.first});
      std::cout << "  " << entry.first << ": " << (stored ? *stored : -1) << " cents\n";
    }
  } catch (const redis_tasks::error& e) {
    std::cerr << "workflow failed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
