// nlohmann::json as templates name it: through a dependent type, so that a header needs only
// <nlohmann/json_fwd.hpp> and a file that stores no JSON never parses the whole of nlohmann/json.
#pragma once

#include "../version.hpp"

#include <type_traits>

#include <nlohmann/json_fwd.hpp>

/// The message of a JSON type used where `<nlohmann/json.hpp>` was not included.
#define REDIS_TASKS_JSON_NEEDED                                                                  \
  "storing or reading a JSON type (nlohmann::json, or a type with to_json/from_json) needs "     \
  "the whole of nlohmann/json: #include <nlohmann/json.hpp> (or <redis_tasks/redis_tasks.hpp>) " \
  "before this use"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// `nlohmann::json`, named through T: a template that uses it compiles where only
/// `<nlohmann/json_fwd.hpp>` was included, and needs the whole of `<nlohmann/json.hpp>` only
/// when it is instantiated for a JSON type.
template <class T>
struct json_named_by {
  using type = nlohmann::json;
};
/// `nlohmann::json`, as a type that depends on T (see `json_named_by`).
template <class T>
using json_t = typename json_named_by<T>::type;

/// True when `<nlohmann/json.hpp>` was included before the first use for T, so that JSON
/// conversions of T can be looked for (a file that included only `json_fwd.hpp` has none).
template <class T, class = void>
struct json_complete : std::false_type {};
template <class T>
struct json_complete<T, std::void_t<decltype(sizeof(json_t<T>))>> : std::true_type {};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
