// Work queues on Redis Streams (RedisStreamAdd<T>, RedisStreamConsumer<T>) on private servers,
// with real processes: producers and consumers forked, consumers killed with SIGKILL while they
// hold work, and the server's own records (XPENDING, XRANGE, XLEN, the dead-letter stream) read
// with redis-cli, a client we did not write. Children never use Catch2: they report lines
// through a pipe and end with _exit. No child starts a thread, and the parent has none running
// when it forks (redis-cli's helper thread is joined before run_process returns).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.hpp"
#include "child_process.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisExecute;
using redis_tasks::RedisStreamAdd;
using redis_tasks::RedisStreamConsumer;
using redis_tasks::stream_batch;
using redis_tasks::stream_message;
using test_support::child_channel;
using test_support::child_process;
using test_support::config_for;
using test_support::redis_process;
using test_support::unique_key;
using test_support::wait_until;

// Value types, in a namespace of their own so that ADL finds their to_json/from_json.
namespace streams_test {

/// Stored as JSON through nlohmann's ADL hooks.
struct order {
  std::string sku;
  int qty = 0;
  std::vector<double> prices;
  bool operator==(const order& o) const {
    return sku == o.sku && qty == o.qty && prices == o.prices;
  }
};
void to_json(nlohmann::json& j, const order& o) {
  j = {{"sku", o.sku}, {"qty", o.qty}, {"prices", o.prices}};
}
void from_json(const nlohmann::json& j, order& o) {
  j.at("sku").get_to(o.sku);
  j.at("qty").get_to(o.qty);
  j.at("prices").get_to(o.prices);
}

/// Stored through value_traits as a map: the entry's fields x and y.
struct point {
  double x = 0;
  double y = 0;
  bool operator==(const point& o) const { return x == o.x && y == o.y; }
};

/// Stored through value_traits as a number: one field `value`.
struct celsius {
  double degrees = 0;
  bool operator==(const celsius& o) const { return degrees == o.degrees; }
};

/// Read with std::map::at, which throws std::out_of_range for a missing field.
struct labelled {
  std::string label;
};

}  // namespace streams_test

template <>
struct redis_tasks::value_traits<streams_test::point> {
  using storage_type = std::map<std::string, double>;
  static storage_type to_storage(const streams_test::point& p) { return {{"x", p.x}, {"y", p.y}}; }
  static streams_test::point from_storage(const storage_type& s) { return {s.at("x"), s.at("y")}; }
};

template <>
struct redis_tasks::value_traits<streams_test::celsius> {
  using storage_type = double;
  static storage_type to_storage(const streams_test::celsius& c) { return c.degrees; }
  static streams_test::celsius from_storage(double d) { return {d}; }
};

template <>
struct redis_tasks::value_traits<streams_test::labelled> {
  using storage_type = std::map<std::string, std::string>;
  static storage_type to_storage(const streams_test::labelled& l) { return {{"label", l.label}}; }
  static streams_test::labelled from_storage(const storage_type& s) { return {s.at("label")}; }
};

namespace {

using steady = std::chrono::steady_clock;
using job = std::map<std::string, std::string>;  // the default T: an entry's fields

// ---------------------------------------------------------------------------------------------
// Configs, and an independent look at the server (redis-cli).

template <class T = job>
typename RedisStreamAdd<T>::config add_config(int port, const std::string& stream) {
  auto c = config_for<RedisStreamAdd<T>>(port);
  c.redis_key = stream;
  return c;
}

template <class T = job>
typename RedisStreamConsumer<T>::config consumer_config(int port, const std::string& stream,
                                                        const std::string& group) {
  auto c = config_for<RedisStreamConsumer<T>>(port);
  c.redis_key = stream;
  c.group = group;
  return c;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

// redis-cli's answer without its trailing newline.
std::string cli(int port, std::vector<std::string> args) {
  return trimmed(test_support::redis_cli(port, std::move(args)));
}

// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// `text` cut at `sep`.
std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const auto at = text.find(sep, pos);
    out.push_back(text.substr(pos, at - pos));
    if (at == std::string::npos) return out;
    pos = at + 1;
  }
}

long long xlen(int port, const std::string& stream) {
  return std::stoll(cli(port, {"XLEN", stream}));
}

// The number of entries pending in `group` (the XPENDING summary's count).
long long pending_count(int port, const std::string& stream, const std::string& group) {
  return std::stoll(cli(
      port, {"EVAL", "return redis.call('XPENDING', KEYS[1], ARGV[1])[1]", "1", stream, group}));
}

// The least idle time (ms) of the entries pending in `group`; -1 when none is.
long long least_idle(int port, const std::string& stream, const std::string& group) {
  return std::stoll(cli(port, {"EVAL",
                               "local least = -1 "
                               "for _, e in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', "
                               "'+', 1000)) do "
                               "if least < 0 or e[3] < least then least = e[3] end end "
                               "return least",
                               "1", stream, group}));
}

// True when the entry `id` is still in the stream.
bool entry_exists(int port, const std::string& stream, const std::string& id) {
  return cli(port, {"XRANGE", stream, id, id}).rfind(id, 0) == 0;
}

// One entry of a stream as the server holds it.
struct entry {
  std::string id;
  std::map<std::string, std::string> fields;
};

