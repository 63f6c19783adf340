// Where passwords come from. A secret is looked up by name each time a connection is opened,
// so a rotated password is picked up without restarting anything.
#pragma once

#include "version.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
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
  std::optional<std::string> get(std::string_view name) const override {
    // getenv races only with setenv/putenv, which a program must not run while tasks connect.
    const char* v = std::getenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }
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
  std::optional<std::string> get(std::string_view name) const override {
    auto it = secrets_.find(std::string(name));
    if (it == secrets_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, std::string> secrets_;
};

/// Reads one file per secret from a folder, as Docker and Kubernetes mount them. The file is
/// read on every lookup (so rotation works) and one trailing newline (`\n` or `\r\n`) is dropped.
class FileSecretProvider : public SecretProvider {
 public:
  /// Secrets are the files directly inside `folder`.
  explicit FileSecretProvider(std::filesystem::path folder) : folder_(std::move(folder)) {}
  /// The content of `folder/name`, or `std::nullopt` if there is no such regular file.
  /// Names that would leave the folder (containing `/` or equal to `.`/`..`) find nothing.
  std::optional<std::string> get(std::string_view name) const override {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
        name.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    const auto path = folder_ / std::string(name);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!content.empty() && content.back() == '\n') {
      content.pop_back();
      if (!content.empty() && content.back() == '\r') content.pop_back();
    }
    return content;
  }

 private:
  std::filesystem::path folder_;
};

/// Asks several providers in order and returns the first answer.
class ChainSecretProvider : public SecretProvider {
 public:
  /// Providers are asked in this order; null entries are skipped.
  explicit ChainSecretProvider(std::vector<std::shared_ptr<const SecretProvider>> providers)
      : providers_(std::move(providers)) {}
  /// The first provider's answer for `name`, if any provider has one.
  std::optional<std::string> get(std::string_view name) const override {
    for (const auto& p : providers_) {
      if (!p) continue;
      if (auto v = p->get(name)) return v;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::shared_ptr<const SecretProvider>> providers_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
