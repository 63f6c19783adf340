// The three Prefect tasks: RedisSet, RedisGet and RedisExecute. Each merges its config with a
// run's overrides, validates before any network I/O, and runs on a pooled connection.
#pragma once

#include "version.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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
#include "detail/settings.hpp"
#include "detail/store.hpp"
#include "errors.hpp"
#include "from_reply.hpp"
#include "reply.hpp"
#include "secrets.hpp"
#include "values.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

/// The client a task runs on: its handle's, or one for its own connection fields.
template <class Config>
std::shared_ptr<client> client_for(const Config& c, const std::string& label) {
  if (c.connection) return c.connection->client();
  return std::make_shared<client>(settings_of(c, label));
}

inline std::string task_label(const task_options& t, const char* kind) {
  return t.name.empty() ? std::string(kind) : std::string(kind) + " '" + t.name + "'";
}

/// task_options.name, or by default the class and what it is about: `RedisSet(greeting)`,
/// `RedisExecute(INCRBY)`, or just the class when the config names nothing.
/// `text` for a message: at most 64 bytes, control characters shown as '?'.
inline std::string printable(std::string_view text) {
  std::string s(text.substr(0, 64));
  for (auto& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  if (text.size() > 64) s += "...";
  return s;
}

inline std::string task_name(const task_options& t, const char* kind, std::string_view subject) {
  if (!t.name.empty()) return t.name;
  if (subject.empty()) return kind;
  return std::string(kind) + "(" + printable(subject) + ")";
}

inline void check_retry_options(const task_options& t, const std::string& label) {
  if (t.max_retries < 0) throw config_error(label + ": task.max_retries must not be negative");
  if (t.retry_delay.count() < 0)
    throw config_error(label + ": task.retry_delay must not be negative");
}

/// What a run is about, for run hooks.
struct run_info {
  std::string_view task;      ///< the task's name
  std::string_view key;       ///< the key, or empty
  std::string_view command;   ///< the command name
  std::string_view endpoint;  ///< where it goes
};

/// The command a RedisSet<T> run sends, for run hooks.
template <class T>
constexpr const char* write_command_name() {
  if constexpr (category_of<T>() == category::user) {
    return write_command_name<typename value_traits<T>::storage_type>();
  }
  switch (kind_of(category_of<T>())) {
    case redis_kind::list:
      return "RPUSH";
    case redis_kind::set:
      return "SADD";
    case redis_kind::hash:
      return "HSET";
    case redis_kind::zset:
      return "ZADD";
    default:
      return "SET";
  }
}

/// The command a RedisGet<T> run sends, for run hooks.
template <class T>
constexpr const char* read_command_name() {
  if constexpr (category_of<T>() == category::user) {
    return read_command_name<typename value_traits<T>::storage_type>();
  }
  if (category_of<T>() == category::any) return "TYPE";
  switch (kind_of(category_of<T>())) {
    case redis_kind::list:
      return "LRANGE";
    case redis_kind::set:
      return "SMEMBERS";
    case redis_kind::hash:
      return "HGETALL";
    case redis_kind::zset:
      return "ZRANGE";
    default:
      return "GET";
  }
}

/// The name of the most specific library error type of `e`.
inline const char* error_type_name(const std::exception& e) {
  if (dynamic_cast<const timeout_error*>(&e)) return "timeout_error";
  if (dynamic_cast<const connection_error*>(&e)) return "connection_error";
  if (dynamic_cast<const config_error*>(&e)) return "config_error";
  if (dynamic_cast<const auth_error*>(&e)) return "auth_error";
  if (dynamic_cast<const reply_error*>(&e)) return "reply_error";
  if (dynamic_cast<const type_error*>(&e)) return "type_error";
  if (dynamic_cast<const error*>(&e)) return "error";
  return "std::exception";
}

/// The hook runs of a task are told of: the task's own, else the global one (kept alive by
/// `global`), else none.
struct hook_ref {
  std::shared_ptr<const run_hook> global;
  const run_hook* hook = nullptr;
};

inline hook_ref hook_for(const task_options& t) {
  hook_ref r;
  if (t.on_run) {
    r.hook = &t.on_run;
  } else {
    r.global = global_hook();
    r.hook = r.global.get();
  }
  return r;
}

inline void notify(const run_hook& hook, const run_event& ev) noexcept {
  try {
    hook(ev);
  } catch (...) {  // a broken hook must not break the run
  }
}

/// Runs a batch (`f` returns its results) and tells the run hook of it as one event with
/// `batch_size` set: ok when every item succeeded, else the first failed item's error.
template <class F>
auto told_batch(const task_options& t, const run_info& info, std::size_t n, F&& f)
    -> decltype(f()) {
  const hook_ref hr = hook_for(t);
  if (hr.hook == nullptr) return f();
  const auto start = clock::now();
  run_event ev;
  ev.task = info.task;
  ev.command = info.command;
  ev.endpoint = info.endpoint;
  ev.batch_size = n;
  std::string message;
  auto tell = [&](const std::exception* e, std::size_t item) {
    ev.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start);
    ev.ok = e == nullptr;
    if (e != nullptr) {
      ev.error_type = error_type_name(*e);
      message = item < n
                    ? "item " + std::to_string(item) + " of " + std::to_string(n) + ": " + e->what()
                    : e->what();
      ev.error = message;
    }
    notify(*hr.hook, ev);
  };
  try {
    auto results = f();
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) continue;
      try {
        std::rethrow_exception(results[i].error());
      } catch (const std::exception& e) {
        tell(&e, i);
        return results;
      } catch (...) {
        const error unknown("an exception that is not a std::exception");
        tell(&unknown, i);
        return results;
      }
    }
    tell(nullptr, n);
    return results;
  } catch (const std::exception& e) {
    tell(&e, n);
    throw;
  }
}

