// RedisSemaphore with real processes on private servers: the limit held by one process's threads
// and by processes that are killed at random (an independent observer counts the live permits),
// crashed holders' permits coming back after ttl, tokens, release, extend and auto-renewal,
// expiry by the server's clock (on a server whose clock runs a day behind the client's), config
// errors and JSON. Forked children never use Catch2: they report through exit codes, pipes or
// shared memory, and end with _exit.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::lease;
using redis_tasks::RedisExecute;
using redis_tasks::RedisSemaphore;
using test_support::redis_process;

namespace {

using steady = std::chrono::steady_clock;

// The independent observer of issue 14: the permits whose expiry (score, server ms) is after the
// server's now. It shares nothing with the library's own scripts.
constexpr const char* live_permits_script =
    "local t=redis.call('TIME'); local now=t[1]*1000+math.floor(t[2]/1000); "
    "return redis.call('ZCOUNT', KEYS[1], '('..now, '+inf')";

// The server's clock in ms, as the observer reads it.
constexpr const char* server_ms_script =
    "local t=redis.call('TIME'); return t[1]*1000+math.floor(t[2]/1000)";

using test_support::stress_seconds;

RedisSemaphore::config semaphore_config(int port, const std::string& key, long long limit,
                                        std::chrono::milliseconds ttl = 30s) {
  auto c = test_support::config_for<RedisSemaphore>(port);
  c.redis_key = key;
  c.limit = limit;
  c.ttl = ttl;
  return c;
}

// One command, typed, on the server at `port` (a one-off RedisExecute).
template <class T>
T exec(int port, std::vector<std::string> args) {
  auto c = test_support::config_for<RedisExecute<T>>(port);
  c.redis_cmd = redis_tasks::command{std::move(args)};
  return RedisExecute<T>(c).run();
}

// The observer as a task of its own, for polling in a loop on one pooled connection.
RedisExecute<long long> permit_observer(int port, const std::string& key) {
  auto c = test_support::config_for<RedisExecute<long long>>(port);
  c.redis_cmd =
      redis_tasks::command{std::vector<std::string>{"EVAL", live_permits_script, "1", key}};
  return RedisExecute<long long>(c);
}

long long live_permits(int port, const std::string& key) {
  return exec<long long>(port, {"EVAL", live_permits_script, "1", key});
}

long long server_ms(int port) {
  return exec<long long>(port, {"EVAL", server_ms_script, "0"});
}

// The expiry (server ms) the sorted set holds for `holder`, if any.
std::optional<double> expiry_of(int port, const std::string& key, const std::string& holder) {
  return exec<std::optional<double>>(port, {"ZSCORE", key, holder});
}

using test_support::wait_child;

// In a child after fork(): says why it fails, then exits with `code` (no Catch2 here).
[[noreturn]] void child_exit(int code, const std::string& why = {}) {
  if (!why.empty())
    std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), why.c_str());
  ::_exit(code);
}

using test_support::die_with_parent;

// Reads one byte from `fd` within `limit`; false on timeout or end of file.
bool read_byte(int fd, std::chrono::milliseconds limit, char& out) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int r = ::poll(&p, 1, static_cast<int>(limit.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    return ::read(fd, &out, 1) == 1;
  }
}

using test_support::shared_block;

// A message for the test (the first error a child met), written once into shared memory.
struct first_message {
  std::atomic<bool> taken{false};
  char text[512] = {};
  void set(const std::string& m) {
    bool expected = false;
    if (taken.compare_exchange_strong(expected, true)) {
      std::snprintf(text, sizeof text, "%s", m.c_str());
    }
  }
  std::string get() const { return taken.load() ? std::string(text) : std::string(); }
};

using test_support::config_error_of;

}  // namespace

// ---------------------------------------------------------------------------------------------
// 1. One process.

