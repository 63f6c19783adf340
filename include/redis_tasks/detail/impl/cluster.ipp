// The bodies of cluster.hpp (see ../cluster.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../cluster.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <system_error>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL cluster_router::cluster_router(endpoint_settings base) : base_(std::move(base)) {
  seeds_.push_back(base_.host + ":" + std::to_string(base_.port));
  for (const auto& s : base_.params.cluster.seeds) {
    split_host_port(s, "cluster seed");
    seeds_.push_back(s);
  }
  if (base_.db != 0) {
    throw config_error("Redis Cluster has only database 0; got db " + std::to_string(base_.db));
  }
}

REDIS_TASKS_DECL auto cluster_router::pool_for_slot(int slot, clock::time_point deadline)
    -> std::shared_ptr<connection_pool> {
  ensure_map(deadline);
  std::string node;
  {
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    const auto idx = slots_[static_cast<std::size_t>(slot)];
    if (idx != no_node) node = nodes_[idx];
  }
  if (node.empty()) {
    mark_stale();
    throw connection_error("no node of the cluster at " + seeds_.front() + " serves slot " +
                           std::to_string(slot) + " (cluster not fully configured?)");
  }
  return pool_for_node(node);
}

REDIS_TASKS_DECL auto cluster_router::pool_for_node(const std::string& node)
    -> std::shared_ptr<connection_pool> {
  {
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    auto it = pools_.find(node);
    if (it != pools_.end()) return it->second;
  }
  auto [host, port] = split_host_port(node, "cluster node");
  endpoint_settings s = base_;
  s.host = host;
  s.port = port;
  auto pool = pool_for(s);
  const std::lock_guard<std::mutex> lock(lock_.mutex());
  return pools_.emplace(node, std::move(pool)).first->second;
}

REDIS_TASKS_DECL auto cluster_router::any_pool(clock::time_point deadline)
    -> std::shared_ptr<connection_pool> {
  ensure_map(deadline);
  std::string node;
  {
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    if (!nodes_.empty()) node = nodes_[next_any_.fetch_add(1) % nodes_.size()];
  }
  return pool_for_node(node.empty() ? seeds_.front() : node);
}

REDIS_TASKS_DECL void cluster_router::moved(int slot, const std::string& node) {
  const std::lock_guard<std::mutex> lock(lock_.mutex());
  std::size_t idx = 0;
  while (idx < nodes_.size() && nodes_[idx] != node)
    ++idx;
  if (idx == nodes_.size()) nodes_.push_back(node);
  slots_[static_cast<std::size_t>(slot)] = static_cast<std::uint16_t>(idx);
  stale_ = true;
}

REDIS_TASKS_DECL void cluster_router::mark_stale() {
  const std::lock_guard<std::mutex> lock(lock_.mutex());
  stale_ = true;
}

REDIS_TASKS_DECL int cluster_router::slot_of_command(const std::vector<std::string>& args,
                                                     clock::time_point deadline) {
  if (args.empty()) return -1;
  std::string name = args[0];
  for (auto& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const auto slot = script_slot(name, args)) return *slot;
  std::optional<key_spec> spec;
  {
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    auto it = specs_.find(name);
    if (it != specs_.end()) spec = it->second;
  }
  if (!spec) {
    spec = describe(name, deadline);
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    specs_[name] = *spec;
  }
  if (spec->ask_server) return slot_from_getkeys(args, deadline);
  if (spec->first <= 0) return -1;
  const auto argc = static_cast<long long>(args.size());
  if (spec->first >= argc) return -1;
  return key_slot(args[static_cast<std::size_t>(spec->first)]);
}

REDIS_TASKS_DECL std::optional<int> cluster_router::script_slot(
    const std::string& name, const std::vector<std::string>& args) {
  if (name != "eval" && name != "evalsha" && name != "eval_ro" && name != "evalsha_ro" &&
      name != "fcall" && name != "fcall_ro") {
    return std::nullopt;
  }
  if (args.size() < 3) return -1;
  long long numkeys = 0;
  const std::string& n = args[2];
  auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), numkeys);
  if (ec != std::errc() || ptr != n.data() + n.size() || numkeys < 0) return -1;
  if (numkeys == 0 || args.size() < 4) return -1;
  return key_slot(args[3]);
}

