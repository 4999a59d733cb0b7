// The plugin registry and endpoints against real shared libraries: the fake plugins of
// tests/fakes/plugins, built into SYNCPOD_TEST_PLUGIN_DIR.

#include "syncpod/core/plugins.hpp"

#include <algorithm>
#include <dlfcn.h>
#include <set>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "syncpod/core/logging.hpp"

namespace syncpod::core {
namespace {

const std::string kDir = SYNCPOD_TEST_PLUGIN_DIR;

std::string file(const std::string& name) {
  return kDir + "/lib" + name + ".so";
}

/// Whether the dynamic loader still has the library mapped (without loading it).
bool isLoaded(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

/// The one-line load error of a file that must be refused.
std::string refusal(const std::string& path) {
  const auto loaded = PluginRegistry::loadFile(path);
  if (loaded) {
    ADD_FAILURE() << path << " loaded, but it should have been refused";
    return {};
  }
  const auto& message = loaded.error().message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  EXPECT_EQ(message.rfind("plugin " + path + ": ", 0), 0u) << "names the file: " << message;
  return message;
}

PluginPtr load(const std::string& name) {
  auto loaded = PluginRegistry::loadFile(file(name));
  if (!loaded) throw std::runtime_error(loaded.error().message);
  return *loaded;
}

const Json kRecords = {{"items",
                        {{{"id", 1}, {"name", "one"}, {"seq", 1}},
                         {{"id", 2}, {"name", "two"}, {"seq", 2}},
                         {{"id", 3}, {"name", "three"}, {"seq", 3}},
                         {{"id", 4}, {"name", "four"}, {"seq", 4}},
                         {{"id", 5}, {"name", "five"}, {"seq", 5}}}}};

EndpointPtr open(const std::string& name, const Json& config, const CallHooks& hooks = {}) {
  auto opened = load(name)->open(config, hooks);
  if (!opened) throw std::runtime_error(opened.error().message);
  return std::move(opened).value();
}

EndpointPtr openMemory(const Json& extra = Json::object()) {
  Json config = {{"records", kRecords}};
  config.update(extra);
  return open("memory", config);
}

EndpointPtr openFaulty(const std::string& fault) {
  return open("faulty", {{"fault", fault}});
}

FetchRequest request(FetchMode mode = FetchMode::Full, std::size_t batch_size = 1000) {
  FetchRequest request;
  request.stream = "items";
  request.mode = mode;
  request.key_fields = {"id"};
  request.batch_size = batch_size;
  return request;
}

/// Fetches everything; the batches the handler saw.
std::vector<RecordBatch> fetchAll(Endpoint& endpoint, const FetchRequest& request,
                                  const CallHooks& hooks = {}) {
  std::vector<RecordBatch> batches;
  const auto done = endpoint.fetch(
      request,
      [&](RecordBatch&& batch) {
        batches.push_back(std::move(batch));
        return true;
      },
      hooks);
  EXPECT_TRUE(done.ok()) << done.error().message;
  return batches;
}

std::vector<Json> idsOf(const std::vector<RecordBatch>& batches) {
  std::vector<Json> ids;
  for (const auto& batch : batches) {
    for (const auto& record : batch.records) ids.push_back(record.fields.at("id"));
  }
  return ids;
}

// ------------------------------------------------------------------------------------------
// Loading: one test per reason to refuse a file.
// ------------------------------------------------------------------------------------------

TEST(PluginLoading, RefusesAFileThatIsNotASharedLibrary) {
  const auto message = refusal(file("not_a_library"));
  EXPECT_NE(message.find(": not a loadable shared library (invalid ELF header)"), std::string::npos)
      << message;
}

TEST(PluginLoading, RefusesALibraryWithoutEntryPoint) {
  EXPECT_EQ(refusal(file("no_entry")),
            "plugin " + file("no_entry") +
                ": no entry point syncpod_plugin_entry_v1 (not a syncpod plugin?)");
}

TEST(PluginLoading, RefusesAnotherAbiMajor) {
  EXPECT_EQ(refusal(file("abi_major")),
            "plugin " + file("abi_major") + ": built for plugin ABI 2.0; this host supports 1.0");
}

TEST(PluginLoading, RefusesANewerAbiMinor) {
  const auto message = refusal(file("abi_minor"));
  EXPECT_NE(message.find(": built for plugin ABI 1.1, newer than this host's 1.0"),
            std::string::npos)
      << message;
}

TEST(PluginLoading, RefusesATableSmallerThanAbi10) {
  const auto message = refusal(file("small_table"));
  EXPECT_NE(message.find(": plugin table is 12 bytes, smaller than the"), std::string::npos)
      << message;
}

TEST(PluginLoading, RefusesATableWithoutARequiredFunction) {
  const auto message = refusal(file("null_function"));
  EXPECT_NE(message.find(": plugin table lacks required function(s): fetch"), std::string::npos)
      << message;
}

TEST(PluginLoading, RefusesAnInvalidManifestNamingEveryProblem) {
  const auto message = refusal(file("bad_manifest"));
  EXPECT_NE(message.find(": invalid manifest: \"id\" must be"), std::string::npos) << message;
  EXPECT_NE(message.find("\"config_schema\" must be"), std::string::npos) << message;
}

TEST(PluginLoading, RefusesAPluginWhoseManifestThrows) {
  const auto message = refusal(file("manifest_throws"));
  EXPECT_NE(message.find(": invalid manifest: manifest() threw: no manifest today"),
            std::string::npos)
      << message;
}

TEST(PluginLoading, RefusesAMissingFile) {
  EXPECT_EQ(refusal(kDir + "/libnothing_here.so"),
            "plugin " + kDir + "/libnothing_here.so: no such file");
}

TEST(PluginLoading, RefusesASecondPluginWithTheSameId) {
  const auto registry = PluginRegistry::load({file("twin_a"), file("twin_b")});
  ASSERT_NE(registry.find("twin"), nullptr);
  EXPECT_EQ(registry.find("twin")->path(), file("twin_a"));
  ASSERT_EQ(registry.errors().size(), 1u);
  EXPECT_EQ(registry.errors()[0].path, file("twin_b"));
  EXPECT_EQ(registry.errors()[0].message,
            "plugin " + file("twin_b") + ": has id twin, already provided by " + file("twin_a"));
}

TEST(PluginLoading, ADirectoryLoadsTheGoodPluginsAndReportsTheOthers) {
  const auto registry = PluginRegistry::load({kDir, kDir + "/no-such-dir"});
  std::vector<std::string> ids;
  for (const auto& plugin : registry.plugins()) ids.push_back(plugin->manifest().id);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"ctor-throws", "faulty", "memory", "memory-loose", "twin", "workload"}));