// Each entry on one line: its ID and its fields, separated by \x1f.
const char* const entries_script = R"lua(
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local parts = {e[1]}
  for _, v in ipairs(e[2]) do parts[#parts + 1] = v end
  out[#out + 1] = table.concat(parts, '\31')
end
return out
)lua";

std::vector<entry> parse_entries(const std::string& text) {
  std::vector<entry> out;
  for (const auto& line : lines_of(text)) {
    const auto parts = split(line, '\x1f');
    entry e;
    e.id = parts[0];
    for (std::size_t i = 1; i + 1 < parts.size(); i += 2)
      e.fields[parts[i]] = parts[i + 1];
    out.push_back(std::move(e));
  }
  return out;
}

// Every entry of `stream`, oldest first.
std::vector<entry> entries_of(int port, const std::string& stream) {
  return parse_entries(test_support::redis_cli(port, {"EVAL", entries_script, "1", stream}));
}

// One pending entry as XPENDING reports it.
struct pending_entry {
  std::string id;
  std::string consumer;
  long long deliveries = 0;
};

const char* const pending_script = R"lua(
local args = {KEYS[1], ARGV[1], '-', '+', 1000000}
if ARGV[2] ~= '' then args[#args + 1] = ARGV[2] end
local out = {}
for _, e in ipairs(redis.call('XPENDING', unpack(args))) do
  out[#out + 1] = e[1] .. '\31' .. e[2] .. '\31' .. e[4]
end
return out
)lua";

// The entries pending in `group` (of `consumer` only, when given), oldest first.
std::vector<pending_entry> pending_of(int port, const std::string& stream, const std::string& group,
                                      const std::string& consumer = {}) {
  std::vector<pending_entry> out;
  for (const auto& line : lines_of(
           test_support::redis_cli(port, {"EVAL", pending_script, "1", stream, group, consumer}))) {
    const auto parts = split(line, '\x1f');
    out.push_back({parts.at(0), parts.at(1), std::stoll(parts.at(2))});
  }
  return out;
}

// "word rest" → rest, when `line` starts with `word `; else nullopt.
std::optional<std::string> after(const std::string& line, const std::string& word) {
  if (line.rfind(word + " ", 0) != 0) return std::nullopt;
  return line.substr(word.size() + 1);
}

using test_support::config_error_of;

RedisExecute<long long>::overrides cmd(std::vector<std::string> args) {
  return {.redis_cmd = redis_tasks::command{std::move(args)}};
}

// Runs `in` until it has returned `n` entries (claimed ones included), at most `limit`; the
// entries by ID. A run that returns an entry twice keeps the last delivery.
template <class T>
std::map<std::string, stream_message<T>> collect(const RedisStreamConsumer<T>& in, std::size_t n,
                                                 std::chrono::milliseconds limit,
                                                 std::vector<std::string>* deleted = nullptr) {
  std::map<std::string, stream_message<T>> got;
  wait_until(
      [&] {
        auto b = in.run();
        for (auto& m : b.messages)
          got[m.id] = std::move(m);
        if (deleted != nullptr) deleted->insert(deleted->end(), b.deleted.begin(), b.deleted.end());
        return got.size() >= n;
      },
      limit, std::to_string(n) + " entries from the consumer " + in.consumer());
  return got;
}

// "id/deliveries id/deliveries …" of a batch, in order.
template <class T>
std::string described(const std::vector<stream_message<T>>& ms) {
  std::string s;
  for (const auto& m : ms)
    s += (s.empty() ? "" : " ") + m.id + "/" + std::to_string(m.deliveries);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// 1. At least once, nothing lost: producers and consumers in processes, consumers killed.

TEST_CASE(
    "streams: 20,000 entries from 2 producer processes, 4 consumer processes killed at random "
    "and restarted: every entry is worked on and acknowledged, none is pending") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("chaos");
  const std::string group = "workers";
  const std::string done = stream + ":done";    // entry ID → how often its work was done
  const std::string again = stream + ":again";  // IDs delivered with a delivery count above 1
  constexpr int producers = 2;
  constexpr int per_producer = 10000;
  constexpr long long total = producers * per_producer;
  constexpr int consumers = 4;
  constexpr int chunk = 100;

  std::random_device rd;
  const auto seed = rd();
  std::mt19937 rng(seed);
  INFO("random seed " << seed);

  // A consumer works on an entry (HINCRBY: the work, done at least once), notes a redelivery,
  // and only then acknowledges. It runs until it is killed.
  auto start_consumer = [&](const std::string& name) {
    return std::make_unique<child_process>([&, name](const child_channel& ch) {
      auto c = consumer_config(port, stream, group);
      c.consumer = name;
      c.count = 50;
      c.block = 100ms;
      c.min_idle = 300ms;
      c.max_deliveries = 1000;
      c.redis_connection_params.client_name = name;
      const RedisStreamConsumer<job> in(c);
      auto ec = config_for<RedisExecute<long long>>(port);
      ec.redis_connection_params.client_name = name;
      const RedisExecute<long long> exec(ec);
      for (;;) {
        const auto batch = in.run();
        for (const auto& id : batch.deleted) {
          ch.say("error: " + id + " reported deleted");
          return 1;
        }
        for (const auto& m : batch.messages) {
          if (m.value.size() != 2 || !m.value.count("producer") || !m.value.count("n")) {
            ch.say("error: " + m.id + " has other fields");
            return 2;
          }
          exec.run(cmd({"HINCRBY", done, m.id, "1"}));
          if (m.deliveries > 1) exec.run(cmd({"SADD", again, m.id}));
          in.ack(m.id);  // false when another consumer claimed and acknowledged it meanwhile
        }
      }
    });
  };

  // Producer 0 adds through run_many (pipelined), producer 1 one run() at a time; each reports
  // the IDs it got, a line per chunk.
  auto start_producer = [&](int p) {
    return std::make_unique<child_process>([&, p](const child_channel& ch) {
      const RedisStreamAdd<job> add(add_config(port, stream));
      auto value = [p](int n) {
        return job{{"producer", std::to_string(p)}, {"n", std::to_string(n)}};
      };
      ch.say("ready");
      if (ch.hear() != "go") return 3;
      for (int i = 0; i < per_producer; i += chunk) {
        std::string line = "ids";
        if (p == 0) {
          std::vector<RedisStreamAdd<job>::overrides> items;
          for (int n = i; n < i + chunk; ++n)
            items.push_back({.redis_val = value(n)});
          for (const auto& r : add.run_many(items))
            line += " " + r.value();  // rethrows an item's error
        } else {
          for (int n = i; n < i + chunk; ++n)
            line += " " + add.run({.redis_val = value(n)});
        }
        ch.say(line);
      }
      ch.say("done");
      return 0;
    });
  };

  int incarnation = 0;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<child_process>> workers;
  for (int slot = 0; slot < consumers; ++slot) {
    names.push_back("consumer-" + std::to_string(slot) + "-" + std::to_string(incarnation++));
    workers.push_back(start_consumer(names.back()));
  }
  std::vector<std::unique_ptr<child_process>> makers;
  for (int p = 0; p < producers; ++p)
    makers.push_back(start_producer(p));
  for (auto& m : makers)
    REQUIRE(m->receive(30s) == "ready");
  for (auto& m : makers)
    m->send("go");

  std::vector<std::string> produced;
  std::vector<bool> finished(producers, false);
  std::vector<std::string> problems;
  std::set<std::string> orphans;       // left pending by a killed consumer
  std::set<std::string> orphans_once;  // of those, delivered to nobody else before
  int kills = 0;
  int kills_with_orphans = 0;
  std::uniform_int_distribution<long long> step(300, 1200);
  std::uniform_int_distribution<int> pause_ms(0, 30);
  std::uniform_int_distribution<int> pick(0, consumers - 1);
  long long next_kill_at = step(rng);
  const auto deadline = steady::now() + 240s;
  for (;;) {
    // receive() rounds what is left of its limit down to whole milliseconds before it polls
    // the pipe: 2 ms is the shortest limit that reads.
    for (int p = 0; p < producers; ++p) {
      while (!finished[p]) {
        const std::string line = makers[p]->receive(2ms);
        if (line == "(timeout)") break;
        if (const auto ids = after(line, "ids")) {
          std::istringstream in(*ids);
          std::string id;
          while (in >> id)
            produced.push_back(id);
        } else {
          if (line != "done") problems.push_back("producer " + std::to_string(p) + ": " + line);
          finished[p] = true;
        }
      }
    }
    for (int slot = 0; slot < consumers; ++slot) {
      const std::string line = workers[slot]->receive(2ms);
      if (line == "(timeout)") continue;
      problems.push_back(names[slot] + ": " + line);
      if (line == "(eof)") {  // it ended on its own: keep the work going, the test has failed
        names[slot] = "consumer-" + std::to_string(slot) + "-" + std::to_string(incarnation++);
        workers[slot] = start_consumer(names[slot]);
      }
    }
    const long long worked = std::stoll(cli(port, {"HLEN", done}));
    if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; }) &&
        worked >= total && pending_count(port, stream, group) == 0) {
      break;
    }
    if (steady::now() > deadline) {
      FAIL("after 240 s: " << worked << " of " << total << " entries worked on, "
                           << pending_count(port, stream, group) << " pending, " << kills
                           << " kills; problems: " << problems.size());
    }
    // Chaos: at random points of the progress, after a random short pause, a random consumer
    // is killed. The assertions below hold however these fall.
    if (worked >= next_kill_at && next_kill_at < total - 1000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
      const int slot = pick(rng);
      workers[slot]->kill();
      ++kills;
      // Whatever the killed consumer had sent is dealt with once the server dropped its
      // connections; what it holds then stays pending until another consumer claims it.
      wait_until([&] { return test_support::clients_named(port, names[slot]) == 0; }, 30s,
                 "the server to drop the connections of killed " + names[slot]);
      const auto left = pending_of(port, stream, group, names[slot]);
      if (!left.empty()) ++kills_with_orphans;
      for (const auto& e : left) {
        orphans.insert(e.id);
        if (e.deliveries == 1) orphans_once.insert(e.id);
      }
      names[slot] = "consumer-" + std::to_string(slot) + "-" + std::to_string(incarnation++);
      workers[slot] = start_consumer(names[slot]);
      next_kill_at += step(rng);
    }
  }
  for (auto& w : workers)
    w->kill();
  for (auto& m : makers)
    CHECK(m->wait(30s) == 0);

  CAPTURE(problems);
  CHECK(problems.empty());
  const std::set<std::string> produced_set(produced.begin(), produced.end());
  CHECK(produced.size() == static_cast<std::size_t>(total));
  CHECK(produced_set.size() == produced.size());
  CHECK(xlen(port, stream) == total);
  // Every produced entry was worked on, nothing else was, and nothing is pending: every
  // delivered entry was acknowledged (none went to the dead letters either).
  const auto worked_lines = lines_of(test_support::redis_cli(port, {"HKEYS", done}));
  const std::set<std::string> worked_set(worked_lines.begin(), worked_lines.end());
  CHECK(worked_set.size() == static_cast<std::size_t>(total));
  CHECK(worked_set == produced_set);
  CHECK(pending_count(port, stream, group) == 0);
  const std::string dead =
      RedisStreamConsumer<job>(consumer_config(port, stream, group)).dead_letter_key();
  CHECK(xlen(port, dead) == 0);
  // What killed consumers held was claimed by another consumer: an entry delivered to nobody
  // but the killed one can only have been acknowledged after a later delivery (count ≥ 2).
  CHECK(kills > 0);
  CHECK(kills_with_orphans > 0);
  const auto again_lines = lines_of(test_support::redis_cli(port, {"SMEMBERS", again}));
  const std::set<std::string> redelivered(again_lines.begin(), again_lines.end());
  std::size_t missing = 0;
  for (const auto& id : orphans_once)
    missing += redelivered.count(id) == 0 ? 1 : 0;
  CHECK(missing == 0);
  for (const auto& id : orphans)
    CHECK(worked_set.count(id) == 1);

  const long long work_done = std::stoll(
      cli(port, {"EVAL",
                 "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do n = n + v end "
                 "return n",
                 "1", done}));
  const long long twice = std::stoll(
      cli(port, {"EVAL",
                 "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do if tonumber(v) "
                 "> 1 then n = n + 1 end end return n",
                 "1", done}));
  WARN("chaos: " << total << " entries, " << kills << " consumers killed (" << kills_with_orphans
                 << " holding entries, " << orphans.size() << " entries left pending), "
                 << redelivered.size() << " entries delivered again, " << twice
                 << " entries worked on more than once (" << work_done - total
                 << " extra deliveries)");
}