/// Rethrows the last connection error of a run with the task's name (and the run's key or
/// command, if the name does not show it) in front, keeping its type.
[[noreturn]] inline void rethrow_in_context(const connection_error& e, const run_info& info) {
  std::string where(info.task);
  const std::string subject = printable(info.key.empty() ? info.command : info.key);
  if (!subject.empty() && where.find(subject) == std::string::npos) {
    where += info.key.empty() ? " (command " + subject + ")" : " (key " + subject + ")";
  }
  std::string msg = where + ": " + e.what();
  if (dynamic_cast<const timeout_error*>(&e) != nullptr) throw timeout_error(msg);
  throw connection_error(msg);
}

/// Runs `f(deadline)`, again up to `max_retries` times after a connection_error (timeouts
/// included), within the task's `timeout` (the deadline every attempt is given), telling the
/// run hook (the task's, else the global one) of every attempt.
template <class F>
auto with_retries(const task_options& t, const run_info& info, F&& f)
    -> decltype(f(clock::time_point())) {
  const hook_ref hr = hook_for(t);
  const run_hook* hook = hr.hook;
  const auto deadline = deadline_after(t.timeout);
  const bool bounded = deadline != no_deadline;
  for (int attempt = 1;; ++attempt) {
    const auto start = hook != nullptr ? clock::now() : clock::time_point();
    auto tell = [&](bool ok, bool retry, const std::exception* e) {
      if (hook == nullptr) return;
      run_event ev;
      ev.task = info.task;
      ev.key = info.key;
      ev.command = info.command;
      ev.endpoint = info.endpoint;
      ev.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start);
      ev.attempt = attempt;
      ev.ok = ok;
      ev.will_retry = retry;
      if (e != nullptr) {
        ev.error_type = error_type_name(*e);
        ev.error = e->what();
      }
      notify(*hook, ev);
    };
    try {
      if (bounded && clock::now() >= deadline) {
        throw timeout_error("the run took longer than task.timeout " + ms_text(t.timeout));
      }
      auto result = f(deadline);
      tell(true, false, nullptr);
      return result;
    } catch (const connection_error& e) {
      const bool retry = attempt <= t.max_retries &&
                         (!bounded || saturating_add(clock::now(), t.retry_delay) < deadline);
      tell(false, retry, &e);
      if (!retry) rethrow_in_context(e, info);
    } catch (const std::exception& e) {
      tell(false, false, &e);
      throw;
    }
    if (t.retry_delay.count() > 0) sleep_within(t.retry_delay, deadline);
  }
}