  std::vector<std::string> refused;
  for (const auto& error : registry.errors()) {
    refused.push_back(error.path);
    EXPECT_EQ(error.message.rfind("plugin ", 0), 0u) << error.message;
    EXPECT_NE(error.message.find(error.path + ": "), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find('\n'), std::string::npos) << error.message;
  }
  // In file-name order, then the missing directory.
  EXPECT_EQ(refused,
            (std::vector<std::string>{file("abi_major"), file("abi_minor"), file("bad_manifest"),
                                      file("manifest_throws"), file("no_entry"),
                                      file("not_a_library"), file("null_function"),
                                      file("small_table"), file("twin_b"), kDir + "/no-such-dir"}));
  EXPECT_EQ(registry.errors().back().message,
            "plugin path " + kDir + "/no-such-dir: no such file or directory");
}

TEST(PluginLoading, AFileReachedTwiceLoadsOnce) {
  const auto registry =
      PluginRegistry::load({file("memory"), kDir + "/../test-plugins/libmemory.so"});
  EXPECT_EQ(registry.plugins().size(), 1u);
  EXPECT_TRUE(registry.errors().empty()) << registry.errors()[0].message;
}

TEST(PluginLoading, SplitsAPluginPath) {
  EXPECT_EQ(PluginRegistry::splitPath("/a:/b/c::/d:"),
            (std::vector<std::string>{"/a", "/b/c", "/d"}));
  EXPECT_TRUE(PluginRegistry::splitPath("").empty());
}

