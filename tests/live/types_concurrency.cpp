// Collections under concurrent writers and readers: a collection is replaced in one step (no
// reader ever sees a half-written or mixed value), and nx/xx decide as SET NX/XX would, with
// exactly one winner of an nx race. Each test runs for a bounded time (about a second or two).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using redis_tasks::RedisExecute;
using redis_tasks::RedisGet;
using redis_tasks::RedisSet;
using redis_tasks::sorted_set;
using test_support::config_for;
using test_support::fixture;

namespace {

std::string conc_key(const std::string& stem) {
  static std::atomic<int> n{0};
  return test_support::unique_key("conc/" + stem + "#" + std::to_string(n++));
}

/// A config with a pool big enough that every thread of a test has its own connection.
template <class Task>
typename Task::config roomy_config(int port) {
  auto c = config_for<Task>(port);
  c.redis_connection_params.pool_size = 32;
  return c;
}

template <class T = redis_tasks::reply>
T roomy_exec(int port, std::vector<std::string> args) {
  auto c = roomy_config<RedisExecute<T>>(port);
  c.redis_cmd = redis_tasks::command{std::move(args)};
  return RedisExecute<T>(c).run();
}

/// Starts `n` threads running `body(i)` at the same moment; joins them. Catch's assertions are
/// not thread-safe, so bodies record results and the test checks them afterwards; an exception
/// in a body is rethrown here.
template <class F>
void race(int n, F body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::mutex m;
  std::exception_ptr failure;
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (!go.load())
        std::this_thread::yield();
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!failure) failure = std::current_exception();
      }
    });
  }
  while (ready.load() < n)
    std::this_thread::yield();
  go = true;
  for (auto& t : threads)
    t.join();
  if (failure) std::rethrow_exception(failure);
}

/// The list writer `w` writes in generation `g`: its length varies (across the 1024-element
/// command chunks) and every element says who wrote it, when, and where it belongs.
std::vector<std::string> generation(int w, int g) {
  const int length = 1 + (w * 977 + g * 389) % 3100;
  std::vector<std::string> v;
  v.reserve(static_cast<std::size_t>(length));
  for (int i = 0; i < length; ++i) {
    v.push_back("w" + std::to_string(w) + "g" + std::to_string(g) + "i" + std::to_string(i));
  }
  return v;
}

/// Empty when `v` is exactly one writer's whole list of one generation; else what is wrong.
std::string whole_generation(const std::vector<std::string>& v) {
  if (v.empty()) return "empty list";
  int w = -1;
  int g = -1;
  if (std::sscanf(v.front().c_str(), "w%dg%di0", &w, &g) != 2) return "bad first element";
  if (v != generation(w, g)) {
    return "mixed or partial list of " + std::to_string(v.size()) + " elements starting w" +
           std::to_string(w) + "g" + std::to_string(g);
  }
  return {};
}

}  // namespace

TEST_CASE("concurrency: threads racing nx writes of a list on one key, exactly one wins") {
  const int port = fixture("plain").port;
  constexpr int threads = 8;
  for (int round = 0; round < 25; ++round) {
    const std::string key = conc_key("nx-race");
    std::vector<RedisSet<std::vector<std::string>>> tasks;
    for (int i = 0; i < threads; ++i) {
      auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
      c.redis_key = key;
      c.redis_val = generation(i, round);
      c.ex = 60s;
      c.nx = true;
      tasks.emplace_back(c);
    }
    std::vector<int> won(threads, 0);
    race(threads, [&](int i) {
      won[static_cast<std::size_t>(i)] = tasks[static_cast<std::size_t>(i)].run() ? 1 : 0;
    });
    int winners = 0;
    int winner = -1;
    for (int i = 0; i < threads; ++i) {
      if (won[static_cast<std::size_t>(i)]) {
        ++winners;
        winner = i;
      }
    }
    CAPTURE(round);
    REQUIRE(winners == 1);
    // The key holds the winner's list, whole, with the winner's TTL.
    CHECK(roomy_exec<std::vector<std::string>>(port, {"LRANGE", key, "0", "-1"}) ==
          generation(winner, round));
    CHECK(roomy_exec<long long>(port, {"PTTL", key}) > 50000);
  }
}

