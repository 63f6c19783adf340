// Helpers for tests: where the fixture servers are, private redis-server processes, and
// running redis-cli to check what the library wrote with a client we did not write.
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <redis_tasks/redis_tasks.hpp>

#include "catch.hpp"

namespace Catch {
// Failures show replies as redis-cli would print them.
template <>
struct StringMaker<redis_tasks::reply> {
  static std::string convert(const redis_tasks::reply& r) { return r.to_string(); }
};
}  // namespace Catch

extern char** environ;

namespace test_support {

/// A server started by a CTest fixture (tests/support/redis-fixture).
struct fixture_server {
  int port = 0;
  std::string dir;  ///< its working folder; the unix socket is dir + "/redis.sock"
  std::string unix_socket() const { return dir + "/redis.sock"; }
};

inline std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// The fixture server called `name` ("plain" or "auth").
inline fixture_server fixture(const std::string& name) {
  const char* dir = std::getenv("REDIS_TASKS_FIXTURE_DIR");
  if (dir == nullptr)
    throw std::runtime_error("REDIS_TASKS_FIXTURE_DIR is not set: run the tests with ctest");
  fixture_server s;
  const std::string port = read_line(std::string(dir) + "/" + name + ".port");
  if (port.empty()) throw std::runtime_error("fixture '" + name + "' is not running");
  s.port = std::stoi(port);
  s.dir = read_line(std::string(dir) + "/" + name + ".dir");
  return s;
}

/// The password and ACL user of the "auth" fixture (see tests/CMakeLists.txt).
inline const std::string auth_password = "fixture-pass";
inline const std::string acl_user = "alice";
inline const std::string acl_password = "alice-pass";

/// Polls `pred` until it holds; fails the test, naming `what` (the thing that did not happen),
/// when it still does not hold after `timeout`. Tests wait for the effect they need rather than
/// sleep for a guess at how long it takes: a guess is too short on a loaded machine and too long
/// everywhere else. Call it on the test's own thread (Catch2 assertions are not thread-safe).
template <class Pred>
void wait_until(Pred&& pred, std::chrono::milliseconds timeout, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL("waited " << timeout.count() << " ms for " << what << ", in vain");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// Runs a function when the scope ends, however it ends (a failed REQUIRE included): it lets a
/// test release a thread it started (wake a blocked command, stop a loop) before joining it.
class at_scope_exit {
 public:
  explicit at_scope_exit(std::function<void()> f) : f_(std::move(f)) {}
  at_scope_exit(const at_scope_exit&) = delete;
  at_scope_exit& operator=(const at_scope_exit&) = delete;
  ~at_scope_exit() {
    try {
      f_();
    } catch (...) {  // a destructor must not throw; the test has failed or passed already
    }
  }

 private:
  std::function<void()> f_;
};

/// A unique key prefix per test process, so tests sharing a fixture server never collide.
inline std::string unique_key(const std::string& stem) {
  static const std::string prefix = [] {
    std::random_device rd;
    return "t" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000) + ":";
  }();
  return prefix + stem;
}

/// Result of a finished process.
struct process_result {
  int exit_code = -1;
  std::string out;
};

/// Runs `argv` (searching PATH), feeding `input` to its stdin; returns its exit code and stdout.
inline process_result run_process(const std::vector<std::string>& argv,
                                  const std::string& input = {}) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_addclose(&fa, in_pipe[1]);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    throw std::runtime_error("cannot run " + argv[0]);
  }
  std::thread writer([fd = in_pipe[1], input] {
    std::size_t off = 0;
    while (off < input.size()) {
      const ssize_t w = ::write(fd, input.data() + off, input.size() - off);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    ::close(fd);
  });
  process_result res;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    res.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out_pipe[0]);
  writer.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

/// Runs redis-cli against 127.0.0.1:port with the given arguments (not split, as argv).
inline std::string redis_cli(int port, std::vector<std::string> args,
                             const std::string& input = {}) {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, input).out;
}

