// The bodies of secret_provider.hpp (see ../secret_provider.hpp): included by that header, or
// compiled once by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../secret_provider.hpp"

#include <cstdlib>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL std::optional<std::string> EnvSecretProvider::get(std::string_view name) const {
  // getenv races only with setenv/putenv, which a program must not run while tasks connect.
  const char* v = std::getenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

REDIS_TASKS_DECL std::optional<std::string> MapSecretProvider::get(std::string_view name) const {
  auto it = secrets_.find(std::string(name));
  if (it == secrets_.end()) return std::nullopt;
  return it->second;
}

REDIS_TASKS_DECL std::optional<std::string> ChainSecretProvider::get(std::string_view name) const {
  for (const auto& p : providers_) {
    if (!p) continue;
    if (auto v = p->get(name)) return v;
  }
  return std::nullopt;
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
