// Deadline arithmetic: the largest durations mean "no limit", never an overflow (UBSan runs
// these), and poll timeouts never end a wait early.
#include <chrono>
#include <climits>

#include <redis_tasks/redis_tasks.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;
namespace d = redis_tasks::detail;

TEST_CASE("durations too large to add saturate to no deadline") {
  const auto now = d::clock::now();
  CHECK(d::saturating_add(now, std::chrono::milliseconds::max()) == d::no_deadline);
  CHECK(d::saturating_add(now, std::chrono::seconds::max()) == d::no_deadline);
  CHECK(d::saturating_add(now, std::chrono::hours::max()) == d::no_deadline);
  CHECK(d::saturating_add(now, std::chrono::nanoseconds::max()) == d::no_deadline);
  CHECK(d::saturating_add(d::no_deadline, 1ms) == d::no_deadline);
  CHECK(d::saturating_add(now, 250ms) == now + 250ms);
  CHECK(d::saturating_add(now, 0ms) == now);
  CHECK(d::deadline_after(0ms) == d::no_deadline);
  CHECK(d::deadline_after(std::chrono::milliseconds::max()) == d::no_deadline);
  const auto soon = d::deadline_after(1s);
  CHECK(soon > now);
  CHECK(soon <= d::clock::now() + 1s);
  CHECK(d::earlier(soon, d::no_deadline) == soon);
}

TEST_CASE("poll timeouts round up and are clamped") {
  const auto now = d::clock::now();
  CHECK(d::poll_timeout(d::no_deadline, now) == -1);
  CHECK(d::poll_timeout(now, now) == 0);
  CHECK(d::poll_timeout(now - 1s, now) == 0);
  CHECK(d::poll_timeout(now + 300us, now) == 1);  // never 0 (a busy loop) while time is left
  CHECK(d::poll_timeout(now + 1500us, now) == 2);
  CHECK(d::poll_timeout(now + std::chrono::hours(24 * 365 * 100), now) == INT_MAX);
}

TEST_CASE("messages say 'no limit' for the largest durations") {
  CHECK(d::ms_text(250ms) == "250 ms");
  CHECK(d::ms_text(std::chrono::milliseconds::max()) == "no limit");
}

TEST_CASE("a sleep within a deadline stops at the deadline") {
  const auto start = d::clock::now();
  CHECK_FALSE(d::sleep_within(std::chrono::milliseconds::max(), start + 20ms));
  CHECK(d::clock::now() >= start + 20ms);
  CHECK(d::sleep_within(1ms, d::no_deadline));
}
