// nlohmann::json as templates name it: through a dependent type, so that a header needs only
// <nlohmann/json_fwd.hpp> and a file that stores no JSON never parses the whole of nlohmann/json.
#pragma once

#include "../version.hpp"

#include <type_traits>

// nlohmann/json installed as one header before 3.11 has no json_fwd.hpp: then the whole of it.
#if __has_include(<nlohmann/json_fwd.hpp>)
#include <nlohmann/json_fwd.hpp>
#else
#include <nlohmann/json.hpp>
#endif

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

template <class T>
struct holds_json;
/// True when one of T's template arguments holds `nlohmann::json` (matched by name only: a
/// container or optional of an incomplete type is not instantiated to look inside).
template <class T>
struct holds_json_inside : std::false_type {};
template <template <class...> class C, class... A>
struct holds_json_inside<C<A...>> : std::disjunction<holds_json<A>...> {};
/// True when T is `nlohmann::json` or a standard container or optional that holds one (the
/// reply types RedisExecute converts to), so that it needs the whole of `<nlohmann/json.hpp>`.
template <class T>
struct holds_json : std::disjunction<std::is_same<std::remove_cv_t<T>, nlohmann::json>,
                                     holds_json_inside<std::remove_cv_t<T>>> {};

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
