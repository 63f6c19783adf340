// The bodies of resp.hpp (see ../resp.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../resp.hpp"

#include <algorithm>
#include <cstring>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL void request_encoder::clear() {
  buf_.clear();
  segments_.clear();
  pending_from_ = 0;
  commands_ = 0;
}

REDIS_TASKS_DECL void request_encoder::append(const std::string_view* args, std::size_t n) {
  begin(n);
  for (std::size_t i = 0; i < n; ++i)
    arg(args[i]);
}

REDIS_TASKS_DECL void request_encoder::begin(std::size_t argc) {
  append_header('*', argc);
  ++commands_;
}

REDIS_TASKS_DECL void request_encoder::arg(std::string_view a) {
  append_header('$', a.size());
  if (a.size() >= external_threshold) {
    close_buffer_segment();
    segments_.push_back({a.data(), 0, a.size()});
  } else {
    buf_.append(a.data(), a.size());
  }
  buf_ += "\r\n";
}

REDIS_TASKS_DECL void request_encoder::append_encoded(request_encoder& other) {
  const char* base = other.buf_.data();
  for (const auto& sg : other.segments()) {
    if (sg.external != nullptr) {
      close_buffer_segment();
      segments_.push_back(sg);
    } else {
      buf_.append(base + sg.offset, sg.size);
    }
  }
  commands_ += other.commands_;
}

REDIS_TASKS_DECL auto request_encoder::segments() -> const std::vector<segment>& {
  close_buffer_segment();
  return segments_;
}

REDIS_TASKS_DECL void request_encoder::append_header(char kind, std::size_t n) {
  char tmp[24];
  char* end = tmp + sizeof tmp;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  buf_.push_back(kind);
  buf_.append(p, static_cast<std::size_t>(end - p));
  buf_ += "\r\n";
}

REDIS_TASKS_DECL void request_encoder::close_buffer_segment() {
  if (buf_.size() > pending_from_) {
    segments_.push_back({nullptr, pending_from_, buf_.size() - pending_from_});
    pending_from_ = buf_.size();
  }
}

REDIS_TASKS_DECL std::size_t bulk_header(const char* p, std::size_t n, std::size_t& len) noexcept {
  if (n < 4 || p[0] != '$') return 0;
  std::size_t i = 1;
  std::size_t v = 0;
  for (; i < n && i <= 18 && p[i] >= '0' && p[i] <= '9'; ++i) {
    v = v * 10 + static_cast<std::size_t>(p[i] - '0');
  }
  if (i == 1 || i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n') return 0;
  len = v;
  return i + 2;
}

REDIS_TASKS_DECL reply_parser::reply_parser()
    : reader_(redisReaderCreateWithFunctions(&functions())) {
  if (reader_ == nullptr) throw std::bad_alloc();
  reader_->privdata = &state_;
}

REDIS_TASKS_DECL void reply_parser::feed(const char* data, std::size_t n) {
  if (n == 0) return;
  if (redisReaderFeed(reader_, data, n) != REDIS_OK) throw_protocol_error();
  boundary_ = false;
}

REDIS_TASKS_DECL bool reply_parser::next(reply& out) {
  if (boundary_) return false;  // everything fed made whole replies, all taken
  void* obj = nullptr;
  if (redisReaderGetReply(reader_, &obj) != REDIS_OK) {
    // A callback failed (std::bad_alloc, say): hiredis only saw a null object and stopped.
    if (state_.failure) std::rethrow_exception(std::exchange(state_.failure, nullptr));
    throw_protocol_error();
  }
  if (obj == nullptr) return false;
  out = std::move(state_.root);
  state_.root = reply();
  boundary_ = reader_->pos == reader_->len;
  return true;
}

REDIS_TASKS_DECL void reply_parser::throw_protocol_error() {
  throw connection_error(std::string("protocol error from server: ") + reader_->errstr);
}

REDIS_TASKS_DECL reply* reply_parser::slot(const redisReadTask* task) {
  if (task->parent == nullptr) return &static_cast<build_state*>(task->privdata)->root;
  auto& siblings = static_cast<reply*>(task->parent->obj)->elements();
  const auto i = static_cast<std::size_t>(task->idx);
  if (i == siblings.size()) {
    if (i == siblings.capacity()) {
      const auto announced = static_cast<std::size_t>(task->parent->elements);
      siblings.reserve(std::min(announced, std::max<std::size_t>(i * 8, 8)));
    }
    siblings.emplace_back();
  }
  return &siblings[i];
}

REDIS_TASKS_DECL void* reply_parser::create_string(const redisReadTask* task, char* str,
                                                   std::size_t len) noexcept {
  return guarded(task, [&](reply& r) { set_string(task, r, str, len); });
}

REDIS_TASKS_DECL void reply_parser::set_string(const redisReadTask* task, reply& r, const char* str,
                                               std::size_t len) {
  switch (task->type) {
    case REDIS_REPLY_STATUS:
      r = reply::make_status(std::string(str, len));
      break;
    case REDIS_REPLY_ERROR:
      r = reply::make_error(std::string(str, len));
      break;
#ifdef REDIS_REPLY_VERB
    case REDIS_REPLY_VERB:
      if (len >= 4 && str[3] == ':') {
        r = reply::make_verbatim(std::string(str + 4, len - 4), std::string(str, 3));
      } else {
        r = reply::make_verbatim(std::string(str, len));
      }
      break;
#endif
#ifdef REDIS_REPLY_BIGNUM
    case REDIS_REPLY_BIGNUM:
      r = reply::make_big_number(std::string(str, len));
      break;
#endif
    default:
      r = reply::make_string(std::string(str, len));
      break;
  }
}

REDIS_TASKS_DECL void* reply_parser::create_array(const redisReadTask* task,
                                                  aggregate_size n) noexcept {
  reply_type t = reply_type::array;
#ifdef REDIS_REPLY_MAP
  switch (task->type) {
    case REDIS_REPLY_MAP:
      t = reply_type::map;
      break;
    case REDIS_REPLY_SET:
      t = reply_type::set;
      break;
    case REDIS_REPLY_PUSH:
      t = reply_type::push;
      break;
    case REDIS_REPLY_ATTR:
      t = reply_type::attribute;
      break;
    default:
      break;
  }
#endif
  // The elements are added as they arrive (see `slot`); reserve only a few up front.
  const std::size_t reserve = std::min<std::size_t>(static_cast<std::size_t>(n), 8);
  return guarded(task, [&](reply& r) {
    std::vector<reply> elements;
    elements.reserve(reserve);
    r = reply::make_aggregate(t, std::move(elements));
  });
}

REDIS_TASKS_DECL void* reply_parser::create_integer(const redisReadTask* task,
                                                    long long v) noexcept {
  return guarded(task, [&](reply& r) { r = reply::make_integer(v); });
}

REDIS_TASKS_DECL void* reply_parser::create_nil(const redisReadTask* task) noexcept {
  return guarded(task, [&](reply& r) { r = reply(); });
}

REDIS_TASKS_DECL void reply_parser::free_object(void* obj) noexcept {
  *static_cast<reply*>(obj) = reply();
}

REDIS_TASKS_DECL auto reply_parser::functions() -> redisReplyObjectFunctions& {
#ifdef REDIS_REPLY_DOUBLE
  static redisReplyObjectFunctions f = {create_string, create_array, create_integer, create_double,
                                        create_nil,    create_bool,  free_object};
#else
  static redisReplyObjectFunctions f = {create_string, create_array, create_integer, create_nil,
                                        free_object};
#endif
  return f;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
