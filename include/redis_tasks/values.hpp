// C++ types as Redis values: the sorted_set and value types, and `value_traits`, the one
// customization point that makes a user's own type storable.
#pragma once

#include "version.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// A Redis sorted set: members with double scores. Build it from `{{"a", 1.0}, {"b", 2.5}}`;
/// RedisGet returns it in ascending score order (ties by member, as Redis orders them: bytewise
/// on the member's text). Stored, a member given twice keeps its last score, as with ZADD; a NaN
/// score is refused with `config_error`. Two sorted sets are equal when they hold the same
/// (member, score) entries in any order.
template <class E = std::string>
class sorted_set {
 public:
  /// One member and its score.
  struct entry {
    E member;      ///< the member (a string or a number)
    double score;  ///< its score
    /// Same member and score.
    friend bool operator==(const entry& a, const entry& b) {
      return a.member == b.member && a.score == b.score;
    }
    /// Different member or score.
    friend bool operator!=(const entry& a, const entry& b) { return !(a == b); }
  };
  using value_type = entry;                                            ///< element type
  using const_iterator = typename std::vector<entry>::const_iterator;  ///< iterator

  /// An empty sorted set.
  sorted_set() = default;
  /// The given entries, in the given order.
  sorted_set(std::initializer_list<entry> entries) : entries_(entries) {}
  /// The given entries, in the given order.
  explicit sorted_set(std::vector<entry> entries) : entries_(std::move(entries)) {}

  /// Adds an entry at the end.
  void add(E member, double score) { entries_.push_back({std::move(member), score}); }
  /// Adds an entry at the end.
  void push_back(entry e) { entries_.push_back(std::move(e)); }
  /// Reserves room for `n` entries.
  void reserve(std::size_t n) { entries_.reserve(n); }
  /// Number of entries.
  std::size_t size() const noexcept { return entries_.size(); }
  /// True when there is no entry.
  bool empty() const noexcept { return entries_.empty(); }
  /// First entry.
  const_iterator begin() const noexcept { return entries_.begin(); }
  /// Past the last entry.
  const_iterator end() const noexcept { return entries_.end(); }
  /// The entries in their current order.
  const std::vector<entry>& entries() const noexcept { return entries_; }

  /// Same entries, regardless of order.
  friend bool operator==(const sorted_set& a, const sorted_set& b) {
    if (a.size() != b.size()) return false;
    auto x = a.sorted();
    auto y = b.sorted();
    return x == y;
  }
  /// Different entries.
  friend bool operator!=(const sorted_set& a, const sorted_set& b) { return !(a == b); }

 private:
  std::vector<entry> sorted() const {
    auto v = entries_;
    std::sort(v.begin(), v.end(), [](const entry& l, const entry& r) {
      return std::tie(l.score, l.member) < std::tie(r.score, r.member);
    });
    return v;
  }

  std::vector<entry> entries_;
};

/// Whatever a key holds, one alternative per Redis type: string, list, set, hash, sorted set.
/// `RedisGet<value>` picks the alternative from the key's TYPE.
using value = std::variant<std::string, std::vector<std::string>, std::set<std::string>,
                           std::map<std::string, std::string>, sorted_set<std::string>>;

/// The customization point: specialize it to store your own type `T` as any type the library
/// already stores (a string, a number, a container, a sorted set, a JSON-convertible type, or
/// another type with `value_traits`):
/// \code
/// template <> struct redis_tasks::value_traits<point> {
///   using storage_type = std::map<std::string, double>;          // stored as a hash
///   static storage_type to_storage(const point& p) { return {{"x", p.x}, {"y", p.y}}; }
///   static point from_storage(storage_type s) { return {s.at("x"), s.at("y")}; }
/// };
/// \endcode
/// `from_storage` takes `storage_type` by value or by const reference, and is called only for a
/// key that exists; when the stored data does not make a `T` it may throw: a
/// `redis_tasks::type_error` as it is, any other `std::exception` (say `std::out_of_range` from
/// `at`) turned into a `type_error` naming the key. A specialization wins over every built-in
/// mapping (JSON included). Types with nlohmann `to_json`/`from_json` need no specialization: they
/// are stored as JSON text. See examples/custom_type.cpp.
template <class T, class Enable = void>
struct value_traits {};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