TEST(PluginLoading, ReadsTheManifest) {
  const auto plugin = load("memory");
  EXPECT_EQ(plugin->manifest().id, "memory");
  EXPECT_EQ(plugin->manifest().version, "1.2.3");
  EXPECT_EQ(plugin->manifest().streams.at(0).key_fields, std::vector<std::string>{"id"});
  EXPECT_EQ(plugin->manifestJson().at("config_schema").at("properties").at("token").at("writeOnly"),
            true);
  EXPECT_EQ(plugin->abiMajor(), static_cast<std::uint32_t>(SYNCPOD_ABI_MAJOR));
  EXPECT_EQ(plugin->abiMinor(), static_cast<std::uint32_t>(SYNCPOD_ABI_MINOR));
  EXPECT_EQ(plugin->path(), file("memory"));
  EXPECT_FALSE(plugin->hasCustomDiff());
  EXPECT_TRUE(load("memory_loose")->hasCustomDiff());
}

// ------------------------------------------------------------------------------------------
// Lifetime.
// ------------------------------------------------------------------------------------------

TEST(PluginLifetime, AnEndpointKeepsItsLibraryLoaded) {
  const std::string path = file("memory");
  EndpointPtr endpoint;
  {
    auto registry = PluginRegistry::load({path});
    auto plugin = registry.find("memory");
    ASSERT_NE(plugin, nullptr);
    auto opened = plugin->open({{"records", kRecords}}, {});
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    endpoint = std::move(opened).value();
  }
  // Registry and plugin are gone; the endpoint still runs the library's code.
  ASSERT_TRUE(isLoaded(path));
  EXPECT_EQ(idsOf(fetchAll(*endpoint, request())).size(), 5u);
  EXPECT_EQ(endpoint->pluginId(), "memory");
  endpoint.reset();
  EXPECT_FALSE(isLoaded(path)) << "the last user is gone, so the library is unloaded";
}

// ------------------------------------------------------------------------------------------
// open.
// ------------------------------------------------------------------------------------------

TEST(PluginOpen, ABadConfigIsInvalidWithThePluginsMessage) {
  const auto opened = load("memory")->open({{"records", 5}, {"colour", "red"}}, {});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, Error::Code::Invalid);
  EXPECT_EQ(opened.error().message.rfind("memory: invalid config: ", 0), 0u)
      << opened.error().message;
  EXPECT_NE(opened.error().message.find("/records"), std::string::npos) << opened.error().message;
  EXPECT_NE(opened.error().message.find("/colour"), std::string::npos) << opened.error().message;
}

TEST(PluginOpen, AConstructorThatThrowsIsInternalWithItsMessage) {
  const auto opened = load("ctor_throws")->open(Json::object(), {});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, Error::Code::Internal);
  EXPECT_EQ(opened.error().message, "ctor-throws: open failed: cannot reach the frobnicator");
}

// ------------------------------------------------------------------------------------------
// fetch.
// ------------------------------------------------------------------------------------------

TEST(PluginFetch, BatchesReachTheHandler) {
  auto endpoint = openMemory();
  const auto batches = fetchAll(*endpoint, request(FetchMode::Full, 2));
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].records.size(), 2u);
  EXPECT_EQ(batches[2].records.size(), 1u);
  EXPECT_EQ(batches[0].stream, "items");
  EXPECT_EQ(batches[0].records[1].fields.at("name"), "two");
  EXPECT_EQ(batches[0].records[1].version, "2");
  EXPECT_EQ(idsOf(batches), (std::vector<Json>{1, 2, 3, 4, 5}));
}

TEST(PluginFetch, TheCursorTravelsWithTheLastBatch) {
  auto endpoint = openMemory();
  auto incremental = request(FetchMode::Incremental, 10);
  incremental.cursor = "3";
  const auto batches = fetchAll(*endpoint, incremental);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(idsOf(batches), (std::vector<Json>{4, 5}));
  EXPECT_EQ(batches[0].cursor, "5");
}

