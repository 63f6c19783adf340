// redis_tasks against raw hiredis, in one process, on one server: single runs with 16 B, 1 KiB
// and 1 MiB values, the Prefect pattern (connect, AUTH, SELECT, command, close every run),
// threads sharing one task, pipelined batches, and the coordination tasks (an uncontended
// RedisLock acquire + release, a RedisRateLimit decision) against the same commands and scripts
// sent by raw hiredis. Repetitions are randomly interleaved so that drift hits both sides alike;
// at the end each figure is printed as a ratio to raw hiredis.
// Run it with scripts/bench, which starts the server (see bench/README.md).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <redis_tasks/redis_tasks.hpp>

// ---- heap allocations ------------------------------------------------------------------------
//
// Two counts, both per thread (a benchmark thread counts only what its own runs allocate, so
// threads sharing a task are counted as honestly as one):
// - `new/run`: C++ allocations, by a replaced global operator new. hiredis is C and never uses
//   it, so this is what redis_tasks allocates beyond hiredis (the target: at most 2).
// - `malloc/run`: every malloc/calloc/realloc in the process, hiredis's included, by wrappers
//   around glibc's allocator: the whole cost, comparable between raw hiredis and redis_tasks.

namespace {
thread_local long long t_news = 0;
thread_local long long t_mallocs = 0;
}  // namespace

#ifdef __GLIBC__
extern "C" {
void* __libc_malloc(std::size_t) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void __libc_free(void*) noexcept;

void* malloc(std::size_t n) noexcept {
  ++t_mallocs;
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
  ++t_mallocs;
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) noexcept {
  ++t_mallocs;
  return __libc_realloc(p, n);
}
void free(void* p) noexcept {
  __libc_free(p);
}
}
#endif

void* operator new(std::size_t n) {
  ++t_news;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

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

std::string value_of(std::int64_t size) {
  return std::string(static_cast<std::size_t>(size), 'v');
}

// This thread's allocation counts, taken before the timed loop and reported after it.
struct allocation_count {
  long long news = t_news;
  long long mallocs = t_mallocs;

  // Per run of this thread; averaged over the threads of a multi-threaded benchmark.
  void report(benchmark::State& state) const {
    const auto runs = static_cast<double>(state.iterations());
    state.counters["new/run"] = benchmark::Counter(static_cast<double>(t_news - news) / runs,
                                                   benchmark::Counter::kAvgThreads);
    state.counters["malloc/run"] = benchmark::Counter(
        static_cast<double>(t_mallocs - mallocs) / runs, benchmark::Counter::kAvgThreads);
  }
};

// ---- single runs -----------------------------------------------------------------------------

void raw_set(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string key = "bench:raw:set";
  const std::string value = value_of(state.range(0));
  const char* argv[] = {"SET", key.c_str(), value.c_str()};
  const std::size_t lens[] = {3, key.size(), value.size()};
  const allocation_count allocations;
  for (auto _ : state)
    raw_command(c, 3, argv, lens);
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

void task_set(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisSet<std::string>>();
  cfg.redis_key = "bench:task:set";
  cfg.redis_val = value_of(state.range(0));
  redis_tasks::RedisSet<std::string> task(cfg);
  task.run();  // connect outside the timed loop, as the raw side does
  const allocation_count allocations;
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run());
  allocations.report(state);
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
  const allocation_count allocations;
  for (auto _ : state)
    raw_command(c, 2, argv, lens);
  allocations.report(state);
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
  const allocation_count allocations;
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run());
  allocations.report(state);
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
  const allocation_count allocations;
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run());
  allocations.report(state);
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
  const allocation_count allocations;
  for (auto _ : state)
    raw_command(c, 3, argv, lens);
  allocations.report(state);
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
  const allocation_count allocations;
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run(o));
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
}

// ---- batches -----------------------------------------------------------------------------------

// Raw hiredis pipelining: redisAppendCommandArgv for every SET, then redisGetReply for each.
void raw_pipeline(benchmark::State& state) {
  redisContext* c = raw_connect();
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < n; ++i)
    keys.push_back("bench:pipe:raw:" + std::to_string(i));
  const std::string value = value_of(16);
  const allocation_count allocations;
  for (auto _ : state) {
    for (const auto& k : keys) {
      const char* argv[] = {"SET", k.c_str(), value.c_str()};
      const std::size_t lens[] = {3, k.size(), value.size()};
      redisAppendCommandArgv(c, 3, argv, lens);
    }
    for (std::size_t i = 0; i < n; ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK) {
        std::cerr << "raw pipeline failed\n";
        std::exit(2);
      }
      freeReplyObject(r);
    }
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());  // batches per second
  redisFree(c);
}

// The same SETs as one RedisSet::run_many batch.
void task_run_many(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisSet<std::string>>();
  cfg.redis_val = value_of(16);
  redis_tasks::RedisSet<std::string> task(cfg);
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<redis_tasks::RedisSet<std::string>::overrides> items;
  for (std::size_t i = 0; i < n; ++i)
    items.push_back({.redis_key = "bench:pipe:task:" + std::to_string(i)});
  task.run_many(items);
  const allocation_count allocations;
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run_many(items));
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
}