// ---------------------------------------------------------------------------------------------
// 2. Claims and the server's delivery counts.

TEST_CASE(
    "streams: a killed consumer's entries are claimed by another after min_idle, and the "
    "server's delivery counts go on across new tasks and new processes") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("claims");
  const std::string group = "g";
  const RedisStreamAdd<std::string> add(add_config<std::string>(port, stream));
  std::vector<std::string> ids;
  std::string delivered_once;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(add.run({.redis_val = "job " + std::to_string(i)}));
    delivered_once += (i == 0 ? "" : " ") + ids.back() + "/1";
  }
  auto base = consumer_config<std::string>(port, stream, group);
  base.min_idle = 300ms;

  child_process first([&](const child_channel& ch) {
    auto c = base;
    c.consumer = "first";
    const RedisStreamConsumer<std::string> in(c);
    ch.say("got " + described(in.run().messages));
    ch.hear();  // killed here, holding the five
    return 0;
  });
  REQUIRE(first.receive(30s) == "got " + delivered_once);
  first.kill();
  auto pending = pending_of(port, stream, group);
  REQUIRE(pending.size() == 5);
  for (const auto& p : pending) {
    CHECK(p.consumer == "first");
    CHECK(p.deliveries == 1);
  }

  // Not idle for min_idle yet: a consumer whose min_idle is a minute claims none of them.
  {
    auto c = base;
    c.consumer = "patient";
    c.min_idle = 60s;
    const auto b = RedisStreamConsumer<std::string>(c).run();
    CHECK(b.messages.empty());
    CHECK(b.deleted.empty());
    CHECK(pending_of(port, stream, group, "first").size() == 5);
  }

  // Once they are: another consumer claims all five, delivered a second time.
  {
    auto c = base;
    c.consumer = "second";
    const RedisStreamConsumer<std::string> in(c);
    const auto got = collect(in, 5, 30s);
    REQUIRE(got.size() == 5);
    for (int i = 0; i < 5; ++i) {
      INFO("entry " << i);
      REQUIRE(got.count(ids[i]) == 1);
      CHECK(got.at(ids[i]).value == "job " + std::to_string(i));
      CHECK(got.at(ids[i]).deliveries == 2);
    }
    pending = pending_of(port, stream, group);
    REQUIRE(pending.size() == 5);
    for (const auto& p : pending) {
      CHECK(p.consumer == "second");
      CHECK(p.deliveries == 2);  // the count the consumer reported is the server's
    }
  }  // the task is gone, nothing acknowledged

  // A new process with new task objects: the third delivery.
  child_process third([&](const child_channel& ch) {
    auto c = base;
    c.consumer = "third";
    c.block = 50ms;  // paces the runs while the entries are not idle yet
    const RedisStreamConsumer<std::string> in(c);
    std::map<std::string, stream_message<std::string>> got;
    const auto until = steady::now() + 30s;
    while (got.size() < 5) {
      if (steady::now() > until) {
        ch.say("timeout");
        return 1;
      }
      for (auto& m : in.run().messages)
        got[m.id] = m;
    }
    std::vector<stream_message<std::string>> ms;
    for (auto& [id, m] : got)
      ms.push_back(m);
    ch.say("got " + described(ms));
    return 0;
  });
  std::string delivered_thrice;
  for (int i = 0; i < 5; ++i)
    delivered_thrice += (i == 0 ? "" : " ") + ids[i] + "/3";
  CHECK(third.receive(60s) == "got " + delivered_thrice);
  CHECK(third.wait(30s) == 0);

  // And a new task here: the fourth, then acknowledged for good.
  auto c = base;
  c.consumer = "fourth";
  const RedisStreamConsumer<std::string> in(c);
  const auto got = collect(in, 5, 30s);
  stream_batch<std::string> batch;
  for (const auto& [id, m] : got) {
    CHECK(m.deliveries == 4);
    batch.messages.push_back(m);
  }
  CHECK(in.ack(batch) == 5);
  CHECK(pending_count(port, stream, group) == 0);
  CHECK_FALSE(in.ack(ids[0]));  // not pending any more
  CHECK(in.ack(batch) == 0);
  CHECK(in.run().messages.empty());
}

TEST_CASE("streams: a consumer's own unacknowledged entries come back to it after min_idle") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("own");
  const RedisStreamAdd<long long> add(add_config<long long>(port, stream));
  const std::string id = add.run({.redis_val = 7});
  auto c = consumer_config<long long>(port, stream, "g");
  c.min_idle = 200ms;
  const RedisStreamConsumer<long long> in(c);
  const auto first = in.run();
  REQUIRE(first.messages.size() == 1);
  CHECK(first.messages[0].id == id);
  CHECK(first.messages[0].value == 7);
  CHECK(first.messages[0].deliveries == 1);
  // Not acknowledged: delivered again to the same consumer, counted by the server.
  const auto again = collect(in, 1, 30s);
  REQUIRE(again.count(id) == 1);
  CHECK(again.at(id).deliveries == 2);
  CHECK(pending_of(port, stream, "g").at(0).deliveries == 2);
  CHECK(in.ack(id));
  CHECK(pending_count(port, stream, "g") == 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Poison entries: to the dead-letter stream, acknowledged in the same step.

TEST_CASE(
    "streams: an entry never acknowledged goes to the dead letters after max_deliveries, "
    "acknowledged in the same step, and is not returned again") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("poison");
  const std::string group = "g";
  const RedisStreamAdd<job> add(add_config(port, stream));
  const std::string good = add.run({.redis_val = job{{"job", "good"}}});
  const std::string poison = add.run({.redis_val = job{{"job", "poison"}, {"attempt", "x"}}});
  auto base = consumer_config(port, stream, group);
  base.min_idle = 200ms;
  base.max_deliveries = 3;
  const std::string dead = RedisStreamConsumer<job>(base).dead_letter_key();
  CHECK(dead == "{" + stream + "}:dead");

  // The consumer, in a process of its own, fails on the poison entry every time (never
  // acknowledges it) until it has gone to the dead letters.
  child_process worker([&](const child_channel& ch) {
    auto c = base;
    c.consumer = "worker";
    c.block = 50ms;
    const RedisStreamConsumer<job> in(c);
    const RedisExecute<long long> exec(config_for<RedisExecute<long long>>(port));
    const auto until = steady::now() + 60s;
    while (exec.run(cmd({"XLEN", dead})) == 0) {
      if (steady::now() > until) {
        ch.say("timeout");
        return 1;
      }
      for (const auto& m : in.run().messages) {
        ch.say(m.value.at("job") + " " + m.id + " " + std::to_string(m.deliveries));
        if (m.value.at("job") == "good") in.ack(m.id);
      }
    }
    ch.say("done");
    return 0;
  });

  // Meanwhile, one atomic look at a time: the poison entry is pending or in the dead letters,
  // never both and (once delivered) never neither.
  const RedisExecute<std::vector<long long>> look(
      config_for<RedisExecute<std::vector<long long>>>(port));
  const redis_tasks::command state{std::vector<std::string>{
      "EVAL",
      "local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) "
      "return {redis.call('XLEN', KEYS[2]), ok and #p or 0}",  // no group yet: not pending
      "2", stream, dead, group, poison}};
  bool delivered = false;
  std::size_t looks = 0;
  std::vector<std::string> bad_states;
  std::vector<std::string> lines;
  for (;;) {
    const std::string line = worker.receive(2ms);
    if (line == "done" || line == "timeout" || line == "(eof)" || line.rfind("exception", 0) == 0) {
      lines.push_back(line);
      break;
    }
    if (line != "(timeout)") lines.push_back(line);
    const auto s = look.run({.redis_cmd = state});
    ++looks;
    if (s.at(1) == 1) delivered = true;
    if (s.at(0) + s.at(1) != (delivered ? 1 : 0)) {
      bad_states.push_back("dead letters " + std::to_string(s.at(0)) + ", pending " +
                           std::to_string(s.at(1)));
    }
  }
  CHECK(worker.wait(30s) == 0);
  CAPTURE(looks);
  CHECK(bad_states.empty());
  const std::vector<std::string> expected = {"good " + good + " 1", "poison " + poison + " 1",
                                             "poison " + poison + " 2", "poison " + poison + " 3",
                                             "done"};
  CHECK(lines == expected);

  // The dead letter: the entry's ID, group, reason and delivery count, then its own fields.
  const auto dead_letters = entries_of(port, dead);
  REQUIRE(dead_letters.size() == 1);
  const auto& f = dead_letters[0].fields;
  CHECK(f.at("id") == poison);
  CHECK(f.at("group") == group);
  CHECK_THAT(f.at("reason"), Contains("max_deliveries"));
  CHECK(f.at("deliveries") == "4");
  CHECK(f.at("job") == "poison");
  CHECK(f.at("attempt") == "x");
  CHECK(f.size() == 6);
  // Acknowledged, still in the stream, and never returned again.
  CHECK(pending_count(port, stream, group) == 0);
  CHECK(entry_exists(port, stream, poison));
  auto c = base;
  c.consumer = "later";
  const RedisStreamConsumer<job> later(c);
  const auto b = later.run();
  CHECK(b.messages.empty());
  CHECK(b.deleted.empty());
  CHECK(xlen(port, dead) == 1);
}

