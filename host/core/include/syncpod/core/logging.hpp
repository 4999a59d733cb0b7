#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncpod::core {

enum class LogFormat {
  Text = 1,  ///< human-readable: time, level, message, then key=value fields
  Json,      ///< one JSON object per line
};

/// Parses "text" or "json"; throws ConfigError otherwise.
LogFormat parseLogFormat(std::string_view text);

/// Configures the default spdlog logger (stderr). Level: trace, debug, info, warn, error.
/// Throws ConfigError on an unknown level.
void initLogging(LogFormat format, std::string_view level);

/// A field attached to every line logged by this thread while the scope lives, e.g. the job
/// id and integration id while a job runs. Scopes nest; inner fields come last.
class LogScope {
 public:
  using Field = std::pair<std::string, std::string>;
  LogScope(std::initializer_list<Field> fields);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  std::size_t count_;
};

/// Fields for a line about one job.
LogScope jobLogScope(std::int64_t job_id, std::int64_t integration_id);

/// The fields of the calling thread's active scopes, outermost first.
const std::vector<LogScope::Field>& currentLogFields();

}  // namespace syncpod::core
