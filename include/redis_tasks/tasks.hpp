// The three Prefect tasks: RedisSet, RedisGet and RedisExecute. Each merges its config with a
// run's overrides, validates before any network I/O, and runs on a pooled connection.
// This header declares JSON with <nlohmann/json_fwd.hpp> only: a file that stores JSON types or
// loads configs from JSON includes <nlohmann/json.hpp> too (see the README's "Finer headers").
#pragma once

#include "version.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "batch.hpp"
#include "command.hpp"
#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/batch.hpp"
#include "detail/client.hpp"
#include "detail/codec.hpp"
#include "detail/command_policy.hpp"
#include "detail/run.hpp"
#include "detail/settings.hpp"
#include "detail/store.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "from_reply.hpp"
#include "reply.hpp"
#include "secret_provider.hpp"
#include "values.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

/// Expiry given as seconds or milliseconds, validated and as milliseconds.
REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> expiry_of(
    const std::optional<std::chrono::seconds>& ex,
    const std::optional<std::chrono::milliseconds>& px, const std::string& label,
    const char* where);

REDIS_TASKS_DECL condition condition_of(bool nx, bool xx, const std::string& label,
                                        const char* where);

/// Values that Redis cannot hold are refused before any I/O: NaN scores.
template <class T>
void check_storable(const T& v, const std::string& label) {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::zset) {
    for (const auto& e : v) {
      if (std::isnan(e.score)) {
        throw config_error(label + ": a sorted_set score is NaN; Redis scores must be numbers");
      }
    }
  } else if constexpr (cat == category::any) {
    std::visit([&](const auto& alt) { check_storable(alt, label); }, v);
  }
}

/// Calls `f` with `v` as it will be stored, made before any I/O: a `value_traits` type turned
/// into its storage, a JSON type into its text, and every value checked, so that a value Redis
/// cannot hold is a `config_error` before the network is touched (and retries reuse the work).
template <class T, class F>
auto with_prepared(const T& v, const std::string& label, F&& f) {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::user || cat == category::json) {
    const auto stored = converted(v, label);
    check_storable(stored, label);
    return f(stored);
  } else {
    check_storable(v, label);
    return f(v);
  }
}

}  // namespace detail

