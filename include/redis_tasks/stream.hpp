// Work queues on Redis Streams: RedisStreamAdd<T> adds entries (optionally once per
// idempotency key, optionally trimmed without ever dropping an entry still pending in a group);
// RedisStreamConsumer<T> reads them in a consumer group, claims what crashed consumers left
// pending, moves poison entries to a dead-letter stream, and acknowledges after the work. At
// least once: an entry is never lost to a crash.
#pragma once

#include "version.hpp"

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "batch.hpp"
#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/acquire.hpp"
#include "detail/deadline.hpp"
#include "detail/fork.hpp"
#include "detail/keys.hpp"
#include "detail/run.hpp"
#include "detail/script.hpp"
#include "detail/stream_codec.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "from_reply.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// One entry read by a RedisStreamConsumer.
template <class T>
struct stream_message {
  std::string id;            ///< the entry's ID ("1700000000000-0")
  T value{};                 ///< the entry as T
  long long deliveries = 1;  ///< how many times it was delivered, as the server counts
};

/// What a RedisStreamConsumer run returns.
template <class T>
struct stream_batch {
  std::vector<stream_message<T>> messages;  ///< entries to work on, then acknowledge
  /// IDs that were pending but no longer exist (deleted or trimmed by someone else): never
  /// silently acknowledged, so the caller can tell.
  std::vector<std::string> deleted;
};

namespace detail {

/// KEYS = {stream[, idempotency record]}; ARGV = {record ttl ms, maxlen or "", field, value,
/// …}. Answers the entry's ID (the first add's, for a key seen before).
REDIS_TASKS_DECL const script& stream_add_script();

/// KEYS = {stream, dead-letter stream}; ARGV = {group, id, reason, deliveries}. Adds the entry
/// (its fields after `id`, `group`, `reason`, `deliveries`) to the dead-letter stream and
/// acknowledges it, in one step.
REDIS_TASKS_DECL const script& dead_letter_script();

/// KEYS = {stream, dead-letter stream}; ARGV = {group, consumer, min idle ms, count, max
/// deliveries, cursor}. Claims entries idle for min idle (XAUTOCLAIM), moves those delivered
/// more than max deliveries to the dead-letter stream (acknowledged), and answers {next cursor,
/// {{id, fields, deliveries}…}, {deleted id…}}.
REDIS_TASKS_DECL const script& stream_claim_script();

}  // namespace detail

/// Adds an entry to a stream: `T`'s fields (a map), or one field `value` (see
/// `stream_storable`). Returns the entry's ID.
template <class T = std::map<std::string, std::string>>
class RedisStreamAdd {
 public:
  static_assert(!std::is_same_v<T, std::string_view> && !detail::is_char_pointer_v<T>,
                "RedisStreamAdd<std::string_view> / RedisStreamAdd<const char*>: a view would "
                "dangle in a long-lived config; use RedisStreamAdd<std::string>");
  static_assert(detail::stream_storable<T>(),
                "RedisStreamAdd<T>: T must be a map (the entry's fields), a string, a number, a "
                "JSON-convertible type, or a value_traits type stored as one of those");

  /// The task's settings: the connection fields, as every task has them, then its own.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};  ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};       ///< the stream
    std::optional<T> redis_val{};                 ///< the entry
    /// Trim to about this many entries (in steps of a tenth, at least 100), but never past
    /// an entry still pending in any consumer group; unset: no trimming.
    std::optional<long long> maxlen{};
    /// A second add with the same key (within `idempotency_ttl`) adds nothing and returns the
    /// first add's ID; unset: every add adds.
    std::optional<std::string> idempotency_key{};
    std::chrono::milliseconds idempotency_ttl{std::chrono::hours(24)};  ///< how long keys last
    task_options task{};                                                ///< name, retries…
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead of the connection fields above.
    std::shared_ptr<connection_handle> connection{};

