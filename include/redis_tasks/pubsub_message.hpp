// pubsub_message: what a RedisPubSubSensor run returns.
#pragma once

#include "version.hpp"

#include <string>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {

/// A message received on a pub/sub subscription.
struct pubsub_message {
  std::string channel;  ///< the channel it was published to
  std::string pattern;  ///< the pattern that matched it (`patterns`); empty for `channels`
  std::string data;     ///< what was published
  /// Messages may have been lost just before this one: the subscriber reconnected (a message
  /// published while no subscriber is connected is gone), or the buffer was full and dropped
  /// its oldest.
  bool gap_before = false;
};

}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
