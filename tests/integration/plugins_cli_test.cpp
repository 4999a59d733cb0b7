// `syncpod plugins list|inspect` as a user runs them, against the fake plugins of
// tests/fakes/plugins (good and broken ones side by side).

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process.hpp"

namespace syncpod::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const std::string kBinary = SYNCPOD_BINARY;
const std::string kDir = SYNCPOD_TEST_PLUGIN_DIR;

std::string file(const std::string& name) {
  return kDir + "/lib" + name + ".so";
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> list;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) list.push_back(line);
  return list;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class PluginsCli : public ::testing::Test {
 protected:
  // The plugin path must come from the command line of each test, or from nowhere.
  void SetUp() override {
    ::unsetenv("SYNCPOD_PLUGIN_PATH");
    ::unsetenv("SYNCPOD_CONFIG");
  }

  static SplitRunResult plugins(std::vector<std::string> args,
                                const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), {kBinary, "plugins"});
    return runSplit(args, env);
  }
};

TEST_F(PluginsCli, ListShowsTheGoodPluginsAndOneLinePerBrokenFile) {
  const auto result = plugins({"list", "--plugin-path=" + kDir});
  EXPECT_EQ(result.exit_code, 1) << "some files were refused";

  const auto out = lines(result.output);
  ASSERT_EQ(out.size(), 7u) << result.output;
  EXPECT_EQ(out[0].rfind("ID", 0), 0u) << out[0];
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"ctor-throws", "ctor_throws"},
      {"faulty", "faulty"},
      {"memory", "memory"},
      {"memory-loose", "memory_loose"},
      {"twin", "twin_a"},
      {"workload", "workload"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& line = out[i + 1];
    EXPECT_EQ(line.rfind(expected[i].first + " ", 0), 0u) << line;
    EXPECT_TRUE(contains(line, " 1.0 ")) << line;
    EXPECT_TRUE(line.size() > file(expected[i].second).size() &&
                line.substr(line.size() - file(expected[i].second).size()) ==
                    file(expected[i].second))
        << line;
  }
  EXPECT_TRUE(contains(out[3], "1.2.3")) << out[3];

  const auto errors = lines(result.errors);
  ASSERT_EQ(errors.size(), 9u) << result.errors;
  for (const auto& line : errors) EXPECT_EQ(line.rfind("plugin " + kDir + "/lib", 0), 0u) << line;
  EXPECT_EQ(errors[0],
            "plugin " + file("abi_major") + ": built for plugin ABI 2.0; this host supports 1.0");
  EXPECT_EQ(errors[8],
            "plugin " + file("twin_b") + ": has id twin, already provided by " + file("twin_a"));
}

TEST_F(PluginsCli, ListExitsZeroWhenEveryFileLoads) {
  const auto result = plugins({"list", "--plugin-path=" + file("memory") + ":" + file("faulty")});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(result.errors, "");
  EXPECT_EQ(lines(result.output).size(), 3u) << result.output;
}

TEST_F(PluginsCli, ListReadsThePathFromTheEnvironment) {
  const auto result = plugins({"list"}, {{"SYNCPOD_PLUGIN_PATH", file("memory")}});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  ASSERT_EQ(lines(result.output).size(), 2u) << result.output;
  EXPECT_EQ(lines(result.output)[1].rfind("memory ", 0), 0u) << result.output;
}

TEST_F(PluginsCli, ListAsJson) {
  const auto result = plugins({"list", "--json", "--plugin-path=" + kDir});
  EXPECT_EQ(result.exit_code, 1);
  const auto document = Json::parse(result.output);
  EXPECT_EQ(document["plugin_path"], Json::array({kDir}));
  std::vector<std::string> ids;
  for (const auto& plugin : document["plugins"]) ids.push_back(plugin["id"]);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"ctor-throws", "faulty", "memory", "memory-loose", "twin", "workload"}));
  EXPECT_EQ(document["plugins"][2]["version"], "1.2.3");
  EXPECT_EQ(document["plugins"][2]["abi"], "1.0");
  EXPECT_EQ(document["plugins"][2]["path"], file("memory"));
  ASSERT_EQ(document["errors"].size(), 9u);
  EXPECT_EQ(document["errors"][0]["path"], file("abi_major"));
}