TEST_CASE(
    "streams: an entry that does not make a T goes to the dead letters at once with its "
    "reason, acknowledged, and the run returns the others") {
  using streams_test::labelled;
  using streams_test::order;
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("not-a-t");
  const RedisStreamAdd<std::string> text(add_config<std::string>(port, stream));
  const RedisStreamAdd<job> fields(add_config(port, stream));
  const std::string x = text.run({.redis_val = "x"});
  const std::string n42 = text.run({.redis_val = "42"});
  const std::string no_value = fields.run({.redis_val = job{{"n", "7"}}});

  // Read as int: "x" is no int, and an entry without a field `value` is no int either.
  auto ic = consumer_config<int>(port, stream, "ints");
  const RedisStreamConsumer<int> ints(ic);
  const auto b = ints.run();
  REQUIRE(b.messages.size() == 1);
  CHECK(b.messages[0].id == n42);
  CHECK(b.messages[0].value == 42);
  CHECK(b.deleted.empty());
  const auto dead = entries_of(port, ints.dead_letter_key());
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].fields.at("id") == x);
  CHECK(dead[0].fields.at("group") == "ints");
  CHECK(dead[0].fields.at("deliveries") == "1");
  CHECK_THAT(dead[0].fields.at("reason"), Contains("not a T"));
  CHECK(dead[0].fields.at("value") == "x");
  CHECK(dead[1].fields.at("id") == no_value);
  CHECK_THAT(dead[1].fields.at("reason"), Contains("value"));
  CHECK(dead[1].fields.at("n") == "7");
  // Only the returned entry is pending; the two were acknowledged with the move.
  auto pending = pending_of(port, stream, "ints");
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == n42);
  CHECK(ints.ack(b) == 1);
  CHECK(pending_count(port, stream, "ints") == 0);
  CHECK(ints.run().messages.empty());

  // A dead-letter stream of one's own, and other types that an entry may not make.
  const auto own_dead = unique_key("dead-letters");
  const RedisStreamAdd<nlohmann::json> js(add_config<nlohmann::json>(port, stream));
  const std::string bad_order = js.run({.redis_val = nlohmann::json{{"sku", 5}}});
  const std::string good_order =
      js.run({.redis_val = nlohmann::json{{"sku", "A-1"}, {"qty", 2}, {"prices", {1.5, 2.25}}}});
  auto oc = consumer_config<order>(port, stream, "orders");
  oc.dead_letter_key = own_dead;
  const RedisStreamConsumer<order> orders(oc);
  CHECK(orders.dead_letter_key() == own_dead);
  const auto ob = orders.run();
  REQUIRE(ob.messages.size() == 1);
  CHECK(ob.messages[0].id == good_order);
  CHECK(ob.messages[0].value == order{"A-1", 2, {1.5, 2.25}});
  std::vector<std::string> dead_ids;
  for (const auto& e : entries_of(port, own_dead))
    dead_ids.push_back(e.fields.at("id"));
  CHECK(dead_ids == std::vector<std::string>{x, n42, no_value, bad_order});
  CHECK(orders.ack(ob) == 1);
  CHECK(pending_count(port, stream, "orders") == 0);

  // A value_traits type whose from_storage throws (std::map::at): to the dead letters too.
  const std::string other = unique_key("labels");
  const RedisStreamAdd<job> lf(add_config(port, other));
  const std::string unlabelled = lf.run({.redis_val = job{{"name", "no label"}}});
  const std::string label = lf.run({.redis_val = job{{"label", "ok"}}});
  const RedisStreamConsumer<labelled> labels(consumer_config<labelled>(port, other, "labels"));
  const auto lb = labels.run();
  REQUIRE(lb.messages.size() == 1);
  CHECK(lb.messages[0].id == label);
  CHECK(lb.messages[0].value.label == "ok");
  const auto ld = entries_of(port, labels.dead_letter_key());
  REQUIRE(ld.size() == 1);
  CHECK(ld[0].fields.at("id") == unlabelled);
  CHECK(ld[0].fields.at("name") == "no label");
  CHECK(pending_of(port, other, "labels").size() == 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Trimming keeps pending entries.

TEST_CASE("streams: maxlen trimming never removes an entry still pending in any group") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("trim");
  constexpr long long maxlen = 100;
  constexpr long long slack = 100;  // max(maxlen / 10, 100)
  const RedisStreamAdd<job> plain(add_config(port, stream));
  auto tc = add_config(port, stream);
  tc.maxlen = maxlen;
  const RedisStreamAdd<job> trimmed_add(tc);
  auto n_of = [](long long n) { return job{{"n", std::to_string(n)}}; };

  std::vector<std::string> old;
  for (int i = 0; i < 10; ++i)
    old.push_back(plain.run({.redis_val = n_of(i)}));

  // Group "readers" reads the ten and acknowledges them.
  const RedisStreamConsumer<job> readers(consumer_config(port, stream, "readers"));
  CHECK(readers.ack(readers.run()) == 10);

  // Group "holders": a consumer process reads the ten, acknowledges five and is killed holding
  // the other five.
  child_process holder([&](const child_channel& ch) {
    auto c = consumer_config(port, stream, "holders");
    c.consumer = "holder";
    const RedisStreamConsumer<job> in(c);
    const auto b = in.run();
    if (b.messages.size() != 10) {
      ch.say("got " + std::to_string(b.messages.size()));
      return 1;
    }
    for (int i = 0; i < 5; ++i)
      in.ack(b.messages[i].id);
    ch.say("holding");
    ch.hear();
    return 0;
  });
  REQUIRE(holder.receive(30s) == "holding");
  holder.kill();
  REQUIRE(pending_count(port, stream, "holders") == 5);

  for (int i = 0; i < 2000; ++i)
    trimmed_add.run({.redis_val = n_of(100 + i)});
  // The five held entries are still there, in order, and can be claimed and acknowledged.
  for (int i = 5; i < 10; ++i) {
    INFO("held entry " << i);
    CHECK(entry_exists(port, stream, old[i]));
  }
  CHECK(xlen(port, stream) >= 2005);
  auto cc = consumer_config(port, stream, "holders");
  cc.consumer = "rescuer";
  cc.min_idle = 200ms;
  cc.count = 5;
  const RedisStreamConsumer<job> rescuer(cc);
  // Claimable only once idle for min_idle (else the first run reads five new entries instead).
  wait_until([&] { return least_idle(port, stream, "holders") >= 200; }, 30s,
             "the held entries to be idle for min_idle");
  const auto rescued = collect(rescuer, 5, 30s);
  REQUIRE(rescued.size() == 5);
  for (int i = 5; i < 10; ++i) {
    INFO("held entry " << i);
    REQUIRE(rescued.count(old[i]) == 1);
    CHECK(rescued.at(old[i]).value.at("n") == std::to_string(i));
    CHECK(rescued.at(old[i]).deliveries == 2);
    CHECK(rescuer.ack(old[i]));
  }
  CHECK(pending_count(port, stream, "holders") == 0);
  CHECK(pending_count(port, stream, "readers") == 0);

  // Nothing pending in any group: the next add trims to about maxlen.
  trimmed_add.run({.redis_val = n_of(5000)});
  CHECK(xlen(port, stream) >= maxlen);
  CHECK(xlen(port, stream) <= maxlen + slack);
  for (int i = 0; i < 10; ++i)
    CHECK_FALSE(entry_exists(port, stream, old[i]));

  // Now the other group holds entries, in the middle of the stream: fifty of what is left.
  auto rc = consumer_config(port, stream, "readers");
  rc.count = 50;
  const RedisStreamConsumer<job> stalled(rc);
  const auto held = stalled.run();
  REQUIRE(held.messages.size() == 50);
  for (int i = 0; i < 1000; ++i) {
    trimmed_add.run({.redis_val = n_of(6000 + i)});
    if (i % 250 == 0) {
      INFO("after " << i + 1 << " more adds");
      CHECK(entry_exists(port, stream, held.messages.front().id));
    }
  }
  for (const auto& m : held.messages) {
    INFO("held entry " << m.id);
    CHECK(entry_exists(port, stream, m.id));
  }
  CHECK(pending_count(port, stream, "readers") == 50);
  CHECK(stalled.ack(held) == 50);

  // Released: trimmed again, and from then on it stays within maxlen + slack.
  for (int i = 0; i < 500; ++i) {
    trimmed_add.run({.redis_val = n_of(9000 + i)});
    if (i % 50 == 0) {
      INFO("after " << i + 1 << " adds with nothing pending");
      CHECK(xlen(port, stream) <= maxlen + slack);
    }
  }
  CHECK(xlen(port, stream) >= maxlen);
  CHECK(xlen(port, stream) <= maxlen + slack);
}

