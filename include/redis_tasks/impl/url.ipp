// The bodies of url.hpp (see ../url.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <system_error>

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL std::string percent_decode(std::string_view s, std::string_view what) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        throw config_error("redis URL: bad %-escape in the " + std::string(what));
      }
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

REDIS_TASKS_DECL nlohmann::json query_value(const std::string& v) {
  if (v == "true" || v == "True" || v == "yes") return true;
  if (v == "false" || v == "False" || v == "no") return false;
  if (v == "none" || v == "None" || v == "null") return nullptr;
  if (!v.empty()) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() + v.size()) {
      long long i = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
      if (ec == std::errc() && ptr == v.data() + v.size()) return i;
      return d;
    }
  }
  return v;
}

REDIS_TASKS_DECL std::shared_ptr<const SecretProvider> url_secrets(
    const std::string& name, const std::string& password,
    const std::shared_ptr<const SecretProvider>& base) {
  struct registry {
    std::mutex mutex;
    std::vector<std::weak_ptr<const MapSecretProvider>> providers;
    std::map<std::pair<const SecretProvider*, const SecretProvider*>,
             std::weak_ptr<const SecretProvider>>
        chains;
  };
  static registry r;
  // Providers locked to compare them are released after the mutex (declared first), so that
  // no provider is destroyed while it is held.
  std::vector<std::shared_ptr<const SecretProvider>> looked_at;
  std::shared_ptr<const SecretProvider> from_url;
  std::lock_guard<std::mutex> lock(r.mutex);
  auto& ps = r.providers;
  ps.erase(std::remove_if(ps.begin(), ps.end(), [](const auto& w) { return w.expired(); }),
           ps.end());
  for (const auto& w : ps) {
    auto p = w.lock();
    if (!p) continue;
    looked_at.push_back(p);
    // Each interned provider holds exactly one secret, so one lookup compares both parts.
    if (p->get(name) == password) {
      from_url = std::move(p);
      break;
    }
  }
  if (!from_url) {
    auto created =
        std::make_shared<MapSecretProvider>(std::map<std::string, std::string>{{name, password}});
    ps.push_back(created);
    from_url = std::move(created);
  }
  if (!base) return from_url;

  // A chain holds both of its providers, so while its entry is alive neither address can be
  // reused by another object: the pair of addresses names it exactly.
  for (auto it = r.chains.begin(); it != r.chains.end();) {
    it = it->second.expired() ? r.chains.erase(it) : std::next(it);
  }
  auto& slot = r.chains[{from_url.get(), base.get()}];
  if (auto existing = slot.lock()) return existing;
  std::shared_ptr<const SecretProvider> chain = std::make_shared<ChainSecretProvider>(
      std::vector<std::shared_ptr<const SecretProvider>>{from_url, base});
  slot = chain;
  return chain;
}

REDIS_TASKS_DECL int parse_int(std::string_view s, std::string_view what) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    throw config_error("redis URL: the " + std::string(what) + " is not a number");
  }
  return v;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

