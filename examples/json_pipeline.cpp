// A pipeline defined in a JSON file: each step names a task class and its config, with
// Prefect's argument names. The file's "connection" object is the default for every step.
// Usage: json_pipeline [pipeline.json] [host] [port]
#include <cstdlib>
#include <iostream>
#include <string>

#include <redis_tasks/redis_tasks.hpp>

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "pipeline.json";
  try {
    nlohmann::json file = redis_tasks::load_json_file(path);
    nlohmann::json connection = file.value("connection", nlohmann::json::object());
    if (argc > 2) connection["host"] = argv[2];
    if (argc > 3) connection["port"] = std::atoi(argv[3]);

    int index = 0;
    for (const auto& step : file.at("steps")) {
      // The step's own config wins over the shared connection settings.
      nlohmann::json config = connection;
      config.update(step.at("config"));
      const std::string kind = step.at("task").get<std::string>();
      std::cout << "step " << index++ << ": " << kind << " -> ";
      if (kind == "RedisSet") {
        redis_tasks::RedisSet<std::string> task(
            config.get<redis_tasks::RedisSet<std::string>::config>());
        std::cout << (task.run() ? "stored" : "not stored (nx/xx)") << "\n";
      } else if (kind == "RedisGet") {
        redis_tasks::RedisGet<std::string> task(
            config.get<redis_tasks::RedisGet<std::string>::config>());
        std::cout << task.run().value_or("(no such key)") << "\n";
      } else if (kind == "RedisExecute") {
        redis_tasks::RedisExecute<> task(config.get<redis_tasks::RedisExecute<>::config>());
        std::cout << task.run().to_json().dump() << "\n";
      } else {
        throw redis_tasks::config_error(path + ": steps[" + std::to_string(index - 1) +
                                        "].task: unknown task `" + kind +
                                        "`; use RedisSet, RedisGet or RedisExecute");
      }
    }
  } catch (const redis_tasks::error& e) {
    std::cerr << "pipeline failed: " << e.what() << "\n";
    return 1;
  } catch (const nlohmann::json::exception& e) {
    std::cerr << "pipeline file " << path << " is malformed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