TEST(PluginFetch, ByKeys) {
  auto endpoint = openMemory();
  auto by_keys = request(FetchMode::Keys);
  by_keys.keys = {{"2"}, {"4"}, {"99"}};
  EXPECT_EQ(idsOf(fetchAll(*endpoint, by_keys)), (std::vector<Json>{2, 4}));
}

TEST(PluginFetch, AHandlerReturningFalseCancels) {
  auto endpoint = openMemory();
  int calls = 0;
  const auto done =
      endpoint->fetch(request(FetchMode::Full, 1), [&](RecordBatch&&) { return ++calls < 2; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Cancelled);
  EXPECT_EQ(calls, 2);
}

TEST(PluginFetch, AHandlerReturningFalseCancelsEvenIfThePluginCarriesOn) {
  auto endpoint = openFaulty("ignore_cancel");
  int calls = 0;
  const auto done = endpoint->fetch(request(), [&](RecordBatch&&) { return ++calls < 1; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Cancelled) << done.error().message;
  EXPECT_EQ(calls, 1) << "no batch reaches the handler after it said stop";
}

TEST(PluginFetch, TheCancelledHookStopsTheFetch) {
  auto endpoint = openMemory();
  int batches = 0;
  CallHooks hooks;
  hooks.cancelled = [&] { return batches >= 1; };
  const auto done = endpoint->fetch(
      request(FetchMode::Full, 1),
      [&](RecordBatch&&) {
        ++batches;
        return true;
      },
      hooks);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Cancelled);
  EXPECT_EQ(batches, 1);
}

TEST(PluginFetch, AnExceptionInThePluginIsInternalWithItsMessage) {
  const auto done = openFaulty("throw")->fetch(request(), [](RecordBatch&&) { return true; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Internal);
  EXPECT_EQ(done.error().message, "faulty: fetch failed: the disk is on fire");
}

TEST(PluginFetch, RetryableIsUnavailable) {
  const auto done =
      openFaulty("retryable")->fetch(request(), [](RecordBatch&&) { return true; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Unavailable);
  EXPECT_EQ(done.error().message, "faulty: rate limited; retry after 30 s");
}

TEST(PluginFetch, AnInvalidRequestIsInvalid) {
  auto endpoint = openMemory();
  auto unknown = request();
  unknown.stream = "nope";
  const auto done = endpoint->fetch(unknown, [](RecordBatch&&) { return true; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Invalid);
  EXPECT_EQ(done.error().message, "memory: unknown stream nope");
}

TEST(PluginFetch, OutputTheHostCannotReadIsInternal) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"malformed_batch", "fetch emitted a batch the host cannot read (batch 1): not valid JSON"},
      {"bad_record", "(batch 1): records[0]: a record must be a JSON object"},
      {"wrong_stream", "records of stream \"other\", but \"items\" was requested"}};
  for (const auto& [fault, expected] : cases) {
    int calls = 0;
    const auto done = openFaulty(fault)->fetch(request(),
                                               [&](RecordBatch&&) {
                                                 ++calls;
                                                 return true;
                                               },
                                               {});
    ASSERT_FALSE(done.ok()) << fault;
    EXPECT_EQ(done.error().code, Error::Code::Internal) << fault;
    EXPECT_EQ(done.error().message.rfind("faulty: ", 0), 0u) << done.error().message;
    EXPECT_NE(done.error().message.find(expected), std::string::npos) << done.error().message;
    EXPECT_EQ(calls, 0) << fault;
  }
}

TEST(PluginFetch, AHandlerThatThrowsFailsTheCallNotTheHost) {
  auto endpoint = openMemory();
  const auto done = endpoint->fetch(
      request(), [](RecordBatch&&) -> bool { throw std::runtime_error("disk full"); }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Internal);
  EXPECT_NE(done.error().message.find("the batch handler failed: disk full"), std::string::npos)
      << done.error().message;
}

// ------------------------------------------------------------------------------------------
// Hooks: log, progress, secrets.
// ------------------------------------------------------------------------------------------

TEST(PluginHooks, LogProgressAndSecretReachTheHooks) {
  auto endpoint = openMemory({{"secret_name", "api"}});
  std::vector<std::string> lines;
  std::int64_t fetched = 0;
  std::vector<std::string> asked;
  CallHooks hooks;
  hooks.log = [&](syncpod_log_level level, std::string_view message) {
    if (level == SYNCPOD_LOG_INFO) lines.emplace_back(message);
  };
  hooks.progress = [&](std::string_view counter, std::int64_t delta) {
    if (counter == "fetched") fetched += delta;
  };
  hooks.secret = [&](std::string_view name) -> std::optional<std::string> {
    asked.emplace_back(name);
    return std::string("hunter2-value");
  };
  EXPECT_EQ(fetchAll(*endpoint, request(FetchMode::Full, 2), hooks).size(), 3u);
  EXPECT_EQ(fetched, 5);
  EXPECT_EQ(asked, std::vector<std::string>{"api"});
  EXPECT_EQ(lines, (std::vector<std::string>{"fetching items (full)", "secret has 13 characters",
                                             "using secret ***"}))
      << "the secret's value is redacted from what the plugin logs";
}

TEST(PluginHooks, AnUnknownSecretIsThePluginsToReport) {
  auto endpoint = openMemory({{"secret_name", "api"}});
  const auto done = endpoint->fetch(request(), [](RecordBatch&&) { return true; }, {});
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Invalid);
  EXPECT_EQ(done.error().message, "memory: no secret named api");
}