// ---- coordination ------------------------------------------------------------------------------

// The compare-and-delete that releases a lock only for its holder (the raw side's release).
constexpr const char* raw_unlock_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
    "else return 0 end";

// A GCRA decision as one script (the raw side's rate limit): the theoretical arrival time in
// server milliseconds at KEYS[1]; ARGV: rate, period (ms), burst, cost. Returns
// {allowed, retry_after ms, remaining}, like RedisRateLimit.
constexpr const char* raw_gcra_script =
    "local rate, period, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), "
    "tonumber(ARGV[3]), tonumber(ARGV[4]) "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 "
    "local interval = period / rate "
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now "
    "if tat < now then tat = now end "
    "local new_tat = tat + cost * interval "
    "local allow_at = new_tat - burst * interval "
    "if allow_at > now then return {0, math.ceil(allow_at - now), 0} end "
    "redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + "
    "1) "
    "return {1, 0, math.floor((now - allow_at) / interval)}";

// SCRIPT LOAD on the raw connection; the script's SHA1.
std::string raw_script_load(redisContext* c, const char* script) {
  auto* r = static_cast<redisReply*>(redisCommand(c, "SCRIPT LOAD %s", script));
  if (r == nullptr || r->type != REDIS_REPLY_STRING) {
    std::cerr << "SCRIPT LOAD failed\n";
    std::exit(2);
  }
  std::string sha(r->str, r->len);
  freeReplyObject(r);
  return sha;
}

// A raw command whose reply must have `type` (a refused lock, say, would be a nil reply).
void raw_expect(redisContext* c, int argc, const char** argv, const std::size_t* lens, int type) {
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, argc, argv, lens));
  if (r == nullptr || r->type != type) {
    std::cerr << "raw " << argv[0] << " failed or answered an unexpected type\n";
    std::exit(2);
  }
  freeReplyObject(r);
}

