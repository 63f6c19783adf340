// RESP on the wire: the request encoder (ours) and the reply parser (hiredis's reader, building
// `reply` trees directly so that a bulk string is copied once, as hiredis itself copies it).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Only the reply reader: no hiredis context API (nor sds.h, whose flexible array members
// -Wpedantic rejects under a plain -I), so none of its macros reach user code. Its RESP3
// additions (hiredis 1.x) are told apart by REDIS_REPLY_DOUBLE, which comes with them.
#include <hiredis/read.h>

#include "../errors.hpp"
#include "../reply.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// Encodes commands into RESP without copying large arguments: small pieces are gathered in one
/// buffer, arguments of `external_threshold` bytes or more are referenced where they lie.
class request_encoder {
 public:
  /// Arguments at least this long are sent from the caller's memory (writev), not copied.
  static constexpr std::size_t external_threshold = std::size_t{16} * 1024;

  /// One piece of the outgoing bytes: a range of the internal buffer or caller memory.
  struct segment {
    const char* external;  ///< caller memory, or nullptr for the buffer range
    std::size_t offset;    ///< buffer offset when `external` is null
    std::size_t size;      ///< length in bytes
  };

  /// Forgets everything encoded so far (keeps the capacity).
  void clear() {
    buf_.clear();
    segments_.clear();
    pending_from_ = 0;
    commands_ = 0;
  }

  /// Appends one command made of `n` arguments.
  void append(const std::string_view* args, std::size_t n) {
    begin(n);
    for (std::size_t i = 0; i < n; ++i)
      arg(args[i]);
  }

  /// Starts a command of `argc` arguments; follow with exactly `argc` calls to `arg`.
  void begin(std::size_t argc) {
    append_header('*', argc);
    ++commands_;
  }

  /// Appends one argument of the command started by `begin`. A long argument is referenced,
  /// not copied: it must stay alive until the request is written.
  void arg(std::string_view a) {
    append_header('$', a.size());
    if (a.size() >= external_threshold) {
      close_buffer_segment();
      segments_.push_back({a.data(), 0, a.size()});
    } else {
      buf_.append(a.data(), a.size());
    }
    buf_ += "\r\n";
  }

