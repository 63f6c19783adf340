// redis_tasks against raw hiredis, in one process, on one server: single runs with 16 B, 1 KiB
// and 1 MiB values, the Prefect pattern (connect, AUTH, SELECT, command, close every run),
// threads sharing one task, and pipelined batches. Repetitions are randomly interleaved so that
// drift hits both sides alike; at the end each figure is printed as a ratio to raw hiredis.
// Run it with scripts/bench, which starts the server (see bench/README.md).
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <redis_tasks/redis_tasks.hpp>

// ---- heap allocations, counted by a replaced global operator new --------------------------

namespace {
std::atomic<long long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// ---- the server ----------------------------------------------------------------------------

int server_port() {
  const char* p = std::getenv("REDIS_TASKS_BENCH_PORT");
  if (p == nullptr) {
    std::cerr << "REDIS_TASKS_BENCH_PORT is not set: run scripts/bench\n";
    std::exit(2);
  }
  return std::atoi(p);
}

std::string server_password() {
  const char* p = std::getenv("REDIS_TASKS_BENCH_PASSWORD");
  return p != nullptr ? p : "";
}

redisContext* raw_connect() {
  redisContext* c = redisConnect("127.0.0.1", server_port());
  if (c == nullptr || c->err != 0) {
    std::cerr << "cannot connect to the benchmark server\n";
    std::exit(2);
  }
  if (!server_password().empty()) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", server_password().c_str()));
    freeReplyObject(r);
  }
  return c;
}

void raw_command(redisContext* c, int argc, const char** argv, const std::size_t* lens) {
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, argc, argv, lens));
  if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
    std::cerr << "raw command failed\n";
    std::exit(2);
  }
  benchmark::DoNotOptimize(r->len);
  freeReplyObject(r);
}

template <class Task>
typename Task::config task_config() {
  typename Task::config c;
  c.host = "127.0.0.1";
  c.port = server_port();
  c.password_secret = "REDIS_TASKS_BENCH_PASSWORD";
  return c;
}

std::string value_of(std::int64_t size) { return std::string(static_cast<std::size_t>(size), 'v'); }

void report_allocations(benchmark::State& state, long long before) {
  state.counters["allocs/run"] = benchmark::Counter(
      static_cast<double>(g_allocations.load() - before) / static_cast<double>(state.iterations()));
}

// ---- single runs -----------------------------------------------------------------------------