    /// The fields of its own that a JSON config may give (beside the connection fields).
    static constexpr const char* own_fields = "maxlen, idempotency_key, idempotency_ttl";
    /// Reads one of `own_fields`; false for any other name.
    static bool load_field(config& c, const std::string& name, const nlohmann::json& v,
                           const detail::json_fields& f) {
      if (name == "maxlen") {
        c.maxlen =
            v.is_null() ? std::nullopt : std::optional<long long>(f.whole(name, v, 1, 1LL << 53));
      } else if (name == "idempotency_key") {
        c.idempotency_key = f.optional_string(name, v);
      } else if (name == "idempotency_ttl") {
        c.idempotency_ttl = f.seconds(name, v);
      } else {
        return false;
      }
      return true;
    }
    /// Loads a config from JSON; a wrong name or type is a `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisStreamAdd");
    }
  };

  /// A run's settings; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> redis_key{};        ///< the stream
    std::optional<T> redis_val{};                  ///< the entry
    std::optional<std::string> idempotency_key{};  ///< this add's idempotency key
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisStreamAdd(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisStreamAdd")),
        name_(detail::task_name(cfg_.task, "RedisStreamAdd", cfg_.redis_key.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.redis_key && cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is empty; give the stream");
    }
    if (cfg_.maxlen && *cfg_.maxlen < 1) {
      throw config_error(label_ + ": maxlen must be at least 1, got " +
                         std::to_string(*cfg_.maxlen));
    }
    if (cfg_.idempotency_ttl.count() <= 0) {
      throw config_error(label_ + ": idempotency_ttl must be positive");
    }
    if (cfg_.idempotency_key && cfg_.idempotency_key->empty()) {
      throw config_error(label_ + ": idempotency_key is empty");
    }
    client_ = detail::client_for(cfg_, label_);
  }

  /// Adds the entry; returns its ID (for an idempotency key seen before: the first add's).
  std::string run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisStreamAdd");
    const prepared p = prepare(o);
    const detail::run_info info{name_, p.key, p.scripted ? "EVALSHA" : "XADD", client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      return client_->run(p.key, deadline, [&](detail::connection& c) { return add(c, p); });
    });
  }

  /// Same as `run(o)`.
  std::string operator()(const overrides& o = {}) const { return run(o); }

  /// Adds one entry per item, pipelined in one round trip where the server allows (one
  /// server, and items with neither maxlen nor an idempotency key), and returns each item's
  /// ID or error, in order.
  std::vector<batch_result<std::string>> run_many(const std::vector<overrides>& items) const {
    detail::check_live(client_.get(), "RedisStreamAdd");
    const detail::run_info info{name_, {}, "XADD", client_->endpoint()};
    return detail::told_batch(cfg_.task, info, items.size(), [&] { return many(items); });
  }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its stream.
  const std::string& name() const noexcept { return name_; }

 private:
  struct prepared {
    std::string key;
    std::string record;  // the idempotency record's key, or empty
    bool scripted = false;
    std::vector<std::string_view> fields;
    std::deque<std::string> owned;
  };

  prepared prepare(const overrides& o) const {
    prepared p;
    p.key = o.redis_key ? *o.redis_key : cfg_.redis_key.value_or("");
    if (p.key.empty()) {
      throw config_error(label_ + ": redis_key is missing; give it in the config or in run()");
    }
    const T* v = o.redis_val ? &*o.redis_val : cfg_.redis_val ? &*cfg_.redis_val : nullptr;
    if (v == nullptr) {
      throw config_error(label_ + ": redis_val is missing; give it in the config or in run()");
    }
    detail::entry_fields(*v, p.fields, p.owned, label_);
    if (p.fields.empty()) {
      throw config_error(label_ +
                         ": the entry has no fields (an empty map); a stream entry "
                         "needs at least one");
    }
    const auto& idem = o.idempotency_key ? o.idempotency_key : cfg_.idempotency_key;
    if (idem) {
      if (idem->empty()) throw config_error(label_ + ": idempotency_key is empty");
      p.record = detail::companion_key(p.key, "idem:" + *idem);
      if (!client_->pipelines() && detail::key_slot(p.record) != detail::key_slot(p.key)) {
        throw config_error(label_ + ": the stream " + detail::quote_for_message(p.key) +
                           " has a '}' but no hash tag before it, so on a Redis Cluster its "
                           "idempotency records cannot share its slot; use a stream name "
                           "without '}', or with a hash tag such as {jobs}");
      }
    }
    p.scripted = !p.record.empty() || cfg_.maxlen.has_value();
    if (p.scripted && p.fields.size() > 7900) {  // what Lua's unpack takes, with room
      throw config_error(label_ +
                         ": an entry added with maxlen or an idempotency key has at "
                         "most 3950 fields, this one has " +
                         std::to_string(p.fields.size() / 2));
    }
    return p;
  }

  std::string add(detail::connection& c, const prepared& p) const {
    reply r;
    if (p.scripted) {
      const std::string ttl = std::to_string(cfg_.idempotency_ttl.count());
      const std::string maxlen = cfg_.maxlen ? std::to_string(*cfg_.maxlen) : std::string();
      std::vector<std::string_view> keys{p.key};
      if (!p.record.empty()) keys.emplace_back(p.record);
      std::vector<std::string_view> args{ttl, maxlen};
      args.insert(args.end(), p.fields.begin(), p.fields.end());
      r = detail::call_script_of(c, detail::stream_add_script(), "adding to stream", p.key, keys,
                                 args);
    } else {
      c.begin_request();
      queue_xadd(c, p);
      c.flush();
      r = c.read();
    }
    return id_of(std::move(r), p.key, c);
  }

  static void queue_xadd(detail::connection& c, const prepared& p) {
    c.begin_command(3 + p.fields.size());
    c.arg("XADD");
    c.arg(p.key);
    c.arg("*");
    for (const auto& f : p.fields)
      c.arg(f);
    c.end_command();
  }

  static std::string id_of(reply&& r, const std::string& key, const detail::connection& c) {
    if (r.is_error()) {
      throw reply_error(
          r.str(), "adding to stream " + detail::quote_for_message(key) + " on " + c.endpoint());
    }
    if (r.type() != reply_type::string && r.type() != reply_type::status) {
      throw type_error("adding to stream " + detail::quote_for_message(key) + " on " +
                       c.endpoint() + ": the answer was " + detail::describe_reply(r) +
                       ", not an entry ID");
    }
    return std::move(r.take_str());
  }

  std::vector<batch_result<std::string>> many(const std::vector<overrides>& items) const {
    const std::size_t n = items.size();
    std::vector<std::optional<prepared>> ps(n);
    std::vector<batch_result<std::string>> out(n, batch_result<std::string>::success({}));
    std::vector<bool> done(n, false);
    for (std::size_t i = 0; i < n; ++i) {
      try {
        ps[i].emplace(prepare(items[i]));
      } catch (...) {
        out[i] = batch_result<std::string>::failure(std::current_exception());
        done[i] = true;
      }
    }
    const auto deadline = detail::deadline_after(cfg_.task.timeout);
    // Plain adds to one server: one pipeline. The rest (scripts, a cluster) one by one.
    std::vector<std::size_t> plain;
    for (std::size_t i = 0; i < n; ++i) {
      if (!done[i] && !ps[i]->scripted && client_->pipelines()) plain.push_back(i);
    }
    if (!plain.empty()) {
      try {
        client_->run(ps[plain.front()]->key, deadline, [&](detail::connection& c) {
          c.begin_request();
          for (const auto i : plain)
            queue_xadd(c, *ps[i]);
          c.flush();
          for (const auto i : plain) {
            reply r = c.read();
            try {
              out[i] = batch_result<std::string>::success(id_of(std::move(r), ps[i]->key, c));
            } catch (...) {
              out[i] = batch_result<std::string>::failure(std::current_exception());
            }
            done[i] = true;
          }
          return true;
        });
      } catch (...) {
        // Whether the adds not answered ran is unknown: each fails with the error.
        for (const auto i : plain) {
          if (done[i]) continue;
          out[i] = batch_result<std::string>::failure(std::current_exception());
          done[i] = true;
        }
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      try {
        out[i] = batch_result<std::string>::success(client_->run(
            ps[i]->key, deadline, [&](detail::connection& c) { return add(c, *ps[i]); }));
      } catch (...) {
        out[i] = batch_result<std::string>::failure(std::current_exception());
      }
    }
    return out;
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::shared_ptr<detail::client> client_;
};

/// Reads a stream as one consumer of a consumer group (created with the stream if missing):
/// at least once, never lost to a crash. See `run`.
template <class T = std::map<std::string, std::string>>
class RedisStreamConsumer {
 public:
  static_assert(!std::is_same_v<T, std::string_view> && !detail::is_char_pointer_v<T>,
                "RedisStreamConsumer<std::string_view> / RedisStreamConsumer<const char*>: a view "
                "cannot own what Redis sends; use RedisStreamConsumer<std::string>");
  static_assert(detail::stream_storable<T>(),
                "RedisStreamConsumer<T>: T must be a map (the entry's fields), a string, a "
                "number, a JSON-convertible type, or a value_traits type stored as one of those");

  /// The task's settings: the connection fields, as every task has them, then its own.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};  ///< timeouts, user, TLS, pool…
    std::optional<std::string> redis_key{};       ///< the stream
    std::string group{};                          ///< the consumer group; required
    std::optional<std::string> consumer{};        ///< this consumer's name; unset: unique per task
    long long count = 10;                         ///< entries per run, at most
    /// How long a run waits for new entries when none is there; unset or 0: it does not wait.
    std::optional<std::chrono::milliseconds> block{};
    /// Entries pending this long in any consumer (this one included) are claimed.
    std::chrono::milliseconds min_idle{60000};
    long long max_deliveries = 5;  ///< more deliveries than this: to the dead-letter stream
    /// Where poison entries go; unset: "{<stream>}:dead" (the stream's cluster slot).
    std::optional<std::string> dead_letter_key{};
    std::string start_id = "0";  ///< where a group this task creates starts ("$": new only)
    task_options task{};         ///< name, retries, timeout
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead of the connection fields above.
    std::shared_ptr<connection_handle> connection{};

    /// The fields of its own that a JSON config may give (beside the connection fields).
    static constexpr const char* own_fields =
        "group, consumer, count, block, min_idle, max_deliveries, dead_letter_key, start_id";
    /// Reads one of `own_fields`; false for any other name.
    static bool load_field(config& c, const std::string& name, const nlohmann::json& v,
                           const detail::json_fields& f) {
      if (name == "group") {
        c.group = f.string(name, v);
      } else if (name == "consumer") {
        c.consumer = f.optional_string(name, v);
      } else if (name == "count") {
        c.count = f.whole(name, v, 1, 1'000'000);
      } else if (name == "block") {
        c.block = v.is_null() ? std::nullopt
                              : std::optional<std::chrono::milliseconds>(f.seconds(name, v));
      } else if (name == "min_idle") {
        c.min_idle = f.seconds(name, v);
      } else if (name == "max_deliveries") {
        c.max_deliveries = f.whole(name, v, 1, 1'000'000'000);
      } else if (name == "dead_letter_key") {
        c.dead_letter_key = f.optional_string(name, v);
      } else if (name == "start_id") {
        c.start_id = f.string(name, v);
      } else {
        return false;
      }
      return true;
    }
    /// Loads a config from JSON (durations in seconds); a wrong name or type is a
    /// `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisStreamConsumer");
    }
  };

  /// A run's settings; a given field wins over the config's.
  struct overrides {
    std::optional<long long> count{};                  ///< entries this run, at most
    std::optional<std::chrono::milliseconds> block{};  ///< how long this run waits
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisStreamConsumer(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisStreamConsumer")),
        name_(detail::task_name(cfg_.task, "RedisStreamConsumer", cfg_.redis_key.value_or(""))),
        state_(std::make_shared<claim_state>()) {
    detail::check_retry_options(cfg_.task, label_);
    if (!cfg_.redis_key || cfg_.redis_key->empty()) {
      throw config_error(label_ + ": redis_key is missing; give the stream");
    }
    if (cfg_.group.empty()) throw config_error(label_ + ": group is missing; name the group");
    if (cfg_.consumer && cfg_.consumer->empty()) {
      throw config_error(label_ + ": consumer is empty; name it, or leave it unset");
    }
    check_count(cfg_.count);
    if (cfg_.block) check_block(*cfg_.block);
    if (cfg_.min_idle.count() <= 0) throw config_error(label_ + ": min_idle must be positive");
    if (cfg_.max_deliveries < 1) {
      throw config_error(label_ + ": max_deliveries must be at least 1");
    }
    if (cfg_.start_id.empty()) throw config_error(label_ + R"(: start_id is empty ("0" or "$"))");
    stream_ = *cfg_.redis_key;
    dead_ = cfg_.dead_letter_key ? *cfg_.dead_letter_key : detail::companion_key(stream_, "dead");
    if (dead_.empty()) throw config_error(label_ + ": dead_letter_key is empty");
    if (dead_ == stream_) {
      throw config_error(label_ +
                         ": dead_letter_key is the stream itself; poison entries would "
                         "come back for ever");
    }
    if (!valid_start(cfg_.start_id)) {
      throw config_error(label_ +
                         ": start_id must be \"0\", \"$\" or an entry ID like "
                         "1700000000000-0, got " +
                         detail::quote_for_message(cfg_.start_id));
    }
    consumer_ = cfg_.consumer ? *cfg_.consumer : detail::unique_holder();
    client_ = detail::client_for(cfg_, label_);
    if (!client_->pipelines() && detail::key_slot(dead_) != detail::key_slot(stream_)) {
      // Redis Cluster: a poison entry moves in one script, over both streams.
      throw config_error(label_ + ": the dead-letter stream " + detail::quote_for_message(dead_) +
                         " is in another cluster slot than the stream " +
                         detail::quote_for_message(stream_) +
                         "; give both one hash tag (e.g. {jobs} and {jobs}:dead), and a "
                         "stream with a '}' a hash tag before it");
    }
  }

  /// The next entries for this consumer: first those pending for `min_idle` in any consumer
  /// (claimed, with their server-side delivery counts), then new ones, up to `count`; waits up
  /// to `block` for new ones when there are none (ending the wait 150 ms before `task.timeout`
  /// runs out, so that the run returns an empty batch, not a timeout). An entry delivered more than
  /// `max_deliveries` times, or one that does not make a T, goes to the dead-letter stream with
  /// its reason, acknowledged in the same step, and is not returned. Acknowledge each entry
  /// with `ack` once its work is done; one that is not is delivered again.
  stream_batch<T> run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisStreamConsumer");
    const long long count = o.count.value_or(cfg_.count);
    if (o.count) check_count(count);
    auto block = o.block ? o.block : cfg_.block;
    if (o.block) check_block(*o.block);
    if (block && block->count() == 0) block.reset();  // 0: no wait (never Redis's "for ever")
    const detail::run_info info{name_, stream_, "XREADGROUP", client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      return client_->run(stream_, deadline, [&](detail::connection& c) {
        ensure_group(c);
        stream_batch<T> out;
        if (claim_due()) {
          try {
            claim(c, count, out);
          } catch (const reply_error& e) {
            if (e.code() != "NOGROUP") throw;
            // The stream or the group was deleted since: make them again.
            forget_group();
            ensure_group(c);
            claim(c, count, out);
          }
        }
        const long long left = count - static_cast<long long>(out.messages.size());
        if (left <= 0) return out;
        // Waits only when it has nothing to report, and no longer than the run may last.
        std::optional<std::chrono::milliseconds> wait;
        if (block && out.messages.empty() && out.deleted.empty() && !more_to_claim()) {
          wait = block;
          if (deadline != detail::no_deadline) {
            const auto until = deadline - detail::server_block_margin;
            const auto now = detail::clock::now();
            if (until <= now) {
              wait.reset();
            } else {
              wait = std::min(*wait, std::chrono::ceil<std::chrono::milliseconds>(until - now));
            }
          }
        }
        try {
          read_new(c, left, wait, out);
        } catch (const connection_error&) {
          // What was claimed is this consumer's now (deleted IDs are gone from the pending
          // list): returned, not lost with the error.
          if (out.messages.empty() && out.deleted.empty()) throw;
          c.mark_broken();
        }
        return out;
      });
    });
  }

  /// Same as `run(o)`.
  stream_batch<T> operator()(const overrides& o = {}) const { return run(o); }

  /// Acknowledges entry `id` (its work is done); false when it was not pending.
  bool ack(const std::string& id) const { return ack_ids({id}) == 1; }
  /// Acknowledges every message of `batch`; returns how many were pending.
  long long ack(const stream_batch<T>& batch) const {
    std::vector<std::string> ids;
    ids.reserve(batch.messages.size());
    for (const auto& m : batch.messages)
      ids.push_back(m.id);
    return ack_ids(ids);
  }

  /// This consumer's name in the group.
  const std::string& consumer() const noexcept { return consumer_; }
  /// The dead-letter stream.
  const std::string& dead_letter_key() const noexcept { return dead_; }
  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its stream.
  const std::string& name() const noexcept { return name_; }

 private:
  // Shared by copies: whether the group is known to exist, where the claim scan goes on, and
  // when it last ran.
  struct claim_state {
    detail::fork_safe_lock lock;
    bool group_ready = false;
    std::string cursor = "0-0";
    detail::clock::time_point last_claim{};
    bool more = false;  // the last scan was not through the pending list: scan again at once
  };

  void check_count(long long n) const {
    if (n < 1 || n > 1'000'000) {
      throw config_error(label_ + ": count must be from 1 to 1000000, got " + std::to_string(n));
    }
  }

  // "$", or an entry ID: digits, optionally '-' and digits (at most 20 each).
  static bool valid_start(const std::string& id) {
    if (id == "$") return true;
    std::size_t run = 0;
    bool dash = false;
    for (const char ch : id) {
      if (ch >= '0' && ch <= '9') {
        if (++run > 20) return false;
      } else if (ch == '-' && !dash && run > 0) {
        dash = true;
        run = 0;
      } else {
        return false;
      }
    }
    return run > 0;
  }

  void check_block(std::chrono::milliseconds b) const {
    if (b.count() < 0) throw config_error(label_ + ": block must not be negative");
  }

  void forget_group() const {
    const std::lock_guard<std::mutex> g(state_->lock.mutex());
    state_->group_ready = false;
  }

  void ensure_group(detail::connection& c) const {
    {
      const std::lock_guard<std::mutex> g(state_->lock.mutex());
      if (state_->group_ready) return;
    }
    const reply r = c.call({"XGROUP", "CREATE", stream_, cfg_.group, cfg_.start_id, "MKSTREAM"});
    if (r.is_error() && r.str().compare(0, 9, "BUSYGROUP") != 0) {
      throw reply_error(r.str(), "creating group " + detail::quote_for_message(cfg_.group) +
                                     " of stream " + detail::quote_for_message(stream_) + " on " +
                                     c.endpoint());
    }
    const std::lock_guard<std::mutex> g(state_->lock.mutex());
    state_->group_ready = true;
  }

  // Claiming scans the pending entries; entries become claimable only after min_idle, so a
  // scan every tenth of it (at most every second) is enough.
  bool claim_due() const {
    const auto now = detail::clock::now();
    const auto every = std::min(cfg_.min_idle / 10, std::chrono::milliseconds(1000));
    const std::lock_guard<std::mutex> g(state_->lock.mutex());
    if (!state_->more && state_->last_claim != detail::clock::time_point{} &&
        now - state_->last_claim < every) {
      return false;
    }
    state_->last_claim = now;
    return true;
  }

  bool more_to_claim() const {
    const std::lock_guard<std::mutex> g(state_->lock.mutex());
    return state_->more;
  }

  void claim(detail::connection& c, long long count, stream_batch<T>& out) const {
    std::string cursor;
    {
      const std::lock_guard<std::mutex> g(state_->lock.mutex());
      cursor = state_->cursor;
    }
    const std::string idle = std::to_string(cfg_.min_idle.count());
    const std::string n = std::to_string(count);
    const std::string max = std::to_string(cfg_.max_deliveries);
    reply r = detail::call_script(c, detail::stream_claim_script(), "claiming from stream", stream_,
                                  {stream_, dead_}, {cfg_.group, consumer_, idle, n, max, cursor});
    auto& e = r.elements();
    if (r.type() != reply_type::array || e.size() != 3) {
      throw type_error("claiming from stream " + detail::quote_for_message(stream_) + " on " +
                       c.endpoint() + ": the script answered " + detail::describe_reply(r));
    }
    {
      const std::lock_guard<std::mutex> g(state_->lock.mutex());
      state_->cursor = e[0].str();
      // A full batch, or a scan not yet through the pending list: the next run scans again.
      state_->more =
          state_->cursor != "0-0" || static_cast<long long>(e[1].elements().size()) >= count;
    }
    for (auto& entry : e[1].elements()) {
      auto& parts = entry.elements();
      if (parts.size() != 3) continue;
      take(c, parts[0].str(), parts[1], parts[2].integer(), out);
    }
    for (auto& id : e[2].elements())
      out.deleted.push_back(std::move(id.take_str()));
  }

  void read_new(detail::connection& c, long long count,
                std::optional<std::chrono::milliseconds> block, stream_batch<T>& out) const {
    const std::string n = std::to_string(count);
    const std::string b = block ? std::to_string(block->count()) : std::string();
    reply r;
    for (int attempt = 0;; ++attempt) {
      c.begin_request();
      if (block) {
        c.stretch_timeout(*block);
        c.append({"XREADGROUP", "GROUP", cfg_.group, consumer_, "COUNT", n, "BLOCK", b, "STREAMS",
                  stream_, ">"});
      } else {
        c.append(
            {"XREADGROUP", "GROUP", cfg_.group, consumer_, "COUNT", n, "STREAMS", stream_, ">"});
      }
      c.flush();
      r = c.read();
      if (r.is_error() && r.str().compare(0, 7, "NOGROUP") == 0 && attempt == 0) {
        // The stream or the group was deleted since: make them again.
        forget_group();
        ensure_group(c);
        continue;
      }
      break;
    }
    if (r.is_error()) {
      throw reply_error(r.str(), "reading stream " + detail::quote_for_message(stream_) +
                                     " in group " + detail::quote_for_message(cfg_.group) + " on " +
                                     c.endpoint());
    }
    if (r.is_nil()) return;  // nothing new (within `block`)
    for (auto& s : r.elements()) {
      auto& parts = s.elements();
      if (parts.size() != 2) continue;
      for (auto& entry : parts[1].elements()) {
        auto& idf = entry.elements();
        if (idf.size() != 2) continue;
        take(c, idf[0].str(), idf[1], 1, out);
      }
    }
  }

  // One delivered entry: returned as T, or to the dead-letter stream when it is no T.
  void take(detail::connection& c, const std::string& id, reply& fields, long long deliveries,
            stream_batch<T>& out) const {
    try {
      out.messages.push_back(
          stream_message<T>{id, detail::entry_value<T>(fields, stream_), deliveries});
    } catch (const type_error& e) {
      const std::string d = std::to_string(deliveries);
      (void)detail::call_script(c, detail::dead_letter_script(), "moving to the dead letters",
                                stream_, {stream_, dead_},
                                {cfg_.group, id, std::string("not a T: ") + e.what(), d});
    }
  }

  long long ack_ids(const std::vector<std::string>& ids) const {
    detail::check_live(client_.get(), "RedisStreamConsumer");
    if (ids.empty()) return 0;
    const detail::run_info info{name_, stream_, "XACK", client_->endpoint()};
    return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
      return client_->run(stream_, deadline, [&](detail::connection& c) {
        c.begin_request();
        c.begin_command(3 + ids.size());
        c.arg("XACK");
        c.arg(stream_);
        c.arg(cfg_.group);
        for (const auto& id : ids)
          c.arg(id);
        c.end_command();
        c.flush();
        const reply r = c.read();
        if (r.is_error()) {
          throw reply_error(r.str(), "acknowledging in stream " +
                                         detail::quote_for_message(stream_) + " on " +
                                         c.endpoint());
        }
        return r.integer();
      });
    });
  }

  config cfg_;
  std::string label_;
  std::string name_;
  std::string stream_;
  std::string dead_;
  std::string consumer_;
  std::shared_ptr<claim_state> state_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/stream.ipp"
#endif
