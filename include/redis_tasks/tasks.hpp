// The three Prefect tasks: RedisSet, RedisGet and RedisExecute. Each merges its config with a
// run's overrides, validates before any network I/O, and runs on a pooled connection.
#pragma once

#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include "command.hpp"
#include "connection.hpp"
#include "detail/client.hpp"
#include "detail/codec.hpp"
#include "detail/store.hpp"
#include "errors.hpp"
#include "from_reply.hpp"
#include "reply.hpp"
#include "secrets.hpp"
#include "values.hpp"

namespace redis_tasks {

namespace detail {

/// The connection settings shared by the three configs, checked before any I/O.
template <class Config>
endpoint_settings settings_of(const Config& c, const std::string& task) {
  const auto& p = c.redis_connection_params;
  auto fail = [&](const std::string& what) { throw config_error(task + ": " + what); };
  if (p.unix_socket.empty()) {
    if (c.host.empty()) fail("host is empty; give a host name or address, or a unix_socket");
    if (c.port < 1 || c.port > 65535) {
      fail("port " + std::to_string(c.port) + " is out of range 1..65535");
    }
  }
  if (c.db < 0) fail("db " + std::to_string(c.db) + " is negative; databases are numbered from 0");
  if (p.connect_timeout.count() < 0 || p.socket_timeout.count() < 0 ||
      p.pool_wait_timeout.count() < 0 || p.health_check_interval.count() < 0 ||
      p.keepalive_interval.count() < 0) {
    fail("redis_connection_params has a negative duration; use 0 for no limit");
  }
  if (p.pool_size < 1) fail("redis_connection_params.pool_size must be at least 1");
  if (p.client_name.find_first_of(" \n\r\t") != std::string::npos) {
    fail("client_name may not contain spaces or line breaks");
  }
  if (c.password_secret && c.password_secret->empty()) {
    fail("password_secret is an empty name; use std::nullopt for no password");
  }
  endpoint_settings s;
  s.host = c.host;
  s.port = c.port;
  s.db = c.db;
  s.password_secret = c.password_secret;
  s.secrets = c.secrets;
  s.params = p;
  return s;
}

inline std::string task_label(const task_options& t, const char* kind) {
  return t.name.empty() ? std::string(kind) : std::string(kind) + " '" + t.name + "'";
}

inline void check_retry_options(const task_options& t, const std::string& label) {
  if (t.max_retries < 0) throw config_error(label + ": task.max_retries must not be negative");
  if (t.retry_delay.count() < 0) throw config_error(label + ": task.retry_delay must not be negative");
}

/// Runs `f`, again up to `max_retries` times after a connection_error (timeouts included).
template <class F>
auto with_retries(const task_options& t, F&& f) -> decltype(f()) {
  for (int attempt = 0;; ++attempt) {
    try {
      return f();
    } catch (const connection_error&) {
      if (attempt >= t.max_retries) throw;
    }
    if (t.retry_delay.count() > 0) std::this_thread::sleep_for(t.retry_delay);
  }
}

/// Expiry given as seconds or milliseconds, validated and as milliseconds.
inline std::optional<std::chrono::milliseconds> expiry_of(
    const std::optional<std::chrono::seconds>& ex, const std::optional<std::chrono::milliseconds>& px,
    const std::string& label, const char* where) {
  if (ex && px) {
    throw config_error(label + ": " + where + " gives both ex and px; they are one setting, give one");
  }
  if (ex) {
    if (ex->count() <= 0) {
      throw config_error(label + ": ex must be positive, got " + std::to_string(ex->count()) + " s");
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
  if constexpr (cat == category::user) {
    const auto storage = value_traits<T>::to_storage(v);
    return with_prepared(storage, label, f);
  } else if constexpr (cat == category::json) {
    std::string text;
    try {
      if constexpr (std::is_same_v<T, nlohmann::json>) {
        text = v.dump();
      } else {
        text = nlohmann::json(v).dump();
      }
    } catch (const nlohmann::json::exception& e) {
      throw config_error(label + ": the value cannot be written as JSON (" + e.what() + ")");
    }
    return f(text);
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
    std::string host = "localhost";                             ///< Redis host
    int port = 6379;                                            ///< Redis port
    int db = 0;                                                 ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};                ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};                     ///< key to set
    std::optional<T> redis_val{};                               ///< value to store
    std::optional<std::chrono::seconds> ex{};                   ///< expiry in seconds
    std::optional<std::chrono::milliseconds> px{};              ///< expiry in milliseconds
    bool nx = false;                                            ///< only if the key is absent
    bool xx = false;                                            ///< only if the key exists
    task_options task{};                                        ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};            ///< null: environment variables
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
      : cfg_(std::move(cfg)), label_(detail::task_label(cfg_.task, "RedisSet")) {
    detail::check_retry_options(cfg_.task, label_);
    cfg_expiry_ = detail::expiry_of(cfg_.ex, cfg_.px, label_, "the config");
    cfg_cond_ = detail::condition_of(cfg_.nx, cfg_.xx, label_, "the config");
    client_ = std::make_shared<detail::client>(detail::settings_of(cfg_, label_));
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
      return detail::with_retries(cfg_.task, [&] {
        return client_->run(key, [&](detail::connection& c) {
          return detail::write_value(c, key, stored, w);
        });
      });
    });
  }