void raw_set(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string key = "bench:raw:set";
  const std::string value = value_of(state.range(0));
  const char* argv[] = {"SET", key.c_str(), value.c_str()};
  const std::size_t lens[] = {3, key.size(), value.size()};
  const long long before = g_allocations.load();
  for (auto _ : state) raw_command(c, 3, argv, lens);
  report_allocations(state, before);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

void task_set(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisSet<std::string>>();
  cfg.redis_key = "bench:task:set";
  cfg.redis_val = value_of(state.range(0));
  redis_tasks::RedisSet<std::string> task(cfg);
  task.run();  // connect outside the timed loop, as the raw side does
  const long long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(task.run());
  report_allocations(state, before);
  state.SetItemsProcessed(state.iterations());
}

void raw_get(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string key = "bench:get:" + std::to_string(state.range(0));
  const std::string value = value_of(state.range(0));
  const char* set_argv[] = {"SET", key.c_str(), value.c_str()};
  const std::size_t set_lens[] = {3, key.size(), value.size()};
  raw_command(c, 3, set_argv, set_lens);
  const char* argv[] = {"GET", key.c_str()};
  const std::size_t lens[] = {3, key.size()};
  const long long before = g_allocations.load();
  for (auto _ : state) raw_command(c, 2, argv, lens);
  report_allocations(state, before);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

void task_get(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisGet<std::string>>();
  cfg.redis_key = "bench:get:" + std::to_string(state.range(0));
  redis_tasks::RedisGet<std::string> task(cfg);
  {
    auto sc = task_config<redis_tasks::RedisSet<std::string>>();
    sc.redis_key = cfg.redis_key;
    sc.redis_val = value_of(state.range(0));
    redis_tasks::RedisSet<std::string>(sc).run();
  }
  benchmark::DoNotOptimize(task.run());
  const long long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(task.run());
  report_allocations(state, before);
  state.SetItemsProcessed(state.iterations());
}

void task_execute(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisExecute<std::string>>();
  cfg.redis_cmd = redis_tasks::command{
      std::vector<std::string>{"GET", "bench:get:" + std::to_string(state.range(0))}};
  redis_tasks::RedisExecute<std::string> task(cfg);
  {
    auto sc = task_config<redis_tasks::RedisSet<std::string>>();
    sc.redis_key = "bench:get:" + std::to_string(state.range(0));
    sc.redis_val = value_of(state.range(0));
    redis_tasks::RedisSet<std::string>(sc).run();
  }
  benchmark::DoNotOptimize(task.run());
  const long long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(task.run());
  report_allocations(state, before);
  state.SetItemsProcessed(state.iterations());
}

// The Prefect pattern: a new connection, AUTH, SELECT, the command and a close, every run.
void prefect_set(benchmark::State& state) {
  const std::string key = "bench:prefect:set";
  const std::string value = value_of(state.range(0));
  const char* argv[] = {"SET", key.c_str(), value.c_str()};
  const std::size_t lens[] = {3, key.size(), value.size()};
  for (auto _ : state) {
    redisContext* c = raw_connect();  // connect + AUTH
    auto* r = static_cast<redisReply*>(redisCommand(c, "SELECT 0"));
    freeReplyObject(r);
    raw_command(c, 3, argv, lens);
    redisFree(c);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- threads -----------------------------------------------------------------------------------

void raw_set_threads(benchmark::State& state) {
  redisContext* c = raw_connect();  // a connection per thread
  const std::string key = "bench:raw:threads:" + std::to_string(state.thread_index());
  const std::string value = value_of(16);
  const char* argv[] = {"SET", key.c_str(), value.c_str()};
  const std::size_t lens[] = {3, key.size(), value.size()};
  for (auto _ : state) raw_command(c, 3, argv, lens);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

redis_tasks::RedisSet<std::string>& shared_task() {
  static redis_tasks::RedisSet<std::string> task([] {
    auto cfg = task_config<redis_tasks::RedisSet<std::string>>();
    cfg.redis_val = value_of(16);
    return cfg;
  }());
  return task;
}

void task_set_threads(benchmark::State& state) {
  auto& task = shared_task();  // one task shared by all threads
  const redis_tasks::RedisSet<std::string>::overrides o{
      .redis_key = "bench:task:threads:" + std::to_string(state.thread_index())};
  for (auto _ : state) benchmark::DoNotOptimize(task.run(o));
  state.SetItemsProcessed(state.iterations());
}

// ---- the ratio table ---------------------------------------------------------------------------

// Keeps the median of each benchmark's repetitions and prints everything as ratios at the end.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Aggregate || r.aggregate_name != "median") continue;
      auto it = r.counters.find("items_per_second");
      if (it == r.counters.end()) continue;
      std::string name = r.benchmark_name();
      name = name.substr(0, name.find("_median"));
      const auto rt = name.find("/real_time");
      if (rt != std::string::npos && name.find("threads") == std::string::npos) name.erase(rt);
      per_second_[name] = it->second.value;
      auto allocs = r.counters.find("allocs/run");
      if (allocs != r.counters.end()) allocs_[name] = allocs->second.value;
    }
  }

  void print_table(std::ostream& out) const {
    auto rate = [&](const std::string& n) {
      auto it = per_second_.find(n);
      return it == per_second_.end() ? 0.0 : it->second;
    };
    out << "\n| benchmark | runs/s | raw hiredis runs/s | ratio to raw | allocs/run |\n"
        << "|---|---:|---:|---:|---:|\n";
    auto row = [&](const std::string& ours, const std::string& raw) {
      const double a = rate(ours);
      const double b = rate(raw);
      if (a == 0 || b == 0) return;
      char line[256];
      auto al = allocs_.find(ours);
      std::snprintf(line, sizeof line, "| %s | %.0f | %.0f | %.3f | %s |\n", ours.c_str(), a, b,
                    a / b,
                    al == allocs_.end() ? "" : std::to_string(al->second).substr(0, 4).c_str());
      out << line;
    };
    for (const char* size : {"16", "1024", "1048576"}) {
      row(std::string("task_set/") + size, std::string("raw_set/") + size);
      row(std::string("task_get/") + size, std::string("raw_get/") + size);
      row(std::string("task_execute/") + size, std::string("raw_get/") + size);
    }
    for (const char* t : {"1", "2", "4"}) {
      row(std::string("task_set_threads/real_time/threads:") + t,
          std::string("raw_set_threads/real_time/threads:") + t);
    }
    row("task_run_many/1000", "raw_pipeline/1000");
    const double prefect = rate("prefect_set/16");
    const double ours = rate("task_set/16");
    if (prefect > 0 && ours > 0) {
      char line[200];
      std::snprintf(line, sizeof line,
                    "\nPrefect pattern (connect, AUTH, SELECT, SET, close per run): %.0f runs/s; "
                    "redis_tasks is %.1fx faster.\n",
                    prefect, ours / prefect);
      out << line;
    }
  }

 private:
  std::map<std::string, double> per_second_;
  std::map<std::string, double> allocs_;
};

}  // namespace

BENCHMARK(raw_set)->Arg(16)->Arg(1024)->Arg(1 << 20)->UseRealTime();
BENCHMARK(task_set)->Arg(16)->Arg(1024)->Arg(1 << 20)->UseRealTime();
BENCHMARK(raw_get)->Arg(16)->Arg(1024)->Arg(1 << 20)->UseRealTime();
BENCHMARK(task_get)->Arg(16)->Arg(1024)->Arg(1 << 20)->UseRealTime();
BENCHMARK(task_execute)->Arg(16)->Arg(1024)->Arg(1 << 20)->UseRealTime();
BENCHMARK(prefect_set)->Arg(16)->UseRealTime();
BENCHMARK(raw_set_threads)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK(task_set_threads)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  // Defaults: interleaved repetitions, medians only; command-line flags still win.
  std::string reps = "--benchmark_repetitions=5";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  std::string min_time = "--benchmark_min_time=0.3";
  args.insert(args.begin() + 1, {reps.data(), interleave.data(), aggregates.data(), min_time.data()});
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_table(std::cout);
  benchmark::Shutdown();
  return 0;
}
