// libFuzzer target: the redis-cli line splitter never crashes, and whatever it accepts
// round-trips: quoting each argument as redis-cli prints it and splitting again gives the same
// arguments back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <redis_tasks/command.hpp>
#include <redis_tasks/reply.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  try {
    args = redis_tasks::split_command_line(line);
  } catch (const redis_tasks::config_error&) {
    return 0;
  }
  std::string quoted;
  for (const auto& a : args) {
    redis_tasks::detail::append_quoted(quoted, a);
    quoted.push_back(' ');
  }
  if (redis_tasks::split_command_line(quoted) != args) std::abort();
  return 0;
}