/// A redis-server of the test's own, on a free loopback port with a throwaway folder; stopped
/// (and its folder removed) when destroyed. `restart()` brings it back on the same port.
class redis_process {
 public:
  /// Starts redis-server with `extra` options; with `tls_only`, its TCP port speaks TLS only
  /// (`--port 0 --tls-port P`, the TLS files being in `extra`).
  explicit redis_process(std::vector<std::string> extra = {}, bool tls_only = false)
      : extra_(std::move(extra)), tls_only_(tls_only) {
    char tmpl[] = "/tmp/redis_tasks_test.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::random_device rd;
    for (int attempt = 0; attempt < 30; ++attempt) {
      port_ = 20000 + static_cast<int>(rd() % 30000);
      if (port_ == 6379) continue;
      if (start()) return;
    }
    throw std::runtime_error("could not start a private redis-server");
  }
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;
  ~redis_process() {
    stop();
    run_process({"rm", "-rf", dir_});
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string unix_socket() const { return dir_ + "/redis.sock"; }
  /// True while the server process runs.
  bool running() const { return pid_ > 0; }
  /// The server's process id (-1 when it is not running), to stop and continue it.
  pid_t pid() const { return pid_; }

  /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to be gone.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Stops the server politely.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Starts the server again on the same port.
  void restart() {
    stop();
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (start()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("could not restart redis-server on port " + std::to_string(port_));
  }

 private:
  bool start() {
    ::unlink(unix_socket().c_str());
    std::vector<std::string> argv = {"redis-server", "--port",
                                     tls_only_ ? "0" : std::to_string(port_)};
    if (tls_only_) {
      argv.push_back("--tls-port");
      argv.push_back(std::to_string(port_));
    }
    argv.insert(argv.end(), {"--bind", "127.0.0.1", "--dir", dir_, "--save", "", "--appendonly",
                             "no", "--unixsocket", unix_socket(), "--unixsocketperm", "700",
                             "--logfile", dir_ + "/redis.log"});
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // The server logs to its file; its standard streams go nowhere, so a server orphaned by a
    // crashed test never holds the test's output open (which would hang whoever reads it).
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    for (int fd = 0; fd <= 2; ++fd)
      posix_spawn_file_actions_addopen(&quiet, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
    pid_t pid = 0;
    const int spawned = ::posix_spawnp(&pid, "redis-server", &quiet, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (spawned != 0) throw std::runtime_error("cannot run redis-server");
    for (int i = 0; i < 250; ++i) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // exited: a port was taken
      struct stat st {};
      // The unix socket appears before the cluster bus port is bound (which can still fail),
      // so wait for an answer on it: the server answers only once it is fully up.
      if (::stat(unix_socket().c_str(), &st) == 0 &&
          !run_process({"redis-cli", "-s", unix_socket(), "PING"}).out.empty()) {
        if (::waitpid(pid, &status, WNOHANG) == pid) return false;
        pid_ = pid;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return false;
  }

  std::vector<std::string> extra_;
  bool tls_only_ = false;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// Shorthand configs pointing at a server.
template <class Task>
typename Task::config config_for(int port) {
  typename Task::config c;
  c.host = "127.0.0.1";
  c.port = port;
  c.password_secret = std::nullopt;
  return c;
}

/// Stores `v` at `key` on the server at `port` with a one-off RedisSet<T>.
template <class T>
bool put(int port, const std::string& key, const T& v,
         const typename redis_tasks::RedisSet<T>::overrides& o = {}) {
  auto c = config_for<redis_tasks::RedisSet<T>>(port);
  c.redis_key = key;
  c.redis_val = v;
  return redis_tasks::RedisSet<T>(c).run(o);
}

/// Reads `key` as T from the server at `port` with a one-off RedisGet<T>.
template <class T>
std::optional<T> get(int port, const std::string& key) {
  auto c = config_for<redis_tasks::RedisGet<T>>(port);
  c.redis_key = key;
  return redis_tasks::RedisGet<T>(c).run();
}

/// Runs `waiting`, a RedisLock or RedisSemaphore whose `wait` outlasts its `task.timeout` of
/// 500 ms while all is held, five times: each run must end with std::nullopt (not a
/// timeout_error), after its last try 50 ms before the deadline rather than at the start.
template <class Task>
void check_wait_ends_at_deadline(const Task& waiting) {
  for (int i = 0; i < 5; ++i) {
    std::optional<redis_tasks::lease> got;
    const auto start = std::chrono::steady_clock::now();
    REQUIRE_NOTHROW(got = waiting.run());
    CHECK_FALSE(got);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(400));
  }
}

}  // namespace test_support

namespace test_support {

/// A TCP server on a free loopback port whose behaviour the test chooses: `on_connection` gets
/// each accepted socket (and closes it when it returns). Stopped when destroyed.
class fake_server {
 public:
  explicit fake_server(std::function<void(int fd)> on_connection)
      : on_connection_(std::move(on_connection)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      throw std::runtime_error("fake_server: cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) {
          if (stop_) return;
          continue;
        }
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) {
          if (stop_) return;
          continue;
        }
        workers_.emplace_back([this, c] {
          on_connection_(c);
          ::close(c);
        });
      }
    });
  }
  fake_server(const fake_server&) = delete;
  fake_server& operator=(const fake_server&) = delete;
  ~fake_server() {
    stop_ = true;
    thread_.join();
    for (auto& w : workers_)
      w.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  /// True once the test asked the server to stop; connection handlers poll it.
  bool stopping() const { return stop_; }

 private:
  std::function<void(int)> on_connection_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> workers_;
};

/// Reads from `fd` until `needle` has arrived (or the peer closes); returns what was read.
inline std::string read_until(int fd, const std::string& needle) {
  std::string got;
  char buf[4096];
  while (got.find(needle) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

/// A secret provider whose secret the test can change while tasks use it.
class mutable_secret : public redis_tasks::SecretProvider {
 public:
  explicit mutable_secret(std::string v) : value_(std::move(v)) {}
  void set(std::string v) {
    std::lock_guard<std::mutex> lock(m_);
    value_ = std::move(v);
  }
  std::optional<std::string> get(std::string_view) const override {
    std::lock_guard<std::mutex> lock(m_);
    return value_;
  }

 private:
  mutable std::mutex m_;
  std::string value_;
};

/// The CLIENT LIST lines of the clients named `name` on the server at `port`.
inline std::vector<std::string> client_lines(int port, const std::string& name,
                                             const std::vector<std::string>& auth = {}) {
  std::vector<std::string> args = auth;
  args.insert(args.end(), {"CLIENT", "LIST"});
  const std::string list = redis_cli(port, args);
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos < list.size();) {
    const auto nl = list.find('\n', pos);
    std::string line = list.substr(pos, nl - pos);
    if (line.find(" name=" + name + " ") != std::string::npos) lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return lines;
}

/// How many clients named `name` the server at `port` has now (CLIENT LIST).
inline std::size_t clients_named(int port, const std::string& name,
                                 const std::vector<std::string>& auth = {}) {
  return client_lines(port, name, auth).size();
}

/// The ids of the clients named `name` that wait in a blocking command on the server at `port`
/// (flags=b): such a command has reached the server. The same id later shows that it still
/// waits on the same connection, not on one that replaced a timed-out one.
inline std::vector<std::string> blocked_client_ids(int port, const std::string& name) {
  std::vector<std::string> ids;
  for (const auto& line : client_lines(port, name)) {
    const auto at = line.find(" flags=");
    if (at == std::string::npos) continue;
    const auto start = at + 7;
    const std::string flags = line.substr(start, line.find(' ', start) - start);
    if (flags.find('b') == std::string::npos) continue;
    if (line.rfind("id=", 0) == 0) ids.push_back(line.substr(3, line.find(' ') - 3));
  }
  return ids;
}

}  // namespace test_support

namespace test_support {

/// The value of `field` in an INFO-style "field:value" text.
inline std::string info_field(const std::string& info, const std::string& field) {
  const auto pos = info.find(field + ":");
  if (pos == std::string::npos) return {};
  const auto start = pos + field.size() + 1;
  const auto end = info.find_first_of("\r\n", start);
  return info.substr(start, end - start);
}

/// A Redis Cluster of 3 masters and 3 replicas on loopback, made with
/// `redis-cli --cluster create`. Stopped when destroyed.
class test_cluster {
 public:
  test_cluster() {
    for (int i = 0; i < 6; ++i) {
      nodes_.push_back(std::make_unique<redis_process>(std::vector<std::string>{
          "--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--appendonly", "no"}));
    }
    std::vector<std::string> args = {"redis-cli", "--cluster", "create"};
    for (const auto& n : nodes_)
      args.push_back("127.0.0.1:" + std::to_string(n->port()));
    args.insert(args.end(), {"--cluster-replicas", "1", "--cluster-yes"});
    const auto res = run_process(args);
    if (res.exit_code != 0)
      throw std::runtime_error("redis-cli --cluster create failed:\n" + res.out);
    wait_until_ok();
  }

  /// Waits until every live node reports cluster_state:ok and every replica has synced with
  /// its master (a replica that never synced would not take over from a failed master).
  void wait_until_ok(std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      bool ok = true;
      for (const auto& n : nodes_) {
        if (!alive(*n)) continue;
        if (info_field(redis_cli(n->port(), {"CLUSTER", "INFO"}), "cluster_state") != "ok") {
          ok = false;
          break;
        }
        const std::string repl = redis_cli(n->port(), {"INFO", "replication"});
        if (info_field(repl, "role") == "slave" && info_field(repl, "master_link_status") != "up") {
          ok = false;
          break;
        }
      }
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("the test cluster did not reach cluster_state:ok");
  }

  /// Port of the node the test's tasks use as their seed.
  int seed_port() const { return nodes_.front()->port(); }
  /// Every node.
  std::vector<redis_process*> nodes() {
    std::vector<redis_process*> out;
    for (auto& n : nodes_)
      out.push_back(n.get());
    return out;
  }
  /// The node (process) listening on `port`.
  redis_process& node_on(int port) {
    for (auto& n : nodes_) {
      if (n->port() == port) return *n;
    }
    throw std::runtime_error("no node on port " + std::to_string(port));
  }
  /// Port of the master that serves `slot` now (asked of a live node).
  int master_of_slot(int slot) {
    for (auto& n : nodes_) {
      if (!alive(*n)) continue;
      const int port = master_of_slot_seen_by(n->port(), slot);
      if (port != 0) return port;
    }
    throw std::runtime_error("no master found for slot " + std::to_string(slot));
  }
  /// Port of the master that serves `slot` in the view of the node on `node_port` (0: none).
  /// Nodes learn of a change at different times, so a test waits until all of them agree.
  static int master_of_slot_seen_by(int node_port, int slot) {
    const std::string out = redis_cli(node_port, {"CLUSTER", "SLOTS"});
    // Raw output: start, end, then ip, port, id of the master, then replicas.
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < out.size()) {
      const auto nl = out.find('\n', pos);
      lines.push_back(out.substr(pos, nl - pos));
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
    for (std::size_t i = 0; i + 3 < lines.size(); ++i) {
      char* e1 = nullptr;
      char* e2 = nullptr;
      const long lo = std::strtol(lines[i].c_str(), &e1, 10);
      const long hi = std::strtol(lines[i + 1].c_str(), &e2, 10);
      if (*e1 != '\0' || *e2 != '\0' || lines[i].empty() || lines[i + 1].empty()) continue;
      if (lines[i + 2] != "127.0.0.1") continue;
      if (slot >= lo && slot <= hi) return std::atoi(lines[i + 3].c_str());
    }
    return 0;
  }
  /// The cluster node id of the node on `port`.
  std::string node_id(int port) {
    std::string id = redis_cli(port, {"CLUSTER", "MYID"});
    while (!id.empty() && (id.back() == '\n' || id.back() == '\r'))
      id.pop_back();
    return id;
  }
  /// Ports of the masters.
  std::vector<int> master_ports() {
    std::vector<int> out;
    for (auto& n : nodes_) {
      if (alive(*n) &&
          info_field(redis_cli(n->port(), {"INFO", "replication"}), "role") == "master") {
        out.push_back(n->port());
      }
    }
    return out;
  }

 private:
  static bool alive(redis_process& n) { return n.running(); }
  std::vector<std::unique_ptr<redis_process>> nodes_;
};

/// A sentinel on a free loopback port watching `master_port` as "mymaster".
class sentinel_process {
 public:
  explicit sentinel_process(int master_port, int quorum = 2) {
    char tmpl[] = "/tmp/redis_tasks_sentinel.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::random_device rd;
    for (int attempt = 0; attempt < 30; ++attempt) {
      port_ = 20000 + static_cast<int>(rd() % 30000);
      if (port_ == 6379) continue;
      {
        std::ofstream conf(dir_ + "/sentinel.conf");
        conf << "port " << port_ << "\nbind 127.0.0.1\ndir " << dir_ << "\nlogfile " << dir_
             << "/sentinel.log\nsentinel monitor mymaster 127.0.0.1 " << master_port << " "
             << quorum << "\nsentinel down-after-milliseconds mymaster 1000\n"
             << "sentinel failover-timeout mymaster 4000\nsentinel parallel-syncs mymaster 1\n";
      }
      std::vector<std::string> argv = {"redis-server", dir_ + "/sentinel.conf", "--sentinel"};
      std::vector<char*> args;
      for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      if (::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, args.data(), environ) != 0) {
        throw std::runtime_error("cannot run redis-server --sentinel");
      }
      // Answered by this sentinel, not by another test's server that holds the port (then
      // ours exits, having failed to bind, and another port is tried).
      const std::string ours = "process_id:" + std::to_string(pid_);
      for (int i = 0; i < 100; ++i) {
        if (redis_cli(port_, {"INFO", "server"}).find(ours) != std::string::npos) return;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) break;  // port taken: try another
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    throw std::runtime_error("could not start a sentinel");
  }
  sentinel_process(const sentinel_process&) = delete;
  sentinel_process& operator=(const sentinel_process&) = delete;
  ~sentinel_process() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    run_process({"rm", "-rf", dir_});
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A port nothing listens on (privileged and unused): connecting there fails at once, never
/// hangs, so a task that throws config_error with it proves its check came before the network.
constexpr int closed_port = 1;

/// Positive infinity, for the tests of doubles.
constexpr double inf = std::numeric_limits<double>::infinity();

/// Whether two floating-point values have the same bits (NaN payloads, the sign of zero).
template <class F>
bool same_bits(F a, F b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

/// The 256 byte values in order, as one string.
inline std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i)
    s.push_back(static_cast<char>(i));
  return s;
}

/// `line` with every "{k}" replaced by `key`.
inline std::string with_key(std::string line, const std::string& key) {
  for (auto at = line.find("{k}"); at != std::string::npos; at = line.find("{k}", at)) {
    line.replace(at, 3, key);
    at += key.size();
  }
  return line;
}

/// The folder of the fixture's TLS certificates (tests/support/make-test-certs).
inline std::string certs() {
  const char* dir = std::getenv("REDIS_TASKS_FIXTURE_DIR");
  REQUIRE(dir != nullptr);
  return std::string(dir) + "/certs";
}

}  // namespace test_support
