#include "syncpod/core/logging.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

std::string logged(LogFormat format, const std::function<void()>& log) {
  initLogging(format, "info");
  ::testing::internal::CaptureStderr();
  log();
  spdlog::default_logger()->flush();
  return ::testing::internal::GetCapturedStderr();
}

TEST(Logging, TextLinesCarryJobFields) {
  const auto text = logged(LogFormat::Text, [] {
    auto scope = jobLogScope(42, 7);
    spdlog::info("claimed");
  });
  EXPECT_NE(text.find("info"), std::string::npos) << text;
  EXPECT_NE(text.find("claimed job_id=42 integration_id=7"), std::string::npos) << text;
}

TEST(Logging, JsonLinesAreObjectsWithFields) {
  const auto text = logged(LogFormat::Json, [] {
    auto scope = jobLogScope(42, 7);
    spdlog::warn("quote \" and newline \n inside");
  });
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line per message: " << text;
  const auto line = nlohmann::json::parse(text);
  EXPECT_EQ(line["level"], "warning");
  EXPECT_EQ(line["msg"], "quote \" and newline \n inside");
  EXPECT_EQ(line["job_id"], "42");
  EXPECT_EQ(line["integration_id"], "7");
  EXPECT_EQ(line["time"].get<std::string>().back(), 'Z');
}

TEST(Logging, ScopesEndWithTheirBlockAndStayOnTheirThread) {
  {
    auto scope = jobLogScope(1, 2);
    EXPECT_EQ(currentLogFields().size(), 2u);
    std::thread([] { EXPECT_TRUE(currentLogFields().empty()); }).join();
  }
  EXPECT_TRUE(currentLogFields().empty());
  const auto text = logged(LogFormat::Text, [] { spdlog::info("plain"); });
  EXPECT_EQ(text.find("job_id"), std::string::npos) << text;
}

TEST(Logging, RefusesUnknownFormatAndLevel) {
  EXPECT_THROW(parseLogFormat("xml"), ConfigError);
  EXPECT_THROW(initLogging(LogFormat::Text, "loud"), ConfigError);
  EXPECT_NO_THROW(initLogging(LogFormat::Text, "off"));
}

}  // namespace
}  // namespace syncpod::core
