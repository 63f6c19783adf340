// Where passwords come from. A secret is looked up by name each time a connection is opened,
// so a rotated password is picked up without restarting anything. This header adds
// `FileSecretProvider` (and <filesystem>) to the providers of secret_provider.hpp.
#pragma once

#include "version.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "secret_provider.hpp"  // IWYU pragma: export

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Reads one file per secret from a folder, as Docker and Kubernetes mount them. The file is
/// read on every lookup (so rotation works) and one trailing newline (`\n` or `\r\n`) is dropped.
class FileSecretProvider : public SecretProvider {
 public:
  /// Secrets are the files directly inside `folder`.
  explicit FileSecretProvider(std::filesystem::path folder) : folder_(std::move(folder)) {}
  /// The content of `folder/name`, or `std::nullopt` if there is no such regular file.
  /// Names that would leave the folder (containing `/` or equal to `.`/`..`) find nothing.
  REDIS_TASKS_DECL std::optional<std::string> get(std::string_view name) const override;

 private:
  std::filesystem::path folder_;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

#ifndef REDIS_TASKS_SEPARATE_COMPILATION
#include "impl/secrets.ipp"
#endif
