// Links with other.cpp: both include every header, so a non-inline definition would collide.
#include <redis_tasks/redis_tasks.hpp>

int other_unit();

int main() {
  const redis_tasks::command c("SET k v");
  return (c.args().size() == 3 && other_unit() == 3) ? 0 : 1;
}