TEST_CASE("semaphore: one process gets at most limit permits with a token and holder each") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:basic");
  RedisSemaphore sem(semaphore_config(server.port(), key, 3));

  std::vector<lease> permits;
  for (int i = 0; i < 3; ++i) {
    auto p = sem.run();
    REQUIRE(p);
    permits.push_back(std::move(*p));
  }
  CHECK_FALSE(sem.run());  // a fourth: the limit is reached
  CHECK(live_permits(server.port(), key) == 3);

  std::set<std::uint64_t> tokens;
  std::set<std::string> holders;
  for (const auto& p : permits) {
    CHECK(p.held());
    CHECK(p.key() == key);
    tokens.insert(p.token());
    holders.insert(p.holder());
  }
  CHECK(tokens.size() == 3);
  CHECK(holders.size() == 3);
  // The sorted set at redis_key holds exactly the three holders.
  CHECK(exec<std::set<std::string>>(server.port(), {"ZRANGE", key, "0", "-1"}) == holders);

  // Dropping a permit (erase: one destroyed or overwritten by a move) releases it: a new run
  // gets one at once, with a token and holder never seen before.
  for (int i = 0; i < 40; ++i) {
    permits.erase(permits.begin() + (i % 3));
    auto p = sem.run();
    REQUIRE(p);
    CHECK(tokens.insert(p->token()).second);
    CHECK(holders.insert(p->holder()).second);
    permits.push_back(std::move(*p));
    CHECK_FALSE(sem.run());
  }
  CHECK(tokens.size() == 43);
  CHECK(live_permits(server.port(), key) == 3);
  permits.clear();
  CHECK(live_permits(server.port(), key) == 0);
}

TEST_CASE("semaphore: 8 threads sharing one task never hold more than the limit") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:threads");
  constexpr long long limit = 2;
  const RedisSemaphore sem(semaphore_config(server.port(), key, limit));

  constexpr int threads_n = 8;
  constexpr int rounds = 12;
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int> acquired{0};
  std::atomic<int> refused{0};
  std::atomic<int> running{threads_n};
  std::mutex error_mutex;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        try {
          auto p = sem.run({.wait = 20s});
          if (!p) {
            ++refused;
            continue;
          }
          const int now_inside = ++inside;
          int seen = max_inside.load();
          while (now_inside > seen && !max_inside.compare_exchange_weak(seen, now_inside)) {
          }
          ++acquired;
          std::this_thread::sleep_for(2ms);  // the work done under the permit
          --inside;
          (void)p->release();
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          errors.emplace_back(e.what());
        }
      }
      --running;
    });
  }
  const test_support::at_scope_exit join([&] {
    for (auto& t : threads)
      t.join();
  });
  // The observer, meanwhile, on this thread.
  auto observer = permit_observer(server.port(), key);
  long long max_live = 0;
  while (running.load() > 0) {
    max_live = std::max(max_live, observer.run());
  }
  for (auto& t : threads)
    t.join();
  threads.clear();

  INFO("errors: " << (errors.empty() ? std::string("none") : errors.front()));
  CHECK(errors.empty());
  CHECK(refused == 0);  // each waited up to 20 s; a permit is held for about 2 ms
  CHECK(acquired == threads_n * rounds);
  CHECK(max_inside.load() <= limit);
  CHECK(max_live <= limit);
  CHECK(max_inside.load() == limit);  // they did contend: the limit was reached, not only 1
  CHECK(live_permits(server.port(), key) == 0);
}