// ---------------------------------------------------------------------------------------------
// 5. Idempotency keys.

TEST_CASE("streams: two adds with one idempotency key make one entry and return its ID") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("idem");
  auto c = add_config<std::string>(port, stream);
  c.idempotency_key = "report:north";
  c.idempotency_ttl = 5s;
  const RedisStreamAdd<std::string> add(c);
  const std::string first = add.run({.redis_val = "first"});
  CHECK(add.run({.redis_val = "second"}) == first);
  CHECK(RedisStreamAdd<std::string>(c).run({.redis_val = "third"}) == first);  // another task
  CHECK(xlen(port, stream) == 1);
  const auto es = entries_of(port, stream);
  REQUIRE(es.size() == 1);
  CHECK(es[0].fields == std::map<std::string, std::string>{{"value", "first"}});
  // The record shares the stream's slot, and lasts idempotency_ttl.
  const std::string record = "{" + stream + "}:idem:report:north";
  CHECK(cli(port, {"GET", record}) == first);
  const long long ttl = std::stoll(cli(port, {"PTTL", record}));
  CHECK(ttl > 0);
  CHECK(ttl <= 5000);

  // Another key (per run), and no key: new entries.
  const std::string other = add.run({.redis_val = "south", .idempotency_key = "report:south"});
  CHECK(other != first);
  CHECK(add.run({.redis_val = "south again", .idempotency_key = "report:south"}) == other);
  auto nc = add_config<std::string>(port, stream);
  const RedisStreamAdd<std::string> keyless(nc);
  const std::string a = keyless.run({.redis_val = "a"});
  const std::string b = keyless.run({.redis_val = "a"});
  CHECK(a != b);
  CHECK(xlen(port, stream) == 4);

  // With trimming too (the same script): still one entry per key.
  auto mc = c;
  mc.maxlen = 1000;
  const RedisStreamAdd<std::string> trimmed_add(mc);
  CHECK(trimmed_add.run({.redis_val = "again"}) == first);
  const std::string fresh = trimmed_add.run({.redis_val = "x", .idempotency_key = "fresh"});
  CHECK(trimmed_add.run({.redis_val = "y", .idempotency_key = "fresh"}) == fresh);
  CHECK(xlen(port, stream) == 5);

  // run_many with keys: one entry per key, each item the ID of its key's entry.
  const auto results = keyless.run_many({{.redis_val = "m1", .idempotency_key = "m"},
                                         {.redis_val = "m2", .idempotency_key = "m"},
                                         {.redis_val = "n1", .idempotency_key = "n"}});
  REQUIRE(results.size() == 3);
  REQUIRE(results[0].ok());
  REQUIRE(results[1].ok());
  REQUIRE(results[2].ok());
  CHECK(results[0].value() == results[1].value());
  CHECK(results[2].value() != results[0].value());
  CHECK(xlen(port, stream) == 7);

  // Once the record expired, the key adds again.
  auto sc = add_config<std::string>(port, stream);
  sc.idempotency_key = "short";
  sc.idempotency_ttl = 200ms;
  const RedisStreamAdd<std::string> short_lived(sc);
  const std::string once = short_lived.run({.redis_val = "once"});
  CHECK(short_lived.run({.redis_val = "twice"}) == once);
  wait_until(
      [&] {
        return cli(port, {"EXISTS", "{" + stream + "}:idem:short"}) == "0";
      },
      30s, "the idempotency record to expire");
  CHECK(short_lived.run({.redis_val = "later"}) != once);
}

TEST_CASE("streams: adds with one idempotency key racing from two processes make one entry") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("idem-race");
  constexpr int keys = 200;
  std::vector<std::unique_ptr<child_process>> racers;
  for (int p = 0; p < 2; ++p) {
    racers.push_back(std::make_unique<child_process>([&, p](const child_channel& ch) {
      const RedisStreamAdd<std::string> add(add_config<std::string>(port, stream));
      add.run({.redis_key = stream + ":warm-up", .redis_val = "connected"});  // both start even
      ch.say("ready");
      if (ch.hear() != "go") return 1;
      // Process 0 goes up the keys, process 1 down: they meet, and race, in the middle.
      std::vector<std::string> got(keys);
      for (int i = 0; i < keys; ++i) {
        const int k = p == 0 ? i : keys - 1 - i;
        got[k] = add.run({.redis_val = "from " + std::to_string(p),
                          .idempotency_key = "job-" + std::to_string(k)});
      }
      std::string line = "ids";
      for (const auto& id : got)
        line += " " + id;
      ch.say(line);
      return 0;
    }));
  }
  for (auto& r : racers)
    REQUIRE(r->receive(30s) == "ready");
  for (auto& r : racers)
    r->send("go");
  std::vector<std::vector<std::string>> ids;
  for (auto& r : racers) {
    const auto line = after(r->receive(60s), "ids");
    REQUIRE(line);
    std::istringstream in(*line);
    std::vector<std::string> mine;
    std::string id;
    while (in >> id)
      mine.push_back(id);
    REQUIRE(mine.size() == static_cast<std::size_t>(keys));
    ids.push_back(std::move(mine));
    CHECK(r->wait(30s) == 0);
  }
  // Both got the same ID for each key, the stream has one entry per key, and each key's
  // record holds the ID of its entry.
  CHECK(ids[0] == ids[1]);
  CHECK(xlen(port, stream) == keys);
  const auto es = entries_of(port, stream);
  REQUIRE(es.size() == static_cast<std::size_t>(keys));
  std::set<std::string> in_stream;
  int from0 = 0;
  for (const auto& e : es) {
    in_stream.insert(e.id);
    from0 += e.fields.at("value") == "from 0" ? 1 : 0;
  }
  CHECK(in_stream == std::set<std::string>(ids[0].begin(), ids[0].end()));
  const auto records = lines_of(test_support::redis_cli(
      port, {"EVAL",
             "local out = {} for i = 0, tonumber(ARGV[1]) - 1 do out[#out + 1] = "
             "redis.call('GET', ARGV[2] .. i) end return out",
             "0", std::to_string(keys), "{" + stream + "}:idem:job-"}));
  CHECK(records == ids[0]);
  WARN("idempotency race: " << from0 << " of " << keys << " keys won by process 0");
}

// ---------------------------------------------------------------------------------------------
// 6. Entries deleted or trimmed while pending.

