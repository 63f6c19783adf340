// `thrown<E>(f)`: the message of the E that f throws, for tests that check error texts.
#pragma once

#include <exception>
#include <string>
#include <utility>

#include <redis_tasks/errors.hpp>

namespace test_support {

/// The message of the E that `f` throws, or a text saying that it threw something else or
/// nothing at all (so a CHECK on the text fails with a useful expansion).
template <class E, class F>
std::string thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("another exception: ") + e.what();
  }
  return "no exception";
}

/// A config_error's message, or a text saying what happened instead (so a CHECK on it fails
/// with a useful expansion).
template <class F>
std::string config_error_of(F&& f) {
  const std::string m = thrown<redis_tasks::config_error>(std::forward<F>(f));
  if (m == "no exception" || m.rfind("another exception: ", 0) == 0)
    return "NOT A CONFIG ERROR: " + m;
  return m;
}

}  // namespace test_support
