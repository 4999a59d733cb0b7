#include "syncpod/core/logging.hpp"

#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

// Per thread, so a job's fields follow the thread that runs it and nothing else.
thread_local std::vector<LogScope::Field> t_fields;

/// Appends " key=value" for every scope field; used by the text pattern as %*.
class ScopeFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    for (const auto& [key, value] : t_fields) {
      dest.push_back(' ');
      dest.append(key.data(), key.data() + key.size());
      dest.push_back('=');
      dest.append(value.data(), value.data() + value.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ScopeFieldsFlag>();
  }
};

/// One JSON object per line: time (UTC, RFC 3339), level, msg, then the scope fields.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["time"] = rfc3339(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string(level.data(), level.size());
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    for (const auto& [key, value] : t_fields) line[key] = value;
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  static std::string rfc3339(spdlog::log_clock::time_point time) {
    const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(time);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(time - seconds).count();
    const std::time_t t = spdlog::log_clock::to_time_t(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buffer[40];
    const auto length = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
    return std::string(buffer, length) + fmt::format(".{:03d}Z", millis);
  }
};

}  // namespace

LogFormat parseLogFormat(std::string_view text) {
  if (text == "text") return LogFormat::Text;
  if (text == "json") return LogFormat::Json;
  throw ConfigError("invalid log format '" + std::string(text) + "': use text or json");
}

void initLogging(LogFormat format, std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps anything unknown to "off"; only accept "off" when it was asked for.
  if (parsed == spdlog::level::off && level != "off") {
    throw ConfigError("invalid log level '" + std::string(level) +
                      "': use trace, debug, info, warn, error or off");
  }
  auto logger = std::make_shared<spdlog::logger>("syncpod",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == LogFormat::Json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<ScopeFieldsFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v%*");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

LogScope::LogScope(std::initializer_list<Field> fields) : count_(fields.size()) {
  t_fields.insert(t_fields.end(), fields.begin(), fields.end());
}

LogScope::~LogScope() { t_fields.resize(t_fields.size() - count_); }

LogScope jobLogScope(std::int64_t job_id, std::int64_t integration_id) {
  return LogScope{{"job_id", std::to_string(job_id)},
                  {"integration_id", std::to_string(integration_id)}};
}

const std::vector<LogScope::Field>& currentLogFields() { return t_fields; }

}  // namespace syncpod::core
