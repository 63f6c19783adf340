// The bodies of subscriber.hpp (see ../subscriber.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../subscriber.hpp"

#include <poll.h>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string subscription::describe() const {
  std::string s;
  auto add = [&s](const char* kind, const std::string& name) {
    s += s.empty() ? "" : ", ";
    s += kind;
    s += ' ';
    s += quote_for_message(name);
  };
  for (const auto& c : channels)
    add(sharded ? "sharded channel" : "channel", c);
  for (const auto& p : patterns)
    add("pattern", p);
  return s;
}

REDIS_TASKS_DECL subscriber::subscriber(std::shared_ptr<connection_pool> server,
                                        const subscription& sub, clock::time_point deadline)
    : server_(std::move(server)), conn_(server_->settings(), deadline) {
  conn_.set_run_deadline(deadline);
  std::size_t expected = 0;
  auto send = [&](const char* verb, const std::vector<std::string>& names) {
    if (names.empty()) return;
    std::vector<std::string_view> args;
    args.reserve(names.size() + 1);
    args.emplace_back(verb);
    for (const auto& n : names)
      args.emplace_back(n);
    conn_.send_unawaited(args.data(), args.size());
    expected += names.size();
  };
  send(sub.sharded ? "SSUBSCRIBE" : "SUBSCRIBE", sub.channels);
  send("PSUBSCRIBE", sub.patterns);
  const auto confirm_by = earlier(deadline, deadline_after(message_bound()));
  while (confirmed_ < expected) {
    if (auto r = conn_.read_pushed_now()) {
      take(std::move(*r));
      continue;
    }
    if (!wait_fd(conn_.native_handle(), POLLIN, confirm_by)) {
      throw timeout_error(
          "subscribing on " + conn_.endpoint() +
          ": the server did not confirm the subscription within " +
          ms_text(std::chrono::duration_cast<std::chrono::milliseconds>(message_bound())));
    }
  }
  conn_.restore_timeout();
}

REDIS_TASKS_DECL auto subscriber::next(clock::time_point wait_until)
    -> std::optional<pushed_message> {
  for (;;) {
    if (!early_.empty()) {
      pushed_message m = std::move(early_.front());
      early_.pop_front();
      return m;
    }
    if (auto r = conn_.read_pushed_now()) {
      take(std::move(*r));
      continue;
    }
    if (!wait_fd(conn_.native_handle(), POLLIN, wait_until)) return std::nullopt;
  }
}

REDIS_TASKS_DECL std::chrono::milliseconds subscriber::message_bound() const {
  const auto& p = server_->settings().params;
  if (p.socket_timeout.count() > 0) return p.socket_timeout;
  if (p.connect_timeout.count() > 0) return p.connect_timeout;
  return std::chrono::milliseconds(10000);
}

REDIS_TASKS_DECL void subscriber::ping() {
  if (awaiting_pong_) {
    throw connection_error("the subscription on " + conn_.endpoint() +
                           " did not answer PING within a health check interval");
  }
  static constexpr std::string_view args[] = {"PING"};
  conn_.set_run_deadline(deadline_after(message_bound()));  // even with socket_timeout 0
  conn_.send_unawaited(args, 1);
  conn_.restore_timeout();
  awaiting_pong_ = true;
}

REDIS_TASKS_DECL void subscriber::take(reply&& r) {
  ++heard_;
  if (r.is_error()) {
    throw reply_error(r.str(), "subscribing on " + conn_.endpoint());
  }
  if (r.type() != reply_type::array || r.elements().empty()) {
    throw connection_error("the subscription on " + conn_.endpoint() + " received " +
                           describe_reply(r) + ", which is no pub/sub message");
  }
  auto& e = r.elements();
  const std::string kind = e[0].str();
  if ((kind == "message" || kind == "smessage") && e.size() == 3) {
    early_.push_back(pushed_message{e[1].take_str(), std::string(), e[2].take_str()});
  } else if (kind == "pmessage" && e.size() == 4) {
    early_.push_back(pushed_message{e[2].take_str(), e[1].take_str(), e[3].take_str()});
  } else if (kind == "subscribe" || kind == "psubscribe" || kind == "ssubscribe") {
    ++confirmed_;
  } else if (kind == "pong") {
    awaiting_pong_ = false;
  } else if (kind == "sunsubscribe" || kind == "unsubscribe" || kind == "punsubscribe") {
    // Never asked for: the server ended the subscription (a sharded channel's slot moved).
    throw connection_error("the server " + conn_.endpoint() + " ended the subscription (" + kind +
                           "), as it does when a sharded channel's slot moves");
  } else {
    throw connection_error("the subscription on " + conn_.endpoint() +
                           " received an unknown pushed message '" + printable_kind(kind) + "'");
  }
}

REDIS_TASKS_DECL std::string subscriber::printable_kind(const std::string& k) {
  std::string s = k.substr(0, 32);
  for (auto& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  return s;
}

REDIS_TASKS_DECL std::unique_ptr<subscriber> open_subscriber(client& cl, const subscription& sub,
                                                             clock::time_point deadline) {
  const route r = sub.route_key ? route(*sub.route_key) : route::none();
  for (int attempt = 0;; ++attempt) {
    auto server = cl.server_for(r, deadline);
    try {
      return std::make_unique<subscriber>(server, sub, deadline);
    } catch (const reply_error& e) {
      if (attempt >= 3 || !cl.redirected(e.server_message(), *server)) throw;
    } catch (const not_master_error&) {
      cl.server_failed(server);
      if (attempt >= 3 || !sleep_within(std::chrono::milliseconds(100 * (attempt + 1)), deadline)) {
        throw;
      }
    } catch (const connection_error&) {
      cl.server_failed(server);
      throw;
    }
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
