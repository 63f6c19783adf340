// A small workflow, as a C++ app would write one without a workflow engine:
//   0. take the workflow's lock (RedisLock), so that one run at a time goes ahead, and listen
//      to the workflow's events (RedisPubSubSensor),
//   1. fan out: compute a report per region in parallel with std::async,
//   2. store each report with RedisSet (a hash, expiring in an hour) and announce it on the
//      events channel (RedisPublish),
//   3. wait for the four announcements with the sensor, and count the run with RedisExecute,
//   4. collect the reports with RedisKeySensor (which would wait for a report still missing),
//   5. publish the total with a write fenced by the lock's token, then release the lock.
// Tasks are built once, then run with runtime overrides from many threads. A run hook logs
// every Redis call (names and timings only, never values).
// Usage: workflow [host] [port]
#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <redis_tasks/redis_tasks.hpp>

namespace {

using report = std::map<std::string, double>;  // stored as a Redis hash

// Stand-in for real work: some arithmetic per region.
report compute_report(const std::string& region, int seed) {
  double revenue = 0;
  for (int day = 1; day <= 30; ++day)
    revenue += (seed * 37 + day * 11) % 97;
  return {{"revenue", revenue},
          {"orders", static_cast<double>(seed * 13 % 50 + 10)},
          {"region_code", static_cast<double>(region.size())}};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::string host = argc > 1 ? argv[1] : "localhost";
  const int port = argc > 2 ? std::atoi(argv[2]) : 6379;

  std::mutex log_mutex;
  redis_tasks::set_global_run_hook([&](const redis_tasks::run_event& e) {
    std::lock_guard<std::mutex> lock(log_mutex);
    std::clog << "  [redis] " << e.task << " " << e.command << " " << e.endpoint << " "
              << e.duration.count() << "us " << (e.ok ? "ok" : std::string(e.error_type)) << "\n";
  });

  try {
    // Built once: where Redis is, and the defaults every run shares.
    redis_tasks::RedisSet<report> store({.host = host,
                                         .port = port,
                                         .ex = 3600s,
                                         .task = {.name = "store-report", .max_retries = 2}});
    redis_tasks::RedisKeySensor<report> load({.host = host,
                                              .port = port,
                                              .poke_interval = 100ms,
                                              .timeout = 10s,
                                              .task = {.name = "load-report"}});
    redis_tasks::RedisPublish<std::string> announce(
        {.host = host, .port = port, .channel = "workflow:events", .task = {.name = "announce"}});
    redis_tasks::RedisPubSubSensor events({.host = host,
                                           .port = port,
                                           .channels = {"workflow:events"},
                                           .timeout = 10s,
                                           .task = {.name = "events"}});
    redis_tasks::RedisExecute<long long> count_run(
        {.host = host, .port = port, .redis_cmd = "INCR workflow:runs"});

    redis_tasks::RedisLock run_lock({.host = host,
                                     .port = port,
                                     .redis_key = "workflow:lock",
                                     .ttl = 30s,
                                     .wait = 10s,
                                     .task = {.name = "run-lock"}});
    redis_tasks::RedisSet<double> publish_total({.host = host,
                                                 .port = port,
                                                 .redis_key = "workflow:total",
                                                 .task = {.name = "publish-total"}});

    // 0: one run at a time; the lease renews itself while the run lasts.
    std::optional<redis_tasks::lease> lock = run_lock.run();
    if (!lock) {
      std::cerr << "another workflow run held the lock for 10 s; giving up\n";
      return 1;
    }
    std::cout << "holding workflow:lock with fencing token " << lock->token() << "\n";
    // Subscribes (a run that waits for nothing); from now on no event is missed.
    (void)events.run({.timeout = 0ms, .soft_fail = true});

    const std::vector<std::string> regions{"north", "south", "east", "west"};

    // 1 + 2: fan out; each branch computes and stores its report.
    std::vector<std::future<bool>> branches;
    for (std::size_t i = 0; i < regions.size(); ++i) {
      branches.push_back(std::async(std::launch::async, [&, i] {
        const report r = compute_report(regions[i], static_cast<int>(i) + 1);
        const bool stored =
            store.run({.redis_key = "workflow:report:" + regions[i], .redis_val = r});
        announce.run({.message = "stored " + regions[i]});
        return stored;
      }));
    }
    for (auto& b : branches)
      b.get();  // rethrows a branch's error

    // 3: the four announcements, in whatever order the branches made them; count the run.
    std::set<std::string> announced;
    while (announced.size() < regions.size())
      announced.insert(events.run()->data);  // timeout_error after 10 s without one
    for (const auto& a : announced)
      std::cout << "event: " << a << "\n";
    const long long run_number = count_run.run();

    // 4: collect (each report is there already; a missing one would be waited for).
    std::cout << "workflow run #" << run_number << "\n";
    double total = 0;
    for (const auto& region : regions) {
      // A value, or timeout_error after 10 s without the report.
      const auto r = load.run({.redis_key = "workflow:report:" + region});
      total += r->at("revenue");
      std::cout << "  " << region << ": revenue " << r->at("revenue") << ", orders "
                << r->at("orders") << "\n";
    }
    std::cout << "  total revenue: " << total << "\n";

    // 5: a run that lost the lock while it worked (paused past the ttl) and was superseded
    // cannot overwrite its successor's total: the write is fenced by the lease's token.
    publish_total.run({.redis_val = total, .fence_token = lock->token()});
    std::cout << "published the total; released the lock: " << std::boolalpha << lock->release()
              << "\n";
  } catch (const redis_tasks::error& e) {
    std::cerr << "workflow failed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