TEST_CASE("semaphore: release frees a place at once and only once and never another holder's") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:release");
  const int port = server.port();
  auto cfg = semaphore_config(port, key, 1);
  const RedisSemaphore sem(cfg);

  auto a = sem.run();
  REQUIRE(a);
  CHECK_FALSE(sem.run());
  CHECK(a->release());
  CHECK_FALSE(a->held());
  CHECK_THROWS_AS(a->check(), redis_tasks::lease_lost_error);
  CHECK_FALSE(a->release());  // a second release: nothing left to release
  CHECK(live_permits(port, key) == 0);

  {
    auto b = sem.run();  // at once (wait 0): the place is free
    REQUIRE(b);
    CHECK(b->held());
    CHECK_NOTHROW(b->check());
    CHECK(live_permits(port, key) == 1);
    CHECK_FALSE(sem.run());
  }  // b's destructor releases it
  CHECK(live_permits(port, key) == 0);

  // A moved permit: the new owner holds it, the old one does nothing.
  {
    auto c = sem.run();
    REQUIRE(c);
    lease moved = std::move(*c);
    c.reset();
    CHECK(moved.held());
    CHECK(live_permits(port, key) == 1);
    CHECK(moved.release());
  }
  CHECK(live_permits(port, key) == 0);

  // A permit that expired (no renewal) and was taken by another: its late release leaves the
  // other's permit alone.
  auto short_cfg = cfg;
  short_cfg.ttl = 300ms;
  short_cfg.auto_renew = false;
  auto old = RedisSemaphore(short_cfg).run();
  REQUIRE(old);
  test_support::wait_until([&] { return live_permits(port, key) == 0; }, 10s,
                           "the unrenewed permit to expire on the server");
  test_support::wait_until([&] { return !old->held(); }, 10s,
                           "the unrenewed permit to say it is no longer held");
  auto fresh = sem.run();
  REQUIRE(fresh);
  CHECK_FALSE(old->release());
  CHECK(fresh->held());
  CHECK(live_permits(port, key) == 1);
  CHECK(expiry_of(port, key, fresh->holder()).has_value());
  CHECK(fresh->release());
}

TEST_CASE("semaphore: a wait that outlasts task.timeout ends with std::nullopt, not a timeout") {
  // As for locks: Redis may end the waiter's BLPOP up to 100 ms late, so near the deadline the
  // waiter stops blocking on the server, and the run says "none free" before its deadline.
  redis_process server;
  const std::string key = test_support::unique_key("sem:deadline");
  const RedisSemaphore sem(semaphore_config(server.port(), key, 1, 60s));
  auto held = sem.run();
  REQUIRE(held);

  auto wc = semaphore_config(server.port(), key, 1, 60s);
  wc.wait = 30s;
  wc.task.timeout = 500ms;
  const RedisSemaphore waiting(wc);
  test_support::check_wait_ends_at_deadline(waiting);
  CHECK(held->held());
}