/// Expiry given as seconds or milliseconds, validated and as milliseconds.
inline std::optional<std::chrono::milliseconds> expiry_of(
    const std::optional<std::chrono::seconds>& ex,
    const std::optional<std::chrono::milliseconds>& px, const std::string& label,
    const char* where) {
  if (ex && px) {
    throw config_error(label + ": " + where +
                       " gives both ex and px; they are one setting, give one");
  }
  if (ex) {
    if (ex->count() <= 0) {
      throw config_error(label + ": ex must be positive, got " + std::to_string(ex->count()) +
                         " s");
    }
    if (ex->count() > 1'000'000'000'000LL) throw config_error(label + ": ex is too large");
    return std::chrono::milliseconds(*ex);
  }
  if (px) {
    if (px->count() <= 0) {
      throw config_error(label + ": px must be positive, got " + std::to_string(px->count()) +
                         " ms");
    }
    return *px;
  }
  return std::nullopt;
}

inline condition condition_of(bool nx, bool xx, const std::string& label, const char* where) {
  if (nx && xx) {
    throw config_error(label + ": " + where +
                       " sets both nx and xx; they are one setting (only-if-absent or "
                       "only-if-present), set one");
  }
  return nx ? condition::nx : (xx ? condition::xx : condition::none);
}

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
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisSet<T>: T must be a string, a number, a container of those, sorted_set, "
                "value, a JSON-convertible type, or have a value_traits specialization");

  /// What Prefect's constructor takes, in its order.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};      ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};           ///< key to set
    std::optional<T> redis_val{};                     ///< value to store
    std::optional<std::chrono::seconds> ex{};         ///< expiry in seconds
    std::optional<std::chrono::milliseconds> px{};    ///< expiry in milliseconds
    bool nx = false;                                  ///< only if the key is absent
    bool xx = false;                                  ///< only if the key exists
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
  };

  /// What Prefect's run() takes; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> redis_key{};         ///< key to set
    std::optional<T> redis_val{};                   ///< value to store
    std::optional<std::chrono::seconds> ex{};       ///< expiry in seconds (replaces config ex/px)
    std::optional<std::chrono::milliseconds> px{};  ///< expiry in ms (replaces config ex/px)
    std::optional<bool> nx{};                       ///< condition (replaces config nx/xx)
    std::optional<bool> xx{};                       ///< condition (replaces config nx/xx)
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisSet(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisSet")),
        name_(detail::task_name(cfg_.task, "RedisSet", cfg_.redis_key.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    cfg_expiry_ = detail::expiry_of(cfg_.ex, cfg_.px, label_, "the config");
    cfg_cond_ = detail::condition_of(cfg_.nx, cfg_.xx, label_, "the config");
    client_ = detail::client_for(cfg_, label_);
  }

  /// Stores the value; true if stored, false if nx/xx prevented it.
  bool run(const overrides& o = {}) const {
    const std::string& key = pick(o.redis_key, cfg_.redis_key, "redis_key");
    const T& val = pick(o.redis_val, cfg_.redis_val, "redis_val");
    detail::write_options w;
    w.expiry = (o.ex || o.px) ? detail::expiry_of(o.ex, o.px, label_, "run()") : cfg_expiry_;
    w.cond = (o.nx || o.xx)
                 ? detail::condition_of(o.nx.value_or(false), o.xx.value_or(false), label_, "run()")
                 : cfg_cond_;
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

  /// Runs one set per item, in one pipelined round trip (on a Redis Cluster, one item after
  /// another), and returns each item's outcome in order: true/false as `run` returns, or the
  /// error that item raised. Invalid items fail alone, before any I/O. A batch is not retried.
  std::vector<batch_result<bool>> run_many(const std::vector<overrides>& items) const {
    const detail::run_info info{name_, {}, detail::write_command_name<T>(), client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(),
                              [&] { return run_many_untold(items); });
  }

 private:
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
          return detail::finish_write(c, *prepared[i].key, queued[i]);
        },
        [](std::size_t, detail::connection&) -> bool { throw detail::finish_later(); },
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
};

/// Gets the value of a key (Prefect's RedisGet), read back as T; std::nullopt if absent.
template <class T = std::string>
class RedisGet {
 public:
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisGet<T>: T must be std::string, a number, a container of those, sorted_set, "
                "value, a JSON-convertible type, or have a value_traits specialization");

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
  };

  /// What Prefect's run() takes.
  struct overrides {
    std::optional<std::string> redis_key{};  ///< key to read
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

  /// Reads one key per item, in one pipelined round trip (on a Redis Cluster, or for
  /// `RedisGet<value>`, one item after another), and returns each item's outcome in order:
  /// the value or std::nullopt as `run` returns, or the error that item raised.
  std::vector<batch_result<std::optional<T>>> run_many(const std::vector<overrides>& items) const {
    const detail::run_info info{name_, {}, detail::read_command_name<T>(), client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(),
                              [&] { return run_many_untold(items); });
  }

 private:
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

namespace detail {

/// Commands that would change the state of a connection that later runs and other tasks
/// reuse, with what to use instead.
inline const char* refused_command_hint(const command& cmd) {
  const std::string name = cmd.name();
  std::string sub;
  if (cmd.args().size() > 1) sub = command_word(cmd.args()[1]);
  if (name == "SELECT") return "set the task's `db` field instead";
  if (name == "AUTH") return "put the password in the secret named by `password_secret` instead";
  if (name == "HELLO") return "the protocol and credentials are set by the connection settings";
  if (name == "MULTI" || name == "EXEC" || name == "DISCARD" || name == "WATCH" ||
      name == "UNWATCH") {
    return "a transaction cannot span runs on a shared connection; RedisSet writes collections "
           "atomically, and a batch of commands belongs in one Lua script (EVAL)";
  }
  if (name == "SUBSCRIBE" || name == "PSUBSCRIBE" || name == "SSUBSCRIBE" ||
      name == "UNSUBSCRIBE" || name == "PUNSUBSCRIBE" || name == "SUNSUBSCRIBE") {
    return "a subscription needs a dedicated connection; tasks can PUBLISH, and hiredis's own "
           "API serves subscribers";
  }
  if (name == "MONITOR" || name == "SYNC" || name == "PSYNC") {
    return "it turns the connection into an endless stream; use redis-cli for it";
  }
  if (name == "QUIT" || name == "RESET") {
    return "connections are opened, reset and closed by the library";
  }
  if (name == "ASKING" || name == "READONLY" || name == "READWRITE") {
    return "cluster redirections and replica reads are handled by the library";
  }
  if (name == "CLIENT" && sub == "SETNAME")
    return "set redis_connection_params.client_name instead";
  if (name == "CLIENT" && (sub == "REPLY" || sub == "TRACKING" || sub == "CACHING")) {
    return "it changes how the shared connection answers later commands";
  }
  if (name == "SCRIPT" && sub == "DEBUG") {
    return "it attaches the Lua debugger to the connection (and SYNC mode blocks the server); "
           "use redis-cli --ldb for it";
  }
  if (name == "CLIENT" && (sub == "NO-EVICT" || sub == "NO-TOUCH")) {
    return "it changes how the server treats the shared connection for every later run";
  }
  return nullptr;
}

/// How long a blocking command may wait on the server: nullopt for a non-blocking command (or
/// a timeout argument the server will reject at once), 0 for "forever". Parsed as the server
/// parses it: seconds as a float rounded up to whole milliseconds (`BLPOP k 0.0001` waits 1 ms,
/// `+1` and hex floats are accepted), milliseconds as an integer (WAIT, XREAD BLOCK).
inline std::optional<std::chrono::milliseconds> block_time(const command& cmd) {
  const auto& a = cmd.args();
  const std::string name_text = cmd.name();
  // Compared as a view: lengths first, inline; every run of RedisExecute asks.
  const std::string_view name = name_text;
  // Beyond this a wait is as good as endless; capping also keeps `block + socket_timeout` from
  // overflowing.
  constexpr long long endless_ms = 1'000'000'000'000LL;  // ~31 years
  auto seconds_at = [&](std::size_t i) -> std::optional<std::chrono::milliseconds> {
    if (i >= a.size() || a[i].empty()) return std::nullopt;
    const char* first = a[i].data();
    const char* last = first + a[i].size();
    if (*first == '+' && last - first > 1 && first[1] != '-') ++first;
    double s = 0;
    std::from_chars_result res{};
    if (last - first > 2 && first[0] == '0' && (first[1] == 'x' || first[1] == 'X')) {
      res = std::from_chars(first + 2, last, s, std::chars_format::hex);
    } else {
      res = std::from_chars(first, last, s);
    }
    if (res.ptr != last || (res.ec != std::errc() && res.ec != std::errc::result_out_of_range) ||
        !(s >= 0) || std::isinf(s)) {
      return std::nullopt;  // the server answers "timeout is not a float" or "negative" at once
    }
    const double ms = std::ceil(s * 1000.0);
    if (res.ec == std::errc::result_out_of_range || ms >= static_cast<double>(endless_ms)) {
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<long long>(ms));
  };
  auto ms_at = [&](std::size_t i) -> std::optional<std::chrono::milliseconds> {
    if (i >= a.size()) return std::nullopt;
    long long ms = 0;
    auto res = std::from_chars(a[i].data(), a[i].data() + a[i].size(), ms);
    if (res.ec != std::errc() || res.ptr != a[i].data() + a[i].size() || ms < 0)
      return std::nullopt;
    return std::chrono::milliseconds(ms >= endless_ms ? 0 : ms);
  };
  if (name == "BLPOP" || name == "BRPOP" || name == "BRPOPLPUSH" || name == "BLMOVE" ||
      name == "BZPOPMIN" || name == "BZPOPMAX") {
    return seconds_at(a.size() - 1);
  }
  if (name == "BLMPOP" || name == "BZMPOP") return seconds_at(1);
  if (name == "WAIT") return ms_at(2);
  if (name == "WAITAOF") return ms_at(3);
  if (name == "XREAD" || name == "XREADGROUP") {
    // XREADGROUP GROUP <group> <consumer>: a group or consumer named "block" is not the option.
    std::size_t i = name == "XREADGROUP" && a.size() > 1 && command_word(a[1]) == "GROUP" ? 4 : 1;
    for (; i + 1 < a.size(); ++i) {
      const std::string w = command_word(a[i]);
      if (w == "STREAMS") break;
      if (w == "BLOCK") return ms_at(i + 1);
    }
  }
  return std::nullopt;
}

}  // namespace detail

/// Runs any command (Prefect's RedisExecute) and converts the reply to T.
/// Blocking commands (BLPOP, BRPOP, BLMOVE, BZPOPMIN, XREAD BLOCK, WAIT, …) wait as long as
/// they ask plus the socket timeout; a block time of 0 waits without limit, as in redis-cli.
/// Commands that would change the shared connection (SELECT, AUTH, MULTI, SUBSCRIBE, …) are a
/// `config_error` with a hint.
template <class T = reply>
class RedisExecute {
 public:
  /// What Prefect's constructor takes, in its order.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};      ///< timeouts, user, TLS, pool…
    std::optional<command> redis_cmd{};               ///< the command to run
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
  };

  /// What Prefect's run() takes.
  struct overrides {
    std::optional<command> redis_cmd{};  ///< the command to run
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

  /// Runs one command per item, in one pipelined round trip (on a Redis Cluster, one item
  /// after another), and returns each item's outcome in order: the reply converted to T, or
  /// the error that item raised (a refused command, an error reply, a reply that does not fit).
  std::vector<batch_result<T>> run_many(const std::vector<overrides>& items) const {
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
