// Where passwords come from: the provider interface every task's `secrets` holds, and the
// providers that need nothing more than the standard strings and maps. A secret is looked up by
// name each time a connection is opened, so a rotated password is picked up without restarting
// anything. `FileSecretProvider` is in secrets.hpp.
#pragma once

#include "version.hpp"

#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Looks up a secret (such as a Redis password) by name; `std::nullopt` when it has none.
/// Implementations must be safe to call from several threads at once.
struct SecretProvider {
  virtual ~SecretProvider() = default;
  /// The secret called `name`, or `std::nullopt` if this provider does not know it.
  virtual std::optional<std::string> get(std::string_view name) const = 0;
};

/// Reads secrets from environment variables of the same name (the default provider).
class EnvSecretProvider : public SecretProvider {
 public:
  EnvSecretProvider() = default;
  /// The value of environment variable `name`, if set.
  REDIS_TASKS_DECL std::optional<std::string> get(std::string_view name) const override;
};

/// Holds secrets in memory, for tests and for apps that fetch them from a vault themselves.
class MapSecretProvider : public SecretProvider {
 public:
  /// Serves exactly the given name → secret pairs.
  explicit MapSecretProvider(std::map<std::string, std::string> secrets)
      : secrets_(std::move(secrets)) {}
  /// Serves exactly the given pairs: `MapSecretProvider({{"REDIS_PASSWORD", "…"}})`.
  MapSecretProvider(std::initializer_list<std::pair<const std::string, std::string>> secrets)
      : secrets_(secrets) {}
  /// The stored secret called `name`, if any.
  REDIS_TASKS_DECL std::optional<std::string> get(std::string_view name) const override;

 private:
  std::map<std::string, std::string> secrets_;
};

/// Asks several providers in order and returns the first answer.
class ChainSecretProvider : public SecretProvider {
 public:
  /// Providers are asked in this order; null entries are skipped.
  explicit ChainSecretProvider(std::vector<std::shared_ptr<const SecretProvider>> providers)
      : providers_(std::move(providers)) {}
  /// The first provider's answer for `name`, if any provider has one.
  REDIS_TASKS_DECL std::optional<std::string> get(std::string_view name) const override;

 private:
  std::vector<std::shared_ptr<const SecretProvider>> providers_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/secret_provider.ipp"
#endif