TEST_CASE("concurrency: nx racers of different Redis types, exactly one wins") {
  const int port = fixture("plain").port;
  for (int round = 0; round < 20; ++round) {
    const std::string key = conc_key("nx-mixed");
    std::atomic<int> winners{0};
    std::vector<std::string> winner_type(4);
    race(8, [&](int i) {
      bool won = false;
      const char* type = "";
      switch (i % 4) {
        case 0: {
          auto c = roomy_config<RedisSet<std::string>>(port);
          c.redis_key = key;
          won = RedisSet<std::string>(c).run({.redis_val = "s" + std::to_string(i), .nx = true});
          type = "string";
          break;
        }
        case 1: {
          auto c = roomy_config<RedisSet<std::set<int>>>(port);
          c.redis_key = key;
          won = RedisSet<std::set<int>>(c).run({.redis_val = std::set<int>{i, 100}, .nx = true});
          type = "set";
          break;
        }
        case 2: {
          auto c = roomy_config<RedisSet<std::map<std::string, int>>>(port);
          c.redis_key = key;
          won = RedisSet<std::map<std::string, int>>(c).run(
              {.redis_val = std::map<std::string, int>{{"i", i}}, .nx = true});
          type = "hash";
          break;
        }
        default: {
          auto c = roomy_config<RedisSet<sorted_set<std::string>>>(port);
          c.redis_key = key;
          won = RedisSet<sorted_set<std::string>>(c).run(
              {.redis_val = sorted_set<std::string>{{"i", double(i)}}, .nx = true});
          type = "zset";
        }
      }
      if (won) {
        ++winners;
        winner_type[static_cast<std::size_t>(i % 4)] = type;
      }
    });
    CAPTURE(round);
    REQUIRE(winners.load() == 1);
    std::string type;
    for (const auto& t : winner_type)
      type += t;
    CHECK(roomy_exec<std::string>(port, {"TYPE", key}) == type);
  }
}

TEST_CASE("concurrency: readers never see a partial or mixed list while writers rewrite it") {
  const int port = fixture("plain").port;
  const std::string key = conc_key("rewrite");
  {
    auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
    c.redis_key = key;
    c.redis_val = generation(0, 0);
    REQUIRE(RedisSet<std::vector<std::string>>(c).run());
  }
  constexpr int writers = 3;
  constexpr int readers = 3;
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::atomic<int> reads{0};
  std::mutex m;
  std::vector<std::string> problems;
  std::set<std::string> seen_versions;
  const auto deadline = std::chrono::steady_clock::now() + 1500ms;

  race(writers + readers, [&](int i) {
    if (i < writers) {
      auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
      c.redis_key = key;
      RedisSet<std::vector<std::string>> task(c);
      for (int g = 1; !stop.load(); ++g) {
        // Every other write with an expiry, so both transaction shapes are exercised.
        if (g % 2) {
          task.run({.redis_val = generation(i, g)});
        } else {
          task.run({.redis_val = generation(i, g), .ex = 60s});
        }
        ++writes;
        if (std::chrono::steady_clock::now() > deadline) stop = true;
      }
      return;
    }
    // Readers: through RedisGet, through a plain LRANGE, and through RedisGet<value>.
    auto gc = roomy_config<RedisGet<std::vector<std::string>>>(port);
    gc.redis_key = key;
    RedisGet<std::vector<std::string>> get(gc);
    auto vc = roomy_config<RedisGet<redis_tasks::value>>(port);
    vc.redis_key = key;
    RedisGet<redis_tasks::value> get_value(vc);
    auto ec = roomy_config<RedisExecute<std::vector<std::string>>>(port);
    ec.redis_cmd = redis_tasks::command{std::vector<std::string>{"LRANGE", key, "0", "-1"}};
    RedisExecute<std::vector<std::string>> lrange(ec);
    while (!stop.load()) {
      std::vector<std::string> v;
      if (i == writers) {
        auto r = get.run();
        if (r) v = std::move(*r);
      } else if (i == writers + 1) {
        v = lrange.run();
      } else {
        auto r = get_value.run();
        if (r) v = std::get<std::vector<std::string>>(*r);
      }
      ++reads;
      const std::string problem = whole_generation(v);
      std::lock_guard<std::mutex> lock(m);
      if (!problem.empty()) problems.push_back(problem);
      if (!v.empty()) seen_versions.insert(v.front());
    }
  });
  INFO("writes: " << writes.load() << ", reads: " << reads.load()
                  << ", versions seen: " << seen_versions.size());
  CHECK(problems.empty());
  if (!problems.empty()) CHECK(problems.front().empty());
  // The test only proves something if reads overlapped many rewrites.
  CHECK(writes.load() > 10);
  CHECK(reads.load() > 10);
  CHECK(seen_versions.size() > 3);
}