REDIS_TASKS_DECL void cluster_router::ensure_map(clock::time_point deadline) {
  {
    const std::lock_guard<std::mutex> lock(lock_.mutex());
    if (!stale_) return;
  }
  // One reload at a time; the others wait for it, each no longer than its own deadline, and
  // share its outcome.
  refresh_.run(deadline, "the slot map of cluster " + name(), [&] {
    {
      const std::lock_guard<std::mutex> lock(lock_.mutex());
      if (!stale_) return;
    }
    refresh(deadline);
  });
}

REDIS_TASKS_DECL void cluster_router::refresh(clock::time_point deadline) {
  reply r = on_any_node(deadline, [](connection& c) { return c.call({"CLUSTER", "SLOTS"}); });
  if (r.is_error()) {
    throw reply_error(
        r.str(), "CLUSTER SLOTS on " + seeds_.front() + " (is cluster mode on for this server?)");
  }
  std::vector<std::uint16_t> slots(cluster_slots, no_node);
  std::vector<std::string> nodes;
  for (const auto& range : r.elements()) {
    const auto& e = range.elements();
    if (e.size() < 3 || e[2].elements().size() < 2) continue;
    const auto& master = e[2].elements();
    std::string host = master[0].str();
    if (host.empty() || host == "?") host = base_.host;
    const std::string node = host + ":" + std::to_string(master[1].integer());
    std::size_t idx = 0;
    while (idx < nodes.size() && nodes[idx] != node)
      ++idx;
    if (idx == nodes.size()) nodes.push_back(node);
    const long long lo = e[0].integer();
    const long long hi = e[1].integer();
    for (long long s = lo; s <= hi && s < cluster_slots; ++s) {
      if (s >= 0) slots[static_cast<std::size_t>(s)] = static_cast<std::uint16_t>(idx);
    }
  }
  std::vector<std::shared_ptr<connection_pool>> gone;  // let go of after the lock
  const std::lock_guard<std::mutex> lock(lock_.mutex());
  slots_ = std::move(slots);
  nodes_ = std::move(nodes);
  stale_ = false;
  // Pools of nodes that left the map go (runs still using one keep it alive until done), so
  // a cluster whose nodes come and go does not keep every pool it ever had.
  for (auto it = pools_.begin(); it != pools_.end();) {
    const bool known = std::find(nodes_.begin(), nodes_.end(), it->first) != nodes_.end() ||
                       std::find(seeds_.begin(), seeds_.end(), it->first) != seeds_.end();
    if (known) {
      ++it;
    } else {
      gone.push_back(std::move(it->second));
      it = pools_.erase(it);
    }
  }
}

REDIS_TASKS_DECL auto cluster_router::describe(const std::string& name, clock::time_point deadline)
    -> key_spec {
  reply r = on_any_node(deadline, [&](connection& c) { return c.call({"COMMAND", "INFO", name}); });
  key_spec spec;
  if (r.is_error() || r.elements().empty() || r.elements()[0].is_nil()) {
    spec.ask_server = true;  // unknown here: let COMMAND GETKEYS decide (or fail clearly)
    return spec;
  }
  const auto& info = r.elements()[0].elements();
  if (info.size() < 6) return spec;
  spec.first = info[3].integer();
  for (const auto& flag : info[2].elements()) {
    if (flag.str() == "movablekeys") spec.ask_server = true;
  }
  // Container commands (OBJECT, XINFO, MEMORY …) keep their keys in the subcommands.
  if (info.size() > 9 && !info[9].elements().empty()) spec.ask_server = true;
  return spec;
}

REDIS_TASKS_DECL int cluster_router::slot_from_getkeys(const std::vector<std::string>& args,
                                                       clock::time_point deadline) {
  reply r = on_any_node(deadline, [&](connection& c) {
    std::vector<std::string_view> argv{"COMMAND", "GETKEYS"};
    argv.insert(argv.end(), args.begin(), args.end());
    c.begin_request();
    c.append(argv.data(), argv.size());
    c.flush();
    return c.read();
  });
  if (r.is_error() || r.elements().empty()) return -1;  // no keys: any node will do
  return key_slot(r.elements()[0].str());
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
