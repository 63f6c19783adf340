// Where a command goes: the client picks the server for a key and lends a connection.
// Standalone today; the tasks call only `run`, so cluster and sentinel routing slot in here.
#pragma once

#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include "pool.hpp"

namespace redis_tasks::detail {

/// Routes runs to connections.
class client {
 public:
  explicit client(endpoint_settings s) : endpoint_(s.name()) {
    if (s.params.tls.enabled && !s.tls) s.tls = std::make_shared<const tls_context>(s.params.tls);
    pool_ = pool_for(s);
  }

  /// Calls `fn(connection&)` on a connection for `key`. If the request could not have reached
  /// the server (nothing was written before the connection failed), it is tried once more on a
  /// new connection; any other failure propagates, so nothing runs twice.
  template <class F>
  auto run(std::string_view key, F&& fn) -> std::invoke_result_t<F&, connection&> {
    (void)key;
    for (int attempt = 0;; ++attempt) {
      auto lease = pool_->acquire();
      try {
        return fn(*lease);
      } catch (const not_sent_error&) {
        if (attempt >= 1) throw;
      }
    }
  }

  /// "host:port" of the server, for messages.
  const std::string& endpoint() const noexcept { return endpoint_; }
  /// The pool behind this client (for tests and statistics).
  const connection_pool& pool() const noexcept { return *pool_; }

 private:
  std::shared_ptr<connection_pool> pool_;
  std::string endpoint_;
};

}  // namespace redis_tasks::detail