TEST_CASE("concurrency: hashes and sorted sets are replaced in one step too") {
  const int port = fixture("plain").port;
  const std::string h = conc_key("rewrite-hash");
  const std::string z = conc_key("rewrite-zset");
  // Writer w's generation g: a hash of n fields all holding "w.g", a sorted set of n members
  // all scored w*1e6+g.
  const auto size_of = [](int w, int g) { return 1 + (w * 733 + g * 211) % 2600; };
  std::atomic<bool> stop{false};
  std::mutex m;
  std::vector<std::string> problems;
  int checked = 0;
  const auto deadline = std::chrono::steady_clock::now() + 1000ms;
  race(4, [&](int i) {
    if (i < 2) {
      auto hc = roomy_config<RedisSet<std::unordered_map<std::string, std::string>>>(port);
      hc.redis_key = h;
      RedisSet<std::unordered_map<std::string, std::string>> hset(hc);
      auto zc = roomy_config<RedisSet<sorted_set<std::string>>>(port);
      zc.redis_key = z;
      RedisSet<sorted_set<std::string>> zset(zc);
      for (int g = 0; !stop.load(); ++g) {
        const int n = size_of(i, g);
        std::unordered_map<std::string, std::string> hv;
        sorted_set<std::string> zv;
        for (int k = 0; k < n; ++k) {
          hv["f" + std::to_string(k)] = std::to_string(i) + "." + std::to_string(g);
          zv.add("m" + std::to_string(k), i * 1e6 + g);
        }
        hset.run({.redis_val = hv});
        zset.run({.redis_val = zv});
        if (std::chrono::steady_clock::now() > deadline) stop = true;
      }
      return;
    }
    auto hc = roomy_config<RedisGet<std::map<std::string, std::string>>>(port);
    hc.redis_key = h;
    RedisGet<std::map<std::string, std::string>> hget(hc);
    auto zc = roomy_config<RedisGet<sorted_set<std::string>>>(port);
    zc.redis_key = z;
    RedisGet<sorted_set<std::string>> zget(zc);
    while (!stop.load()) {
      std::string problem;
      if (i == 2) {
        const auto v = hget.run();
        if (v) {
          const std::string value = v->begin()->second;
          const int w = std::stoi(value);
          const int g = std::stoi(value.substr(value.find('.') + 1));
          if (static_cast<int>(v->size()) != size_of(w, g)) problem = "hash of wrong size";
          for (const auto& [f, x] : *v) {
            if (x != value) problem = "mixed hash";
          }
        }
      } else {
        const auto v = zget.run();
        if (v) {
          const double score = v->begin()->score;
          const int w = static_cast<int>(score / 1e6);
          const int g = static_cast<int>(score - w * 1e6);
          if (static_cast<int>(v->size()) != size_of(w, g)) problem = "zset of wrong size";
          for (const auto& e : *v) {
            if (e.score != score) problem = "mixed zset";
          }
        }
      }
      std::lock_guard<std::mutex> lock(m);
      ++checked;
      if (!problem.empty()) problems.push_back(problem);
    }
  });
  INFO("reads checked: " << checked);
  CHECK(problems.empty());
  if (!problems.empty()) CHECK(problems.front().empty());
  CHECK(checked > 10);
}

TEST_CASE("concurrency: concurrent xx writers all succeed while the key exists") {
  const int port = fixture("plain").port;
  const std::string key = conc_key("xx");
  {
    auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
    c.redis_key = key;
    c.redis_val = generation(99, 0);
    REQUIRE(RedisSet<std::vector<std::string>>(c).run());
  }
  constexpr int threads = 8;
  constexpr int writes_each = 15;
  std::atomic<int> stored{0};
  std::atomic<int> prevented{0};
  race(threads, [&](int i) {
    auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
    c.redis_key = key;
    c.xx = true;
    RedisSet<std::vector<std::string>> task(c);
    for (int g = 1; g <= writes_each; ++g) {
      (task.run({.redis_val = generation(i, g)}) ? stored : prevented)++;
    }
  });
  // SET XX on an existing key always stores; so must a collection write.
  CHECK(stored.load() == threads * writes_each);
  CHECK(prevented.load() == 0);
  const auto last = roomy_exec<std::vector<std::string>>(port, {"LRANGE", key, "0", "-1"});
  CHECK(whole_generation(last).empty());
}

