#include <redis_tasks/redis_tasks.hpp>

int other_unit() {
  return static_cast<int>(redis_tasks::split_command_line("a b c").size());
}