TEST_CASE(
    "streams: entries deleted or trimmed while pending come back in deleted of a later claim, "
    "once, never acknowledged silently") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("deleted");
  const std::string group = "g";
  const RedisStreamAdd<std::string> add(add_config<std::string>(port, stream));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(add.run({.redis_val = "e" + std::to_string(i)}));
  auto hc = consumer_config<std::string>(port, stream, group);
  hc.consumer = "holder";
  const RedisStreamConsumer<std::string> holder(hc);
  REQUIRE(holder.run().messages.size() == 5);
  CHECK(cli(port, {"XDEL", stream, ids[1], ids[3]}) == "2");
  CHECK(pending_count(port, stream, group) == 5);  // the server keeps them pending

  // The next claim scan reports them, whatever its min_idle (the server drops entries that no
  // longer exist from the pending list as its scan meets them, idle or not), and claims none
  // of the others, which are not idle for a minute.
  auto pc = consumer_config<std::string>(port, stream, group);
  pc.consumer = "patient";
  pc.min_idle = 60s;
  const auto first = RedisStreamConsumer<std::string>(pc).run();
  CHECK(first.messages.empty());
  CHECK(first.deleted == std::vector<std::string>{ids[1], ids[3]});
  auto pending = pending_of(port, stream, group);
  REQUIRE(pending.size() == 3);
  for (const auto& p : pending)
    CHECK(p.consumer == "holder");

  // The others are claimed once idle, and the deleted ones are not reported again.
  auto cc = consumer_config<std::string>(port, stream, group);
  cc.consumer = "claimer";
  cc.min_idle = 200ms;
  const RedisStreamConsumer<std::string> claimer(cc);
  std::vector<std::string> deleted;
  const auto got = collect(claimer, 3, 30s, &deleted);
  CHECK(got.size() == 3);
  for (const int i : {0, 2, 4}) {
    INFO("entry " << i);
    REQUIRE(got.count(ids[i]) == 1);
    CHECK(got.at(ids[i]).value == "e" + std::to_string(i));
    CHECK(got.at(ids[i]).deliveries == 2);
  }
  CHECK(deleted.empty());
  // What is pending now is what was returned.
  pending = pending_of(port, stream, group);
  REQUIRE(pending.size() == 3);
  for (const auto& p : pending)
    CHECK(p.consumer == "claimer");
  CHECK(claimer.ack(ids[0]));
  CHECK(claimer.ack(ids[2]));
  CHECK(claimer.ack(ids[4]));
  CHECK(pending_count(port, stream, group) == 0);

  // Trimmed by someone else while pending: reported the same way.
  std::vector<std::string> more;
  for (int i = 0; i < 3; ++i)
    more.push_back(add.run({.redis_val = "m" + std::to_string(i)}));
  REQUIRE(holder.run().messages.size() == 3);
  CHECK(cli(port, {"XTRIM", stream, "MAXLEN", "0"}) == "6");
  std::vector<std::string> trimmed_ids;
  wait_until(
      [&] {
        auto b = claimer.run();
        CHECK(b.messages.empty());
        trimmed_ids.insert(trimmed_ids.end(), b.deleted.begin(), b.deleted.end());
        return trimmed_ids.size() >= 3;
      },
      30s, "the trimmed entries to be reported");
  std::sort(trimmed_ids.begin(), trimmed_ids.end());
  CHECK(trimmed_ids == more);
  CHECK(pending_count(port, stream, group) == 0);
}

// ---------------------------------------------------------------------------------------------
// 7. Values.

namespace {

// Adds `v` and reads it back with a new group; the message, and the entry as the server has it.
template <class T>
std::pair<stream_message<T>, entry> round_trip(int port, const std::string& stream, const T& v) {
  const std::string id = RedisStreamAdd<T>(add_config<T>(port, stream)).run({.redis_val = v});
  const auto b = RedisStreamConsumer<T>(consumer_config<T>(port, stream, "g")).run();
  REQUIRE(b.messages.size() == 1);
  REQUIRE(b.messages[0].id == id);
  const auto es = entries_of(port, stream);
  REQUIRE(es.size() == 1);
  return {b.messages[0], es[0]};
}

}  // namespace

TEST_CASE("streams: values of every storable kind round-trip through add and consume") {
  using streams_test::celsius;
  using streams_test::order;
  using streams_test::point;
  redis_process server;
  const int port = server.port();
  using fields = std::map<std::string, std::string>;
  {
    const job v{{"region", "north"}, {"text", "two words, one line"}, {"empty", ""}};
    const auto [m, e] = round_trip(port, unique_key("v:map"), v);
    CHECK(m.value == v);
    CHECK(e.fields == v);  // a map's entries are the entry's fields
  }
  {
    const auto [m, e] = round_trip<std::string>(port, unique_key("v:string"), "hello, world");
    CHECK(m.value == "hello, world");
    CHECK(e.fields == fields{{"value", "hello, world"}});
  }
  {
    const long long big = 9007199254740993LL;  // not a double
    const auto [m, e] = round_trip<long long>(port, unique_key("v:ll"), -big);
    CHECK(m.value == -big);
    CHECK(e.fields == fields{{"value", "-9007199254740993"}});
  }
  {
    const auto [m, e] = round_trip<double>(port, unique_key("v:double"), 0.1);
    CHECK(m.value == 0.1);
    CHECK(e.fields.size() == 1);
    CHECK(std::stod(e.fields.at("value")) == 0.1);
  }
  {
    const order v{"A-1", 3, {1.5, 2.25}};
    const auto [m, e] = round_trip(port, unique_key("v:order"), v);
    CHECK(m.value == v);
    REQUIRE(e.fields.count("value") == 1);
    CHECK(nlohmann::json::parse(e.fields.at("value")) == nlohmann::json(v));
  }
  {
    const nlohmann::json v = {{"a", 1}, {"b", {true, nullptr, "x"}}, {"c", {{"d", 2.5}}}};
    const auto [m, e] = round_trip(port, unique_key("v:json"), v);
    CHECK(m.value == v);
    CHECK(nlohmann::json::parse(e.fields.at("value")) == v);
  }
  {
    const point v{1.5, -2};
    const auto [m, e] = round_trip(port, unique_key("v:point"), v);
    CHECK(m.value == v);
    CHECK(e.fields.size() == 2);
    CHECK(std::stod(e.fields.at("x")) == 1.5);
    CHECK(std::stod(e.fields.at("y")) == -2);
  }
  {
    const celsius v{21.5};
    const auto [m, e] = round_trip(port, unique_key("v:celsius"), v);
    CHECK(m.value == v);
    CHECK(e.fields == fields{{"value", "21.5"}});
  }
  {
    const std::map<std::string, long long> v{{"a", 1}, {"b", -2}};
    const auto [m, e] = round_trip(port, unique_key("v:counts"), v);
    CHECK(m.value == v);
    CHECK(e.fields == fields{{"a", "1"}, {"b", "-2"}});
  }
}

TEST_CASE("streams: run_many returns each item's ID in order, and an invalid item fails alone") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("many");
  const RedisStreamAdd<job> add(add_config(port, stream));
  const auto results = add.run_many({{.redis_val = job{{"i", "0"}}},
                                     {.redis_val = job{{"i", "1"}}},
                                     {.redis_val = job{}},  // no fields
                                     {.redis_val = job{{"i", "3"}}},
                                     {.redis_key = stream + ":other", .redis_val = job{{"i", "4"}}},
                                     {.redis_val = job{{"i", "5"}}}});
  REQUIRE(results.size() == 6);
  CHECK_FALSE(results[2].ok());
  CHECK_THAT(config_error_of([&] { (void)results[2].value(); }), Contains("no fields"));
  std::vector<std::string> ids;
  for (const int i : {0, 1, 3, 5}) {
    INFO("item " << i);
    REQUIRE(results[i].ok());
    ids.push_back(results[i].value());
  }
  REQUIRE(results[4].ok());
  const auto es = entries_of(port, stream);
  REQUIRE(es.size() == 4);
  for (std::size_t k = 0; k < es.size(); ++k) {
    CHECK(es[k].id == ids[k]);  // in order: the stream's order is the items'
    CHECK(es[k].fields.at("i") == std::to_string(std::vector<int>{0, 1, 3, 5}[k]));
  }
  const auto other = entries_of(port, stream + ":other");
  REQUIRE(other.size() == 1);
  CHECK(other[0].id == results[4].value());

  // With trimming (scripted, one by one): the same answers.
  auto tc = add_config(port, stream);
  tc.maxlen = 1000;
  const auto scripted = RedisStreamAdd<job>(tc).run_many(
      {{.redis_val = job{{"i", "6"}}}, {.redis_val = job{}}, {.redis_val = job{{"i", "8"}}}});
  REQUIRE(scripted.size() == 3);
  REQUIRE(scripted[0].ok());
  CHECK_FALSE(scripted[1].ok());
  REQUIRE(scripted[2].ok());
  const auto all = entries_of(port, stream);
  REQUIRE(all.size() == 6);
  CHECK(all[4].id == scripted[0].value());
  CHECK(all[5].id == scripted[2].value());
  CHECK(add.run_many({}).empty());
}