/// Sets a key to a value (Prefect's RedisSet). T picks the Redis type: see the Values table.
template <class T = std::string>
class RedisSet {
 public:
  static_assert(!detail::is_char_pointer_v<T>,
                "RedisSet<const char*>: a pointer would dangle in a long-lived config; use "
                "RedisSet<std::string> (a string literal converts to it)");
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisSet<T>: T must be a string, a number, a container of those, sorted_set, "
                "value, a JSON-convertible type (with <nlohmann/json.hpp> included), or have a "
                "value_traits specialization");
  static_assert(detail::json_ready_v<T>, REDIS_TASKS_JSON_NEEDED);

  /// What Prefect's constructor takes, in its order.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};    ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};         ///< key to set
    std::optional<T> redis_val{};                   ///< value to store
    std::optional<std::chrono::seconds> ex{};       ///< expiry in seconds
    std::optional<std::chrono::milliseconds> px{};  ///< expiry in milliseconds
    bool nx = false;                                ///< only if the key is absent
    bool xx = false;                                ///< only if the key exists
    /// A lease's fencing token (`lease::token()`): the write is refused with
    /// `lease_lost_error`, writing nothing, when a larger token already wrote the key.
    std::optional<std::uint64_t> fence_token{};
    task_options task{};                              ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead: when set, the handle's server and settings are
    /// used and the connection fields above are not.
    std::shared_ptr<connection_handle> connection{};
    /// Loads a config from JSON with Prefect's argument names (`host`, `port`, `db`,
    /// `password_secret`, `redis_connection_params`, the task's own fields, `task`) plus `url`;
    /// a wrong name or type is a `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisSet");
    }

    /// Sets `host`; returns this config, for chaining (C++17 has no designated initializers).
    config& with_host(std::string v) {
      host = std::move(v);
      return *this;
    }
    /// Sets `port`.
    config& with_port(int v) {
      port = v;
      return *this;
    }
    /// Sets `db`.
    config& with_db(int v) {
      db = v;
      return *this;
    }
    /// Sets `password_secret` (std::nullopt: no AUTH).
    config& with_password_secret(std::optional<std::string> v) {
      password_secret = std::move(v);
      return *this;
    }
    /// Sets `redis_connection_params`.
    config& with_redis_connection_params(connection_params v) {
      redis_connection_params = std::move(v);
      return *this;
    }
    /// Sets `redis_key`.
    config& with_redis_key(std::string v) {
      redis_key = std::move(v);
      return *this;
    }
    /// Sets `redis_val`.
    config& with_redis_val(T v) {
      redis_val = std::move(v);
      return *this;
    }
    /// Sets `ex`.
    config& with_ex(std::chrono::seconds v) {
      ex = v;
      return *this;
    }
    /// Sets `px`.
    config& with_px(std::chrono::milliseconds v) {
      px = v;
      return *this;
    }
    /// Sets `nx`.
    config& with_nx(bool v) {
      nx = v;
      return *this;
    }
    /// Sets `xx`.
    config& with_xx(bool v) {
      xx = v;
      return *this;
    }
    /// Sets `fence_token`.
    config& with_fence_token(std::uint64_t v) {
      fence_token = v;
      return *this;
    }
    /// Sets `task`.
    config& with_task(task_options v) {
      task = std::move(v);
      return *this;
    }
    /// Sets `secrets`.
    config& with_secrets(std::shared_ptr<const SecretProvider> v) {
      secrets = std::move(v);
      return *this;
    }
    /// Sets `connection`.
    config& with_connection(std::shared_ptr<connection_handle> v) {
      connection = std::move(v);
      return *this;
    }
  };

  /// What Prefect's run() takes; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> redis_key{};         ///< key to set
    std::optional<T> redis_val{};                   ///< value to store
    std::optional<std::chrono::seconds> ex{};       ///< expiry in seconds (replaces config ex/px)
    std::optional<std::chrono::milliseconds> px{};  ///< expiry in ms (replaces config ex/px)
    std::optional<bool> nx{};                       ///< condition (replaces config nx/xx)
    std::optional<bool> xx{};                       ///< condition (replaces config nx/xx)
    std::optional<std::uint64_t> fence_token{};     ///< fencing token (replaces the config's)

    /// Sets `redis_key`; returns these overrides, for chaining.
    overrides& with_redis_key(std::string v) {
      redis_key = std::move(v);
      return *this;
    }
    /// Sets `redis_val`.
    overrides& with_redis_val(T v) {
      redis_val = std::move(v);
      return *this;
    }
    /// Sets `ex`.
    overrides& with_ex(std::chrono::seconds v) {
      ex = v;
      return *this;
    }
    /// Sets `px`.
    overrides& with_px(std::chrono::milliseconds v) {
      px = v;
      return *this;
    }
    /// Sets `nx`.
    overrides& with_nx(bool v) {
      nx = v;
      return *this;
    }
    /// Sets `xx`.
    overrides& with_xx(bool v) {
      xx = v;
      return *this;
    }
    /// Sets `fence_token`.
    overrides& with_fence_token(std::uint64_t v) {
      fence_token = v;
      return *this;
    }
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisSet(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisSet")),
        name_(detail::task_name(cfg_.task, "RedisSet", cfg_.redis_key.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    cfg_expiry_ = detail::expiry_of(cfg_.ex, cfg_.px, label_, "the config");
    cfg_cond_ = detail::condition_of(cfg_.nx, cfg_.xx, label_, "the config");
    if constexpr (std::is_same_v<T, std::string_view>) {
      // The config's view may outlive what it views (a temporary string, a buffer reused):
      // the task keeps its own copy, shared by copies of the task, so the view stays valid.
      if (cfg_.redis_val) {
        owned_val_ = std::make_shared<const std::string>(*cfg_.redis_val);
        cfg_.redis_val = std::string_view(*owned_val_);
      }
    }
    client_ = detail::client_for(cfg_, label_);
  }

  /// Stores the value; true if stored, false if nx/xx prevented it.
  bool run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisSet");
    const std::string& key = pick(o.redis_key, cfg_.redis_key, "redis_key");
    const T& val = pick(o.redis_val, cfg_.redis_val, "redis_val");
    detail::write_options w;
    w.expiry = (o.ex || o.px) ? detail::expiry_of(o.ex, o.px, label_, "run()") : cfg_expiry_;
    w.cond = (o.nx || o.xx)
                 ? detail::condition_of(o.nx.value_or(false), o.xx.value_or(false), label_, "run()")
                 : cfg_cond_;
    w.fence = o.fence_token ? o.fence_token : cfg_.fence_token;
    return detail::with_prepared(val, label_, [&](const auto& stored) {
      const detail::run_info info{name_, key, detail::write_command_name<T>(), client_->endpoint()};
      return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
        return client_->run(key, deadline, [&](detail::connection& c) {
          return detail::write_value(c, key, stored, w);
        });
      });
    });
  }

  /// Same as `run(o)`, so the task can be passed wherever a callable is expected.
  bool operator()(const overrides& o = {}) const { return run(o); }

  /// `run(o)` asynchronously (see the README's "Asynchronous runs"); the future holds what
  /// `run` returns or the error it throws. The task may go before the run ends.
  std::future<bool> run_async(overrides o = {}) const {
    static_assert(!std::is_same_v<T, std::string_view>,
                  "RedisSet<std::string_view>::run_async: the run outlives the call, and a view "
                  "in the overrides could outlive what it views; use RedisSet<std::string>");
    detail::check_live(client_.get(), "RedisSet");
    return detail::start_async<bool>(
        *this, client_->async_route_for(cfg_.task, true, replayable_async), std::move(o));
  }
  /// `run(o)` asynchronously, then `done` with its outcome, on a thread of the library's (one
  /// that holds up no other caller if `done` blocks).
  void run_async(overrides o, std::function<void(batch_result<bool>)> done) const {
    static_assert(!std::is_same_v<T, std::string_view>,
                  "RedisSet<std::string_view>::run_async: the run outlives the call, and a view "
                  "in the overrides could outlive what it views; use RedisSet<std::string>");
    detail::check_live(client_.get(), "RedisSet");
    detail::start_async<bool>(*this, client_->async_route_for(cfg_.task, true, replayable_async),
                              std::move(o), std::move(done));
  }

  /// Runs one set per item, in one pipelined round trip (on a Redis Cluster, one item after
  /// another), and returns each item's outcome in order: true/false as `run` returns, or the
  /// error that item raised. Invalid items fail alone, before any I/O. A batch is not retried.
  std::vector<batch_result<bool>> run_many(const std::vector<overrides>& items) const {
    detail::check_live(client_.get(), "RedisSet");
    const detail::run_info info{name_, {}, detail::write_command_name<T>(), client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(),
                              [&] { return run_many_untold(items); });
  }

 private:
  // The library alone encodes the value, so a run run again sends the same bytes; a type's own
  // value_traits might not (a timestamp, a random id): such runs go on a thread.
  static constexpr bool replayable_async = detail::category_of<T>() != detail::category::user;

  std::vector<batch_result<bool>> run_many_untold(const std::vector<overrides>& items) const {
    using stored_t = detail::stored_form_t<T>;
    struct item {
      const std::string* key = nullptr;
      const stored_t* value = nullptr;
      std::optional<stored_t> owned;
      detail::write_options w;
    };
    const std::size_t n = items.size();
    std::vector<item> prepared(n);
    std::vector<std::exception_ptr> errors(n);
    bool script_loaded = false;
    for (std::size_t i = 0; i < n; ++i) {
      try {
        const auto& o = items[i];
        auto& it = prepared[i];
        it.key = &pick(o.redis_key, cfg_.redis_key, "redis_key");
        const T& val = pick(o.redis_val, cfg_.redis_val, "redis_val");
        it.w.expiry = (o.ex || o.px) ? detail::expiry_of(o.ex, o.px, label_, "run()") : cfg_expiry_;
        it.w.cond = (o.nx || o.xx) ? detail::condition_of(o.nx.value_or(false),
                                                          o.xx.value_or(false), label_, "run()")
                                   : cfg_cond_;
        it.w.fence = o.fence_token ? o.fence_token : cfg_.fence_token;
        if (it.w.fence && !script_loaded) it.w.load_script = script_loaded = true;
        if constexpr (std::is_same_v<stored_t, T>) {
          detail::check_storable(val, label_);
          it.value = &val;
        } else {
          it.owned.emplace(detail::converted(val, label_));
          detail::check_storable(*it.owned, label_);
          it.value = &*it.owned;
        }
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
    std::vector<detail::queued_write> queued(n);
    const auto deadline = detail::deadline_after(cfg_.task.timeout);
    return detail::run_pipelined<bool>(
        *client_, deadline, n, std::move(errors),
        [&](std::size_t i, detail::connection& c) {
          queued[i] = detail::queue_write(c, *prepared[i].key, *prepared[i].value, prepared[i].w);
        },
        [&](std::size_t i, detail::connection& c) {
          try {
            return detail::finish_write(c, *prepared[i].key, queued[i]);
          } catch (const detail::fence_script_missing&) {
            throw detail::finish_later();  // sent again once the other replies are read
          }
        },
        [&](std::size_t i, detail::connection& c) {
          return detail::write_value(c, *prepared[i].key, *prepared[i].value, prepared[i].w);
        },
        [&](std::size_t i) {
          return client_->run(*prepared[i].key, deadline, [&](detail::connection& c) {
            return detail::write_value(c, *prepared[i].key, *prepared[i].value, prepared[i].w);
          });
        });
  }

 public:
  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key or command.
  const std::string& name() const noexcept { return name_; }

 private:
  template <class V>
  const V& pick(const std::optional<V>& run_value, const std::optional<V>& cfg_value,
                const char* field) const {
    if (run_value) return *run_value;
    if (cfg_value) return *cfg_value;
    throw config_error(label_ + ": " + field + " is missing; give it in the config or in run()");
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::optional<std::chrono::milliseconds> cfg_expiry_;
  detail::condition cfg_cond_ = detail::condition::none;
  std::shared_ptr<detail::client> client_;
  std::shared_ptr<const std::string> owned_val_;  // what a RedisSet<std::string_view> config views
};

/// Gets the value of a key (Prefect's RedisGet), read back as T; std::nullopt if absent.
template <class T = std::string>
class RedisGet {
 public:
  static_assert(!std::is_same_v<T, std::string_view> && !detail::is_char_pointer_v<T>,
                "RedisGet<std::string_view> / RedisGet<const char*>: a view cannot own what "
                "Redis sends; use RedisGet<std::string>");
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisGet<T>: T must be std::string, a number, a container of those, sorted_set, "
                "value, a JSON-convertible type (with <nlohmann/json.hpp> included), or have a "
                "value_traits specialization");
  static_assert(detail::json_ready_v<T>, REDIS_TASKS_JSON_NEEDED);

  /// What Prefect's constructor takes, in its order.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};      ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};           ///< key to read
    task_options task{};                              ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead: when set, the handle's server and settings are
    /// used and the connection fields above are not.
    std::shared_ptr<connection_handle> connection{};
    /// Loads a config from JSON with Prefect's argument names (`host`, `port`, `db`,
    /// `password_secret`, `redis_connection_params`, the task's own fields, `task`) plus `url`;
    /// a wrong name or type is a `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisGet");
    }

    /// Sets `host`; returns this config, for chaining (C++17 has no designated initializers).
    config& with_host(std::string v) {
      host = std::move(v);
      return *this;
    }
    /// Sets `port`.
    config& with_port(int v) {
      port = v;
      return *this;
    }
    /// Sets `db`.
    config& with_db(int v) {
      db = v;
      return *this;
    }
    /// Sets `password_secret` (std::nullopt: no AUTH).
    config& with_password_secret(std::optional<std::string> v) {
      password_secret = std::move(v);
      return *this;
    }
    /// Sets `redis_connection_params`.
    config& with_redis_connection_params(connection_params v) {
      redis_connection_params = std::move(v);
      return *this;
    }
    /// Sets `redis_key`.
    config& with_redis_key(std::string v) {
      redis_key = std::move(v);
      return *this;
    }
    /// Sets `task`.
    config& with_task(task_options v) {
      task = std::move(v);
      return *this;
    }
    /// Sets `secrets`.
    config& with_secrets(std::shared_ptr<const SecretProvider> v) {
      secrets = std::move(v);
      return *this;
    }
    /// Sets `connection`.
    config& with_connection(std::shared_ptr<connection_handle> v) {
      connection = std::move(v);
      return *this;
    }
  };

  /// What Prefect's run() takes.
  struct overrides {
    std::optional<std::string> redis_key{};  ///< key to read

    /// Sets `redis_key`; returns these overrides, for chaining.
    overrides& with_redis_key(std::string v) {
      redis_key = std::move(v);
      return *this;
    }
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisGet(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisGet")),
        name_(detail::task_name(cfg_.task, "RedisGet", cfg_.redis_key.value_or(""))),
        type_label_("RedisGet<" + detail::value_type_name<T>() + ">") {
    detail::check_retry_options(cfg_.task, label_);
    client_ = detail::client_for(cfg_, label_);
  }

  /// The key's value as T, or std::nullopt when the key does not exist.
  /// Throws `type_error` when the key holds another Redis type or text that does not fit T.
  std::optional<T> run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisGet");
    const std::string* key = o.redis_key      ? &*o.redis_key
                             : cfg_.redis_key ? &*cfg_.redis_key
                                              : nullptr;
    if (key == nullptr) {
      throw config_error(label_ + ": redis_key is missing; give it in the config or in run()");
    }
    const detail::run_info info{name_, *key, detail::read_command_name<T>(), client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      return client_->run(*key, deadline, [&](detail::connection& c) {
        return detail::read_value<T>(c, *key, type_label_);
      });
    });
  }

  /// Same as `run(o)`.
  std::optional<T> operator()(const overrides& o = {}) const { return run(o); }

  /// `run(o)` asynchronously (see the README's "Asynchronous runs"); the future holds what
  /// `run` returns or the error it throws. The task may go before the run ends.
  std::future<std::optional<T>> run_async(overrides o = {}) const {
    detail::check_live(client_.get(), "RedisGet");
    return detail::start_async<std::optional<T>>(
        *this, client_->async_route_for(cfg_.task, quiet_async), std::move(o));
  }
  /// `run(o)` asynchronously, then `done` with its outcome, on a thread of the library's (one
  /// that holds up no other caller if `done` blocks).
  void run_async(overrides o, std::function<void(batch_result<std::optional<T>>)> done) const {
    detail::check_live(client_.get(), "RedisGet");
    detail::start_async<std::optional<T>>(*this, client_->async_route_for(cfg_.task, quiet_async),
                                          std::move(o), std::move(done));
  }

  /// Reads one key per item, in one pipelined round trip (on a Redis Cluster, or for
  /// `RedisGet<value>`, one item after another), and returns each item's outcome in order:
  /// the value or std::nullopt as `run` returns, or the error that item raised.
  std::vector<batch_result<std::optional<T>>> run_many(const std::vector<overrides>& items) const {
    detail::check_live(client_.get(), "RedisGet");
    const detail::run_info info{name_, {}, detail::read_command_name<T>(), client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(),
                              [&] { return run_many_untold(items); });
  }

 private:
  // Only the library reads this task's replies (no value_traits of the user's): an
  // asynchronous run may stop a pass with a nil reply (see connection::begin_async).
  static constexpr bool quiet_async = detail::category_of<T>() != detail::category::user;

  std::vector<batch_result<std::optional<T>>> run_many_untold(
      const std::vector<overrides>& items) const {
    using result_t = std::optional<T>;
    const std::size_t n = items.size();
    std::vector<const std::string*> keys(n, nullptr);
    std::vector<std::exception_ptr> errors(n);
    for (std::size_t i = 0; i < n; ++i) {
      keys[i] = items[i].redis_key ? &*items[i].redis_key
                : cfg_.redis_key   ? &*cfg_.redis_key
                                   : nullptr;
      if (keys[i] == nullptr) {
        errors[i] = std::make_exception_ptr(
            config_error(label_ + ": redis_key is missing; give it in the config or in run()"));
      }
    }
    const auto deadline = detail::deadline_after(cfg_.task.timeout);
    auto single = [&](std::size_t i) {
      return client_->run(*keys[i], deadline, [&](detail::connection& c) {
        return detail::read_value<T>(c, *keys[i], type_label_);
      });
    };
    constexpr bool direct = detail::category_of<T>() != detail::category::any &&
                            detail::category_of<T>() != detail::category::user;
    if constexpr (!direct) {
      // TYPE first, or a value_traits conversion: item by item.
      std::vector<batch_result<result_t>> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        if (errors[i]) {
          out.push_back(batch_result<result_t>::failure(errors[i]));
          continue;
        }
        try {
          out.push_back(batch_result<result_t>::success(single(i)));
        } catch (...) {
          out.push_back(batch_result<result_t>::failure(std::current_exception()));
        }
      }
      return out;
    } else {
      constexpr auto kind = detail::kind_of(detail::category_of<T>());
      return detail::run_pipelined<result_t>(
          *client_, deadline, n, std::move(errors),
          [&](std::size_t i, detail::connection& c) { detail::append_read(c, kind, *keys[i]); },
          [&](std::size_t i, detail::connection& c) -> result_t {
            reply r = c.read();
            if (r.is_error() && r.str().compare(0, 9, "WRONGTYPE") == 0) {
              throw detail::finish_later();  // needs TYPE, which must wait for the other replies
            }
            return detail::decode_read<T>(std::move(r), *keys[i], c);
          },
          [&](std::size_t i, detail::connection& c) -> result_t {
            detail::throw_wrong_type(*keys[i], detail::type_of_key(c, *keys[i]),
                                     detail::category_of<T>(), type_label_);
          },
          single);
    }
  }

 public:
  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key or command.
  const std::string& name() const noexcept { return name_; }

 private:
  config cfg_;
  std::string label_;
  std::string name_;
  std::string type_label_;
  std::shared_ptr<detail::client> client_;
};