// Raw hiredis: SET key holder NX PX 30000, then EVALSHA of the compare-and-delete (loaded once
// with SCRIPT LOAD): two round trips, as a hand-rolled lock does.
void raw_lock(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string sha = raw_script_load(c, raw_unlock_script);
  const std::string key = "bench:raw:lock";
  const std::string holder = "bench-holder";
  const char* set_argv[] = {"SET", key.c_str(), holder.c_str(), "NX", "PX", "30000"};
  const std::size_t set_lens[] = {3, key.size(), holder.size(), 2, 2, 5};
  const char* del_argv[] = {"EVALSHA", sha.c_str(), "1", key.c_str(), holder.c_str()};
  const std::size_t del_lens[] = {7, sha.size(), 1, key.size(), holder.size()};
  const allocation_count allocations;
  for (auto _ : state) {
    raw_expect(c, 6, set_argv, set_lens, REDIS_REPLY_STATUS);   // OK: acquired
    raw_expect(c, 5, del_argv, del_lens, REDIS_REPLY_INTEGER);  // 1: released
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

// RedisLock::run() and lease::release(), uncontended; range(0): auto_renew.
void task_lock(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisLock>();
  cfg.redis_key = "bench:task:lock";
  cfg.auto_renew = state.range(0) != 0;
  const redis_tasks::RedisLock lock(cfg);
  {
    auto warm = lock.run();  // connect and load the scripts outside the timed loop
    if (!warm) {
      state.SkipWithError("the lock was not acquired");
      return;
    }
  }
  const allocation_count allocations;
  for (auto _ : state) {
    auto l = lock.run();
    if (!l) {
      state.SkipWithError("the lock was not acquired");
      break;
    }
    benchmark::DoNotOptimize(l->release());
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
}

// Every decision below is allowed: the rate is far above what one connection can ask for.
constexpr long long bench_rate = 1000000;  // per second
constexpr long long bench_burst = 1000000;

// Raw hiredis: EVALSHA of the GCRA script above (loaded once), one round trip per decision.
void raw_gcra(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string sha = raw_script_load(c, raw_gcra_script);
  const std::string key = "bench:raw:rate";
  const std::string rate = std::to_string(bench_rate);
  const std::string burst = std::to_string(bench_burst);
  const char* argv[] = {"EVALSHA",    sha.c_str(), "1",           key.c_str(),
                        rate.c_str(), "1000",      burst.c_str(), "1"};
  const std::size_t lens[] = {7, sha.size(), 1, key.size(), rate.size(), 4, burst.size(), 1};
  const allocation_count allocations;
  for (auto _ : state)
    raw_expect(c, 8, argv, lens, REDIS_REPLY_ARRAY);
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

// Raw hiredis PING: the floor of any one-round-trip decision.
void raw_ping(benchmark::State& state) {
  redisContext* c = raw_connect();
  const char* argv[] = {"PING"};
  const std::size_t lens[] = {4};
  const allocation_count allocations;
  for (auto _ : state)
    raw_expect(c, 1, argv, lens, REDIS_REPLY_STATUS);
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
  redisFree(c);
}

// RedisRateLimit::run(): one decision.
void task_rate_limit(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisRateLimit>();
  cfg.redis_key = "bench:task:rate";
  cfg.rate = bench_rate;
  cfg.period = std::chrono::seconds(1);
  cfg.burst = bench_burst;
  const redis_tasks::RedisRateLimit limit(cfg);
  (void)limit.run();  // connect and load the script outside the timed loop
  long long refused = 0;
  const allocation_count allocations;
  for (auto _ : state) {
    const auto d = limit.run();
    if (!d.allowed) ++refused;
    benchmark::DoNotOptimize(d.remaining);
  }
  allocations.report(state);
  state.counters["refused"] = static_cast<double>(refused);
  state.SetItemsProcessed(state.iterations());
}

// RedisCache::run() on a stored entry (16-byte value): a hit, one GET, plus naming the entry
// (canonical JSON of the inputs and its SHA-256). Compared with raw GET of a 16-byte value.
void task_cache_hit(benchmark::State& state) {
  auto cfg = task_config<redis_tasks::RedisCache<std::string>>();
  cfg.redis_key = "bench:cache";
  cfg.ttl = std::chrono::hours(1);
  cfg.version = "v1";
  const redis_tasks::RedisCache<std::string> cache(cfg);
  const redis_tasks::RedisCache<std::string>::overrides o{.inputs = {{"region", "north"}}};
  (void)cache.run(o, [] { return value_of(16); });  // stores the entry
  long long misses = 0;
  const allocation_count allocations;
  for (auto _ : state) {
    auto r = cache.run(o, [] { return value_of(16); });
    if (!r.hit) ++misses;
    benchmark::DoNotOptimize(r.value);
  }
  allocations.report(state);
  state.counters["misses"] = static_cast<double>(misses);
  state.SetItemsProcessed(state.iterations());
}

// ---- work queues: produce, consume and acknowledge in batches of 100 --------------------------
// One iteration moves 100 small entries through a stream: 100 XADDs in one pipeline, one
// XREADGROUP of 100, one XACK of the 100 IDs. Items per second count entries.

constexpr int stream_batch_size = 100;

void raw_stream(benchmark::State& state) {
  redisContext* c = raw_connect();
  const std::string key = "bench:raw:stream";
  auto* r = static_cast<redisReply*>(redisCommand(c, "DEL %s", key.c_str()));
  freeReplyObject(r);
  r = static_cast<redisReply*>(redisCommand(c, "XGROUP CREATE %s g $ MKSTREAM", key.c_str()));
  freeReplyObject(r);
  const char* add_argv[] = {"XADD", key.c_str(), "*", "job", "payload-0123"};
  const std::size_t add_lens[] = {4, key.size(), 1, 3, 12};
  const char* read_argv[] = {"XREADGROUP", "GROUP",   "g",         "c", "COUNT",
                             "100",        "STREAMS", key.c_str(), ">"};
  const std::size_t read_lens[] = {10, 5, 1, 1, 5, 3, 7, key.size(), 1};
  std::vector<const char*> ack_argv;
  std::vector<std::size_t> ack_lens;
  const allocation_count allocations;
  for (auto _ : state) {
    for (int i = 0; i < stream_batch_size; ++i)
      redisAppendCommandArgv(c, 5, add_argv, add_lens);
    for (int i = 0; i < stream_batch_size; ++i) {
      void* reply = nullptr;
      redisGetReply(c, &reply);
      freeReplyObject(reply);
    }
    auto* batch = static_cast<redisReply*>(redisCommandArgv(c, 9, read_argv, read_lens));
    ack_argv.assign({"XACK", key.c_str(), "g"});
    ack_lens.assign({4, key.size(), 1});
    if (batch != nullptr && batch->type == REDIS_REPLY_ARRAY && batch->elements == 1) {
      const redisReply* entries = batch->element[0]->element[1];
      for (std::size_t i = 0; i < entries->elements; ++i) {
        ack_argv.push_back(entries->element[i]->element[0]->str);
        ack_lens.push_back(entries->element[i]->element[0]->len);
      }
    }
    auto* acked = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(ack_argv.size()), ack_argv.data(), ack_lens.data()));
    if (acked == nullptr || acked->type != REDIS_REPLY_INTEGER ||
        acked->integer != stream_batch_size) {
      state.SkipWithError("raw XACK did not acknowledge the batch");
    }
    freeReplyObject(acked);
    freeReplyObject(batch);
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations() * stream_batch_size);
  redisFree(c);
}

void task_stream(benchmark::State& state) {
  const std::string key = "bench:task:stream";
  using job = std::map<std::string, std::string>;
  auto ac = task_config<redis_tasks::RedisStreamAdd<job>>();
  ac.redis_key = key;
  const redis_tasks::RedisStreamAdd<job> add(ac);
  auto cc = task_config<redis_tasks::RedisStreamConsumer<job>>();
  cc.redis_key = key;
  cc.group = "g";
  cc.consumer = "c";
  cc.count = stream_batch_size;
  cc.start_id = "$";
  const redis_tasks::RedisStreamConsumer<job> consume(cc);
  (void)consume.run();  // makes the group
  const std::vector<redis_tasks::RedisStreamAdd<job>::overrides> items(
      stream_batch_size, {.redis_val = job{{"job", "payload-0123"}}});
  const allocation_count allocations;
  for (auto _ : state) {
    benchmark::DoNotOptimize(add.run_many(items));
    const auto batch = consume.run();
    if (consume.ack(batch) != stream_batch_size) {
      state.SkipWithError("the consumer did not acknowledge the batch");
    }
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations() * stream_batch_size);
}

// ---- waiting: how soon a waiter hears of what it waits for
// --------------------------------------- Manual time: each iteration measures from just before the
// write (or publish) to the moment the waiter has the value (or message) in hand.

using bench_clock = std::chrono::steady_clock;

// Keyspace notifications on while a benchmark lives (off for the others: they cost every write).
struct keyspace_events {
  keyspace_events() { set("KA"); }
  ~keyspace_events() { set(""); }
  keyspace_events(const keyspace_events&) = delete;
  keyspace_events& operator=(const keyspace_events&) = delete;
  static void set(const char* flags) {
    redisContext* c = raw_connect();
    const char* argv[] = {"CONFIG", "SET", "notify-keyspace-events", flags};
    const std::size_t lens[] = {6, 3, 22, std::strlen(flags)};
    raw_command(c, 4, argv, lens);
    redisFree(c);
  }
};

// Raw hiredis, the least a hand-rolled "wait for a key" does with keyspace notifications on: a
// subscriber connection hears the event of a SET made on another connection, then GETs the key.
void raw_key_wake(benchmark::State& state) {
  const keyspace_events on;
  redisContext* cmd = raw_connect();
  redisContext* sub = raw_connect();
  const std::string key = "bench:raw:sensor";
  const std::string channel = "__keyspace@0__:" + key;
  auto* r = static_cast<redisReply*>(redisCommand(sub, "SUBSCRIBE %s", channel.c_str()));
  freeReplyObject(r);
  const char* set_argv[] = {"SET", key.c_str(), "ready"};
  const std::size_t set_lens[] = {3, key.size(), 5};
  const char* get_argv[] = {"GET", key.c_str()};
  const std::size_t get_lens[] = {3, key.size()};
  const char* del_argv[] = {"DEL", key.c_str()};
  const std::size_t del_lens[] = {3, key.size()};
  raw_command(cmd, 3, set_argv, set_lens);  // so that each DEL below has an event
  void* first = nullptr;
  redisGetReply(sub, &first);
  freeReplyObject(first);
  for (auto _ : state) {
    raw_command(cmd, 2, del_argv, del_lens);
    void* event = nullptr;
    redisGetReply(sub, &event);  // the "del" event
    freeReplyObject(event);
    const auto start = bench_clock::now();
    raw_command(cmd, 3, set_argv, set_lens);
    redisGetReply(sub, &event);  // the "set" event
    freeReplyObject(event);
    raw_expect(cmd, 2, get_argv, get_lens, REDIS_REPLY_STRING);
    state.SetIterationTime(std::chrono::duration<double>(bench_clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations());
  redisFree(sub);
  redisFree(cmd);
}

// RedisKeySensor::run() waiting on another thread (notifications on, poke_interval 10 min, so
// only the event can wake it): from just before the SET to the run's return. The run hook's
// second check (made once the sensor listens) says when to write.
void task_key_sensor_wake(benchmark::State& state) {
  const keyspace_events on;
  const std::string key = "bench:task:sensor";
  std::mutex m;
  std::condition_variable cv;
  int checks = 0;     // checks told to the hook in the current run
  bool go = false;    // the waiter may start its next run
  bool quit = false;  // the waiter ends
  bool done = false;  // the waiter's run returned
  bench_clock::time_point returned;
  auto cfg = task_config<redis_tasks::RedisKeySensor<std::string>>();
  cfg.redis_key = key;
  cfg.poke_interval = std::chrono::minutes(10);
  cfg.timeout = std::chrono::seconds(30);
  cfg.task.on_run = [&](const redis_tasks::run_event&) {
    const std::lock_guard<std::mutex> g(m);
    ++checks;
    cv.notify_all();
  };
  const redis_tasks::RedisKeySensor<std::string> sensor(cfg);
  redis_tasks::RedisExecute<long long> del([&] {
    auto c = task_config<redis_tasks::RedisExecute<long long>>();
    c.redis_cmd = redis_tasks::command({"DEL", key});
    return c;
  }());
  redis_tasks::RedisSet<std::string> set([&] {
    auto c = task_config<redis_tasks::RedisSet<std::string>>();
    c.redis_key = key;
    c.redis_val = "ready";
    return c;
  }());
  std::thread waiter([&] {
    for (;;) {
      {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return go || quit; });
        if (quit) return;
        go = false;
      }
      auto v = sensor.run();
      benchmark::DoNotOptimize(v);
      const std::lock_guard<std::mutex> g(m);
      returned = bench_clock::now();
      done = true;
      cv.notify_all();
    }
  });
  for (auto _ : state) {
    del.run();
    {
      std::unique_lock<std::mutex> g(m);
      checks = 0;
      done = false;
      go = true;
      cv.notify_all();
      cv.wait(g, [&] { return checks >= 2; });  // listening, and the key is not there
    }
    const auto start = bench_clock::now();
    set.run();
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return done; });
    state.SetIterationTime(std::chrono::duration<double>(returned - start).count());
  }
  {
    const std::lock_guard<std::mutex> g(m);
    quit = true;
    cv.notify_all();
  }
  waiter.join();
  state.SetItemsProcessed(state.iterations());
}

