// RedisKeySensor<T>: waits until a key exists (and its value satisfies a predicate). Where the
// server sends keyspace notifications, it subscribes to the key's first, then checks, then
// wakes on each event; polling every `poke_interval` stays the fallback (and the only way where
// notifications are off).
#pragma once

#include "version.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/codec.hpp"
#include "detail/deadline.hpp"
#include "detail/run.hpp"
#include "detail/store.hpp"
#include "detail/subscriber.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

namespace detail {

/// The notify-keyspace-events classes that report writes of a T ('A' is all of them).
template <class T>
constexpr const char* keyspace_event_classes() {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::user) {
    return keyspace_event_classes<typename value_traits<T>::storage_type>();
  } else if constexpr (cat == category::any) {
    return "A$lshz";
  } else {
    switch (kind_of(cat)) {
      case redis_kind::list:
        return "Al";
      case redis_kind::set:
        return "As";
      case redis_kind::hash:
        return "Ah";
      case redis_kind::zset:
        return "Az";
      default:
        return "A$";
    }
  }
}

/// True when notify-keyspace-events `flags` send keyspace events (K) of one of `classes`.
REDIS_TASKS_DECL bool keyspace_events_on(std::string_view flags, std::string_view classes);

}  // namespace detail

/// Waits until a key exists and its value, read as T, satisfies `predicate` (Airflow's
/// RedisKeySensor, which only says whether the key exists). With keyspace notifications on,
/// the wait ends within milliseconds of the write; without, within `poke_interval`.
template <class T = std::string>
class RedisKeySensor {
 public:
  static_assert(!std::is_same_v<T, std::string_view> && !detail::is_char_pointer_v<T>,
                "RedisKeySensor<std::string_view> / RedisKeySensor<const char*>: a view cannot own "
                "what Redis sends; use RedisKeySensor<std::string>");
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisKeySensor<T>: T must be a string, a number, a container of those, "
                "sorted_set, value, a JSON-convertible type, or have a value_traits "
                "specialization");

  /// The task's settings: the connection fields, as every task has them, then its own.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};  ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};       ///< the key to wait for
    /// What the value must satisfy; empty: the key existing is enough.
    std::function<bool(const T&)> predicate{};
    std::chrono::milliseconds poke_interval{1000};             ///< between checks; > 0
    std::chrono::milliseconds timeout{std::chrono::hours(1)};  ///< how long a run waits; >= 0
    /// Double the interval after each poke (up to 64 times `poke_interval`).
    bool exponential_backoff = false;
    bool soft_fail = false;  ///< at `timeout`, return std::nullopt instead of throwing
    task_options task{};     ///< name, retries and timeout of each check
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead of the connection fields above.
    std::shared_ptr<connection_handle> connection{};

    /// The fields of its own that a JSON config may give (beside the connection fields).
    static constexpr const char* own_fields =
        "poke_interval, timeout, exponential_backoff, soft_fail";
    /// Reads one of `own_fields`; false for any other name.
    static bool load_field(config& c, const std::string& name, const nlohmann::json& v,
                           const detail::json_fields& f) {
      if (name == "poke_interval") {
        c.poke_interval = f.seconds(name, v);
      } else if (name == "timeout") {
        c.timeout = f.seconds(name, v);
      } else if (name == "exponential_backoff") {
        c.exponential_backoff = f.boolean(name, v);
      } else if (name == "soft_fail") {
        c.soft_fail = f.boolean(name, v);
      } else {
        return false;
      }
      return true;
    }
    /// Loads a config from JSON (durations in seconds); a wrong name or type is a
    /// `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisKeySensor");
    }
  };

  /// A run's settings; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> redis_key{};              ///< the key to wait for
    std::function<bool(const T&)> predicate{};           ///< empty: the config's
    std::optional<std::chrono::milliseconds> timeout{};  ///< how long this run waits
    std::optional<bool> soft_fail{};                     ///< std::nullopt instead of timeout_error
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisKeySensor(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisKeySensor")),
        name_(detail::task_name(cfg_.task, "RedisKeySensor", cfg_.redis_key.value_or(""))),
        type_label_("RedisKeySensor<" + detail::value_type_name<T>() + ">") {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_key && cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is empty; give the key to wait for");
    }
    if (cfg_.poke_interval.count() <= 0) {
      throw config_error(label_ + ": poke_interval must be positive, got " +
                         std::to_string(cfg_.poke_interval.count()) + " ms");
    }
    check_timeout(cfg_.timeout);
    client_ = detail::client_for(cfg_, label_);
  }

  /// The value once the key exists and satisfies `predicate`, checked at once, then on every
  /// keyspace event of the key and every `poke_interval`. At `timeout`: `timeout_error`, or
  /// std::nullopt with `soft_fail`. A value that does not fit T is a `type_error`; a check's
  /// connection errors propagate after the task's retries.
  std::optional<T> run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisKeySensor");
    const std::string key = o.redis_key ? *o.redis_key : cfg_.redis_key.value_or("");
    if (key.empty()) {
      throw config_error(label_ + ": redis_key is missing; give it in the config or in run()");
    }
    const auto timeout = o.timeout.value_or(cfg_.timeout);
    if (o.timeout) check_timeout(timeout);
    const auto& predicate = o.predicate ? o.predicate : cfg_.predicate;
    // A timeout of 0 looks once (deadline_after would take 0 for "no deadline").
    const auto wait_end =
        timeout.count() > 0 ? detail::deadline_after(timeout) : detail::clock::now();
    const detail::run_info info{name_, key, detail::read_command_name<T>(), client_->endpoint()};

    auto check = [&]() -> std::optional<T> {
      auto v = detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
        return client_->run(key, deadline, [&](detail::connection& c) {
          return detail::read_value<T>(c, key, type_label_);
        });
      });
      if (v && (!predicate || predicate(*v))) return v;
      return std::nullopt;
    };

    if (auto v = check()) return v;
    // Not there yet: listen to the key's events first, then check again, so that a write
    // between the two checks is seen by the second or heard as an event.
    const bool looked = detail::clock::now() < wait_end;
    bool events = looked && notifications_on(key, wait_end);
    std::unique_ptr<detail::subscriber> sub;
    // Listening again after the subscription failed (a failover): soon, then less often.
    auto relisten = std::chrono::milliseconds(250);
    detail::clock::time_point relisten_at = detail::no_deadline;
    auto try_listen = [&] {
      switch (listen(key, wait_end, sub)) {
        case listened::yes:
          relisten = std::chrono::milliseconds(250);
          relisten_at = detail::no_deadline;
          break;
        case listened::refused:  // not allowed (ACL, a proxy): polling for the rest of the run
          events = false;
          relisten_at = detail::no_deadline;
          break;
        case listened::not_now:
          relisten_at = detail::deadline_after(relisten);
          relisten = std::min(relisten * 2, std::chrono::milliseconds(5000));
          break;
      }
      return sub != nullptr;
    };
    if (events && try_listen()) {
      if (auto v = check()) return v;
    }
    const auto most = cfg_.poke_interval > std::chrono::milliseconds::max() / 64
                          ? std::chrono::milliseconds::max()
                          : cfg_.poke_interval * 64;
    auto interval = cfg_.poke_interval;
    auto poke_at =
        detail::earlier(detail::saturating_add(detail::clock::now(), interval), wait_end);
    while (detail::clock::now() < wait_end) {  // (a timeout of 0 never waits nor checks again)
      bool heard = false;
      if (sub) {
        try {
          if (sub->next(poke_at)) {
            heard = true;
            while (sub->next(detail::clock::time_point::min())) {
              // one check answers every event that has come
            }
          }
        } catch (const error&) {
          sub.reset();  // listened to again below
          relisten_at = detail::clock::now();
        }
      } else {
        detail::sleep_until(detail::earlier(poke_at, events ? relisten_at : detail::no_deadline));
      }
      const auto now = detail::clock::now();
      const bool poke = now >= poke_at;
      bool check_now = heard || poke;
      if (events && sub && poke && moved(*sub, key, wait_end)) {
        sub.reset();
        relisten_at = now;
      }
      if (events && !sub && now >= relisten_at) {
        // Listening again: check too, as events may have gone unheard meanwhile.
        check_now = try_listen() || check_now;
      }
      if (check_now) {
        if (auto v = check()) return v;
      }
      if (detail::clock::now() >= wait_end) break;
      if (poke) {
        if (!heard && cfg_.exponential_backoff) {
          interval = interval > most / 2 ? most : std::min(interval * 2, most);
        }
        poke_at = detail::earlier(detail::saturating_add(detail::clock::now(), interval), wait_end);
      }
    }
    if (o.soft_fail.value_or(cfg_.soft_fail)) return std::nullopt;
    throw timeout_error(label_ + ": " + detail::key_subject(key) + " did not " +
                        (predicate ? "get a value that satisfies the predicate" : "appear") +
                        (timeout.count() > 0 ? " within timeout " + detail::ms_text(timeout)
                                             : std::string(" (timeout 0: checked once)")) +
                        (looked && !events ? " (polled: no keyspace notifications)" : ""));
  }

  /// Same as `run(o)`.
  std::optional<T> operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its key.
  const std::string& name() const noexcept { return name_; }

 private:
  // True when the server of `key` sends keyspace events of T's writes. A server that refuses
  // CONFIG (a managed service, an ACL) is polled.
  bool notifications_on(const std::string& key, detail::clock::time_point wait_end) const {
    try {
      const reply r = client_->run(key, wait_end, [&](detail::connection& c) {
        return c.call({"CONFIG", "GET", "notify-keyspace-events"});
      });
      if (r.is_error() || r.elements().size() != 2) return false;
      return detail::keyspace_events_on(r.elements()[1].str(), detail::keyspace_event_classes<T>());
    } catch (const error&) {
      return false;  // the checks will report a server that is really gone
    }
  }

  enum class listened { yes, refused, not_now };

  // Makes `sub` a subscriber to the key's keyspace channel on the server that holds it:
  // `refused` when the server will not have it (an ACL without the channel, a proxy without
  // SUBSCRIBE), `not_now` when it cannot be reached now (a failover under way).
  listened listen(const std::string& key, detail::clock::time_point wait_end,
                  std::unique_ptr<detail::subscriber>& sub) const {
    try {
      detail::subscription s;
      const auto server = client_->server_for(key, wait_end);
      s.channels.push_back("__keyspace@" + std::to_string(detail::database_of(*server)) +
                           "__:" + key);
      s.route_key = key;
      sub = detail::open_subscriber(*client_, s, wait_end);
      return listened::yes;
    } catch (const reply_error&) {
      return listened::refused;
    } catch (const auth_error&) {
      return listened::refused;
    } catch (const error&) {
      return listened::not_now;
    }
  }

  // True when the key's slot (or the master) has moved to another server than `sub`'s.
  bool moved(const detail::subscriber& sub, const std::string& key,
             detail::clock::time_point wait_end) const {
    try {
      return client_->server_for(key, wait_end) != sub.server();
    } catch (const error&) {
      return false;
    }
  }

  void check_timeout(std::chrono::milliseconds t) const {
    if (t.count() < 0) {
      throw config_error(label_ + ": timeout must not be negative (0: check once), got " +
                         std::to_string(t.count()) + " ms");
    }
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::string type_label_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/key_sensor.ipp"
#endif