/// Runs any command (Prefect's RedisExecute) and converts the reply to T.
/// Blocking commands (BLPOP, BRPOP, BLMOVE, BZPOPMIN, XREAD BLOCK, WAIT, …) wait as long as
/// they ask plus the socket timeout; a block time of 0 waits without limit, as in redis-cli.
/// Commands that would change the shared connection (SELECT, AUTH, MULTI, SUBSCRIBE, …) are a
/// `config_error` with a hint.
template <class T = reply>
class RedisExecute {
 public:
  static_assert(std::disjunction_v<std::negation<detail::holds_json<T>>, detail::json_complete<T>>,
                REDIS_TASKS_JSON_NEEDED);

  /// What Prefect's constructor takes, in its order.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};      ///< timeouts, user, TLS, pool…
    optional_command redis_cmd{};                     ///< the command to run
    task_options task{};                              ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead: when set, the handle's server and settings are
    /// used and the connection fields above are not.
    std::shared_ptr<connection_handle> connection{};
    /// Loads a config from JSON with Prefect's argument names (`host`, `port`, `db`,
    /// `password_secret`, `redis_connection_params`, the task's own fields, `task`) plus `url`;
    /// a wrong name or type is a `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisExecute");
    }

    /// Sets `host`; returns this config, for chaining (C++17 has no designated initializers).
    config& with_host(std::string v) {
      host = std::move(v);
      return *this;
    }
    /// Sets `port`.
    config& with_port(int v) {
      port = v;
      return *this;
    }
    /// Sets `db`.
    config& with_db(int v) {
      db = v;
      return *this;
    }
    /// Sets `password_secret` (std::nullopt: no AUTH).
    config& with_password_secret(std::optional<std::string> v) {
      password_secret = std::move(v);
      return *this;
    }
    /// Sets `redis_connection_params`.
    config& with_redis_connection_params(connection_params v) {
      redis_connection_params = std::move(v);
      return *this;
    }
    /// Sets `redis_cmd` (a line, or a brace list of arguments).
    config& with_redis_cmd(command v) {
      redis_cmd = std::move(v);
      return *this;
    }
    /// Sets `task`.
    config& with_task(task_options v) {
      task = std::move(v);
      return *this;
    }
    /// Sets `secrets`.
    config& with_secrets(std::shared_ptr<const SecretProvider> v) {
      secrets = std::move(v);
      return *this;
    }
    /// Sets `connection`.
    config& with_connection(std::shared_ptr<connection_handle> v) {
      connection = std::move(v);
      return *this;
    }
  };

  /// What Prefect's run() takes.
  struct overrides {
    optional_command redis_cmd{};  ///< the command to run

    /// Sets `redis_cmd`; returns these overrides, for chaining.
    overrides& with_redis_cmd(command v) {
      redis_cmd = std::move(v);
      return *this;
    }
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings,
  /// including a config command that would corrupt the shared connection.
  explicit RedisExecute(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisExecute")),
        name_(detail::task_name(cfg_.task, "RedisExecute",
                                cfg_.redis_cmd ? cfg_.redis_cmd->name() : std::string())) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_cmd) check_command(*cfg_.redis_cmd);
    client_ = detail::client_for(cfg_, label_);
  }

  /// Runs the command; its reply converted to T. A server error reply is a `reply_error`.
  T run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisExecute");
    const command* cmd = o.redis_cmd ? &*o.redis_cmd : cfg_.redis_cmd ? &*cfg_.redis_cmd : nullptr;
    if (cmd == nullptr) {
      throw config_error(label_ + ": redis_cmd is missing; give it in the config or in run()");
    }
    if (o.redis_cmd) check_command(*cmd);  // the config's command was checked when built
    const auto block = detail::block_time(*cmd);
    const std::string context = "reply to " + detail::command_label(*cmd);
    const std::string name = cmd->name();
    const detail::run_info info{name_, {}, name, client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      return execute(*cmd, block, context, deadline);
    });
  }

  /// Same as `run(o)`.
  T operator()(const overrides& o = {}) const { return run(o); }

  /// `run(o)` asynchronously (see the README's "Asynchronous runs"); the future holds what
  /// `run` returns or the error it throws. The task may go before the run ends.
  std::future<T> run_async(overrides o = {}) const {
    detail::check_live(client_.get(), "RedisExecute");
    return detail::start_async<T>(*this, client_->async_route_for(cfg_.task, quiet_async),
                                  std::move(o));
  }
  /// `run(o)` asynchronously, then `done` with its outcome, on a thread of the library's (one
  /// that holds up no other caller if `done` blocks).
  void run_async(overrides o, std::function<void(batch_result<T>)> done) const {
    detail::check_live(client_.get(), "RedisExecute");
    detail::start_async<T>(*this, client_->async_route_for(cfg_.task, quiet_async), std::move(o),
                           std::move(done));
  }

  /// Runs one command per item, in one pipelined round trip (on a Redis Cluster, one item
  /// after another), and returns each item's outcome in order: the reply converted to T, or
  /// the error that item raised (a refused command, an error reply, a reply that does not fit).
  std::vector<batch_result<T>> run_many(const std::vector<overrides>& items) const {
    detail::check_live(client_.get(), "RedisExecute");
    const std::string command_name = batch_command_name(items);  // outlives `info`'s view
    const detail::run_info info{name_, {}, command_name, client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(),
                              [&] { return run_many_untold(items); });
  }

 private:
  std::vector<batch_result<T>> run_many_untold(const std::vector<overrides>& items) const {
    const std::size_t n = items.size();
    std::vector<const command*> cmds(n, nullptr);
    std::vector<std::exception_ptr> errors(n);
    std::optional<std::chrono::milliseconds> longest_block;
    for (std::size_t i = 0; i < n; ++i) {
      try {
        cmds[i] = items[i].redis_cmd ? &*items[i].redis_cmd
                  : cfg_.redis_cmd   ? &*cfg_.redis_cmd
                                     : nullptr;
        if (cmds[i] == nullptr) {
          throw config_error(label_ + ": redis_cmd is missing; give it in the config or in run()");
        }
        check_command(*cmds[i]);
        if (const auto b = detail::block_time(*cmds[i])) {
          if (!longest_block || b->count() == 0 ||
              (longest_block->count() != 0 && *b > *longest_block)) {
            longest_block = b;
          }
        }
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
    const auto deadline = detail::deadline_after(cfg_.task.timeout);
    return detail::run_pipelined<T>(
        *client_, deadline, n, std::move(errors),
        [&](std::size_t i, detail::connection& c) {
          // Repeated for every item, so that a resent batch's new connection is stretched too;
          // the client gives the connection its socket timeout back before it is reused.
          if (longest_block) c.stretch_timeout(*longest_block);
          const auto& args = cmds[i]->args();
          c.begin_command(args.size());
          for (const auto& a : args)
            c.arg(a);
          c.end_command();
        },
        [&](std::size_t i, detail::connection& c) -> T {
          reply r = c.read();
          if (r.is_error()) {
            throw reply_error(r.str(), cmds[i]->name() + " on " + c.endpoint());
          }
          return from_reply<T>(std::move(r), "reply to " + cmds[i]->name());
        },
        [](std::size_t, detail::connection&) -> T { throw detail::finish_later(); },
        [&](std::size_t i) {
          return execute(*cmds[i], detail::block_time(*cmds[i]), "reply to " + cmds[i]->name(),
                         deadline);
        });
  }

 public:
  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key or command.
  const std::string& name() const noexcept { return name_; }

 private:
  // Only the library reads this task's replies: an asynchronous run may stop a pass with a nil
  // reply (see connection::begin_async). A type of the user's may read them in its own way.
  static constexpr bool quiet_async = detail::library_reads<T>();

  // The command a batch runs, for run hooks: its items' command name, or "various".
  std::string batch_command_name(const std::vector<overrides>& items) const {
    std::string name;
    for (const auto& o : items) {
      const command* c = o.redis_cmd ? &*o.redis_cmd : cfg_.redis_cmd ? &*cfg_.redis_cmd : nullptr;
      if (c == nullptr || c->empty()) continue;
      std::string n = c->name();
      if (name.empty()) {
        name = std::move(n);
      } else if (n != name) {
        return "various";
      }
    }
    return name;
  }

  void check_command(const command& cmd) const {
    if (cmd.empty()) throw config_error(label_ + ": redis_cmd is empty; give a command to run");
    if (const char* hint = detail::refused_command_hint(cmd)) {
      throw config_error(label_ + ": " + detail::command_label(cmd) +
                         " is not run by tasks, because it would change the shared, reused "
                         "connection: " +
                         hint);
    }
  }

  T execute(const command& cmd, std::optional<std::chrono::milliseconds> block,
            const std::string& context, detail::clock::time_point deadline) const {
    const auto& args = cmd.args();
    // Routed by the keys the command really has (EVAL, XREAD … STREAMS, BLMPOP put them
    // elsewhere than second), not by its second argument.
    reply r = client_->run(detail::route::for_command(args), deadline, [&](detail::connection& c) {
      // The client gives the connection its socket timeout back before it is reused.
      const bool stretch = block.has_value();
      const bool by_deadline = stretch && c.stretch_timeout(*block);
      c.begin_request();
      c.begin_command(args.size());
      for (const auto& a : args)
        c.arg(a);
      c.end_command();
      c.flush();
      reply out;
      try {
        out = c.read();
      } catch (const timeout_error& e) {
        // The message names only the stretched timeout; say where it came from. (When the
        // run's deadline cut it short, the message says so already.)
        if (!stretch || by_deadline) throw;
        throw timeout_error(std::string(e.what()) + " (" + detail::command_label(cmd) +
                            " may block " + std::to_string(block->count()) +
                            " ms, plus socket_timeout " +
                            std::to_string(c.socket_timeout().count()) + " ms)");
      }
      // Thrown here, inside the run, so that the client sees MOVED, ASK and TRYAGAIN from a
      // cluster node and READONLY from a demoted master, and sends the command where it goes.
      if (out.is_error()) {
        throw reply_error(out.str(), detail::command_label(cmd) + " on " + c.endpoint());
      }
      return out;
    });
    return from_reply<T>(std::move(r), context);
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/tasks.ipp"
#endif