TEST_F(PluginsCli, AMissingPluginDirectoryIsAnError) {
  const auto result = plugins({"list", "--plugin-path=" + kDir + "/missing"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.errors, "plugin path " + kDir + "/missing: no such file or directory\n");
}

TEST_F(PluginsCli, InspectAFileDescribesItsManifest) {
  const auto result = plugins({"inspect", file("memory")});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(result.errors, "");
  const auto& out = result.output;
  for (const char* part :
       {"id:           memory", "version:      1.2.3", "ABI:          1.0",
        "description:  Records held in memory, for tests", "streams:", "items  key id",
        "fetch                 full, incremental, keys", "incremental cursor    seq",
        "configurable streams  yes", "diff                  the host's", "config"}) {
    EXPECT_TRUE(contains(out, part)) << part << "\n" << out;
  }
  EXPECT_TRUE(contains(out, "path:         " + file("memory"))) << out;
  // Config settings, the required one and the secret marked.
  bool records = false;
  bool token = false;
  for (const auto& line : lines(out)) {
    if (line.rfind("  records ", 0) == 0) records = contains(line, "required");
    if (line.rfind("  token ", 0) == 0)
      token = contains(line, "secret") && !contains(line, "required");
  }
  EXPECT_TRUE(records) << out;
  EXPECT_TRUE(token) << out;
}

TEST_F(PluginsCli, InspectAsJsonPrintsTheManifest) {
  const auto result = plugins({"inspect", file("memory"), "--json"});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  const auto manifest = Json::parse(result.output);
  EXPECT_EQ(manifest["id"], "memory");
  EXPECT_EQ(manifest["abi"], "1.0");
  EXPECT_EQ(manifest["streams"][0]["key_fields"], Json::array({"id"}));
  EXPECT_EQ(manifest["config_schema"]["properties"]["token"]["writeOnly"], true);
  EXPECT_EQ(manifest["capabilities"]["incremental_cursor_field"], "seq");
}

TEST_F(PluginsCli, InspectAnIdLooksOnThePluginPath) {
  const auto result = plugins({"inspect", "memory-loose", "--plugin-path=" + kDir});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_TRUE(contains(result.output, "id:           memory-loose")) << result.output;
  EXPECT_TRUE(contains(result.output, "diff                  its own")) << result.output;

  const auto unknown = plugins({"inspect", "nope", "--plugin-path=" + file("memory")});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "");
  EXPECT_TRUE(contains(unknown.errors, "no plugin with id 'nope' on the plugin path (" +
                                           file("memory") + ", from --plugin-path)"))
      << unknown.errors;
}

TEST_F(PluginsCli, InspectABrokenFileIsOneLineOnStderr) {
  for (const auto& [name, cause] : std::vector<std::pair<std::string, std::string>>{
           {"abi_major", "built for plugin ABI 2.0; this host supports 1.0"},
           {"not_a_library", "not a loadable shared library (invalid ELF header)"},
           {"no_entry", "no entry point syncpod_plugin_entry_v1 (not a syncpod plugin?)"}}) {
    const auto result = plugins({"inspect", file(name)});
    EXPECT_EQ(result.exit_code, 1) << name;
    EXPECT_EQ(result.output, "") << name;
    EXPECT_EQ(result.errors, "plugin " + file(name) + ": " + cause + "\n");
  }
}

TEST_F(PluginsCli, UsageErrors) {
  const auto none = plugins({});
  EXPECT_EQ(none.exit_code, 64);
  EXPECT_TRUE(contains(none.errors, "expected `list` or `inspect <path|id>`")) << none.errors;
  EXPECT_EQ(plugins({"frobnicate"}).exit_code, 64);
  EXPECT_EQ(plugins({"inspect"}).exit_code, 64);
  EXPECT_EQ(plugins({"list", "extra"}).exit_code, 64);
}

TEST_F(PluginsCli, HelpDescribesTheSubcommands) {
  const auto help = plugins({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* part : {"list", "inspect <path|id>", "--plugin-path", "SYNCPOD_PLUGIN_PATH",
                           "--json", "exit codes"}) {
    EXPECT_TRUE(contains(help.output, part)) << part << "\n" << help.output;
  }
  const auto overview = runSplit({kBinary, "--help"});
  EXPECT_TRUE(contains(overview.output, "plugins")) << overview.output;
}

TEST_F(PluginsCli, TheDefaultPathIsLibSyncpodPluginsBesideTheBinary) {
  // The build tree's own default directory: reported as the path when it exists, skipped
  // silently when it does not (no in-tree plugins built yet).
  const auto expected =
      (fs::canonical(kBinary).parent_path() / ".." / "lib" / "syncpod" / "plugins")
          .lexically_normal();
  const auto build_tree = plugins({"list", "--json"});
  const auto document = Json::parse(build_tree.output);
  if (fs::exists(expected)) {
    EXPECT_EQ(document["plugin_path"], Json::array({expected.string()}));
  } else {
    EXPECT_EQ(document["plugin_path"], Json::array());
    EXPECT_EQ(build_tree.exit_code, 0);
  }

  // An installation-like tree of its own: bin/syncpod and lib/syncpod/plugins/libmemory.so.
  const auto root =
      fs::temp_directory_path() / ("syncpod_plugins_cli_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "bin");
  fs::create_directories(root / "lib" / "syncpod" / "plugins");
  std::error_code link_error;
  fs::create_hard_link(kBinary, root / "bin" / "syncpod", link_error);
  if (link_error) fs::copy_file(kBinary, root / "bin" / "syncpod");
  fs::copy_file(file("memory"), root / "lib" / "syncpod" / "plugins" / "libmemory.so");

  const auto installed = runSplit({(root / "bin" / "syncpod").string(), "plugins", "list"});
  EXPECT_EQ(installed.exit_code, 0) << installed.errors;
  const auto out = lines(installed.output);
  ASSERT_EQ(out.size(), 2u) << installed.output << installed.errors;
  EXPECT_EQ(out[1].rfind("memory ", 0), 0u) << out[1];
  EXPECT_TRUE(contains(out[1], (root / "lib" / "syncpod" / "plugins" / "libmemory.so").string()))
      << out[1];
  fs::remove_all(root);
}

}  // namespace
}  // namespace syncpod::testing