  /// Appends everything `other` encoded (whole commands or a started one), long arguments
  /// still referenced where they lie.
  void append_encoded(request_encoder& other) {
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

  /// The encoded pieces in order; valid until the next `append` or `clear`.
  const std::vector<segment>& segments() {
    close_buffer_segment();
    return segments_;
  }
  /// The internal buffer that buffer segments point into.
  const std::string& buffer() const noexcept { return buf_; }
  /// Number of commands appended since `clear`.
  std::size_t commands() const noexcept { return commands_; }
  /// Bytes held in the internal buffer (to decide when to flush a long pipeline).
  std::size_t buffered_bytes() const noexcept { return buf_.size(); }

 private:
  void append_header(char kind, std::size_t n) {
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

  void close_buffer_segment() {
    if (buf_.size() > pending_from_) {
      segments_.push_back({nullptr, pending_from_, buf_.size() - pending_from_});
      pending_from_ = buf_.size();
    }
  }

  std::string buf_;
  std::vector<segment> segments_;
  std::size_t pending_from_ = 0;
  std::size_t commands_ = 0;
};

/// The length of a plain bulk string header (`$` and 1 to 18 decimal digits, then CR LF) at the
/// start of the `n` bytes at `p`, with the announced length in `len`; 0 when the bytes do not
/// start with a complete header of that form (nil, a sign, a longer number, another reply).
inline std::size_t bulk_header(const char* p, std::size_t n, std::size_t& len) noexcept {
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

/// Parses RESP replies from bytes fed to it, using hiredis's reader with object functions that
/// build `reply` values in place: children live inside their parent's element vector and the
/// root lives in this object, so a reply costs no allocation beyond its strings and vectors.
class reply_parser {
 public:
  reply_parser() : reader_(redisReaderCreateWithFunctions(&functions())) {
    if (reader_ == nullptr) throw std::bad_alloc();
    reader_->privdata = &state_;
  }
  reply_parser(const reply_parser&) = delete;
  reply_parser& operator=(const reply_parser&) = delete;
  ~reply_parser() { redisReaderFree(reader_); }

  /// Adds bytes read from the socket.
  void feed(const char* data, std::size_t n) {
    if (n == 0) return;
    if (redisReaderFeed(reader_, data, n) != REDIS_OK) throw_protocol_error();
    boundary_ = false;
  }

  /// True when no byte of an unfinished reply is buffered: the next byte fed starts a reply.
  /// (hiredis's own state cannot say: asking it for a reply with nothing buffered leaves it
  /// looking like a reply has begun.)
  bool at_reply_start() const noexcept { return boundary_; }

  /// Takes the next complete reply into `out`; false when more bytes are needed.
  bool next(reply& out) {
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

 private:
  // What the callbacks reach through the reader's privdata: the root slot, and the exception
  // a callback caught. Exceptions must not unwind through hiredis's C frames, so a callback
  // that fails stores it here and returns null, which hiredis turns into an error.
  struct build_state {
    reply root;
    std::exception_ptr failure;
  };

  [[noreturn]] void throw_protocol_error() {
    throw connection_error(std::string("protocol error from server: ") + reader_->errstr);
  }

  // Where the object for `task` goes: the root slot, or its place in the parent's elements.
  // hiredis makes the children of an aggregate in order, so the parent's vector grows by one
  // here, and its capacity only in step with the elements that did arrive (eightfold, capped
  // at the announced count): a 13-byte `*2147483647` must not allocate gigabytes. Growing is
  // safe: the parent's earlier children are complete and no task still points into them.
  static reply* slot(const redisReadTask* task) {
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

  // Runs `build(slot)` and returns the slot, or stores the exception and returns null.
  template <typename Build>
  static void* guarded(const redisReadTask* task, Build&& build) noexcept {
    try {
      reply* r = slot(task);
      build(*r);
      return r;
    } catch (...) {
      static_cast<build_state*>(task->privdata)->failure = std::current_exception();
      return nullptr;
    }
  }

  static void* create_string(const redisReadTask* task, char* str, std::size_t len) noexcept {
    return guarded(task, [&](reply& r) { set_string(task, r, str, len); });
  }

  static void set_string(const redisReadTask* task, reply& r, const char* str, std::size_t len) {
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

#ifdef REDIS_REPLY_DOUBLE
  using aggregate_size = std::size_t;
#else
  using aggregate_size = int;
#endif

  static void* create_array(const redisReadTask* task, aggregate_size n) noexcept {
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

  static void* create_integer(const redisReadTask* task, long long v) noexcept {
    return guarded(task, [&](reply& r) { r = reply::make_integer(v); });
  }

  static void* create_nil(const redisReadTask* task) noexcept {
    return guarded(task, [&](reply& r) { r = reply(); });
  }

#ifdef REDIS_REPLY_DOUBLE
  static void* create_double(const redisReadTask* task, double v, char* str,
                             std::size_t len) noexcept {
    return guarded(task, [&](reply& r) { r = reply::make_double(v, std::string(str, len)); });
  }

  static void* create_bool(const redisReadTask* task, int v) noexcept {
    return guarded(task, [&](reply& r) { r = reply::make_boolean(v != 0); });
  }
#endif

  // Only ever called on the root object, which lives in the parser: reset it in place.
  static void free_object(void* obj) noexcept {
    *static_cast<reply*>(obj) = reply();
  }

  static redisReplyObjectFunctions& functions() {
#ifdef REDIS_REPLY_DOUBLE
    static redisReplyObjectFunctions f = {create_string, create_array, create_integer,
                                          create_double, create_nil,   create_bool,
                                          free_object};
#else
    static redisReplyObjectFunctions f = {create_string, create_array, create_integer, create_nil,
                                          free_object};
#endif
    return f;
  }

  redisReader* reader_;
  build_state state_;
  bool boundary_ = true;  // every byte fed so far made whole replies
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
