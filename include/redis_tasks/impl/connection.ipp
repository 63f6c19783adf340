// The bodies of connection.hpp (see ../connection.hpp): included by that header, or compiled once
// by redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../connection.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const char* json_kind(const nlohmann::json& v) {
  return v.type_name();
}

REDIS_TASKS_DECL std::string json_number_text(const nlohmann::json& v) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-infinity" : "infinity";
  }
  return v.dump();
}

REDIS_TASKS_DECL std::optional<std::chrono::milliseconds> milliseconds_from_seconds(double s) {
  if (!(s >= 0.0 && s <= max_json_seconds)) return std::nullopt;  // NaN fails both tests
  long long ms = std::llround(s * 1000.0);
  if (ms == 0 && s > 0.0) ms = 1;
  return std::chrono::milliseconds(ms);
}

REDIS_TASKS_DECL std::optional<long long> whole_number_in(const nlohmann::json& v, long long lo,
                                                          long long hi) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<unsigned long long>();
    if (hi < 0 || u > static_cast<unsigned long long>(hi)) return std::nullopt;
    const auto n = static_cast<long long>(u);
    if (n < lo) return std::nullopt;
    return n;
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto n = v.get<long long>();
  if (n < lo || n > hi) return std::nullopt;
  return n;
}

REDIS_TASKS_DECL void bad_param(std::string_view name, std::string_view want,
                                const nlohmann::json& got) {
  throw config_error("redis_connection_params: `" + std::string(name) + "` must be " +
                     std::string(want) + ", got " +
                     (got.is_number() ? json_number_text(got) : std::string(json_kind(got))));
}

REDIS_TASKS_DECL std::chrono::milliseconds seconds_param(std::string_view name,
                                                         const nlohmann::json& v) {
  if (v.is_null()) return std::chrono::milliseconds(0);
  if (!v.is_number()) bad_param(name, "a number of seconds or null", v);
  if (const auto ms = milliseconds_from_seconds(v.get<double>())) return *ms;
  bad_param(name, "a number of seconds from 0 to 1000000000", v);
}

REDIS_TASKS_DECL std::string string_param(std::string_view name, const nlohmann::json& v) {
  if (v.is_null()) return {};
  if (!v.is_string()) bad_param(name, "a string", v);
  return v.get<std::string>();
}

REDIS_TASKS_DECL bool bool_param(std::string_view name, const nlohmann::json& v) {
  if (!v.is_boolean()) bad_param(name, "true or false", v);
  return v.get<bool>();
}

