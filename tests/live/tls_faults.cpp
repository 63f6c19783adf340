// TLS faults: a TLS server that closes the connection in the middle of a large write. The run
// ends with a connection_error (no crash from SIGPIPE, no hang, no false success), and the
// next run of the same task works on a new connection.
#include <chrono>
#include <string>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using redis_tasks::RedisSet;
using test_support::redis_process;
using test_support::run_process;

namespace {

using test_support::certs;

// A TLS-only server with the test certificates (as in tls.cpp), and `extra` options.
std::vector<std::string> tls_server_args(std::vector<std::string> extra) {
  const std::string d = certs();
  std::vector<std::string> args = {
      "--tls-cert-file",    d + "/server.crt", "--tls-key-file",     d + "/server.key",
      "--tls-ca-cert-file", d + "/ca.crt",     "--tls-auth-clients", "no"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// redis-cli over the server's plain unix socket (its TCP port speaks TLS only).
std::string local_cli(const redis_process& server, std::vector<std::string> args) {
  args.insert(args.begin(), {"redis-cli", "-s", server.unix_socket()});
  return run_process(args).out;
}

// The ids of the server's clients named `name` (CLIENT LIST).
std::vector<std::string> client_ids(const redis_process& server, const std::string& name) {
  const std::string list = local_cli(server, {"CLIENT", "LIST"});
  std::vector<std::string> ids;
  for (std::size_t pos = 0; pos < list.size();) {
    const auto nl = list.find('\n', pos);
    const std::string line = list.substr(pos, nl - pos);
    if (line.find(" name=" + name + " ") != std::string::npos && line.rfind("id=", 0) == 0) {
      ids.push_back(line.substr(3, line.find(' ') - 3));
    }
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return ids;
}

}  // namespace

TEST_CASE("a TLS server that hangs up in the middle of a large write") {
  // The server refuses any argument over 1 MiB: it reads the 64 MiB value's length, answers
  // with a protocol error and closes the connection while the client is still writing.
  redis_process server(
      tls_server_args({"--client-query-buffer-limit", "1mb", "--proto-max-bulk-len", "1mb"}), true);
  const std::string name = "tls-mid-write";
  auto c = test_support::config_for<RedisSet<>>(server.port());
  c.host = "localhost";
  c.redis_connection_params.tls.enabled = true;
  c.redis_connection_params.tls.ca_certs = certs() + "/ca.crt";
  c.redis_connection_params.client_name = name;
  c.redis_connection_params.connect_timeout = 2000ms;
  // Far longer than the run may take: a run that waits for it has hung.
  c.redis_connection_params.socket_timeout = 60s;
  c.redis_key = "big";
  c.task.max_retries = 0;
  const RedisSet<> set(c);
  REQUIRE(set.run({.redis_val = "small"}));  // an open connection, idle in the pool
  const auto first = client_ids(server, name);
  REQUIRE(first.size() == 1);

  const std::string big(64u << 20, 'v');
  const auto start = std::chrono::steady_clock::now();
  try {
    set.run({.redis_val = big});
    FAIL("a write the server refused was reported as stored");
  } catch (const redis_tasks::timeout_error& e) {
    FAIL("the run waited for a timeout instead of seeing the connection closed: " << e.what());
  } catch (const redis_tasks::connection_error& e) {
    CHECK_THAT(e.what(), Contains(":" + std::to_string(server.port())));
  }
  CHECK(std::chrono::steady_clock::now() - start < 20s);
  CHECK(local_cli(server, {"GET", "big"}) == "small\n");  // nothing of the large value stored
  CHECK(local_cli(server, {"PING"}) == "PONG\n");

  // The same task carries on, on a new connection.
  CHECK(set.run({.redis_val = "after"}));
  CHECK(local_cli(server, {"GET", "big"}) == "after\n");
  const auto now = client_ids(server, name);
  REQUIRE(now.size() == 1);
  CHECK(now.front() != first.front());
}