// Raw hiredis pub/sub: PUBLISH on one connection, the message read on a subscribed one.
void raw_pubsub(benchmark::State& state) {
  redisContext* pub = raw_connect();
  redisContext* sub = raw_connect();
  auto* r = static_cast<redisReply*>(redisCommand(sub, "SUBSCRIBE bench:raw:events"));
  freeReplyObject(r);
  const char* argv[] = {"PUBLISH", "bench:raw:events", "event"};
  const std::size_t lens[] = {7, 16, 5};
  for (auto _ : state) {
    const auto start = bench_clock::now();
    raw_expect(pub, 3, argv, lens, REDIS_REPLY_INTEGER);
    void* msg = nullptr;
    redisGetReply(sub, &msg);
    freeReplyObject(msg);
    state.SetIterationTime(std::chrono::duration<double>(bench_clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations());
  redisFree(sub);
  redisFree(pub);
}

// RedisPublish::run(), then RedisPubSubSensor::run() returning the message (read by the
// sensor's own thread into its buffer, handed over through it).
void task_pubsub(benchmark::State& state) {
  auto sc = task_config<redis_tasks::RedisPubSubSensor>();
  sc.channels = {"bench:task:events"};
  sc.timeout = std::chrono::seconds(10);
  const redis_tasks::RedisPubSubSensor sensor(sc);
  (void)sensor.run({.timeout = std::chrono::milliseconds(0), .soft_fail = true});  // subscribe
  auto pc = task_config<redis_tasks::RedisPublish<std::string>>();
  pc.channel = "bench:task:events";
  pc.message = "event";
  const redis_tasks::RedisPublish<std::string> publish(pc);
  for (auto _ : state) {
    const auto start = bench_clock::now();
    benchmark::DoNotOptimize(publish.run());
    auto m = sensor.run();
    benchmark::DoNotOptimize(m);
    state.SetIterationTime(std::chrono::duration<double>(bench_clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- many callers, few connections (multiplexing) ------------------------------------------------

// A RedisGet of a 16-byte value, pooled (pool_size 8, the default) or multiplexed (2 shared
// connections, the default), its connections named so that they can be counted.
redis_tasks::RedisGet<std::string>::config caller_config(bool multiplex) {
  auto cfg = task_config<redis_tasks::RedisGet<std::string>>();
  cfg.redis_key = "bench:callers:16";
  cfg.redis_connection_params.multiplex.enabled = multiplex;
  cfg.redis_connection_params.client_name = multiplex ? "bench-mux" : "bench-pool";
  cfg.task.timeout = std::chrono::seconds(60);
  cfg.redis_connection_params.pool_wait_timeout = std::chrono::seconds(60);
  return cfg;
}

const redis_tasks::RedisGet<std::string>& caller_task(bool multiplex) {
  static const redis_tasks::RedisGet<std::string> pooled(caller_config(false));
  static const redis_tasks::RedisGet<std::string> shared(caller_config(true));
  static const bool stored = [] {
    auto sc = task_config<redis_tasks::RedisSet<std::string>>();
    sc.redis_key = "bench:callers:16";
    sc.redis_val = value_of(16);
    return redis_tasks::RedisSet<std::string>(sc).run();
  }();
  (void)stored;
  return multiplex ? shared : pooled;
}

// How many connections named `name` the server has (CLIENT LIST).
int connections_named(const std::string& name) {
  redisContext* c = raw_connect();
  auto* r = static_cast<redisReply*>(redisCommand(c, "CLIENT LIST"));
  int n = 0;
  if (r != nullptr && r->type == REDIS_REPLY_STRING) {
    const std::string list(r->str, r->len);
    for (auto pos = list.find(" name=" + name + " "); pos != std::string::npos;
         pos = list.find(" name=" + name + " ", pos + 1)) {
      ++n;
    }
  }
  freeReplyObject(r);
  redisFree(c);
  return n;
}

// N threads (Threads(N)) calling run() on one RedisGet, pooled or multiplexed.
void callers_run(benchmark::State& state, bool multiplex) {
  const auto& task = caller_task(multiplex);
  benchmark::DoNotOptimize(task.run());
  for (auto _ : state)
    benchmark::DoNotOptimize(task.run());
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["connections"] = connections_named(multiplex ? "bench-mux" : "bench-pool");
  }
}
void pooled_run_threads(benchmark::State& state) { callers_run(state, false); }
void mux_run_threads(benchmark::State& state) { callers_run(state, true); }

// One thread keeping `range(0)` run_async GETs in flight on the multiplexed task: each
// iteration waits for the oldest and starts one more.
void mux_run_async(benchmark::State& state) {
  const auto& task = caller_task(true);
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::future<std::optional<std::string>>> ring;
  for (std::size_t i = 0; i < n; ++i)
    ring.push_back(task.run_async());
  std::size_t oldest = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring[oldest].get());
    ring[oldest] = task.run_async();
    oldest = (oldest + 1) % n;
  }
  for (auto& f : ring)
    f.wait();
  state.SetItemsProcessed(state.iterations());
  state.counters["connections"] = connections_named("bench-mux");
}

// Latency of small GETs while another thread keeps GETting a 1 MiB value through the same
// task's connections: p50 and p99 in µs, pooled or multiplexed (where the 1 MiB reply is ahead
// of the small ones on a shared connection: head-of-line blocking).
void latency_beside_1mib(benchmark::State& state, bool multiplex) {
  const auto& small = caller_task(multiplex);
  auto big_cfg = caller_config(multiplex);
  big_cfg.redis_key = "bench:callers:1mib";
  {
    auto sc = task_config<redis_tasks::RedisSet<std::string>>();
    sc.redis_key = big_cfg.redis_key;
    sc.redis_val = value_of(1 << 20);
    redis_tasks::RedisSet<std::string>(sc).run();
  }
  const redis_tasks::RedisGet<std::string> big(big_cfg);
  std::atomic<bool> stop{false};
  std::thread loader([&] {
    while (!stop)
      benchmark::DoNotOptimize(big.run());
  });
  std::vector<double> us;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(small.run());
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    state.SetIterationTime(took.count());
    us.push_back(took.count() * 1e6);
  }
  stop = true;
  loader.join();
  std::sort(us.begin(), us.end());
  if (!us.empty()) {
    state.counters["p50_us"] = us[us.size() / 2];
    state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  }
  state.SetItemsProcessed(state.iterations());
}
void pooled_latency_beside_1mib(benchmark::State& state) { latency_beside_1mib(state, false); }
void mux_latency_beside_1mib(benchmark::State& state) { latency_beside_1mib(state, true); }

// ---- the ratio table ---------------------------------------------------------------------------

// Keeps the median of each benchmark's repetitions and prints everything as ratios at the end.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      // The median of the repetitions; a single repetition stands for itself.
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (!median && !single) continue;
      auto it = r.counters.find("items_per_second");
      if (it == r.counters.end()) continue;
      std::string name = r.benchmark_name();
      if (median) name = name.substr(0, name.find("_median"));
      const auto rt = name.find("/real_time");
      if (rt != std::string::npos && name.find("threads") == std::string::npos) name.erase(rt);
      figures& f = figures_[name];
      f.per_second = it->second.value;
      if (auto n = r.counters.find("new/run"); n != r.counters.end()) f.news = n->second.value;
      if (auto m = r.counters.find("malloc/run"); m != r.counters.end()) {
        f.mallocs = m->second.value;
      }
      for (const char* c : {"connections", "p50_us", "p99_us"}) {
        if (auto m = r.counters.find(c); m != r.counters.end()) f.extra[c] = m->second.value;
      }
    }
  }

  void print_table(std::ostream& out) const {
    out << "\n| benchmark | runs/s | raw hiredis runs/s | ratio to raw | target | new/run | "
           "malloc/run | raw malloc/run |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    // `target` is the least ratio the issue asks for (0: none).
    auto row = [&](const std::string& ours, const std::string& raw, double target) {
      const figures* a = find(ours);
      const figures* b = find(raw);
      if (a == nullptr || b == nullptr || a->per_second == 0 || b->per_second == 0) return;
      const double ratio = a->per_second / b->per_second;
      std::string goal = "-";
      if (target > 0) goal = (ratio >= target ? "ok >= " : "MISSED >= ") + fixed(target, 2);
      out << "| " << ours << " | " << fixed(a->per_second, 0) << " | " << fixed(b->per_second, 0)
          << " | " << fixed(ratio, 3) << " | " << goal << " | " << fixed(a->news, 2) << " | "
          << fixed(a->mallocs, 2) << " | " << fixed(b->mallocs, 2) << " |\n";
    };
    for (const char* size : {"16", "1024", "1048576"}) {
      const double target = std::string(size) == "1048576" ? 0.99 : 0.97;
      row(std::string("task_set/") + size, std::string("raw_set/") + size, target);
      row(std::string("task_get/") + size, std::string("raw_get/") + size, target);
      row(std::string("task_execute/") + size, std::string("raw_get/") + size, target);
    }
    for (const char* t : {"1", "2", "4"}) {
      row(std::string("task_set_threads/real_time/threads:") + t,
          std::string("raw_set_threads/real_time/threads:") + t, std::string(t) == "4" ? 0.9 : 0);
    }
    row("task_run_many/1000", "raw_pipeline/1000", 0.9);
    const figures* prefect = find("prefect_set/16");
    const figures* ours = find("task_set/16");
    if (prefect != nullptr && ours != nullptr && prefect->per_second > 0) {
      out << "\nPrefect pattern (connect, AUTH, SELECT, SET, close per run): "
          << fixed(prefect->per_second, 0) << " runs/s; redis_tasks is "
          << fixed(ours->per_second / prefect->per_second, 1) << "x faster.\n";
    }
    print_coordination(out);
    print_waiting(out);
    print_multiplex(out);
  }

  // Many callers: multiplexed runs against today's pooled run() with as many callers (threads
  // for run(), runs in flight for run_async), and the shared connections opened.
  void print_multiplex(std::ostream& out) const {
    struct pair {
      std::string ours;
      std::string base;
      double target;
    };
    std::vector<pair> pairs;
    for (const char* n : {"1", "8", "64", "256"}) {
      const std::string t = std::string("/real_time/threads:") + n;
      const std::string s(n);
      pairs.push_back({"mux_run_threads" + t, "pooled_run_threads" + t,
                       s == "1" ? 0.95 : s == "64" ? 2.0 : 0});
    }
    for (const char* n : {"1", "8", "64", "256"}) {
      pairs.push_back({std::string("mux_run_async/in_flight:") + n,
                       std::string("pooled_run_threads/real_time/threads:") + n,
                       std::string(n) == "256" ? 3.0 : 0});
    }
    bool header = false;
    for (const auto& p : pairs) {
      const figures* a = find(p.ours);
      const figures* b = find(p.base);
      if (a == nullptr || b == nullptr || a->per_second == 0 || b->per_second == 0) continue;
      if (!header) {
        out << "\n| many callers | runs/s | pooled run() | runs/s | ratio | target | "
               "connections | pooled connections |\n"
            << "|---|---:|---|---:|---:|---:|---:|---:|\n";
        header = true;
      }
      const double ratio = a->per_second / b->per_second;
      std::string goal = "-";
      if (p.target > 0) goal = (ratio >= p.target ? "ok >= " : "MISSED >= ") + fixed(p.target, 2);
      out << "| " << p.ours << " | " << fixed(a->per_second, 0) << " | " << p.base << " | "
          << fixed(b->per_second, 0) << " | " << fixed(ratio, 3) << " | " << goal << " | "
          << fixed(a->counter("connections"), 0) << " | " << fixed(b->counter("connections"), 0)
          << " |\n";
    }
    const figures* pl = find("pooled_latency_beside_1mib/manual_time");
    const figures* ml = find("mux_latency_beside_1mib/manual_time");
    if (pl != nullptr && ml != nullptr) {
      out << "\n| small GET beside a 1 MiB GET in flight | p50 µs | p99 µs |\n|---|---:|---:|\n"
          << "| pooled | " << fixed(pl->counter("p50_us"), 1) << " | "
          << fixed(pl->counter("p99_us"), 1) << " |\n"
          << "| multiplexed | " << fixed(ml->counter("p50_us"), 1) << " | "
          << fixed(ml->counter("p99_us"), 1) << " |\n";
    }
  }

  // The sensors: how long from a write (or publish) until the waiter has it, against raw
  // hiredis hearing the same event on a subscribed connection.
  void print_waiting(std::ostream& out) const {
    struct pair {
      const char* label;
      const char* ours;
      const char* raw;
      double target_us;  // the most the issue allows (0: none)
    };
    const pair pairs[] = {
        {"key sensor: SET until run() returns", "task_key_sensor_wake", "raw_key_wake", 50000},
        {"pub/sub sensor: PUBLISH until run() returns", "task_pubsub", "raw_pubsub", 0},
    };
    bool header = false;
    for (const auto& p : pairs) {
      const figures* a = find(p.ours);
      const figures* b = find(p.raw);
      if (a == nullptr || b == nullptr || a->per_second == 0 || b->per_second == 0) continue;
      if (!header) {
        out << "\n| waiting | µs | raw | raw µs | target |\n|---|---:|---|---:|---:|\n";
        header = true;
      }
      const double us = 1e6 / a->per_second;
      std::string goal = "-";
      if (p.target_us > 0) {
        goal = (us <= p.target_us ? "ok <= " : "MISSED <= ") + fixed(p.target_us, 0);
      }
      out << "| " << p.label << " | " << fixed(us, 1) << " | " << p.raw << " | "
          << fixed(1e6 / b->per_second, 1) << " | " << goal << " |\n";
    }
  }

  // The coordination tasks against the raw commands that do the same work. Rows do not start
  // with `task_` (bench/plot.sh draws those of the table above).
  void print_coordination(std::ostream& out) const {
    struct pair {
      const char* label;
      const char* ours;
      const char* raw;
    };
    const pair pairs[] = {
        {"lock acquire + release, auto_renew off", "task_lock/auto_renew:0", "raw_lock"},
        {"lock acquire + release, auto_renew on", "task_lock/auto_renew:1", "raw_lock"},
        {"rate limit decision", "task_rate_limit", "raw_gcra"},
        {"rate limit decision", "task_rate_limit", "raw_ping"},
        {"cache hit (16 B)", "task_cache_hit", "raw_get/16"},
        {"work queue: entries through XADD, XREADGROUP, XACK", "task_stream", "raw_stream"},
    };
    bool header = false;
    for (const auto& p : pairs) {
      const figures* a = find(p.ours);
      const figures* b = find(p.raw);
      if (a == nullptr || b == nullptr || a->per_second == 0 || b->per_second == 0) continue;
      if (!header) {
        out << "\n| coordination | runs/s | raw | raw runs/s | ratio to raw | new/run | "
               "malloc/run | raw malloc/run |\n"
            << "|---|---:|---|---:|---:|---:|---:|---:|\n";
        header = true;
      }
      out << "| " << p.label << " | " << fixed(a->per_second, 0) << " | " << p.raw << " | "
          << fixed(b->per_second, 0) << " | " << fixed(a->per_second / b->per_second, 3) << " | "
          << fixed(a->news, 2) << " | " << fixed(a->mallocs, 2) << " | " << fixed(b->mallocs, 2)
          << " |\n";
    }
  }

 private:
  struct figures {
    double per_second = 0;
    double news = 0;
    double mallocs = 0;
    std::map<std::string, double> extra;  // other counters
    double counter(const std::string& name) const {
      auto it = extra.find(name);
      return it == extra.end() ? 0 : it->second;
    }
  };

  const figures* find(const std::string& name) const {
    auto it = figures_.find(name);
    return it == figures_.end() ? nullptr : &it->second;
  }

  static std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }

  std::map<std::string, figures> figures_;
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
BENCHMARK(raw_pipeline)->Arg(1000)->UseRealTime();
BENCHMARK(task_run_many)->Arg(1000)->UseRealTime();
BENCHMARK(raw_lock)->UseRealTime();
BENCHMARK(task_lock)->ArgName("auto_renew")->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(raw_gcra)->UseRealTime();
BENCHMARK(raw_ping)->UseRealTime();
BENCHMARK(task_rate_limit)->UseRealTime();
BENCHMARK(task_cache_hit)->UseRealTime();
BENCHMARK(raw_stream)->UseRealTime();
BENCHMARK(task_stream)->UseRealTime();
BENCHMARK(raw_key_wake)->UseManualTime();
BENCHMARK(task_key_sensor_wake)->UseManualTime();
BENCHMARK(raw_pubsub)->UseManualTime();
BENCHMARK(task_pubsub)->UseManualTime();
BENCHMARK(pooled_run_threads)->Threads(1)->Threads(8)->Threads(64)->Threads(256)->UseRealTime();
BENCHMARK(mux_run_threads)->Threads(1)->Threads(8)->Threads(64)->Threads(256)->UseRealTime();
BENCHMARK(mux_run_async)->ArgName("in_flight")->Arg(1)->Arg(8)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK(pooled_latency_beside_1mib)->UseManualTime();
BENCHMARK(mux_latency_beside_1mib)->UseManualTime();

int main(int argc, char** argv) {
  // --redis_tasks_table=PATH also writes the ratio table to PATH (for bench/plot.sh).
  std::string table_path;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    constexpr std::string_view flag = "--redis_tasks_table=";
    if (std::string_view(argv[i]).substr(0, flag.size()) == flag) {
      table_path = argv[i] + flag.size();
    } else {
      args.push_back(argv[i]);
    }
  }
  // Defaults: interleaved repetitions, medians only; command-line flags still win.
  std::string reps = "--benchmark_repetitions=5";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  std::string min_time = "--benchmark_min_time=0.3";
  args.insert(args.begin() + 1,
              {reps.data(), interleave.data(), aggregates.data(), min_time.data()});
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_table(std::cout);
  if (!table_path.empty()) {
    std::ofstream file(table_path);
    reporter.print_table(file);
    if (!file) {
      std::cerr << "cannot write the table to " << table_path << "\n";
      return 1;
    }
    std::cout << "(table written to " << table_path << ")\n";
  }
  benchmark::Shutdown();
  return 0;
}