REDIS_TASKS_DECL long long int_param(std::string_view name, const nlohmann::json& v, long long lo,
                                     long long hi) {
  if (const auto n = whole_number_in(v, lo, hi)) return *n;
  bad_param(name, "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi), v);
}

REDIS_TASKS_DECL std::vector<std::string> host_ports_param(std::string_view name,
                                                           const nlohmann::json& v) {
  if (!v.is_array()) bad_param(name, "an array of \"host:port\" strings", v);
  std::vector<std::string> list;
  for (const auto& e : v) {
    if (!e.is_string()) bad_param(name, "an array of \"host:port\" strings", v);
    list.push_back(e.get<std::string>());
  }
  return list;
}

REDIS_TASKS_DECL const std::vector<param_rule>& param_rules() {
  using P = connection_params&;
  using N = std::string_view;
  using J = const nlohmann::json&;
  static const std::vector<param_rule> rules = {
      {"socket_timeout", [](P p, N n, J v) { p.socket_timeout = seconds_param(n, v); }},
      {"socket_connect_timeout", [](P p, N n, J v) { p.connect_timeout = seconds_param(n, v); }},
      {"socket_keepalive", [](P p, N n, J v) { p.keepalive = bool_param(n, v); }},
      {"username", [](P p, N n, J v) { p.username = string_param(n, v); }},
      {"client_name", [](P p, N n, J v) { p.client_name = string_param(n, v); }},
      {"unix_socket_path", [](P p, N n, J v) { p.unix_socket = string_param(n, v); }},
      {"health_check_interval",
       [](P p, N n, J v) { p.health_check_interval = seconds_param(n, v); }},
      {"max_connections",
       [](P p, N n, J v) { p.pool_size = static_cast<std::size_t>(int_param(n, v, 1, 100000)); }},
      {"pool_wait_timeout", [](P p, N n, J v) { p.pool_wait_timeout = seconds_param(n, v); }},
      {"keepalive_interval",
       [](P p, N n, J v) {
         // Whole seconds, to the nearest; a positive value under 1 s is 1 s (0: the default).
         const long long ms = seconds_param(n, v).count();
         p.keepalive_interval =
             std::chrono::seconds(ms == 0 ? 0 : std::max(1LL, (ms + 500) / 1000));
       }},
      {"shared_pool", [](P p, N n, J v) { p.shared_pool = bool_param(n, v); }},
      {"multiplex", [](P p, N n, J v) { p.multiplex.enabled = bool_param(n, v); }},
      {"multiplex_connections",
       [](P p, N n, J v) {
         p.multiplex.connections = static_cast<std::size_t>(int_param(n, v, 1, 64));
         p.multiplex.enabled = true;
       }},
      {"multiplex_max_in_flight",
       [](P p, N n, J v) {
         p.multiplex.max_in_flight = static_cast<std::size_t>(int_param(n, v, 1, 1000000));
       }},
      {"multiplex_max_bytes_in_flight",
       [](P p, N n, J v) {
         p.multiplex.max_bytes_in_flight =
             static_cast<std::size_t>(int_param(n, v, 1024, 1LL << 40));
       }},
      {"ssl", [](P p, N n, J v) { p.tls.enabled = bool_param(n, v); }},
      {"ssl_ca_certs", [](P p, N n, J v) { p.tls.ca_certs = string_param(n, v); }},
      {"ssl_ca_path", [](P p, N n, J v) { p.tls.ca_path = string_param(n, v); }},
      {"ssl_certfile", [](P p, N n, J v) { p.tls.certfile = string_param(n, v); }},
      {"ssl_keyfile", [](P p, N n, J v) { p.tls.keyfile = string_param(n, v); }},
      {"ssl_cert_reqs",
       [](P p, N n, J v) {
         // Only the word "none" turns verification off: an empty or null value (a template
         // variable left unset, a config key with no value) must not silently drop it, so it
         // is an error like any other unknown value. (redis-py's Python `None` means "none";
         // here it must be written out.)
         if (!v.is_string()) {
           bad_param(
               n, R"("required", "optional" or "none" (write "none" to turn verification off))", v);
         }
         const std::string r = v.get<std::string>();
         if (r == "required") {
           p.tls.cert_reqs = tls_verify::required;
         } else if (r == "optional") {
           p.tls.cert_reqs = tls_verify::optional;
         } else if (r == "none") {
           p.tls.cert_reqs = tls_verify::none;
         } else {
           throw config_error(
               "redis_connection_params: `ssl_cert_reqs` must be \"required\", "
               "\"optional\" or \"none\", got " +
               (r.empty() ? std::string("an empty string") : "\"" + r + "\"") +
               "; only \"none\" turns certificate verification off");
         }
       }},
      {"ssl_check_hostname", [](P p, N n, J v) { p.tls.check_hostname = bool_param(n, v); }},
      {"ssl_server_hostname", [](P p, N n, J v) { p.tls.server_hostname = string_param(n, v); }},
      {"cluster", [](P p, N n, J v) { p.cluster.enabled = bool_param(n, v); }},
      {"cluster_nodes",
       [](P p, N n, J v) {
         p.cluster.seeds = host_ports_param(n, v);
         p.cluster.enabled = true;
       }},
      {"max_redirects",
       [](P p, N n, J v) { p.cluster.max_redirects = static_cast<int>(int_param(n, v, 0, 100)); }},
      {"sentinels", [](P p, N n, J v) { p.sentinel.sentinels = host_ports_param(n, v); }},
      {"sentinel_master", [](P p, N n, J v) { p.sentinel.master_name = string_param(n, v); }},
      {"service_name", [](P p, N n, J v) { p.sentinel.master_name = string_param(n, v); }},
      {"sentinel_password_secret",
       [](P p, N n, J v) {
         const std::string s = string_param(n, v);
         p.sentinel.password_secret = s.empty() ? std::nullopt : std::optional<std::string>(s);
       }},
      {"sentinel_username", [](P p, N n, J v) { p.sentinel.username = string_param(n, v); }},
  };
  return rules;
}

REDIS_TASKS_DECL std::string accepted_param_names() {
  std::string out;
  for (const auto& r : param_rules()) {
    if (!out.empty()) out += ", ";
    out += r.name;
  }
  return out;
}

}  // namespace detail
REDIS_TASKS_DECL connection_params connection_params::from_json(const nlohmann::json& j) {
  connection_params p;
  detail::apply_params(p, j);
  return p;
}

REDIS_TASKS_DECL void detail::apply_params(connection_params& p, const nlohmann::json& j) {
  if (j.is_null()) return;
  if (!j.is_object()) {
    throw config_error(std::string("redis_connection_params must be a JSON object, got ") +
                       j.type_name());
  }
  const auto& rules = param_rules();
  for (const auto& item : j.items()) {
    const std::string& name = item.key();
    const auto rule = std::find_if(rules.begin(), rules.end(),
                                   [&](const param_rule& r) { return name == r.name; });
    if (rule == rules.end()) {
      throw config_error("redis_connection_params: unknown parameter `" + name +
                         "`; accepted: " + accepted_param_names());
    }
    rule->apply(p, name, item.value());
  }
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