// ---------------------------------------------------------------------------------------------
// 8. Groups, counts and blocking.

TEST_CASE("streams: the group and stream are made when missing, and start_id and count apply") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("made");
  const RedisStreamConsumer<std::string> in(consumer_config<std::string>(port, stream, "g"));
  const auto b = in.run();  // no block: returns at once
  CHECK(b.messages.empty());
  CHECK(b.deleted.empty());
  CHECK(cli(port, {"TYPE", stream}) == "stream");
  CHECK_THAT(cli(port, {"XINFO", "GROUPS", stream}), Contains("name\ng\n"));

  const RedisStreamAdd<std::string> add(add_config<std::string>(port, stream));
  const std::string before = add.run({.redis_val = "before"});
  // A group made with "$" starts after what is there; one made with "0" (the default) reads it.
  auto nc = consumer_config<std::string>(port, stream, "new-only");
  nc.start_id = "$";
  const RedisStreamConsumer<std::string> new_only(nc);
  CHECK(new_only.run().messages.empty());
  const RedisStreamConsumer<std::string> from_start(
      consumer_config<std::string>(port, stream, "from-start"));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(add.run({.redis_val = "after " + std::to_string(i)}));
  const auto first = new_only.run({.count = 2});
  REQUIRE(first.messages.size() == 2);
  CHECK(first.messages[0].id == ids[0]);
  CHECK(first.messages[1].id == ids[1]);
  const auto rest = new_only.run();
  REQUIRE(rest.messages.size() == 3);
  CHECK(rest.messages[2].id == ids[4]);
  const auto all = from_start.run();
  REQUIRE(all.messages.size() == 6);
  CHECK(all.messages[0].id == before);
  CHECK(all.messages[0].value == "before");
  // Each task has a name of its own in the group unless one is given.
  const RedisStreamConsumer<std::string> other(consumer_config<std::string>(port, stream, "g"));
  CHECK_FALSE(in.consumer().empty());
  CHECK(in.consumer() != other.consumer());
  CHECK(in.run().messages.size() == 6);
  CHECK_THAT(cli(port, {"XINFO", "CONSUMERS", stream, "g"}), Contains(in.consumer()));
}

TEST_CASE("streams: a stream deleted after its group was made is made again by the next run") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("remade");
  auto c = consumer_config<std::string>(port, stream, "g");
  c.min_idle = 10ms;  // a claim scan is due at (nearly) every run
  const RedisStreamConsumer<std::string> in(c);
  CHECK(in.run().messages.empty());
  CHECK(cli(port, {"DEL", stream}) == "1");
  const std::string id =
      RedisStreamAdd<std::string>(add_config<std::string>(port, stream)).run({.redis_val = "v"});
  stream_batch<std::string> b;
  CHECK_NOTHROW(b = in.run());
  REQUIRE(b.messages.size() == 1);
  CHECK(b.messages[0].id == id);
}

TEST_CASE(
    "streams: block waits for an entry added by another process, and unset a run does not wait") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("block");
  const RedisStreamConsumer<std::string> in(consumer_config<std::string>(port, stream, "g"));
  CHECK(in.run().messages.empty());
  CHECK(in.run({.block = 50ms}).messages.empty());

  child_process reader([&](const child_channel& ch) {
    auto c = consumer_config<std::string>(port, stream, "g");
    c.block = 60s;
    c.redis_connection_params.client_name = "blocked-reader";
    const RedisStreamConsumer<std::string> blocked(c);
    const auto b = blocked.run();
    ch.say(b.messages.size() == 1 ? "got " + b.messages[0].id + " " + b.messages[0].value
                                  : "got " + std::to_string(b.messages.size()));
    return 0;
  });
  wait_until([&] { return !test_support::blocked_client_ids(port, "blocked-reader").empty(); }, 30s,
             "the reader to block in XREADGROUP");
  const std::string id =
      RedisStreamAdd<std::string>(add_config<std::string>(port, stream)).run({.redis_val = "wake"});
  CHECK(reader.receive(30s) == "got " + id + " wake");
  CHECK(reader.wait(30s) == 0);
}

// ---------------------------------------------------------------------------------------------
// 9. Configs.

TEST_CASE("streams: invalid settings are config errors before any I/O") {
  // Nothing listens on port 1: a run that reached the network would fail otherwise.
  auto cbase = consumer_config(1, "jobs", "g");
  cbase.redis_connection_params.connect_timeout = 2000ms;
  auto consume = [](RedisStreamConsumer<job>::config c,
                    RedisStreamConsumer<job>::overrides o = {}) {
    return config_error_of([&] { (void)RedisStreamConsumer<job>(std::move(c)).run(o); });
  };
  auto with = [&](auto change) {
    auto c = cbase;
    change(c);
    return consume(c);
  };
  using cc = RedisStreamConsumer<job>::config;
  CHECK_THAT(with([](cc& c) { c.group.clear(); }), Contains("group"));
  CHECK_THAT(with([](cc& c) { c.redis_key.reset(); }), Contains("redis_key"));
  CHECK_THAT(with([](cc& c) { c.redis_key = ""; }), Contains("redis_key"));
  CHECK_THAT(with([](cc& c) { c.count = 0; }), Contains("count"));
  CHECK_THAT(with([](cc& c) { c.count = -3; }), Contains("count"));
  CHECK_THAT(with([](cc& c) { c.block = -1ms; }), Contains("block"));
  CHECK_THAT(with([](cc& c) { c.min_idle = 0ms; }), Contains("min_idle"));
  CHECK_THAT(with([](cc& c) { c.max_deliveries = 0; }), Contains("max_deliveries"));
  CHECK_THAT(with([](cc& c) { c.consumer = ""; }), Contains("consumer"));
  CHECK_THAT(with([](cc& c) { c.dead_letter_key = ""; }), Contains("dead_letter_key"));
  CHECK_THAT(with([](cc& c) { c.start_id = ""; }), Contains("start_id"));
  CHECK_THAT(consume(cbase, {.count = 0}), Contains("count"));
  CHECK_THAT(consume(cbase, {.block = -5ms}), Contains("block"));
  // The same config does reach the network.
  CHECK_THROWS_AS(RedisStreamConsumer<job>(cbase).run(), redis_tasks::connection_error);

  auto abase = add_config(1, "jobs");
  abase.redis_connection_params.connect_timeout = 2000ms;
  abase.redis_val = job{{"a", "1"}};
  auto add = [](RedisStreamAdd<job>::config c, RedisStreamAdd<job>::overrides o = {}) {
    return config_error_of([&] { (void)RedisStreamAdd<job>(std::move(c)).run(o); });
  };
  auto add_with = [&](auto change) {
    auto c = abase;
    change(c);
    return add(c);
  };
  using ac = RedisStreamAdd<job>::config;
  CHECK_THAT(add_with([](ac& c) { c.maxlen = 0; }), Contains("maxlen"));
  CHECK_THAT(add_with([](ac& c) { c.maxlen = -5; }), Contains("maxlen"));
  CHECK_THAT(add_with([](ac& c) { c.idempotency_key = ""; }), Contains("idempotency_key"));
  CHECK_THAT(add_with([](ac& c) { c.idempotency_ttl = 0ms; }), Contains("idempotency_ttl"));
  CHECK_THAT(add_with([](ac& c) { c.redis_key = ""; }), Contains("redis_key"));
  CHECK_THAT(add_with([](ac& c) { c.redis_key.reset(); }), Contains("redis_key"));
  CHECK_THAT(add_with([](ac& c) { c.redis_val.reset(); }), Contains("redis_val"));
  CHECK_THAT(add_with([](ac& c) { c.redis_val = job{}; }), Contains("no fields"));
  CHECK_THAT(add(abase, {.idempotency_key = ""}), Contains("idempotency_key"));
  CHECK_THAT(add(abase, {.redis_val = job{}}), Contains("no fields"));
  // run_many: every item invalid, so nothing is sent; each fails with its config_error.
  const auto results =
      RedisStreamAdd<job>(abase).run_many({{.redis_val = job{}}, {.idempotency_key = ""}});
  REQUIRE(results.size() == 2);
  CHECK_THAT(config_error_of([&] { (void)results[0].value(); }), Contains("no fields"));
  CHECK_THAT(config_error_of([&] { (void)results[1].value(); }), Contains("idempotency_key"));
  CHECK_THROWS_AS(RedisStreamAdd<job>(abase).run(), redis_tasks::connection_error);
}

