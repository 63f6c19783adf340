// RedisCache<T>: a step's result kept in Redis under a key made from its inputs, computed once
// however many callers in however many processes ask for it at the same time (single flight):
// one computes under a RedisLock lease and writes with its fencing token; the others wait for
// its result, woken by a message, and take over only when its lease expires or its computation
// fails.
#pragma once

#include "version.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/deadline.hpp"
#include "detail/keys.hpp"
#include "detail/run.hpp"
#include "detail/script.hpp"
#include "detail/sha256.hpp"
#include "detail/subscriber.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "lock.hpp"
#include "publish.hpp"
#include "secrets.hpp"
#include "tasks.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// What a RedisCache run returns.
template <class T>
struct cache_result {
  T value{};         ///< the step's result
  bool hit = false;  ///< it came from Redis: computed before, or by another caller meanwhile
};

namespace detail {

/// The name of a cache entry: `<namespace>:<hex SHA-256>` of the version's length, ':', the
/// version and the inputs' canonical JSON (keys sorted, no spaces: nlohmann's `dump()`), so
/// inputs given in any key order are one entry and a new version is another.
REDIS_TASKS_DECL std::string cache_entry_key(const std::string& ns, const std::string& version,
                                             const nlohmann::json& inputs,
                                             const std::string& label);

}  // namespace detail

/// Caches a step's result in Redis by its inputs, with single flight across processes (what
/// Prefect's cache with a Redis lock manager promises, without its hangs). See `run`.
template <class T>
class RedisCache {
 public:
  static_assert(detail::category_of<T>() != detail::category::none,
                "RedisCache<T>: T must be a string, a number, a container of those, sorted_set, "
                "value, a JSON-convertible type, or have a value_traits specialization");

  /// The task's settings: the connection fields, as every task has them, then its own.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};  ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};       ///< the namespace of the entries
    nlohmann::json inputs{};                      ///< what the result depends on
    /// How long an entry lives; required, unless `no_expiry`.
    std::optional<std::chrono::milliseconds> ttl{};
    std::string version{};   ///< the step's version: a new one makes new entries
    bool no_expiry = false;  ///< entries never expire (then `ttl` must not be set)
    /// The computing caller's lease: renewed while it computes, so a caller that dies is taken
    /// over from after this long.
    std::chrono::milliseconds lock_ttl{30000};
    /// How long a caller waits for another's computation before `timeout_error`.
    std::chrono::milliseconds wait{std::chrono::minutes(5)};
    task_options task{};                              ///< name, retries, timeout (per command)
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead of the connection fields above.
    std::shared_ptr<connection_handle> connection{};