TEST_CASE("semaphore: extend moves the expiry and auto_renew keeps a permit past its ttl") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:extend");
  const int port = server.port();

  SECTION("extend, without auto_renew") {
    auto cfg = semaphore_config(port, key, 1, 500ms);
    cfg.auto_renew = false;
    auto p = RedisSemaphore(cfg).run();
    REQUIRE(p);
    const long long before = server_ms(port);
    CHECK(p->extend(5s));
    const long long after = server_ms(port);
    const auto expiry = expiry_of(port, key, p->holder());
    REQUIRE(expiry);
    CHECK(*expiry >= static_cast<double>(before + 5000 - 1));
    CHECK(*expiry <= static_cast<double>(after + 5000 + 1));
    // Shortened again, and never renewed: it lapses, on the server and for its holder.
    CHECK(p->extend(300ms));
    test_support::wait_until([&] { return live_permits(port, key) == 0; }, 10s,
                             "the permit to expire on the server");
    test_support::wait_until([&] { return !p->held(); }, 10s, "the holder to see it lapsed");
    CHECK_FALSE(p->extend(1s));
    CHECK_THROWS_AS(p->check(), redis_tasks::lease_lost_error);
  }

  SECTION("auto_renew") {
    auto cfg = semaphore_config(port, key, 1, 600ms);
    const RedisSemaphore sem(cfg);
    auto p = sem.run();
    REQUIRE(p);
    const auto first = expiry_of(port, key, p->holder());
    REQUIRE(first);
    // Wait until the server's clock is well past the first expiry: only renewals keep it.
    test_support::wait_until([&] { return static_cast<double>(server_ms(port)) > *first + 600; },
                             20s, "the server's clock to pass the first expiry");
    CHECK(p->held());
    CHECK(live_permits(port, key) == 1);
    const auto later = expiry_of(port, key, p->holder());
    REQUIRE(later);
    CHECK(*later > *first);
    CHECK_FALSE(sem.run());
    CHECK(p->release());
    CHECK(live_permits(port, key) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Crashed holders.

TEST_CASE("semaphore: a killed holder's permit frees itself after ttl by the server's clock") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:killed");
  const int port = server.port();
  constexpr auto ttl = 1000ms;

  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    die_with_parent(parent);
    ::close(ready[0]);
    try {
      auto p = RedisSemaphore(semaphore_config(port, key, 1, ttl)).run();  // auto_renew on
      if (!p) child_exit(1, "no permit");
      const std::string holder = p->holder() + "\n";
      if (::write(ready[1], holder.data(), holder.size()) != static_cast<ssize_t>(holder.size())) {
        child_exit(2, "cannot report");
      }
      for (;;)
        ::pause();  // holds the permit (renewed) until SIGKILL
    } catch (const std::exception& e) {
      child_exit(3, e.what());
    }
  }
  ::close(ready[1]);
  const test_support::at_scope_exit reap([&] {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(ready[0]);
  });
  std::string holder;
  for (char ch = 0; read_byte(ready[0], 30s, ch) && ch != '\n';)
    holder += ch;
  REQUIRE_FALSE(holder.empty());

  auto cfg = semaphore_config(port, key, 1, ttl);
  cfg.auto_renew = false;
  const RedisSemaphore sem(cfg);
  const auto first = expiry_of(port, key, holder);
  REQUIRE(first);
  // The holder renews while it lives: past its first expiry, its permit is still live.
  test_support::wait_until([&] { return static_cast<double>(server_ms(port)) > *first + 300; }, 20s,
                           "the server's clock to pass the holder's first expiry");
  CHECK(live_permits(port, key) == 1);
  CHECK_FALSE(sem.run());

  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(::waitpid(pid, nullptr, 0) == pid);
  const auto last = expiry_of(port, key, holder);  // no renewal comes after this one
  REQUIRE(last);

  // Nobody releases it: a waiter gets it once the server's clock passes its expiry.
  auto p = sem.run({.wait = 15s});
  REQUIRE(p);
  const auto granted = expiry_of(port, key, p->holder());
  REQUIRE(granted);
  INFO("the dead holder's expiry " << std::fixed << *last << ", the new permit granted at "
                                   << (*granted - static_cast<double>(ttl.count())));
  CHECK(*granted - static_cast<double>(ttl.count()) >= *last);  // not before it expired
  CHECK(live_permits(port, key) == 1);
  CHECK(p->release());
  CHECK(live_permits(port, key) == 0);
}

namespace {

// What the hammer's workers tell the test, in shared memory.
struct hammer_state {
  static constexpr int processes = 3;
  static constexpr std::size_t token_capacity = 1 << 19;
  std::atomic<long long> acquired{0};
  std::atomic<long long> refused{0};  ///< runs that got no permit within their wait
  std::atomic<long long> lost{0};     ///< permits found not held at the end of their work
  std::atomic<long long> errors{0};
  std::atomic<int> holding[processes] = {};  ///< permits held now by the worker in each slot
  std::atomic<std::size_t> token_count{0};
  std::atomic<std::uint64_t> tokens[token_capacity] = {};
  first_message first_error;
};
static_assert(std::atomic<long long>::is_always_lock_free, "shared between processes");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared between processes");

constexpr long long hammer_limit = 4;
constexpr auto hammer_ttl = 1000ms;

// A worker process: 8 threads sharing one task, taking, holding and releasing permits until the
// test kills it (or, should the test be gone, until `stop_by`).
[[noreturn]] void hammer_worker(int port, const std::string& key, int slot, hammer_state* st,
                                steady::time_point stop_by, pid_t parent) {
  die_with_parent(parent);
  try {
    const RedisSemaphore sem(semaphore_config(port, key, hammer_limit, hammer_ttl));
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(::getpid()) * 131u + static_cast<unsigned>(t));
        while (steady::now() < stop_by) {
          try {
            auto p = sem.run({.wait = 2000ms});
            if (!p) {
              ++st->refused;
              continue;
            }
            ++st->holding[slot];
            ++st->acquired;
            const std::size_t i = st->token_count.fetch_add(1);
            if (i < hammer_state::token_capacity) st->tokens[i] = p->token();
            // The work under the permit: mostly short, now and then longer than the ttl (only
            // auto-renewal keeps the permit then).
            const auto roll = rng() % 100;
            std::this_thread::sleep_for(roll == 0 ? 1500ms : std::chrono::milliseconds(roll % 4));
            if (!p->held()) ++st->lost;
            --st->holding[slot];
            (void)p->release();
          } catch (const std::exception& e) {
            ++st->errors;
            st->first_error.set(e.what());
          }
        }
      });
    }
    for (auto& t : threads)
      t.join();
  } catch (const std::exception& e) {
    ++st->errors;
    st->first_error.set(e.what());
  }
  ::_exit(0);
}

}  // namespace

