// The bodies of run.hpp (see ../run.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../run.hpp"

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string task_label(const task_options& t, const char* kind) {
  return t.name.empty() ? std::string(kind) : std::string(kind) + " '" + t.name + "'";
}

REDIS_TASKS_DECL std::string printable(std::string_view text) {
  std::string s(text.substr(0, 64));
  for (auto& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  if (text.size() > 64) s += "...";
  return s;
}

REDIS_TASKS_DECL std::string task_name(const task_options& t, const char* kind,
                                       std::string_view subject) {
  if (!t.name.empty()) return t.name;
  if (subject.empty()) return kind;
  return std::string(kind) + "(" + printable(subject) + ")";
}

REDIS_TASKS_DECL void check_retry_options(const task_options& t, const std::string& label) {
  if (t.max_retries < 0) throw config_error(label + ": task.max_retries must not be negative");
  if (t.retry_delay.count() < 0)
    throw config_error(label + ": task.retry_delay must not be negative");
}

REDIS_TASKS_DECL const char* error_type_name(const std::exception& e) {
  if (dynamic_cast<const timeout_error*>(&e)) return "timeout_error";
  if (dynamic_cast<const connection_error*>(&e)) return "connection_error";
  if (dynamic_cast<const config_error*>(&e)) return "config_error";
  if (dynamic_cast<const auth_error*>(&e)) return "auth_error";
  if (dynamic_cast<const reply_error*>(&e)) return "reply_error";
  if (dynamic_cast<const type_error*>(&e)) return "type_error";
  if (dynamic_cast<const lease_lost_error*>(&e)) return "lease_lost_error";
  if (dynamic_cast<const error*>(&e)) return "error";
  return "std::exception";
}

REDIS_TASKS_DECL hook_ref hook_for(const task_options& t) {
  hook_ref r;
  if (t.on_run) {
    r.hook = &t.on_run;
  } else {
    r.global = global_hook();
    r.hook = r.global.get();
  }
  return r;
}

REDIS_TASKS_DECL void notify(const run_hook& hook, const run_event& ev) noexcept {
  try {
    hook(ev);
  } catch (...) {  // a broken hook must not break the run
  }
}

REDIS_TASKS_DECL void rethrow_in_context(const connection_error& e, const run_info& info) {
  std::string where(info.task);
  const std::string subject = printable(info.key.empty() ? info.command : info.key);
  if (!subject.empty() && where.find(subject) == std::string::npos) {
    where += info.key.empty() ? " (command " + subject + ")" : " (key " + subject + ")";
  }
  std::string msg = where + ": " + e.what();
  if (dynamic_cast<const timeout_error*>(&e) != nullptr) throw timeout_error(msg);
  throw connection_error(msg);
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