TEST_CASE("streams: the configs load from JSON") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("json");
  const nlohmann::json aj = {{"host", "127.0.0.1"},
                             {"port", port},
                             {"password_secret", nullptr},
                             {"redis_key", stream},
                             {"maxlen", 150},
                             {"idempotency_key", "nightly"},
                             {"idempotency_ttl", 2.5},
                             {"task", {{"name", "json-add"}}}};
  const auto acfg = aj.get<RedisStreamAdd<job>::config>();
  CHECK(acfg.port == port);
  CHECK(acfg.redis_key == stream);
  CHECK(acfg.maxlen == std::optional<long long>(150));
  CHECK(acfg.idempotency_key == std::optional<std::string>("nightly"));
  CHECK(acfg.idempotency_ttl == 2500ms);
  CHECK(acfg.task.name == "json-add");
  const RedisStreamAdd<job> add(acfg);
  const std::string id = add.run({.redis_val = job{{"a", "1"}}});
  CHECK(add.run({.redis_val = job{{"a", "2"}}}) == id);
  CHECK(xlen(port, stream) == 1);
  const long long ttl = std::stoll(cli(port, {"PTTL", "{" + stream + "}:idem:nightly"}));
  CHECK(ttl > 0);
  CHECK(ttl <= 2500);

  auto add_with = [&](const std::string& field, const nlohmann::json& v) {
    nlohmann::json c = aj;
    c[field] = v;
    return config_error_of(
        [&] { (void)RedisStreamAdd<job>(c.get<RedisStreamAdd<job>::config>()); });
  };
  CHECK_THAT(add_with("maxlen", 0), Contains("maxlen"));
  CHECK_THAT(add_with("maxlen", "many"), Contains("maxlen"));
  CHECK_THAT(add_with("idempotency_key", 5), Contains("idempotency_key"));
  CHECK_THAT(add_with("idempotency_ttl", "1 day"), Contains("idempotency_ttl"));
  CHECK_THAT(add_with("max_len", 10), Contains("max_len"));        // an unknown field, named
  CHECK_THAT(add_with("ex", 10), Contains("unknown field `ex`"));  // RedisSet's, not this task's
  {
    nlohmann::json c = aj;
    c["redis_val"] = {{"from", "json"}};
    c["idempotency_key"] = "from-json";
    const auto with_val = c.get<RedisStreamAdd<job>::config>();
    CHECK(with_val.redis_val == std::optional<job>(job{{"from", "json"}}));
    const std::string from_json = RedisStreamAdd<job>(with_val).run();
    const auto es = entries_of(port, stream);
    REQUIRE(es.size() == 2);
    CHECK(es[1].id == from_json);
    CHECK(es[1].fields == job{{"from", "json"}});
  }
  {
    nlohmann::json c = aj;
    c["maxlen"] = nullptr;
    c["idempotency_key"] = nullptr;
    const auto unset = c.get<RedisStreamAdd<job>::config>();
    CHECK_FALSE(unset.maxlen);
    CHECK_FALSE(unset.idempotency_key);
  }

  const nlohmann::json cj = {{"host", "127.0.0.1"},
                             {"port", port},
                             {"password_secret", nullptr},
                             {"redis_key", stream},
                             {"group", "json-group"},
                             {"consumer", "json-consumer"},
                             {"count", 3},
                             {"block", 0.2},
                             {"min_idle", 0.5},
                             {"max_deliveries", 2},
                             {"dead_letter_key", "dead:json"},
                             {"start_id", "$"},
                             {"task", {{"name", "json-consume"}}}};
  const auto ccfg = cj.get<RedisStreamConsumer<job>::config>();
  CHECK(ccfg.redis_key == stream);
  CHECK(ccfg.group == "json-group");
  CHECK(ccfg.consumer == std::optional<std::string>("json-consumer"));
  CHECK(ccfg.count == 3);
  CHECK(ccfg.block == std::optional<std::chrono::milliseconds>(200ms));
  CHECK(ccfg.min_idle == 500ms);
  CHECK(ccfg.max_deliveries == 2);
  CHECK(ccfg.dead_letter_key == std::optional<std::string>("dead:json"));
  CHECK(ccfg.start_id == "$");
  CHECK(ccfg.task.name == "json-consume");
  const RedisStreamConsumer<job> in(ccfg);
  CHECK(in.consumer() == "json-consumer");
  CHECK(in.dead_letter_key() == "dead:json");
  CHECK(in.name() == "json-consume");
  CHECK(in.run().messages.empty());  // "$": the entry added before is not for this group
  const RedisStreamAdd<job> plain(add_config(port, stream));
  for (int i = 0; i < 5; ++i)
    plain.run({.redis_val = job{{"i", std::to_string(i)}}});
  CHECK(in.run().messages.size() == 3);  // count
  const auto pending = pending_of(port, stream, "json-group");
  REQUIRE(pending.size() == 3);
  CHECK(pending[0].consumer == "json-consumer");

  auto consume_with = [&](const std::string& field, const nlohmann::json& v) {
    nlohmann::json c = cj;
    c[field] = v;
    return config_error_of(
        [&] { (void)RedisStreamConsumer<job>(c.get<RedisStreamConsumer<job>::config>()); });
  };
  CHECK_THAT(consume_with("group", 5), Contains("group"));
  CHECK_THAT(consume_with("group", ""), Contains("group"));
  CHECK_THAT(consume_with("count", 0), Contains("count"));
  CHECK_THAT(consume_with("count", 2.5), Contains("count"));
  CHECK_THAT(consume_with("block", -1), Contains("block"));
  CHECK_THAT(consume_with("min_idle", "1s"), Contains("min_idle"));
  CHECK_THAT(consume_with("min_idle", 0), Contains("min_idle"));
  CHECK_THAT(consume_with("max_deliveries", 0), Contains("max_deliveries"));
  CHECK_THAT(consume_with("start_id", 0), Contains("start_id"));
  CHECK_THAT(consume_with("groups", "g"), Contains("groups"));  // an unknown field, named
  {
    nlohmann::json c = cj;
    c["consumer"] = nullptr;
    c["block"] = nullptr;
    c["dead_letter_key"] = nullptr;
    const auto unset = c.get<RedisStreamConsumer<job>::config>();
    CHECK_FALSE(unset.consumer);
    CHECK_FALSE(unset.block);
    CHECK(RedisStreamConsumer<job>(unset).dead_letter_key() == "{" + stream + "}:dead");
  }
}

TEST_CASE("streams: a block longer than task.timeout ends the run with an empty batch") {
  redis_process server;
  const std::string stream = unique_key("block-deadline");
  auto cc = consumer_config(server.port(), stream, "g");
  cc.block = 60s;
  cc.task.timeout = 500ms;
  const RedisStreamConsumer<job> consumer(cc);
  // Redis ends a block at a timer tick up to 100 ms late, wherever the tick falls: a few runs,
  // so that a block ending too close to the deadline shows (it did in about half of them).
  for (int run = 0; run < 5; ++run) {
    INFO("run " << run);
    const auto batch = consumer.run();  // waits for what is left of task.timeout, then returns
    CHECK(batch.messages.empty());
    CHECK(batch.deleted.empty());
  }
}

TEST_CASE("streams: a backlog of idle pending entries is claimed run after run, without waits") {
  redis_process server;
  const int port = server.port();
  const std::string stream = unique_key("backlog");
  const RedisStreamAdd<job> add(add_config(port, stream));
  std::vector<RedisStreamAdd<job>::overrides> items(60, {.redis_val = job{{"n", "1"}}});
  for (const auto& r : add.run_many(items))
    REQUIRE(r.ok());
  auto first = consumer_config(port, stream, "g");
  first.consumer = "crashed";
  first.count = 60;
  REQUIRE(RedisStreamConsumer<job>(first).run().messages.size() == 60);  // never acknowledged
  wait_until([&] { return least_idle(port, stream, "g") >= 200; }, 30s,
             "the entries to be idle for min_idle");
  auto cc = consumer_config(port, stream, "g");
  cc.consumer = "rescuer";
  cc.count = 10;
  cc.min_idle = 200ms;
  cc.block = 10min;  // a run that waited instead of claiming would never end in this test
  const RedisStreamConsumer<job> rescuer(cc);
  std::size_t claimed = 0;
  for (int run = 0; run < 6; ++run) {
    const auto b = rescuer.run();
    INFO("run " << run);
    CHECK(b.messages.size() == 10);
    for (const auto& m : b.messages)
      CHECK(m.deliveries == 2);
    claimed += b.messages.size();
    CHECK(rescuer.ack(b) == static_cast<long long>(b.messages.size()));
  }
  CHECK(claimed == 60);
  CHECK(pending_count(port, stream, "g") == 0);
}