TEST_CASE("semaphore: 3 processes x 8 threads under random SIGKILLs never exceed the limit") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:hammer");
  const int port = server.port();
  shared_block<hammer_state> st;
  const pid_t parent = ::getpid();
  const auto seconds = std::chrono::seconds(stress_seconds());
  const auto stop_by = steady::now() + seconds + 120s;  // a bound for orphans only

  std::vector<pid_t> workers(hammer_state::processes, -1);
  auto start_worker = [&](int slot) {
    st->holding[slot] = 0;
    const pid_t pid = ::fork();
    if (pid == 0) hammer_worker(port, key, slot, &*st, stop_by, parent);
    workers[static_cast<std::size_t>(slot)] = pid;
    return pid > 0;
  };
  const test_support::at_scope_exit reap([&] {
    for (const pid_t pid : workers) {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  });
  for (int slot = 0; slot < hammer_state::processes; ++slot)
    REQUIRE(start_worker(slot));

  auto observer = permit_observer(port, key);
  std::mt19937 rng(std::random_device{}());
  auto next_pause = [&] { return std::chrono::milliseconds(200 + rng() % 600); };
  long long max_live = 0;
  long long polls = 0;
  long long over_limit = 0;
  int kills = 0;
  int kills_while_holding = 0;
  std::string unexpected_exits;
  const auto end = steady::now() + seconds;
  auto next_kill = steady::now() + next_pause();
  while (steady::now() < end) {
    const long long live = observer.run();
    ++polls;
    max_live = std::max(max_live, live);
    if (live > hammer_limit) ++over_limit;
    if (steady::now() < next_kill) continue;
    next_kill = steady::now() + next_pause();
    // A worker that ended by itself is a failure (a crash, an abort).
    for (int slot = 0; slot < hammer_state::processes; ++slot) {
      int status = 0;
      const pid_t pid = workers[static_cast<std::size_t>(slot)];
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        unexpected_exits += "worker " + std::to_string(pid) + " ended by itself (status " +
                            std::to_string(status) + "); ";
        REQUIRE(start_worker(slot));
      }
    }
    // Kill one, preferring one that holds permits now.
    std::vector<int> holders;
    for (int slot = 0; slot < hammer_state::processes; ++slot) {
      if (st->holding[slot].load() > 0) holders.push_back(slot);
    }
    const int victim = holders.empty() ? static_cast<int>(rng() % hammer_state::processes)
                                       : holders[rng() % holders.size()];
    const pid_t pid = workers[static_cast<std::size_t>(victim)];
    if (st->holding[victim].load() > 0) ++kills_while_holding;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ++kills;
    REQUIRE(start_worker(victim));
  }
  // The end: every worker killed, whatever it held.
  for (auto& pid : workers) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }

  std::vector<std::uint64_t> tokens;
  const std::size_t recorded = std::min(st->token_count.load(), hammer_state::token_capacity);
  for (std::size_t i = 0; i < recorded; ++i)
    tokens.push_back(st->tokens[i].load());
  std::sort(tokens.begin(), tokens.end());
  const bool tokens_unique = std::adjacent_find(tokens.begin(), tokens.end()) == tokens.end();

  INFO("observer polls " << polls << ", max live permits " << max_live << ", polls over the limit "
                         << over_limit << "; permits taken " << st->acquired.load()
                         << ", runs refused " << st->refused.load() << ", permits lost "
                         << st->lost.load() << "; kills " << kills << " (" << kills_while_holding
                         << " while holding)");
  INFO("first error in a worker: " << st->first_error.get());
  INFO("unexpected exits: " << unexpected_exits);
  CHECK(max_live <= hammer_limit);
  CHECK(over_limit == 0);
  CHECK(st->errors.load() == 0);
  CHECK(unexpected_exits.empty());
  CHECK(tokens_unique);
  // The hammer did hammer: the limit was reached, permits changed hands, holders were killed.
  CHECK(max_live == hammer_limit);
  CHECK(st->acquired.load() >= 100);
  CHECK(kills_while_holding >= 1);

  // Killed holders' permits come back after ttl, with no help from anyone...
  test_support::wait_until([&] { return observer.run() == 0; }, hammer_ttl + 4s,
                           "the killed holders' permits to expire");
  // ...and a new process gets all of them at once.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    die_with_parent(parent);
    try {
      auto cfg = semaphore_config(port, key, hammer_limit, 30s);
      cfg.auto_renew = false;
      const RedisSemaphore sem(cfg);
      std::vector<lease> all;
      for (long long i = 0; i < hammer_limit; ++i) {
        auto p = sem.run();
        if (!p) child_exit(1, "permit " + std::to_string(i + 1) + " of 4 refused");
        all.push_back(std::move(*p));
      }
      if (sem.run()) child_exit(2, "a fifth permit");
      for (auto& p : all)
        (void)p.release();
    } catch (const std::exception& e) {
      child_exit(3, e.what());
    }
    child_exit(0);
  }
  CHECK(wait_child(pid, 60s) == 0);  // 1: a permit refused, 2: a fifth granted, 3: an exception
  CHECK(live_permits(port, key) == 0);
}

