// libFuzzer target: any bytes from a server parse into replies or a clean protocol error, and
// every reply converts (to JSON, to text, to each typed result) or fails with a library error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <redis_tasks/redis_tasks.hpp>

namespace {

template <class T>
void convert(const redis_tasks::reply& r) {
  try {
    (void)redis_tasks::from_reply<T>(redis_tasks::reply(r), "reply to FUZZ");
  } catch (const redis_tasks::error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  redis_tasks::detail::reply_parser parser;
  // Feed in two pieces, split where the first byte says, to exercise partial replies.
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  try {
    parser.feed(reinterpret_cast<const char*>(data), cut);
    redis_tasks::reply r;
    for (int round = 0; round < 2; ++round) {
      while (parser.next(r)) {
        const std::string json = r.to_json().dump();  // must be valid JSON text, never throw
        if (json.empty()) std::abort();
        (void)r.to_string();
        convert<long long>(r);
        convert<double>(r);
        convert<bool>(r);
        convert<std::string>(r);
        convert<std::optional<std::string>>(r);
        convert<std::vector<std::string>>(r);
        convert<std::map<std::string, std::string>>(r);
        convert<redis_tasks::value>(r);
      }
      if (round == 0) parser.feed(reinterpret_cast<const char*>(data) + cut, size - cut);
    }
  } catch (const redis_tasks::connection_error&) {
    // A protocol error: the parser refuses the bytes.
  }
  return 0;
}
