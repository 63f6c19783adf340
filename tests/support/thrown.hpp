// `thrown<E>(f)`: the message of the E that f throws, for tests that check error texts.
#pragma once

#include <exception>
#include <string>

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

}  // namespace test_support
