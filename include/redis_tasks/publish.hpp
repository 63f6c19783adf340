// RedisPublish<T>: publishes a message on a pub/sub channel (PUBLISH, or SPUBLISH for sharded
// pub/sub) and returns how many subscribers received it.
#pragma once

#include "version.hpp"

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "config_json.hpp"
#include "connection.hpp"
#include "connection_handle.hpp"
#include "detail/codec.hpp"
#include "detail/run.hpp"
#include "detail/store.hpp"
#include "detail/task_client.hpp"
#include "errors.hpp"
#include "secrets.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Publishes a message on a channel. The message is T in the form RedisSet stores it: a string
/// as it is, a number as its text, a JSON type as its JSON text, a `value_traits` type as its
/// storage type. A message is one string, so T cannot be a collection (publish it as
/// nlohmann::json). What is published while no subscriber is connected is gone: use a stream
/// work queue for messages that must not be lost.
template <class T = std::string>
class RedisPublish {
 public:
  static_assert(!std::is_same_v<T, std::string_view> && !detail::is_char_pointer_v<T>,
                "RedisPublish<std::string_view> / RedisPublish<const char*>: a view would dangle "
                "in a long-lived config; use RedisPublish<std::string>");
  static_assert(detail::category_of<detail::stored_form_t<T>>() == detail::category::string ||
                    detail::category_of<detail::stored_form_t<T>>() == detail::category::number ||
                    detail::category_of<detail::stored_form_t<T>>() == detail::category::bytes,
                "RedisPublish<T>: a message is one string; T must be a string, a number, bytes, a "
                "JSON-convertible type or a value_traits type stored as one of those (publish a "
                "collection as nlohmann::json)");

  /// The task's settings: the connection fields, as every task has them, then its own.
  struct config {
    std::string host = "localhost";                                 ///< Redis host
    int port = 6379;                                                ///< Redis port
    int db = 0;                                                     ///< database index
    std::optional<std::string> password_secret = "REDIS_PASSWORD";  ///< secret with the password
    connection_params redis_connection_params{};  ///< timeouts, user, TLS, pool…
    std::optional<std::string> channel{};         ///< the channel to publish on
    std::optional<T> message{};                   ///< what to publish
    /// Sharded pub/sub (SPUBLISH, Redis 7): on a cluster the message goes only to the node of
    /// the channel's slot, for RedisPubSubSensor tasks with `sharded` on.
    bool sharded = false;
    task_options task{};                              ///< name, retries, timeout
    std::shared_ptr<const SecretProvider> secrets{};  ///< null: environment variables
    /// Run on this shared connection instead of the connection fields above.
    std::shared_ptr<connection_handle> connection{};

    /// The fields of its own that a JSON config may give (beside the connection fields).
    static constexpr const char* own_fields = "channel, message, sharded";
    /// Reads one of `own_fields`; false for any other name.
    static bool load_field(config& c, const std::string& name, const nlohmann::json& v,
                           const detail::json_fields& f) {
      if (name == "channel") {
        c.channel = f.optional_string(name, v);
      } else if (name == "message") {
        if (v.is_null()) {
          c.message = std::nullopt;
        } else if constexpr (detail::json_value_readable<T>()) {
          try {
            c.message = detail::json_value<T>(v);
          } catch (const nlohmann::json::exception& e) {
            throw config_error(f.where + ".message: does not fit the task's message type (" +
                               e.what() + ")");
          } catch (const std::exception& e) {  // a value_traits from_storage that refused it
            throw config_error(f.where + ".message: does not make the task's message type (" +
                               e.what() + ")");
          }
        } else {
          throw config_error(f.where +
                             ".message: this task's message type cannot be read from JSON; "
                             "give the message at run time");
        }
      } else if (name == "sharded") {
        c.sharded = f.boolean(name, v);
      } else {
        return false;
      }
      return true;
    }
    /// Loads a config from JSON; a wrong name or type is a `config_error` naming the field.
    friend void from_json(const nlohmann::json& j, config& c) {
      detail::load_config(j, c, "config", "RedisPublish");
    }
  };

  /// A run's settings; a given field wins over the config's.
  struct overrides {
    std::optional<std::string> channel{};  ///< the channel to publish on
    std::optional<T> message{};            ///< what to publish
  };

  /// Builds the task; no connection is opened yet. Throws `config_error` on invalid settings.
  explicit RedisPublish(config cfg = {})
      : cfg_(std::move(cfg)),
        label_(detail::task_label(cfg_.task, "RedisPublish")),
        name_(detail::task_name(cfg_.task, "RedisPublish", cfg_.channel.value_or(""))) {
    detail::check_retry_options(cfg_.task, label_);
    if (cfg_.channel && cfg_.channel->empty()) {
      throw config_error(label_ + ": channel is empty; give the channel to publish on");
    }
    client_ = detail::client_for(cfg_, label_);
  }

  /// Publishes the message; returns how many subscribers received it (on a cluster without
  /// `sharded`: those connected to the node it was sent to, as Redis counts them).
  long long run(const overrides& o = {}) const {
    detail::check_live(client_.get(), "RedisPublish");
    const std::string* channel = o.channel ? &*o.channel : cfg_.channel ? &*cfg_.channel : nullptr;
    if (channel == nullptr || channel->empty()) {
      throw config_error(label_ + ": channel is missing; give it in the config or in run()");
    }
    const T* message = o.message ? &*o.message : cfg_.message ? &*cfg_.message : nullptr;
    if (message == nullptr) {
      throw config_error(label_ + ": message is missing; give it in the config or in run()");
    }
    const char* verb = cfg_.sharded ? "SPUBLISH" : "PUBLISH";
    // A JSON or value_traits message becomes its stored form before any I/O.
    auto publish = [&](const auto& stored) {
      detail::number_buffer buf;
      const std::string_view text = detail::element_text(stored, buf);
      const detail::run_info info{name_, *channel, verb, client_->endpoint()};
      return detail::with_retries(cfg_.task, info, [&](detail::clock::time_point deadline) {
        return client_->run(*channel, deadline, [&](detail::connection& c) {
          const reply r = c.call({verb, *channel, text});
          if (r.is_error()) {
            throw reply_error(r.str(), std::string(verb) + " " +
                                           detail::quote_for_message(*channel) + " on " +
                                           c.endpoint());
          }
          if (r.type() != reply_type::integer) {
            throw type_error(std::string(verb) + " on " + c.endpoint() + " answered " +
                             detail::describe_reply(r) + ", not a count of receivers");
          }
          return r.integer();
        });
      });
    };
    constexpr auto cat = detail::category_of<T>();
    if constexpr (cat == detail::category::user || cat == detail::category::json) {
      return publish(detail::converted(*message, label_));
    } else {
      return publish(*message);
    }
  }

  /// Same as `run(o)`.
  long long operator()(const overrides& o = {}) const { return run(o); }

  /// The settings the task was built with.
  const config& settings() const noexcept { return cfg_; }
  /// The task's name: task_options.name, or the class and its channel.
  const std::string& name() const noexcept { return name_; }

 private:
  config cfg_;
  std::string label_;
  std::string name_;
  std::shared_ptr<detail::client> client_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
