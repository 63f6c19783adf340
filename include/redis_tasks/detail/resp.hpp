// RESP on the wire: the request encoder (ours) and the reply parser (hiredis's reader, building
// `reply` trees directly so that a bulk string is copied once, as hiredis itself copies it).
#pragma once

#include "../version.hpp"

#include <cstddef>
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
  REDIS_TASKS_DECL void clear();

  /// Appends one command made of `n` arguments.
  REDIS_TASKS_DECL void append(const std::string_view* args, std::size_t n);

  /// Starts a command of `argc` arguments; follow with exactly `argc` calls to `arg`.
  REDIS_TASKS_DECL void begin(std::size_t argc);

  /// Appends one argument of the command started by `begin`. A long argument is referenced,
  /// not copied: it must stay alive until the request is written.
  REDIS_TASKS_DECL void arg(std::string_view a);

  /// Appends everything `other` encoded (whole commands or a started one), long arguments
  /// still referenced where they lie.
  REDIS_TASKS_DECL void append_encoded(request_encoder& other);

  /// The encoded pieces in order; valid until the next `append` or `clear`.
  REDIS_TASKS_DECL const std::vector<segment>& segments();
  /// The internal buffer that buffer segments point into.
  const std::string& buffer() const noexcept { return buf_; }
  /// Number of commands appended since `clear`.
  std::size_t commands() const noexcept { return commands_; }
  /// Bytes held in the internal buffer (to decide when to flush a long pipeline).
  std::size_t buffered_bytes() const noexcept { return buf_.size(); }

 private:
  REDIS_TASKS_DECL void append_header(char kind, std::size_t n);

  REDIS_TASKS_DECL void close_buffer_segment();

  std::string buf_;
  std::vector<segment> segments_;
  std::size_t pending_from_ = 0;
  std::size_t commands_ = 0;
};

/// The length of a plain bulk string header (`$` and 1 to 18 decimal digits, then CR LF) at the
/// start of the `n` bytes at `p`, with the announced length in `len`; 0 when the bytes do not
/// start with a complete header of that form (nil, a sign, a longer number, another reply).
REDIS_TASKS_DECL std::size_t bulk_header(const char* p, std::size_t n, std::size_t& len) noexcept;

/// Parses RESP replies from bytes fed to it, using hiredis's reader with object functions that
/// build `reply` values in place: children live inside their parent's element vector and the
/// root lives in this object, so a reply costs no allocation beyond its strings and vectors.
class reply_parser {
 public:
  REDIS_TASKS_DECL reply_parser();
  reply_parser(const reply_parser&) = delete;
  reply_parser& operator=(const reply_parser&) = delete;
  ~reply_parser() { redisReaderFree(reader_); }

  /// Adds bytes read from the socket.
  REDIS_TASKS_DECL void feed(const char* data, std::size_t n);

  /// True when no byte of an unfinished reply is buffered: the next byte fed starts a reply.
  /// (hiredis's own state cannot say: asking it for a reply with nothing buffered leaves it
  /// looking like a reply has begun.)
  bool at_reply_start() const noexcept { return boundary_; }

  /// Takes the next complete reply into `out`; false when more bytes are needed.
  REDIS_TASKS_DECL bool next(reply& out);

 private:
  // What the callbacks reach through the reader's privdata: the root slot, and the exception
  // a callback caught. Exceptions must not unwind through hiredis's C frames, so a callback
  // that fails stores it here and returns null, which hiredis turns into an error.
  struct build_state {
    reply root;
    std::exception_ptr failure;
  };

  [[noreturn]] REDIS_TASKS_DECL void throw_protocol_error();

  // Where the object for `task` goes: the root slot, or its place in the parent's elements.
  // hiredis makes the children of an aggregate in order, so the parent's vector grows by one
  // here, and its capacity only in step with the elements that did arrive (eightfold, capped
  // at the announced count): a 13-byte `*2147483647` must not allocate gigabytes. Growing is
  // safe: the parent's earlier children are complete and no task still points into them.
  REDIS_TASKS_DECL static reply* slot(const redisReadTask* task);

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

  REDIS_TASKS_DECL static void* create_string(const redisReadTask* task, char* str,
                                              std::size_t len) noexcept;

  REDIS_TASKS_DECL static void set_string(const redisReadTask* task, reply& r, const char* str,
                                          std::size_t len);

#ifdef REDIS_REPLY_DOUBLE
  using aggregate_size = std::size_t;
#else
  using aggregate_size = int;
#endif

  REDIS_TASKS_DECL static void* create_array(const redisReadTask* task, aggregate_size n) noexcept;

  REDIS_TASKS_DECL static void* create_integer(const redisReadTask* task, long long v) noexcept;

  REDIS_TASKS_DECL static void* create_nil(const redisReadTask* task) noexcept;

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
  REDIS_TASKS_DECL static void free_object(void* obj) noexcept;

  REDIS_TASKS_DECL static redisReplyObjectFunctions& functions();

  redisReader* reader_;
  build_state state_;
  bool boundary_ = true;  // every byte fed so far made whole replies
};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/resp.ipp"
#endif