TEST(PluginHooks, ConfigSecretsNeverReachErrors) {
  auto endpoint = openMemory({{"token", "wrong"}});
  const auto checked = endpoint->check({});
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, Error::Code::Unauthorized);
  EXPECT_EQ(checked.error().message, "memory: the token *** was refused");
  EXPECT_TRUE(openMemory({{"token", "right"}})->check({}).ok());
  EXPECT_EQ(openFaulty("unauthorized")->check({}).error().code, Error::Code::Unauthorized);
}

TEST(PluginHooks, WithoutALogHookLinesGoToTheLogPrefixedWithThePluginId) {
  initLogging(LogFormat::Text, "info");
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(openMemory()->check({}).ok());
  spdlog::default_logger()->flush();
  const auto text = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(text.find("info"), std::string::npos) << text;
  EXPECT_NE(text.find("memory: checking"), std::string::npos) << text;
}

TEST(PluginHooks, AHookThatThrowsFailsTheCallNotTheHost) {
  auto endpoint = openMemory();
  CallHooks hooks;
  hooks.progress = [](std::string_view, std::int64_t) {
    throw std::runtime_error("counter overflow");
  };
  const auto done = endpoint->fetch(
      request(), [](RecordBatch&&) { return true; }, hooks);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, Error::Code::Internal);
  EXPECT_EQ(done.error().message, "memory: the host's progress hook failed: counter overflow");
}

// ------------------------------------------------------------------------------------------
// apply and diff.
// ------------------------------------------------------------------------------------------

Changeset changes() {
  Changeset changeset;
  changeset.stream = "items";
  changeset.key_fields = {"id"};
  changeset.changes = {{ChangeOp::Create, {"6"}, {{"id", 6}, {"name", "six"}}, {}},
                       {ChangeOp::Update, {"1"}, {{"name", "uno"}}, {}},
                       {ChangeOp::Update, {"2"}, {{"name", "two"}}, {}},
                       {ChangeOp::Delete, {"3"}, Json::object(), {}},
                       {ChangeOp::Update, {"42"}, {{"name", "?"}}, {}}};
  return changeset;
}

std::vector<ChangeStatus> statuses(const std::vector<ChangeResult>& results) {
  std::vector<ChangeStatus> list;
  for (const auto& result : results) list.push_back(result.status);
  return list;
}

