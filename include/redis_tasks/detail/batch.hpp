// Running a batch of items as one pipeline: queue every item's commands, write them in one go,
// then read each item's replies in order. Shared by the three tasks' run_many.
#pragma once

#include "../version.hpp"

#include <cstddef>
#include <exception>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "../batch.hpp"
#include "../errors.hpp"
#include "client.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Thrown by a batch item's `finish` to ask for `late` once all replies are read (an item
/// that needs another command, such as TYPE after WRONGTYPE, cannot send it mid-pipeline).
struct finish_later {};

/// Runs `n` items on one connection of `cl` in one pipeline. Items whose `errors[i]` is set
/// (refused before any I/O) are skipped and keep that error. `queue(i, c)` appends item i's
/// commands; `finish(i, c)` reads its replies and returns its result (an error it throws is
/// the item's, except a connection_error, which fails every item still waiting); `late(i, c)`
/// serves items that threw `finish_later`. On a Redis Cluster the items run one at a time,
/// each routed by `single(i)`. Nothing waits past `deadline`.
template <class R, class Queue, class Finish, class Late, class Single>
std::vector<batch_result<R>> run_pipelined(client& cl, clock::time_point deadline, std::size_t n,
                                           std::vector<std::exception_ptr> errors, Queue&& queue,
                                           Finish&& finish, Late&& late, Single&& single) {
  std::vector<std::optional<R>> results(n);
  std::size_t first = 0;
  while (first < n && errors[first])
    ++first;
  if (first < n && !cl.pipelines()) {
    for (std::size_t i = first; i < n; ++i) {
      if (errors[i]) continue;
      try {
        results[i].emplace(single(i));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  } else if (first < n) {
    const std::vector<std::exception_ptr> refused = errors;
    // After item `failed` left the replies out of step, none that follow can be matched to its
    // item: every item still waiting fails, its outcome unknown (never retried on its own).
    auto fail_rest = [&](connection& c, std::size_t failed) {
      const connection_error lost("the replies from " + c.endpoint() +
                                  " went out of step with the batch at item " +
                                  std::to_string(failed) +
                                  "; whether this item ran is unknown, and the connection was "
                                  "closed");
      for (std::size_t j = 0; j < n; ++j) {
        if (j != failed && !errors[j] && !results[j]) errors[j] = std::make_exception_ptr(lost);
      }
    };
    try {
      cl.run(std::string_view(), deadline, [&](connection& c) {
        // A retried attempt (nothing of the first reached the server) starts from scratch.
        errors = refused;
        for (auto& r : results)
          r.reset();
        c.begin_request();
        for (std::size_t i = 0; i < n; ++i) {
          if (!errors[i]) queue(i, c);
        }
        c.flush();
        std::vector<std::size_t> later;
        for (std::size_t i = 0; i < n; ++i) {
          if (errors[i]) continue;
          try {
            results[i].emplace(finish(i, c));
          } catch (const finish_later&) {
            later.push_back(i);
          } catch (const connection_error&) {
            throw;
          } catch (...) {
            errors[i] = std::current_exception();
            if (c.out_of_step()) {
              fail_rest(c, i);
              return 0;  // nothing more is read from this connection
            }
          }
        }
        for (std::size_t i : later) {
          try {
            results[i].emplace(late(i, c));
          } catch (const connection_error&) {
            throw;
          } catch (...) {
            errors[i] = std::current_exception();
          }
        }
        return 0;
      });
    } catch (const error&) {
      // The connection failed (or the pool had none): items without an outcome share the error.
      for (std::size_t i = 0; i < n; ++i) {
        if (!results[i] && !errors[i]) errors[i] = std::current_exception();
      }
    }
  }
  std::vector<batch_result<R>> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(results[i] ? batch_result<R>::success(std::move(*results[i]))
                             : batch_result<R>::failure(errors[i]));
  }
  return out;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
