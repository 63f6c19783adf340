// redis_tasks version: the single source of truth, parsed by CMakeLists.txt.
#pragma once

#define REDIS_TASKS_VERSION_MAJOR 0
#define REDIS_TASKS_VERSION_MINOR 2
#define REDIS_TASKS_VERSION_PATCH 0

/// 1 (the default) builds TLS in, on OpenSSL: link `-lssl -lcrypto`. 0 leaves it out: no
/// OpenSSL header is included and nothing needs OpenSSL, and a task asking for TLS is a
/// `config_error`. The CMake target and `redis_tasks.pc` define it as the library was configured
/// (`-DREDIS_TASKS_TLS=OFF`).
#ifndef REDIS_TASKS_TLS
#define REDIS_TASKS_TLS 1
#endif

/// Compiled mode: define REDIS_TASKS_SEPARATE_COMPILATION for every translation unit of the
/// program and include <redis_tasks/src.hpp> in exactly one; the headers then only declare the
/// library's non-template functions, and that one file compiles their bodies. Every declaration
/// and body says REDIS_TASKS_DECL: `inline` header-only, nothing in compiled mode. In compiled
/// mode you may define it yourself first, say as a visibility attribute (header-only, your
/// definition must keep `inline`).
#ifndef REDIS_TASKS_DECL
#ifdef REDIS_TASKS_SEPARATE_COMPILATION
#define REDIS_TASKS_DECL
#else
#define REDIS_TASKS_DECL inline
#endif
#endif

/// The inline namespace every name of the library lives in, `redis_tasks::v0_2`: code built
/// against two versions of these headers in one program links two sets of names instead of
/// silently mixing them (a one-definition-rule break). Users keep writing `redis_tasks::`.
/// It changes with the minor version while the major version is 0, and is `v0_2_notls`
/// without TLS and `v0_2_sc` (`v0_2_notls_sc`) in compiled mode, so those builds do not mix
/// either.
#if REDIS_TASKS_TLS && defined(REDIS_TASKS_SEPARATE_COMPILATION)
#define REDIS_TASKS_ABI v0_2_sc
#elif REDIS_TASKS_TLS
#define REDIS_TASKS_ABI v0_2
#elif defined(REDIS_TASKS_SEPARATE_COMPILATION)
#define REDIS_TASKS_ABI v0_2_notls_sc
#else
#define REDIS_TASKS_ABI v0_2_notls
#endif

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// Library version as {major, minor, patch}.
struct version_info {
  int major;  ///< incompatible API changes
  int minor;  ///< added functionality
  int patch;  ///< fixes
};

/// The version of the headers in use.
inline constexpr version_info version{REDIS_TASKS_VERSION_MAJOR, REDIS_TASKS_VERSION_MINOR,
                                      REDIS_TASKS_VERSION_PATCH};

/// True when TLS is built in (`REDIS_TASKS_TLS`): `rediss://` URLs and `tls_params` work.
inline constexpr bool tls_supported = REDIS_TASKS_TLS != 0;

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