  /// Same as `run(o)`, so the task can be passed wherever a callable is expected.
  bool operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }

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
    std::string host = "localhost";                             ///< Redis host
    int port = 6379;                                            ///< Redis port
    int db = 0;                                                 ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};                ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};                     ///< key to read
    task_options task{};                                        ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};            ///< null: environment variables
  };

  /// What Prefect's run() takes.
  struct overrides {
    std::optional<std::string> redis_key{};  ///< key to read
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisGet(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisGet")),
        type_label_("RedisGet<" + detail::value_type_name<T>() + ">") {
    detail::check_retry_options(cfg_.task, label_);
    client_ = std::make_shared<detail::client>(detail::settings_of(cfg_, label_));
  }

  /// The key's value as T, or std::nullopt when the key does not exist.
  /// Throws `type_error` when the key holds another Redis type or text that does not fit T.
  std::optional<T> run(const overrides& o = {}) const {
    const std::string* key = o.redis_key ? &*o.redis_key : cfg_.redis_key ? &*cfg_.redis_key : nullptr;
    if (key == nullptr) {
      throw config_error(label_ + ": redis_key is missing; give it in the config or in run()");
    }
    return detail::with_retries(cfg_.task, [&] {
      return client_->run(*key, [&](detail::connection& c) {
        return detail::read_value<T>(c, *key, type_label_);
      });
    });
  }

  /// Same as `run(o)`.
  std::optional<T> operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }

 private:
  config cfg_;
  std::string label_;
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
  if (name == "CLIENT" && sub == "SETNAME") return "set redis_connection_params.client_name instead";
  if (name == "CLIENT" && (sub == "REPLY" || sub == "TRACKING" || sub == "CACHING")) {
    return "it changes how the shared connection answers later commands";
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
  const std::string name = cmd.name();
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
    if (res.ec != std::errc() || res.ptr != a[i].data() + a[i].size() || ms < 0) return std::nullopt;
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
    std::string host = "localhost";                             ///< Redis host
    int port = 6379;                                            ///< Redis port
    int db = 0;                                                 ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};                ///< timeouts, user, TLS, pool…
    std::optional<command> redis_cmd{};                         ///< the command to run
    task_options task{};                                        ///< name, retries
    std::shared_ptr<const SecretProvider> secrets{};            ///< null: environment variables
  };

  /// What Prefect's run() takes.
  struct overrides {
    std::optional<command> redis_cmd{};  ///< the command to run
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings,
  /// including a config command that would corrupt the shared connection.
  explicit RedisExecute(config cfg = {})
      : cfg_(std::move(cfg)), label_(detail::task_label(cfg_.task, "RedisExecute")) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_cmd) check_command(*cfg_.redis_cmd);
    client_ = std::make_shared<detail::client>(detail::settings_of(cfg_, label_));
  }

  /// Runs the command; its reply converted to T. A server error reply is a `reply_error`.
  T run(const overrides& o = {}) const {
    const command* cmd = o.redis_cmd ? &*o.redis_cmd : cfg_.redis_cmd ? &*cfg_.redis_cmd : nullptr;
    if (cmd == nullptr) {
      throw config_error(label_ + ": redis_cmd is missing; give it in the config or in run()");
    }
    check_command(*cmd);
    const auto block = detail::block_time(*cmd);
    const std::string context = "reply to " + detail::command_label(*cmd);
    return detail::with_retries(cfg_.task, [&] { return execute(*cmd, block, context); });
  }

  /// Same as `run(o)`.
  T operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }

 private:
  void check_command(const command& cmd) const {
    if (cmd.empty()) throw config_error(label_ + ": redis_cmd is empty; give a command to run");
    if (const char* hint = detail::refused_command_hint(cmd)) {
      throw config_error(label_ + ": " + detail::command_label(cmd) +
                         " is not run by tasks, because it would change the shared, reused "
                         "connection: " + hint);
    }
  }

  T execute(const command& cmd, std::optional<std::chrono::milliseconds> block,
            const std::string& context) const {
    const auto& args = cmd.args();
    // Routed by the keys the command really has (EVAL, XREAD … STREAMS, BLMPOP put them
    // elsewhere than second), not by its second argument.
    reply r = client_->run(detail::route::for_command(args), [&](detail::connection& c) {
      std::vector<std::string_view> views(args.begin(), args.end());
      const bool stretch = block.has_value() && c.socket_timeout().count() > 0;
      if (stretch) {
        c.set_timeout(block->count() == 0 ? std::chrono::milliseconds(0)
                                          : *block + c.socket_timeout());
      }
      c.begin_request();
      c.append(views.data(), views.size());
      c.flush();
      reply out;
      try {
        out = c.read();
      } catch (const timeout_error& e) {
        if (!stretch) throw;
        // The socket's message names only the stretched timeout; say where it came from.
        throw timeout_error(std::string(e.what()) + " (" + detail::command_label(cmd) +
                            " may block " + std::to_string(block->count()) +
                            " ms, plus socket_timeout " +
                            std::to_string(c.socket_timeout().count()) + " ms)");
      }
      // Only a connection that read its reply goes back to the pool, so this is the one path
      // that must undo the stretch; a failed one is discarded with its timeout.
      if (stretch) c.restore_timeout();
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
  std::shared_ptr<detail::client> client_;
};

}  // namespace redis_tasks
