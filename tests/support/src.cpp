// The library's bodies for the test programs, compiled once (compiled mode: see
// include/redis_tasks/src.hpp and REDIS_TASKS_TESTS_SEPARATE_COMPILATION in ../CMakeLists.txt).
#include <redis_tasks/src.hpp>