TEST(PluginApply, ResultsMapOneToOne) {
  auto endpoint = openMemory();
  const std::vector<ChangeStatus> expected = {ChangeStatus::Applied, ChangeStatus::Applied,
                                              ChangeStatus::Noop, ChangeStatus::Applied,
                                              ChangeStatus::Rejected};
  const auto planned = endpoint->apply(changes(), ApplyMode::Plan, {});
  ASSERT_TRUE(planned.ok()) << planned.error().message;
  EXPECT_EQ(statuses(*planned), expected);
  EXPECT_EQ(idsOf(fetchAll(*endpoint, request())), (std::vector<Json>{1, 2, 3, 4, 5}))
      << "plan writes nothing";

  const auto committed = endpoint->apply(changes(), ApplyMode::Commit, {});
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(statuses(*committed), expected);
  EXPECT_EQ(committed->back().message, "no such record");
  const auto after = fetchAll(*endpoint, request());
  EXPECT_EQ(idsOf(after), (std::vector<Json>{1, 2, 4, 5, 6}));
  EXPECT_EQ(after[0].records[0].fields.at("name"), "uno");
}

TEST(PluginApply, OutputTheHostCannotReadIsInternal) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"wrong_result_count",
       "faulty: apply emitted output the host cannot read: 1 result for 2 changes"},
      {"no_results", "faulty: apply returned SYNCPOD_OK without emitting its results"},
      {"bad_result",
       "faulty: apply emitted output the host cannot read: results[0]: change result: "
       "\"status\" must be applied, noop, conflict, retryable or rejected"},
      {"silent_failure", "faulty: apply returned SYNCPOD_FAILED without a message"},
      {"escape", "faulty: apply let an exception escape the plugin boundary: escaped from apply"}};
  Changeset two = changes();
  two.changes.resize(2);
  for (const auto& [fault, expected] : cases) {
    const auto applied = openFaulty(fault)->apply(two, ApplyMode::Commit, {});
    ASSERT_FALSE(applied.ok()) << fault;
    EXPECT_EQ(applied.error().code, Error::Code::Internal) << fault;
    EXPECT_EQ(applied.error().message, expected);
  }
  EXPECT_TRUE(openFaulty("none")->apply(two, ApplyMode::Commit, {}).ok());
}

TEST(PluginDiff, DefaultDiffUnlessThePluginHasItsOwn) {
  const std::vector<std::pair<Json, Json>> pairs = {
      {{{"id", 1}, {"n", 1}}, {{"id", 1}, {"n", "1"}}},
      {{{"id", 2}, {"n", "a"}}, {{"id", 2}, {"n", "b"}, {"extra", true}}}};
  auto exact = openMemory();
  EXPECT_FALSE(exact->hasCustomDiff());
  const auto by_default = exact->diff("items", pairs, {});
  ASSERT_TRUE(by_default.ok());
  EXPECT_EQ(*by_default, (std::vector<std::vector<std::string>>{{"n"}, {"extra", "n"}}));

  auto loose = open("memory_loose", {{"records", kRecords}});
  EXPECT_TRUE(loose->hasCustomDiff());
  const auto by_plugin = loose->diff("items", pairs, {});
  ASSERT_TRUE(by_plugin.ok()) << by_plugin.error().message;
  EXPECT_EQ(*by_plugin, (std::vector<std::vector<std::string>>{{}, {"extra", "n"}}))
      << "the plugin's diff treats 1 and \"1\" as equal";
}

TEST(PluginDiff, AWrongNumberOfAnswersIsInternal) {
  const auto changed =
      openFaulty("diff_wrong_count")->diff("items", {{{{"id", 1}}, {{"id", 1}}}}, {});
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.error().code, Error::Code::Internal);
  EXPECT_EQ(changed.error().message,
            "faulty: diff emitted output the host cannot read: 0 answers for 1 pair");
  EXPECT_TRUE(openFaulty("none")->diff("items", {{{{"id", 1}}, {{"id", 1}}}}, {}).ok());
}

}  // namespace
}  // namespace syncpod::core