// ---------------------------------------------------------------------------------------------
// 3. The server's clock.

namespace {

// Builds an LD_PRELOAD library that shifts the wall clock (gettimeofday, clock_gettime
// CLOCK_REALTIME, time) of the process that loads it by `offset_seconds`, with the system C
// compiler (libfaketime clashes with redis-server's jemalloc). Its path, or nothing when no
// compiler works here.
std::optional<std::string> build_clock_shift(const std::string& dir, long long offset_seconds) {
  const std::string source = dir + "/clock_shift.c";
  const std::string library = dir + "/clock_shift.so";
  {
    std::ofstream out(source);
    // System calls only: no dlsym, no malloc (jemalloc reads the clock while it starts).
    out << "#include <sys/syscall.h>\n#include <time.h>\n"
           "long syscall(long number, ...);\n"
           "struct shift_timeval { long tv_sec; long tv_usec; };\n"
           "static const long long shift = "
        << offset_seconds
        << "LL;\n"
           "int clock_gettime(clockid_t id, struct timespec* ts) {\n"
           "  const int r = (int)syscall(SYS_clock_gettime, id, ts);\n"
           "  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) "
           "ts->tv_sec += shift;\n"
           "  return r;\n}\n"
           "int gettimeofday(struct shift_timeval* tv, void* tz) {\n"
           "  struct timespec ts;\n  const int r = clock_gettime(CLOCK_REALTIME, &ts);\n"
           "  (void)tz;\n"
           "  if (r == 0 && tv) { tv->tv_sec = ts.tv_sec; tv->tv_usec = ts.tv_nsec / 1000; }\n"
           "  return r;\n}\n"
           "time_t time(time_t* t) {\n  struct timespec ts;\n"
           "  clock_gettime(CLOCK_REALTIME, &ts);\n  if (t) *t = ts.tv_sec;\n  return "
           "ts.tv_sec;\n}\n";
  }
  for (const char* cc : {"cc", "gcc", "clang"}) {
    try {
      const auto r =
          test_support::run_process({cc, "-shared", "-fPIC", "-O1", "-o", library, source});
      if (r.exit_code == 0) return library;
    } catch (const std::exception&) {
      // not installed: try the next one
    }
  }
  return std::nullopt;
}

// What expiry by the server's clock means, checked on the server at `port`: members planted by
// another client count as live or expired by the server's TIME, and a new permit's expiry is the
// server's now plus ttl.
void expiry_follows_server_clock(int port) {
  const std::string key = test_support::unique_key("sem:clock");
  auto cfg = semaphore_config(port, key, 2, 1000ms);
  cfg.auto_renew = false;
  const RedisSemaphore sem(cfg);

  // Two permits of others, live for another minute by the server's clock: no place left.
  long long now = server_ms(port);
  exec<long long>(port, {"ZADD", key, std::to_string(now + 60000), "other-a",
                         std::to_string(now + 60000), "other-b"});
  CHECK(live_permits(port, key) == 2);
  CHECK_FALSE(sem.run());

  // The same two, expired a moment ago by the server's clock: both places are free.
  now = server_ms(port);
  exec<long long>(port, {"ZADD", key, "XX", std::to_string(now - 1), "other-a",
                         std::to_string(now - 1), "other-b"});
  CHECK(live_permits(port, key) == 0);
  auto first = sem.run();
  REQUIRE(first);
  const long long before = server_ms(port);
  auto second = sem.run();
  const long long after = server_ms(port);
  REQUIRE(second);
  CHECK(live_permits(port, key) == 2);
  CHECK_FALSE(sem.run());

  // The new permit expires at the server's now + ttl.
  const auto expiry = expiry_of(port, key, second->holder());
  REQUIRE(expiry);
  INFO("server clock before " << before << " ms, after " << after << " ms, expiry " << std::fixed
                              << *expiry);
  CHECK(*expiry >= static_cast<double>(before + 1000 - 1));
  CHECK(*expiry <= static_cast<double>(after + 1000 + 1));

  // Not renewed, both lapse by the server's clock, and both places come back.
  test_support::wait_until([&] { return live_permits(port, key) == 0; }, 10s,
                           "the permits to expire by the server's clock");
  auto third = sem.run();
  REQUIRE(third);
  auto fourth = sem.run();
  REQUIRE(fourth);
  CHECK(live_permits(port, key) == 2);
  CHECK_FALSE(sem.run());
}

}  // namespace