REDIS_TASKS_DECL redis_url parse_redis_url(std::string_view url, connection_params base) {
  redis_url out;
  out.params = std::move(base);
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    throw config_error("redis URL must start with redis://, rediss:// or unix://");
  }
  std::string scheme(url.substr(0, scheme_end));
  std::string_view rest = url.substr(scheme_end + 3);
  bool sentinel = false;
  bool cluster = false;
  if (auto plus = scheme.find('+'); plus != std::string::npos) {
    const std::string topology = scheme.substr(plus + 1);
    scheme = scheme.substr(0, plus);
    sentinel = topology == "sentinel";
    cluster = topology == "cluster";
    if ((!sentinel && !cluster) || scheme == "unix") {
      throw config_error("redis URL scheme '" + scheme + "+" + topology +
                         "' is not one of redis, rediss, unix, redis+sentinel, rediss+sentinel, "
                         "redis+cluster, rediss+cluster");
    }
  }
  if (scheme == "rediss") {
    out.params.tls.enabled = true;
  } else if (scheme != "redis" && scheme != "unix") {
    throw config_error("redis URL scheme '" + scheme +
                       "' is not one of redis, rediss, unix, "
                       "redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster");
  }

  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);

  // Credentials: everything before the last '@' of the authority.
  const auto authority_end = rest.find('/');
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = cred.find(':');
    out.params.username = detail::percent_decode(cred.substr(0, colon), "user name");
    if (colon != std::string_view::npos) {
      out.password = detail::percent_decode(cred.substr(colon + 1), "password");
    }
  }

  if (scheme == "unix") {
    if (!authority.empty()) {
      throw config_error("redis URL: a unix:// URL has no host; write unix:///path/to/socket");
    }
    out.params.unix_socket = detail::percent_decode(path, "socket path");
    if (out.params.unix_socket.empty())
      throw config_error("redis URL: unix:// needs a socket path");
  } else {
    // One host:port, or (cluster, sentinel) a comma-separated list of them.
    std::vector<std::pair<std::string, int>> hosts;
    std::string_view list = authority;
    while (true) {
      const auto comma = list.find(',');
      std::string_view hostport = list.substr(0, comma);
      std::pair<std::string, int> hp{"localhost", sentinel ? 26379 : 6379};
      std::string_view port;
      if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos)
          throw config_error("redis URL: unclosed [ in the host");
        hp.first = std::string(hostport.substr(1, close - 1));
        if (close + 1 < hostport.size()) {
          if (hostport[close + 1] != ':') throw config_error("redis URL: junk after ]");
          port = hostport.substr(close + 2);
        }
      } else {
        const auto colon = hostport.rfind(':');
        hp.first = detail::percent_decode(hostport.substr(0, colon), "host");
        if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
      }
      if (hp.first.empty()) hp.first = "localhost";
      if (!port.empty()) hp.second = detail::parse_int(port, "port");
      hosts.push_back(std::move(hp));
      if (comma == std::string_view::npos) break;
      list = list.substr(comma + 1);
    }
    if (hosts.size() > 1 && !sentinel && !cluster) {
      throw config_error("redis URL: several hosts need redis+cluster:// or redis+sentinel://");
    }
    auto address = [](const std::pair<std::string, int>& hp) {
      const bool v6 = hp.first.find(':') != std::string::npos;
      return (v6 ? "[" + hp.first + "]" : hp.first) + ":" + std::to_string(hp.second);
    };
    if (sentinel) {
      for (const auto& hp : hosts)
        out.params.sentinel.sentinels.push_back(address(hp));
      // Path: /master_name[/db]
      std::string_view p = path.empty() ? path : path.substr(1);
      const auto slash = p.find('/');
      out.params.sentinel.master_name = detail::percent_decode(p.substr(0, slash), "master name");
      if (out.params.sentinel.master_name.empty()) {
        throw config_error(
            "redis URL: redis+sentinel:// needs the master name as its path "
            "(redis+sentinel://host:26379/mymaster)");
      }
      if (slash != std::string_view::npos && slash + 1 < p.size()) {
        out.db = detail::parse_int(p.substr(slash + 1), "database number in the path");
      }
    } else {
      out.host = hosts.front().first;
      out.port = hosts.front().second;
      if (cluster) {
        out.params.cluster.enabled = true;
        for (std::size_t i = 1; i < hosts.size(); ++i) {
          out.params.cluster.seeds.push_back(address(hosts[i]));
        }
      }
      if (path.size() > 1)
        out.db = detail::parse_int(path.substr(1), "database number in the path");
    }
  }

  nlohmann::json options = nlohmann::json::object();
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const std::string name = detail::percent_decode(pair.substr(0, eq), "option name");
    const std::string value = eq == std::string_view::npos
                                  ? std::string()
                                  : detail::percent_decode(pair.substr(eq + 1), "option value");
    if (name == "db") {
      out.db = detail::parse_int(value, "db option");
    } else if (name == "password") {
      throw config_error(
          "redis URL: give the password before the host (user:password@host), "
          "or better in the secret named by password_secret");
    } else if (name == "ssl_cert_reqs") {
      // Kept as written: query_value would turn `none` (and `null`) into JSON null, and an
      // empty or null ssl_cert_reqs is refused so that it never turns verification off.
      options[name] = value;
    } else {
      options[name] = detail::query_value(value);
    }
  }
  detail::apply_params(out.params, options);
  return out;
}

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
