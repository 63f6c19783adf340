# Finds what redis_tasks needs and provides the target `redis_tasks::hiredis`. Used by the build
# and by the installed package config, which both set `_redis_tasks_tls` first. Targets found
# here are made GLOBAL, so a project that pulls redis_tasks in with add_subdirectory/FetchContent
# sees them too.
include(CMakeFindDependencyMacro)

macro(_redis_tasks_make_global target)
  get_target_property(_rt_is_global ${target} IMPORTED_GLOBAL)
  if(NOT _rt_is_global)
    set_target_properties(${target} PROPERTIES IMPORTED_GLOBAL TRUE)
  endif()
endmacro()

if(NOT TARGET Threads::Threads)
  find_dependency(Threads)
  _redis_tasks_make_global(Threads::Threads)
endif()

if(NOT TARGET nlohmann_json::nlohmann_json)
  find_dependency(nlohmann_json 3.2)
  _redis_tasks_make_global(nlohmann_json::nlohmann_json)
endif()

# Only for a build with TLS (REDIS_TASKS_TLS, which the package config records).
if(_redis_tasks_tls AND NOT TARGET OpenSSL::SSL)
  find_dependency(OpenSSL 1.1.1)
  _redis_tasks_make_global(OpenSSL::SSL)
  _redis_tasks_make_global(OpenSSL::Crypto)
endif()

# <hiredis/hiredis.h> must name the headers of the hiredis that is linked. hiredis 1.0.x's CMake
# target points at its install prefix, and the pkg-config files of 0.14 and 1.0 at include/hiredis
# itself: with such a hiredis outside the compiler's default paths, <hiredis/hiredis.h> would be
# found elsewhere (Debian's /usr/include/hiredis is 0.14) and two ABIs would meet. This returns
# the folders that hold hiredis/hiredis.h, found from the include folders the package gives.
function(_redis_tasks_hiredis_include_roots out)
  set(roots "")
  foreach(dir IN LISTS ARGN)
    if(dir STREQUAL "" OR dir MATCHES "NOTFOUND$" OR dir MATCHES "\\$<")
      continue()
    endif()
    foreach(candidate "${dir}" "${dir}/include" "${dir}/..")
      if(EXISTS "${candidate}/hiredis/hiredis.h")
        get_filename_component(candidate "${candidate}" ABSOLUTE)
        list(APPEND roots "${candidate}")
        break()
      endif()
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES roots)
  set(${out} "${roots}" PARENT_SCOPE)
endfunction()

if(NOT TARGET redis_tasks::hiredis)
  # hiredis 1.x installs a CMake package with the hiredis::hiredis target; Debian 12's 0.14
  # only has pkg-config (its HiredisConfig.cmake sets variables and defines no target).
  if(NOT TARGET hiredis::hiredis)
    find_package(hiredis CONFIG QUIET)
    if(TARGET hiredis::hiredis)
      _redis_tasks_make_global(hiredis::hiredis)
    endif()
  endif()
  if(TARGET hiredis::hiredis)
    set(_rt_hiredis_target hiredis::hiredis)
    get_target_property(_rt_hiredis_dirs hiredis::hiredis INTERFACE_INCLUDE_DIRECTORIES)
    list(APPEND _rt_hiredis_dirs ${hiredis_INCLUDE_DIRS})
  else()
    find_package(PkgConfig REQUIRED)
    # The imported target turns pkg-config's -I/usr/include/hiredis into a SYSTEM include, so
    # <hiredis/hiredis.h> and its sds.h stay quiet under -Wpedantic -Werror.
    pkg_check_modules(REDIS_TASKS_HIREDIS REQUIRED IMPORTED_TARGET GLOBAL hiredis)
    set(_rt_hiredis_target PkgConfig::REDIS_TASKS_HIREDIS)
    set(_rt_hiredis_dirs ${REDIS_TASKS_HIREDIS_INCLUDE_DIRS} ${REDIS_TASKS_HIREDIS_INCLUDEDIR})
  endif()
  _redis_tasks_hiredis_include_roots(_rt_hiredis_roots ${_rt_hiredis_dirs})
  add_library(redis_tasks::hiredis INTERFACE IMPORTED GLOBAL)
  set_property(TARGET redis_tasks::hiredis PROPERTY INTERFACE_LINK_LIBRARIES ${_rt_hiredis_target})
  if(_rt_hiredis_roots)
    # An imported target's include folders are SYSTEM ones, as above.
    set_property(TARGET redis_tasks::hiredis PROPERTY INTERFACE_INCLUDE_DIRECTORIES
                 ${_rt_hiredis_roots})
  endif()
endif()