TEST_CASE("concurrency: concurrent xx writers on an absent key all return false") {
  const int port = fixture("plain").port;
  const std::string key = conc_key("xx-absent");
  std::atomic<int> stored{0};
  race(8, [&](int i) {
    auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
    c.redis_key = key;
    c.redis_val = generation(i, 1);
    c.xx = true;
    if (RedisSet<std::vector<std::string>>(c).run()) ++stored;
  });
  CHECK(stored.load() == 0);
  CHECK(roomy_exec<long long>(port, {"EXISTS", key}) == 0);
}

TEST_CASE("concurrency: xx and nx writers racing a deleter leave the key absent or whole") {
  const int port = fixture("plain").port;
  const std::string key = conc_key("xx-delete");
  // Writers store whole lists with xx while one thread deletes the key and another recreates it
  // with nx. Whatever the interleaving, a reader finds the key absent or holding one whole list.
  std::atomic<bool> stop{false};
  std::mutex m;
  std::vector<std::string> problems;
  const auto deadline = std::chrono::steady_clock::now() + 1000ms;
  race(6, [&](int i) {
    auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
    c.redis_key = key;
    RedisSet<std::vector<std::string>> task(c);
    for (int g = 1; !stop.load(); ++g) {
      if (i == 0) {
        roomy_exec(port, {"DEL", key});
        std::this_thread::sleep_for(1ms);
      } else if (i == 1) {
        task.run({.redis_val = generation(i, g), .nx = true});
      } else if (i == 2) {
        const auto v = roomy_exec<std::vector<std::string>>(port, {"LRANGE", key, "0", "-1"});
        if (!v.empty()) {
          const std::string problem = whole_generation(v);
          std::lock_guard<std::mutex> lock(m);
          if (!problem.empty()) problems.push_back(problem);
        }
      } else {
        task.run({.redis_val = generation(i, g), .xx = true});
      }
      if (std::chrono::steady_clock::now() > deadline) stop = true;
    }
  });
  CHECK(problems.empty());
  if (!problems.empty()) CHECK(problems.front().empty());
}

TEST_CASE("concurrency: a large xx write is not starved by a stream of small xx writes") {
  const int port = fixture("plain").port;
  const std::string key = conc_key("xx-starve");
  auto c = roomy_config<RedisSet<std::vector<std::string>>>(port);
  c.redis_key = key;
  c.redis_val = std::vector<std::string>{"initial"};
  REQUIRE(RedisSet<std::vector<std::string>>(c).run());
  c.xx = true;

  std::vector<std::string> big;
  for (int i = 0; i < 200'000; ++i)
    big.push_back("big-" + std::to_string(i));
  std::atomic<bool> stop{false};
  std::atomic<long> small_writes{0};
  bool big_stored = false;
  std::chrono::duration<double> took{};
  race(5, [&](int i) {
    RedisSet<std::vector<std::string>> task(c);
    if (i > 0) {
      const std::vector<std::string> small{"small", std::to_string(i)};
      while (!stop.load()) {
        task.run({.redis_val = small});
        ++small_writes;
      }
      return;
    }
    // Start once the small writers are busy, so that every moment of the big write overlaps
    // theirs; stop them whatever happens.
    while (small_writes.load() < 50)
      std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    try {
      big_stored = task.run({.redis_val = big});
    } catch (...) {
      stop = true;
      throw;
    }
    took = std::chrono::steady_clock::now() - start;
    stop = true;
  });
  INFO("the big write took " << took.count() << " s; small writes: " << small_writes.load());
  CHECK(big_stored);
  CHECK(took.count() < 20);
  // The last word is a whole list: the big one, or a small one written after it.
  const auto last = roomy_exec<std::vector<std::string>>(port, {"LRANGE", key, "0", "-1"});
  CHECK((last == big || (last.size() == 2 && last[0] == "small")));
}
