// Results of `run_many`: one per item, each the item's value or the error it raised.
#pragma once

#include "version.hpp"

#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// The outcome of one item of a `run_many` batch: its result, or the error it raised. One
/// item's failure (a bad argument, an error reply, a value of the wrong type) does not affect
/// the others; a lost connection fails the items whose replies had not arrived.
template <class R>
class batch_result {
 public:
  /// An item that succeeded with `v`.
  static batch_result success(R v) {
    batch_result r;
    r.value_.emplace(std::move(v));
    return r;
  }
  /// An item that failed with `e`.
  static batch_result failure(const std::exception_ptr& e) {
    batch_result r;
    r.error_ = e;
    return r;
  }

  /// True when the item succeeded.
  bool ok() const noexcept { return value_.has_value(); }
  /// The item's result; rethrows its error when it failed.
  const R& value() const& {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  /// The item's result, moved out; rethrows its error when it failed.
  R&& value() && {
    if (!value_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  /// The item's error (null when it succeeded).
  std::exception_ptr error() const noexcept { return error_; }
  /// The error's message, or "" when the item succeeded.
  std::string error_message() const {
    if (!error_) return {};
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "unknown error";
    }
  }

 private:
  batch_result() = default;
  std::optional<R> value_;
  std::exception_ptr error_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
