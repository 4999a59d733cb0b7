#include "syncpod/core/settings.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

class TempFile {
 public:
  TempFile(const std::string& extension, const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("syncpod_settings_" + std::to_string(::getpid()) + "_" +
               std::to_string(counter_++) + extension)) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(Settings, FlagsBeatEnvironmentBeatFileBeatDefaults) {
  TempFile file(".properties", "database_url = postgresql://file/db\nschema = from_file\n"
                               "log_level = debug\n");
  const Settings::Environment env = {{"SYNCPOD_DATABASE_URL", "postgresql://env/db"},
                                     {"SYNCPOD_SCHEMA", "from_env"}};
  const auto settings = Settings::resolve({{"database_url", "postgresql://flag/db"}}, env, file.path());
  EXPECT_EQ(settings.get("database_url"), "postgresql://flag/db");
  EXPECT_EQ(settings.sourceOf("database_url"), "--database-url");
  EXPECT_EQ(settings.get("schema"), "from_env");
  EXPECT_EQ(settings.sourceOf("schema"), "SYNCPOD_SCHEMA");
  EXPECT_EQ(settings.get("log_level"), "debug");
  EXPECT_EQ(settings.sourceOf("log_level"), "config file " + file.path());
  EXPECT_EQ(settings.get("log_format"), "text");
  EXPECT_EQ(settings.sourceOf("log_format"), "default");
}

TEST(Settings, ReadsJsonAndIniFiles) {
  TempFile json(".json", R"({"schema": "json_schema"})");
  EXPECT_EQ(Settings::resolve({}, {}, json.path()).get("schema"), "json_schema");
  TempFile ini(".ini", "schema = ini_schema\n");
  EXPECT_EQ(Settings::resolve({}, {}, ini.path()).get("schema"), "ini_schema");
}

TEST(Settings, RefusesUnknownKeyInFileNamingIt) {
  TempFile file(".properties", "database_ulr = postgresql://typo/db\n");
  try {
    Settings::resolve({}, {}, file.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("database_ulr"), std::string::npos) << error.what();
  }
}

TEST(Settings, RefusesMissingFileAndUnknownFormat) {
  EXPECT_THROW(Settings::resolve({}, {}, "/nonexistent/syncpod.properties"), ConfigError);
  TempFile yaml(".yaml", "schema: x\n");
  EXPECT_THROW(Settings::resolve({}, {}, yaml.path()), ConfigError);
}

TEST(Settings, ParsesDurations) {
  const auto settings = Settings::resolve({{"rescue_interval", "250ms"}, {"rescue_lease", "2m"}}, {}, "");
  EXPECT_EQ(settings.duration("rescue_interval"), std::chrono::milliseconds(250));
  EXPECT_EQ(settings.duration("rescue_lease"), std::chrono::minutes(2));
  EXPECT_EQ(Settings::resolve({}, {}, "").duration("retention"), std::chrono::hours(24 * 14));
  const auto plain = Settings::resolve({{"rescue_lease", "45"}}, {}, "");
  EXPECT_EQ(plain.duration("rescue_lease"), std::chrono::seconds(45));
}

TEST(Settings, ParseDurationOnItsOwn) {
  EXPECT_EQ(parseDuration("20s"), std::chrono::seconds(20));
  EXPECT_EQ(parseDuration("0s"), std::chrono::milliseconds(0));  // Settings::duration refuses it
  EXPECT_EQ(parseDuration("1d"), std::chrono::hours(24));
  EXPECT_EQ(parseDuration("1h30m"), std::nullopt);
  EXPECT_EQ(parseDuration(""), std::nullopt);
  EXPECT_EQ(parseDuration("-5s"), std::nullopt);
}

TEST(Settings, BadDurationNamesSettingAndSource) {
  const auto settings = Settings::resolve({}, {{"SYNCPOD_RESCUE_LEASE", "soon"}}, "");
  try {
    (void)settings.duration("rescue_lease");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("rescue_lease"), std::string::npos) << message;
    EXPECT_NE(message.find("SYNCPOD_RESCUE_LEASE"), std::string::npos) << message;
  }
  EXPECT_THROW((void)Settings::resolve({{"rescue_lease", "0s"}}, {}, "").duration("rescue_lease"),
               ConfigError);
}

TEST(Settings, IntegerRange) {
  const auto settings = Settings::resolve({{"schema", "12"}}, {}, "");
  EXPECT_EQ(settings.integer("schema", 1, 20), 12);
  EXPECT_THROW((void)settings.integer("schema", 13, 20), ConfigError);
  EXPECT_THROW((void)Settings::resolve({{"schema", "12x"}}, {}, "").integer("schema", 0, 99),
               ConfigError);
}

TEST(Settings, ByteSizes) {
  const auto size = [](const std::string& text) {
    return Settings::resolve({{"job_memory_limit", text}}, {}, "").byteSize("job_memory_limit");
  };
  EXPECT_EQ(Settings::resolve({}, {}, "").byteSize("job_memory_limit"), std::nullopt);
  EXPECT_EQ(size("4096"), 4096U);
  EXPECT_EQ(size("512MiB"), 512ULL << 20);
  EXPECT_EQ(size("2GiB"), 2ULL << 30);
  EXPECT_EQ(size("3GB"), 3000000000ULL);
  for (const char* bad : {"0", "12 MiB", "1.5GiB", "GiB", "-1", "12XB"}) {
    try {
      (void)size(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find("job_memory_limit (from --job-memory-limit)"),
                std::string::npos)
          << error.what();
    }
  }
}

TEST(Settings, PluginPathDefaultsToLibSyncpodPluginsBesideTheExecutable) {
  const auto executable = std::filesystem::canonical("/proc/self/exe");
  const auto expected =
      (executable.parent_path() / ".." / "lib" / "syncpod" / "plugins").lexically_normal();
  EXPECT_EQ(defaultPluginDirectory(), expected.string());

  const auto by_default = Settings::resolve({}, {}, "");
  EXPECT_EQ(by_default.get("plugin_path"), expected.string());
  EXPECT_EQ(by_default.sourceOf("plugin_path"), "default");

  TempFile file(".properties", "plugin_path = /from/file\n");
  EXPECT_EQ(Settings::resolve({}, {}, file.path()).get("plugin_path"), "/from/file");
  const auto from_env = Settings::resolve({}, {{"SYNCPOD_PLUGIN_PATH", "/a:/b"}}, file.path());
  EXPECT_EQ(from_env.get("plugin_path"), "/a:/b");
  EXPECT_EQ(from_env.sourceOf("plugin_path"), "SYNCPOD_PLUGIN_PATH");
  EXPECT_EQ(Settings::resolve({{"plugin_path", "/flag"}}, {{"SYNCPOD_PLUGIN_PATH", "/a"}}, "")
                .sourceOf("plugin_path"),
            "--plugin-path");
}

}  // namespace
}  // namespace syncpod::core