    /// The fields of its own that a JSON config may give (beside the connection fields).
    static constexpr const char* own_fields = "inputs, ttl, version, no_expiry, lock_ttl, wait";
    /// Reads one of `own_fields`; false for any other name.
    static bool load_field(config& c, const std::string& name, const nlohmann::json& v,
                           const detail::json_fields& f) {
      if (name == "inputs") {
        c.inputs = v;
      } else if (name == "ttl") {
        c.ttl = v.is_null() ? std::nullopt
                            : std::optional<std::chrono::milliseconds>(f.seconds(name, v));
      } else if (name == "version") {
        c.version = f.string(name, v);
      } else if (name == "no_expiry") {
        c.no_expiry = f.boolean(name, v);
      } else if (name == "lock_ttl") {
        c.lock_ttl = f.seconds(name, v);
      } else if (name == "wait") {
        c.wait = f.seconds(name, v);
      } else {
        return false;
      }
      return true;
    }
    /// Loads a config from JSON (durations in seconds); a wrong name or type is a
    /// `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisCache");
    }
  };

  /// A run's settings; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> redis_key{};  ///< the namespace of the entries
    /// What this result depends on; null (not given): the config's. A plain json rather than
    /// an optional, so that `.inputs = {{"region", "north"}}` makes the object it reads as.
    nlohmann::json inputs{};
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisCache(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisCache")),
        name_(detail::task_name(cfg_.task, "RedisCache", cfg_.redis_key.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_key && cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is empty; give the namespace of the entries");
    }
    if (cfg_.redis_key) check_namespace(*cfg_.redis_key);
    if (cfg_.no_expiry && cfg_.ttl) {
      throw config_error(label_ + ": no_expiry is set and so is ttl; give one of them");
    }
    if (!cfg_.no_expiry && !cfg_.ttl) {
      throw config_error(label_ +
                         ": ttl is missing; give how long entries live (e.g. 1 h), or set "
                         "no_expiry for entries that never expire");
    }
    if (cfg_.ttl && cfg_.ttl->count() <= 0) {
      throw config_error(label_ + ": ttl must be positive, got " +
                         std::to_string(cfg_.ttl->count()) + " ms");
    }
    if (cfg_.lock_ttl.count() <= 0) {
      throw config_error(label_ + ": lock_ttl must be positive, got " +
                         std::to_string(cfg_.lock_ttl.count()) + " ms");
    }
    if (cfg_.wait.count() < 0) {
      throw config_error(label_ + ": wait must not be negative, got " +
                         std::to_string(cfg_.wait.count()) + " ms");
    }
    auto get = like<typename RedisGet<T>::config>();
    get_.emplace(std::move(get));
    auto set = like<typename RedisSet<T>::config>();
    set.px = cfg_.ttl;
    set_.emplace(std::move(set));
    auto lock = like<lock_config>();
    lock.ttl = cfg_.lock_ttl;
    lock_.emplace(std::move(lock));
    publish_.emplace(like<typename RedisPublish<std::string>::config>());
    client_ = detail::client_for(cfg_, label_);
  }

  /// The entry's value, or `fn()`'s. A stored entry is one read (a hit). On a miss, one caller
  /// of all that ask for the entry at once, in any process, computes: it takes the entry's
  /// lock (a RedisLock lease, renewed while `fn` runs), calls `fn`, writes the result with the
  /// lease's fencing token and the entry's ttl, and tells the waiting callers. The others
  /// wait up to `wait` for that result (woken by a message, polling as the fallback) and
  /// compute themselves only if the computing caller's lease expires (it died or stalled:
  /// its late write is then refused by its token) or its `fn` threw. An exception from `fn`
  /// reaches its caller, writes nothing, and frees the lock at once. `timeout_error` after
  /// `wait` without the result.
  template <class F>
  cache_result<T> run(const overrides& o, F&& fn) const {
    detail::check_live(client_.get(), "RedisCache");
    static_assert(std::is_convertible_v<std::invoke_result_t<F&>, T>,
                  "RedisCache<T>::run(overrides, fn): fn() must return a T");
    const std::string entry = entry_key(o);
    const std::string lock_key = detail::companion_key(entry, "lock");
    const std::string channel = detail::companion_key(entry, "done");
    if (auto v = read(entry)) return {std::move(*v), true};

    const auto wait_end = detail::deadline_after(cfg_.wait);
    const auto poll = std::clamp(cfg_.lock_ttl / 10, std::chrono::milliseconds(10),
                                 std::chrono::milliseconds(1000));
    std::unique_ptr<detail::subscriber> sub;
    bool listened = false;
    for (;;) {
      std::optional<lease> held;
      try {
        lock_overrides lo;  // (no designated initializers: the headers are C++17)
        lo.redis_key = lock_key;
        held = lock_->run(lo);
      } catch (const connection_error&) {
        // A brief outage (a failover) while waiting: go on trying until `wait` is over.
        if (detail::clock::now() >= wait_end) throw;
      }
      // Outside the try: what fn or the write throws reaches the caller, never a second try.
      if (held) return compute(entry, channel, std::move(*held), fn);
      try {
        // Another caller computes. Listen for its word first, then look, then wait.
        if (!listened) {
          listened = true;
          sub = listen(entry, channel, wait_end);
          if (auto v = read(entry)) return {std::move(*v), true};
        }
      } catch (const connection_error&) {
        // A brief outage (a failover) while waiting: go on trying until `wait` is over.
        if (detail::clock::now() >= wait_end) throw;
      }
      const auto now = detail::clock::now();
      if (cfg_.wait.count() == 0 || now >= wait_end) {
        throw timeout_error(label_ + ": another caller has been computing " +
                            detail::key_subject(entry) + " for longer than wait " +
                            detail::ms_text(cfg_.wait));
      }
      const auto until = detail::earlier(detail::saturating_add(now, poll), wait_end);
      if (sub) {
        try {
          if (sub->next(until)) {
            while (sub->next(detail::clock::time_point::min())) {
            }
          }
        } catch (const error&) {
          sub.reset();  // polling from now on
        }
      } else {
        detail::sleep_until(until);
      }
      try {
        if (auto v = read(entry)) return {std::move(*v), true};
      } catch (const connection_error&) {
        if (detail::clock::now() >= wait_end) throw;
      }
    }
  }

  /// Same as `run({}, fn)`: the config's namespace and inputs.
  template <class F>
  cache_result<T> run(F&& fn) const {
    return run(overrides{}, std::forward<F>(fn));
  }

  /// The key of the entry a run with `o` reads and writes.
  std::string entry_key(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisCache");
    const std::string* ns = o.redis_key      ? &*o.redis_key
                            : cfg_.redis_key ? &*cfg_.redis_key
                                             : nullptr;
    if (ns != nullptr) check_namespace(*ns);
    if (ns == nullptr || ns->empty()) {
      throw config_error(label_ +
                         ": redis_key (the namespace) is missing; give it in the "
                         "config or in run()");
    }
    return detail::cache_entry_key(*ns, cfg_.version, o.inputs.is_null() ? cfg_.inputs : o.inputs,
                                   label_);
  }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its namespace.
  const std::string& name() const noexcept { return name_; }

 private:
  // A config of another task with this one's connection fields and task options (its name:
  // this task's, so run hooks tell of the cache).
  template <class C>
  C like() const {
    C c;
    c.host = cfg_.host;
    c.port = cfg_.port;
    c.db = cfg_.db;
    c.password_secret = cfg_.password_secret;
    c.redis_connection_params = cfg_.redis_connection_params;
    c.task = cfg_.task;
    c.task.name = name_;
    c.secrets = cfg_.secrets;
    c.connection = cfg_.connection;
    return c;
  }

  template <class F>
  cache_result<T> compute(const std::string& entry, const std::string& channel, lease l,
                          F& fn) const {
    // Written between this caller's read and its lock?
    if (auto v = read(entry)) return {std::move(*v), true};
    // The token counter must not expire while this lease may write (a new counter would give
    // the next holder a token below the fence record): it loses its expiry until the result is
    // written, and is raised to the fence record if it fell behind it.
    hold_counter(entry);
    bool written = false;
    struct cleanup {  // on every way out without a result: free the lock, tell the waiters
      const RedisCache& cache;
      const std::string& entry;
      const std::string& channel;
      lease& l;
      bool& written;
      ~cleanup() {
        if (written) return;
        cache.tell(channel, "failed", l);
        cache.expire_companions(entry);
      }
    } guard{*this, entry, channel, l, written};
    // An exception from fn reaches the caller: nothing is written, the lock goes now and the
    // waiters hear of it, so one of them computes without waiting for the lease to expire.
    T value = fn();
    if constexpr (may_be_empty) {
      if (is_empty(value)) {
        // Redis has no empty collections: an empty result is kept as a marker of its own,
        // fenced like the entry.
        if (!write_empty_marker(entry, l.token()))
          return superseded(entry, channel, l, written, value);
        written = true;
        tell(channel, "done", l);
        expire_companions(entry);
        return {std::move(value), false};
      }
    }
    typename RedisSet<T>::overrides w;
    w.redis_key = entry;
    w.redis_val = std::move(value);
    w.fence_token = l.token();
    try {
      set_->run(w);
    } catch (const lease_lost_error&) {
      return superseded(entry, channel, l, written, *w.redis_val);
    }
    written = true;
    if constexpr (may_be_empty) drop_empty_marker(entry);
    tell(channel, "done", l);
    expire_companions(entry);
    return {std::move(*w.redis_val), false};
  }

  // A namespace with a '}' but no hash tag before it cannot keep the entry's lock, fence and
  // channel in the entry's cluster slot.
  void check_namespace(const std::string& ns) const {
    const auto open = ns.find('{');
    const auto close = open == std::string::npos ? open : ns.find('}', open + 1);
    const bool tagged = close != std::string::npos && close > open + 1;
    if (!tagged && ns.find('}') != std::string::npos) {
      throw config_error(label_ + ": the namespace " + detail::quote_for_message(ns) +
                         " has a '}' but no hash tag ({tag}) before it, so the entries' lock "
                         "and fence keys could not share their cluster slot; remove the '}' or "
                         "give a tag, e.g. cache:{reports}");
    }
  }

  // This caller stalled past its lease, and the caller that took over wrote first: every
  // caller gets that result (this one's own when there is none to read).
  cache_result<T> superseded(const std::string& entry, const std::string& channel, lease& l,
                             bool& written, T& own) const {
    written = true;
    tell(channel, "done", l);
    if (auto v = read(entry)) return {std::move(*v), true};
    return {std::move(own), false};
  }

  // T is stored as a Redis collection (which cannot be empty).
  static constexpr bool may_be_empty =
      detail::kind_of(detail::category_of<detail::stored_form_t<T>>()) !=
      detail::redis_kind::string;

  static bool is_empty(const T& v) {
    if constexpr (detail::category_of<T>() == detail::category::user) {
      return detail::converted(v, std::string()).empty();
    } else {
      return v.empty();
    }
  }

  // An empty T (a collection with no elements).
  static T empty_value() {
    if constexpr (detail::category_of<T>() == detail::category::user) {
      return value_traits<T>::from_storage(typename value_traits<T>::storage_type{});
    } else {
      return T{};
    }
  }

  // The entry, if stored: one read (and, for a collection that is not there, a look for the
  // marker of an empty one).
  std::optional<T> read(const std::string& entry) const {
    typename RedisGet<T>::overrides go;
    go.redis_key = entry;
    if (auto v = get_->run(go)) return v;
    if constexpr (may_be_empty) {
      const std::string marker = detail::companion_key(entry, "empty");
      const auto found = client_->run(
          entry, detail::deadline_after(cfg_.task.timeout), [&](detail::connection& c) {
            const reply r = c.call({"EXISTS", marker});
            // An error reply is thrown inside the run, so that MOVED/ASK are followed.
            if (r.is_error()) throw reply_error(r.str(), "EXISTS " + detail::key_subject(marker));
            return r.type() == reply_type::integer && r.integer() == 1;
          });
      if (found) return empty_value();
    }
    return std::nullopt;
  }

  // Writes the marker of an empty result with the lease's token, checked against and recorded
  // in the entry's fence record, and deletes a stale entry; false when a larger token wrote.
  bool write_empty_marker(const std::string& entry, std::uint64_t token) const {
    static const detail::script marker_script(R"lua(
local seen = redis.call('GET', KEYS[2])
if seen and (#seen > #ARGV[1] or (#seen == #ARGV[1] and seen > ARGV[1])) then return 0 end
redis.call('DEL', KEYS[3])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], '1')
end
local fence_ttl = redis.call('PTTL', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1])
if fence_ttl > 0 then redis.call('PEXPIRE', KEYS[2], fence_ttl) end
return 1
)lua");
    const std::string marker = detail::companion_key(entry, "empty");
    const std::string fence = detail::fence_key_for(entry);
    const std::string t = std::to_string(token);
    const std::string ms = cfg_.ttl ? std::to_string(cfg_.ttl->count()) : std::string();
    return client_->run(
        entry, detail::deadline_after(cfg_.task.timeout), [&](detail::connection& c) {
          const reply r = detail::call_script(c, marker_script, "writing the empty-result marker",
                                              marker, {marker, fence, entry}, {t, ms});
          return r.type() == reply_type::integer && r.integer() == 1;
        });
  }

  // After a non-empty result: an empty one written before is no longer the entry's.
  void drop_empty_marker(const std::string& entry) const noexcept {
    try {
      const std::string marker = detail::companion_key(entry, "empty");
      client_->run(entry, detail::deadline_after(cfg_.task.timeout), [&](detail::connection& c) {
        return c.call({"DEL", marker}).is_error();
      });
    } catch (...) {
    }
  }

  // The counter of the entry's lock tokens: no expiry while a lease may write, and never below
  // the fence record (best effort: a write refused meanwhile only returns the caller's result).
  void hold_counter(const std::string& entry) const noexcept {
    static const detail::script hold_script(R"lua(
local t = redis.call('GET', KEYS[1])
local f = redis.call('GET', KEYS[2])
if f and (not t or #t < #f or (#t == #f and t < f)) then redis.call('SET', KEYS[1], f) end
redis.call('PERSIST', KEYS[1])
return 1
)lua");
    try {
      const std::string counter =
          detail::companion_key(detail::companion_key(entry, "lock"), "token");
      const std::string fence = detail::fence_key_for(entry);
      client_->run(entry, detail::deadline_after(cfg_.task.timeout), [&](detail::connection& c) {
        return detail::call_script(c, hold_script, "keeping the lock's token counter", counter,
                                   {counter, fence}, {})
            .is_error();
      });
    } catch (...) {
    }
  }

  // The entry's lock token counter and fence record would outlive it: they go a lock_ttl after
  // it (best effort), the record first. The counter has no expiry while a lease computes
  // (`hold_counter`), so a new counter never starts below a record.
  void expire_companions(const std::string& entry) const noexcept {
    if (!cfg_.ttl) return;  // no_expiry: they live as long as the entry
    try {
      const auto most = std::chrono::milliseconds::max() - cfg_.lock_ttl;
      const auto after =
          *cfg_.ttl > most ? std::chrono::milliseconds::max() : *cfg_.ttl + cfg_.lock_ttl;
      const std::string ms = std::to_string(after.count());
      const std::string token =
          detail::companion_key(detail::companion_key(entry, "lock"), "token");
      const std::string fence = detail::fence_key_for(entry);
      client_->run(entry, detail::deadline_after(cfg_.task.timeout), [&](detail::connection& c) {
        c.begin_request();
        // The counter last, so that it never expires before the record (a token from a new
        // counter would be refused by an older record).
        c.append({"PEXPIRE", fence, ms});
        c.append({"PEXPIRE", token, ms});
        c.flush();
        (void)c.read();
        (void)c.read();
        return true;
      });
    } catch (...) {
    }
  }

  // Frees the lock, then wakes the waiters (best effort: they poll too).
  void tell(const std::string& channel, const std::string& what, lease& l) const noexcept {
    try {
      (void)l.release();
    } catch (...) {  // the lease expires by itself; the waiters are told all the same
    }
    try {
      typename RedisPublish<std::string>::overrides po;
      po.channel = channel;
      po.message = what;
      (void)publish_->run(po);
    } catch (...) {
    }
  }

  // A subscriber to the entry's channel on the entry's server; null when none can be had (the
  // caller polls).
  std::unique_ptr<detail::subscriber> listen(const std::string& entry, const std::string& channel,
                                             detail::clock::time_point wait_end) const {
    try {
      detail::subscription s;
      s.channels.push_back(channel);
      s.route_key = entry;
      return detail::open_subscriber(*client_, s, wait_end);
    } catch (const error&) {
      return nullptr;
    }
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::optional<RedisGet<T>> get_;
  std::optional<RedisSet<T>> set_;
  std::optional<RedisLock> lock_;
  std::optional<RedisPublish<std::string>> publish_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/cache.ipp"
#endif
