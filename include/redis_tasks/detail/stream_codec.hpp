// A value as the fields of a stream entry, and back: a map's entries are the fields; any other
// value is one field `value` holding the text RedisSet would store (JSON for JSON types).
#pragma once

#include "../version.hpp"

#include <deque>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../reply.hpp"
#include "codec.hpp"
#include "store.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

/// True when T can be a stream entry: a map (its fields), or a value stored as one string.
template <class T>
constexpr bool stream_storable() {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::user) {
    return stream_storable<typename value_traits<T>::storage_type>();
  } else {
    return cat == category::hash || cat == category::string || cat == category::number ||
           cat == category::bytes || cat == category::json;
  }
}

/// The field/value texts of `v` as an entry, appended to `out` (views into `v`, or into
/// `owned` for formatted numbers and converted values, which must outlive their use; a deque,
/// so that what it holds never moves).
template <class T>
void entry_fields(const T& v, std::vector<std::string_view>& out, std::deque<std::string>& owned,
                  const std::string& label) {
  constexpr category cat = category_of<T>();
  if constexpr (cat == category::user || cat == category::json) {
    // Converted first (value_traits storage, JSON text), kept alive in `owned`.
    auto stored = converted(v, label);
    if constexpr (category_of<decltype(stored)>() == category::hash) {
      number_buffer buf;
      for (const auto& [field, value] : stored) {
        out.emplace_back(owned.emplace_back(field));
        out.emplace_back(owned.emplace_back(element_text(value, buf)));
      }
    } else {
      number_buffer buf;
      out.emplace_back("value");
      out.emplace_back(owned.emplace_back(element_text(stored, buf)));
    }
  } else if constexpr (cat == category::hash) {
    number_buffer buf;
    for (const auto& [field, value] : v) {
      out.emplace_back(field);
      if constexpr (is_string_like_v<std::decay_t<decltype(value)>>) {
        out.emplace_back(value);
      } else {
        out.emplace_back(owned.emplace_back(element_text(value, buf)));
      }
    }
  } else {
    number_buffer buf;
    const std::string_view text = element_text(v, buf);
    out.emplace_back("value");
    if constexpr (is_string_like_v<T> || is_bytes_v<T>) {
      out.emplace_back(text);
    } else {
      out.emplace_back(owned.emplace_back(text));
    }
  }
}

/// An entry's fields (a flat array of field, value, …) as T. What does not make a T is a
/// `type_error` saying why.
template <class T>
T entry_value(reply& fields, std::string_view stream) {
  constexpr category cat = category_of<T>();
  if (fields.type() != reply_type::array) {
    throw type_error("an entry of " + key_subject(stream) + " has no fields (" +
                     to_string(fields.type()) + ")");
  }
  if constexpr (cat == category::user) {
    using S = typename value_traits<T>::storage_type;
    S s = entry_value<S>(fields, stream);
    try {
      return value_traits<T>::from_storage(std::move(s));
    } catch (const redis_tasks::error&) {
      throw;
    } catch (const std::exception& e) {
      throw type_error("an entry of " + key_subject(stream) +
                       " does not make the type: " + e.what());
    }
  } else if constexpr (cat == category::hash) {
    return decode_collection<T>(fields, stream);
  } else {
    auto& el = fields.elements();
    for (std::size_t i = 0; i + 1 < el.size(); i += 2) {
      if (el[i].type() == reply_type::string && el[i].str() == "value") {
        return decode_string<T>(take_text(el[i + 1], stream), stream);
      }
    }
    throw type_error("an entry of " + key_subject(stream) +
                     " has no field `value` (its fields are another producer's)");
  }
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