TEST_CASE("semaphore: expiry is judged by the server's clock") {
  SECTION("a server whose clock agrees with ours") {
    redis_process server;
    expiry_follows_server_clock(server.port());
  }
  SECTION("a server whose clock runs a day behind ours") {
    char tmpl[] = "/tmp/redis_tasks_clock.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    const test_support::at_scope_exit cleanup([&] {
      test_support::run_process({"rm", "-rf", dir});
    });
    constexpr long long day = 86400;
    const auto shift = build_clock_shift(dir, -day);
    if (!shift) {
      WARN("no C compiler to build the clock-shifting library: the day-behind server is skipped");
      return;
    }
    // The server (and only it, with the redis-cli that checks it is up) loads the library.
    std::unique_ptr<redis_process> server;
    ::setenv("LD_PRELOAD", shift->c_str(), 1);
    try {
      server = std::make_unique<redis_process>();
    } catch (...) {
      ::unsetenv("LD_PRELOAD");
      throw;
    }
    ::unsetenv("LD_PRELOAD");
    const long long ours = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    const long long theirs = server_ms(server->port());
    INFO("our clock " << ours << " ms, the server's " << theirs << " ms");
    REQUIRE(std::llabs(ours - day * 1000 - theirs) < 60000);  // the shift took hold
    expiry_follows_server_clock(server->port());
  }
}

// A fork() child's copy of a permit does nothing to the server: the parent still holds it.
TEST_CASE("semaphore: a forked child's copy of a permit neither holds nor releases it") {
#if defined(__SANITIZE_THREAD__)
  WARN("skipped under ThreadSanitizer: the parent may run a renewal thread when it forks");
#else
  redis_process server;
  const std::string key = test_support::unique_key("sem:fork");
  const int port = server.port();
  auto cfg = semaphore_config(port, key, 1);
  cfg.auto_renew = false;
  const RedisSemaphore sem(cfg);
  auto p = sem.run();
  REQUIRE(p);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 0;
    if (p->held()) code = 1;
    if (code == 0 && p->release()) code = 2;
    if (code == 0) p.reset();  // the destructor must not release it either
    ::_exit(code);
  }
  CHECK(wait_child(pid, 60s) == 0);  // 1: held() in the child, 2: release() true in the child
  CHECK(p->held());
  CHECK(live_permits(port, key) == 1);
  CHECK_FALSE(sem.run());
  CHECK(p->release());
  CHECK(live_permits(port, key) == 0);
