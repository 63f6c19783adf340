// A small workflow, as a C++ app would write one without a workflow engine:
//   0. take the workflow's lock (RedisLock), so that one run at a time goes ahead, and listen
//      to the workflow's events (RedisPubSubSensor),
//   1. queue one job per region on a stream (RedisStreamAdd, one pipeline; an idempotency key
//      per run and job, so that a retried enqueue never queues a job twice),
//   2. take the jobs as a worker would (RedisStreamConsumer) and fan out with std::async: each
//      branch computes its region's report as a cached step (RedisCache: computed once, then
//      read back), stores it with RedisSet (a hash, expiring in an hour) and announces it on
//      the events channel (RedisPublish); the jobs are acknowledged once all are done,
//   3. wait for the four announcements with the sensor, and count the run with RedisExecute,
//   4. collect the reports with RedisKeySensor (which would wait for a report still missing),
//      check all four at once with run_async on a multiplexed RedisGet (the runs share two
//      connections, and no thread waits for a reply), and ask the cached step again for one
//      region: it comes from Redis this time,
//   5. publish the total with a write fenced by the lock's token, then release the lock.
// Tasks are built once, then run with runtime overrides from many threads. A run hook logs
// every Redis call (names and timings only, never values).
// Usage: workflow [host] [port]
#include <algorithm>
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
    redis_tasks::RedisStreamAdd<std::string> enqueue(
        {.host = host, .port = port, .redis_key = "workflow:jobs", .task = {.name = "enqueue"}});
    redis_tasks::RedisStreamConsumer<std::string> take_jobs({.host = host,
                                                             .port = port,
                                                             .redis_key = "workflow:jobs",
                                                             .group = "report-workers",
                                                             .count = 10,
                                                             .block = 1s,
                                                             .task = {.name = "take-jobs"}});
    redis_tasks::RedisCache<report> cached_report({.host = host,
                                                   .port = port,
                                                   .redis_key = "workflow:cache",
                                                   .ttl = 1h,
                                                   .version = "report-v1",
                                                   .task = {.name = "report-step"}});
    // Multiplexed: its runs share 2 connections with every task of the same settings.
    const redis_tasks::RedisGet<report> check(
        {.host = host,
         .port = port,
         .redis_connection_params = {.multiplex = {.enabled = true}},
         .task = {.name = "check-report"}});
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

    // 1: one job per region, in one pipeline.
    std::vector<redis_tasks::RedisStreamAdd<std::string>::overrides> jobs;
    for (const auto& region : regions)
      jobs.push_back({.redis_val = region,
                      .idempotency_key = "run:" + std::to_string(lock->token()) + ":" + region});
    for (const auto& queued : enqueue.run_many(jobs))
      queued.value();  // rethrows an enqueue's error

    // 2: take the jobs (here in one batch) and fan out; each branch computes its report as a
    // cached step, stores it and announces it.
    const auto batch = take_jobs.run();
    std::cout << "took " << batch.messages.size() << " jobs from workflow:jobs\n";
    std::vector<std::future<bool>> branches;
    for (const auto& job : batch.messages) {
      branches.push_back(std::async(std::launch::async, [&, region = job.value] {
        const int seed =
            static_cast<int>(std::find(regions.begin(), regions.end(), region) - regions.begin()) +
            1;
        const report r = cached_report
                             .run({.inputs = {{"region", region}, {"seed", seed}}},
                                  [&] { return compute_report(region, seed); })
                             .value;
        const bool stored = store.run({.redis_key = "workflow:report:" + region, .redis_val = r});
        announce.run({.message = "stored " + region});
        return stored;
      }));
    }
    for (auto& b : branches)
      b.get();  // rethrows a branch's error
    std::cout << "acknowledged " << take_jobs.ack(batch) << " jobs\n";

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
    std::vector<std::future<std::optional<report>>> checks;  // all four in flight at once
    for (const auto& region : regions)
      checks.push_back(check.run_async({.redis_key = "workflow:report:" + region}));
    std::size_t present = 0;
    for (auto& c : checks)
      present += c.get().has_value() ? 1 : 0;  // get() rethrows a run's error
    std::cout << "checked " << present << " reports at once on shared connections\n";
    const auto again = cached_report.run({.inputs = {{"region", "north"}, {"seed", 1}}},
                                         [] { return report{}; });  // not called: a hit
    std::cout << "north's report again: " << (again.hit ? "from the cache" : "computed")
              << ", revenue " << again.value.at("revenue") << "\n";

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