#endif
}

// ---------------------------------------------------------------------------------------------
// 4. Configs.

TEST_CASE("semaphore: invalid settings are config errors before any I/O") {
  // Nothing listens on port 1: a run that reached the network would fail otherwise.
  auto base = semaphore_config(1, "sem-config", 2);
  base.redis_connection_params.connect_timeout = 2000ms;
  auto attempt = [](RedisSemaphore::config c, RedisSemaphore::overrides o = {}) {
    return config_error_of([&] { (void)RedisSemaphore(std::move(c)).run(o); });
  };
  {
    auto c = base;
    c.limit = 0;  // unset
    CHECK_THAT(attempt(c), Contains("limit"));
  }
  {
    auto c = base;
    c.limit = -3;
    CHECK_THAT(attempt(c), Contains("limit"));
  }
  {
    auto c = base;
    c.ttl = 0ms;
    CHECK_THAT(attempt(c), Contains("ttl"));
  }
  {
    auto c = base;
    c.ttl = -5ms;
    CHECK_THAT(attempt(c), Contains("ttl"));
  }
  CHECK_THAT(attempt(base, {.ttl = 0ms}), Contains("ttl"));
  {
    auto c = base;
    c.redis_key.reset();
    CHECK_THAT(attempt(c), Contains("redis_key"));
  }
  // The same config with a valid limit and ttl does reach the network.
  CHECK_THROWS_AS(RedisSemaphore(base).run(), redis_tasks::connection_error);
}

TEST_CASE("semaphore: the config loads from JSON") {
  redis_process server;
  const std::string key = test_support::unique_key("sem:json");
  const nlohmann::json j = {{"host", "127.0.0.1"},
                            {"port", server.port()},
                            {"password_secret", nullptr},
                            {"redis_key", key},
                            {"limit", 2},
                            {"ttl", 1.5},
                            {"wait", 0.25},
                            {"holder", "json-holder"},
                            {"auto_renew", false},
                            {"task", {{"name", "json-semaphore"}}}};
  const auto cfg = j.get<RedisSemaphore::config>();
  CHECK(cfg.port == server.port());
  CHECK(cfg.redis_key == key);
  CHECK(cfg.limit == 2);
  CHECK(cfg.ttl == 1500ms);
  CHECK(cfg.wait == 250ms);
  CHECK(cfg.holder == std::optional<std::string>("json-holder"));
  CHECK_FALSE(cfg.auto_renew);
  CHECK(cfg.task.name == "json-semaphore");

  const RedisSemaphore sem(cfg);
  const long long before = server_ms(server.port());
  auto p = sem.run();
  REQUIRE(p);
  CHECK(p->holder() == "json-holder");
  CHECK(p->key() == key);
  // A configured holder is stored with a unique id of the permit after it.
  const auto members = exec<std::vector<std::string>>(server.port(), {"ZRANGE", key, "0", "-1"});
  REQUIRE(members.size() == 1);
  CHECK(members[0].rfind("json-holder/", 0) == 0);
  const auto expiry = expiry_of(server.port(), key, members[0]);
  REQUIRE(expiry);
  CHECK(*expiry >= static_cast<double>(before + 1500 - 1));
  CHECK(p->release());

  auto with = [&](const std::string& field, const nlohmann::json& v) {
    nlohmann::json c = j;
    c[field] = v;
    return config_error_of([&] { (void)RedisSemaphore(c.get<RedisSemaphore::config>()).run(); });
  };
  CHECK_THAT(with("limit", "two"), Contains("limit"));
  CHECK_THAT(with("limit", 0), Contains("limit"));
  CHECK_THAT(with("ttl", "soon"), Contains("ttl"));
  CHECK_THAT(with("auto_renew", 1), Contains("auto_renew"));
  CHECK_THAT(with("limits", 2), Contains("limits"));  // an unknown field, named
}
