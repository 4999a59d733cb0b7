#include "syncpod/testkit/plugin_handle.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace syncpod::testkit {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

bool anyContains(const std::vector<std::string>& texts, std::string_view part) {
  for (const auto& text : texts) {
    if (contains(text, part)) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& texts) {
  std::string text;
  for (const auto& item : texts) text += "\n  " + item;
  return text;
}

std::string loadError(const std::string& path) {
  try {
    PluginHandle::load(path);
  } catch (const LoadError& error) {
    return error.what();
  }
  return "(it loaded)";
}

FetchRequest request(FetchMode mode, std::size_t batch_size = 1000) {
  FetchRequest request;
  request.stream = "items";
  request.mode = mode;
  request.key_fields = {"id"};
  request.batch_size = batch_size;
  return request;
}

Changeset creates(const std::vector<std::string>& ids) {
  Changeset changeset{"items", {"id"}, {}};
  for (const auto& id : ids)
    changeset.changes.push_back({ChangeOp::Create, {id}, {{"title", "Item " + id}}, {}});
  return changeset;
}

/// The faulty connector (with no fault), opened on a store of its own, secret set.
Instance openFaulty(PluginHandle& plugin, const std::string& store) {
  plugin.host().setSecret("faulty-token", "a-token-value");
  auto opened = plugin.open({{"name", store}});
  if (!opened.ok()) throw std::runtime_error("open: " + opened.describe());
  return std::move(opened.instance);
}

TEST(PluginHandleTest, LoadNamesAFileThatDoesNotExist) {
  const auto message = loadError("/nonexistent/libnothing.so");
  EXPECT_TRUE(contains(message, "cannot load plugin /nonexistent/libnothing.so: ")) << message;
}

TEST(PluginHandleTest, LoadRefusesALibraryWithoutTheEntryPoint) {
  const auto message = loadError(RUDE_NO_ENTRY_PLUGIN);
  EXPECT_TRUE(
      contains(message, "is not a syncpod plugin: it does not export syncpod_plugin_entry_v1"))
      << message;
}

TEST(PluginHandleTest, LoadRefusesAPluginWithoutATable) {
  const auto message = loadError(RUDE_NULL_TABLE_PLUGIN);
  EXPECT_TRUE(contains(message, "syncpod_plugin_entry_v1 returned NULL")) << message;
}

TEST(PluginHandleTest, LoadRefusesAnotherAbiMajor) {
  const auto message = loadError(RUDE_ABI2_PLUGIN);
  EXPECT_TRUE(contains(message, "was built for plugin ABI 2.0; this kit speaks 1.x")) << message;
}

TEST(PluginHandleTest, LoadRefusesANewerAbiMinor) {
  const auto message = loadError(RUDE_NEWER_MINOR_PLUGIN);
  EXPECT_TRUE(contains(message, "needs plugin ABI 1.7; this kit has 1.0")) << message;
}

TEST(PluginHandleTest, LoadsAPluginAndItsManifest) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  EXPECT_EQ(plugin.path(), FAULTY_PLUGIN);
  EXPECT_EQ(plugin.table().abi_major, 1u);
  const auto manifest = plugin.manifestJson();
  ASSERT_TRUE(manifest.is_object()) << plugin.manifestText();
  EXPECT_EQ(manifest["id"], "faulty");
  EXPECT_FALSE(plugin.hasCustomDiff());
}

TEST(PluginHandleTest, CallsThePluginAndRecordsWhatItDidWithTheHost) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto instance = openFaulty(plugin, "handle-calls");
  const auto checked = instance.check();
  EXPECT_TRUE(checked.ok()) << checked.describe();

  const auto applied = instance.apply(creates({"a", "b", "c"}), ApplyMode::Commit);
  ASSERT_TRUE(applied.ok()) << applied.describe();
  ASSERT_EQ(applied.results.size(), 3u);
  for (const auto& result : applied.results) EXPECT_TRUE(result.status == ChangeStatus::Applied);

  const auto fetched = instance.fetch(request(FetchMode::Full, 2));
  ASSERT_TRUE(fetched.ok()) << fetched.describe();
  ASSERT_EQ(fetched.records.size(), 3u);
  EXPECT_EQ(fetched.batches, 2u);
  EXPECT_EQ(fetched.records[0].fields, Json({{"id", "a"}, {"title", "Item a"}}));
  EXPECT_EQ(fetched.records[0].version, "1");
  EXPECT_FALSE(fetched.cursor);

  const auto incremental = instance.fetch(request(FetchMode::Incremental));
  ASSERT_TRUE(incremental.ok()) << incremental.describe();
  EXPECT_EQ(incremental.cursor, "3");

  EXPECT_EQ(plugin.host().progress("fetched"), 6);
  bool logged = false;
  for (const auto& line : plugin.host().logs()) {
    logged = logged || (line.level == SYNCPOD_LOG_DEBUG && line.message == "applied 3 changes");
  }
  EXPECT_TRUE(logged);
  EXPECT_TRUE(plugin.host().misuses().empty()) << joined(plugin.host().misuses());
}

TEST(PluginHandleTest, AFailureComesWithItsStatusAndMessage) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto opened = plugin.open({{"name", "no-secret"}});
  ASSERT_TRUE(opened.ok()) << opened.describe();
  const auto checked = opened.instance.check();
  EXPECT_EQ(checked.status, SYNCPOD_UNAUTHORIZED) << checked.describe();
  EXPECT_EQ(checked.message, "no secret faulty-token");
  EXPECT_EQ(checked.describe(), "SYNCPOD_UNAUTHORIZED: no secret faulty-token");
  EXPECT_EQ(plugin.host().failMessages(), std::vector<std::string>{"no secret faulty-token"});

  const auto bad = plugin.openRaw("{nope");
  EXPECT_EQ(bad.status, SYNCPOD_INVALID) << bad.describe();
  EXPECT_EQ(bad.message, "the config is not valid JSON");
  EXPECT_FALSE(bad.instance.isOpen());
}

TEST(PluginHandleTest, ABatchHandlerReceivesBatchesAndCanStopTheFetch) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto instance = openFaulty(plugin, "handle-batches");
  ASSERT_TRUE(instance.apply(creates({"a", "b", "c"}), ApplyMode::Commit).ok());
  std::vector<std::size_t> sizes;
  const auto all = instance.fetch(request(FetchMode::Full, 2), [&](Batch&& batch) {
    sizes.push_back(batch.records.size());
    return true;
  });
  EXPECT_TRUE(all.ok()) << all.describe();
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 1}));
  EXPECT_TRUE(all.records.empty());

  std::size_t calls = 0;
  const auto stopped = instance.fetch(request(FetchMode::Full, 1), [&](Batch&&) {
    ++calls;
    return false;
  });
  EXPECT_EQ(stopped.status, SYNCPOD_CANCELLED) << stopped.describe();
  EXPECT_EQ(calls, 1u);
}

TEST(PluginHandleTest, TheCancelFlagStopsAFetch) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto instance = openFaulty(plugin, "handle-cancel");
  ASSERT_TRUE(instance.apply(creates({"a", "b", "c"}), ApplyMode::Commit).ok());
  plugin.host().cancelAfterDocuments(2);
  const auto stopped = instance.fetch(request(FetchMode::Full, 1));
  EXPECT_EQ(stopped.status, SYNCPOD_CANCELLED) << stopped.describe();
  EXPECT_EQ(stopped.batches, 2u);
  plugin.host().clearCancellation();
  plugin.host().setCancelled(true);
  EXPECT_EQ(instance.fetch(request(FetchMode::Full, 1)).status, SYNCPOD_CANCELLED);
  plugin.host().clearCancellation();
  EXPECT_TRUE(instance.fetch(request(FetchMode::Full, 1)).ok());
}

TEST(PluginHandleTest, DiffUsesTheDefaultWhenThePluginHasNone) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto instance = openFaulty(plugin, "handle-diff");
  const auto compared = instance.diff("items", {{{{"id", "a"}, {"n", 1}}, {{"id", "a"}, {"n", 2}}},
                                                {{{"id", "b"}}, {{"id", "b"}}}});
  ASSERT_TRUE(compared.ok()) << compared.describe();
  EXPECT_EQ(compared.changed, (std::vector<std::vector<std::string>>{{"n"}, {}}));
}

TEST(PluginHandleTest, ReportsEveryWayAPluginBreaksTheAbi) {
  auto plugin = PluginHandle::load(RUDE_PLUGIN);
  auto opened = plugin.open(Json::object());
  ASSERT_TRUE(opened.ok()) << opened.describe();
  auto& instance = opened.instance;

  const auto checked = instance.check();
  EXPECT_EQ(checked.status, SYNCPOD_RETRYABLE);
  EXPECT_FALSE(checked.ok());
  EXPECT_TRUE(anyContains(checked.problems, "check returned SYNCPOD_RETRYABLE without a message"))
      << joined(checked.problems);
  EXPECT_TRUE(anyContains(checked.problems, "log was called with level 0"))
      << joined(checked.problems);
  EXPECT_TRUE(anyContains(checked.problems, "a log line is not valid UTF-8"))
      << joined(checked.problems);

  auto things = request(FetchMode::Full, 2);
  things.stream = "things";
  const auto fetched = instance.fetch(things);
  EXPECT_EQ(fetched.status, SYNCPOD_OK);
  EXPECT_FALSE(fetched.ok());
  for (const char* expected :
       {"fetch batch 1 is not a JSON object",
        "fetch batch 2 names stream \"other\"; the request asked for \"things\"",
        "fetch batch 3 holds 3 records; the request allowed at most 2",
        "fetch batch 4: record: missing \"fields\"",
        "fetch batch 4: \"cursor\" must be a string"}) {
    EXPECT_TRUE(anyContains(fetched.problems, expected))
        << expected << " in" << joined(fetched.problems);
  }
  EXPECT_EQ(fetched.records.size(), 3u);

  things.stream = "status";
  const auto odd = instance.fetch(things);
  EXPECT_TRUE(anyContains(odd.problems, "fetch returned status 7, which abi.h does not define"))
      << joined(odd.problems);

  const auto applied = instance.apply(creates({"x"}), ApplyMode::Plan);
  EXPECT_TRUE(anyContains(applied.problems, "apply emitted 0 documents; it must emit exactly one"))
      << joined(applied.problems);

  const auto compared = instance.diff("things", {{Json::object(), Json::object()}});
  EXPECT_TRUE(anyContains(compared.problems, "diff returned 0 lists for 1 pairs"))
      << joined(compared.problems);

  EXPECT_TRUE(plugin.host().misuses().empty());
  instance.close();
  EXPECT_EQ(plugin.host().misuses(),
            std::vector<std::string>{"log was called outside a plugin call"});
}

TEST(PluginHandleTest, AnOpenInstanceKeepsTheLibraryLoaded) {
  auto plugin = PluginHandle::load(FAULTY_PLUGIN);
  auto instance = openFaulty(plugin, "handle-lifetime");
  EXPECT_FALSE(plugin.unload()) << "an instance is open";
  EXPECT_TRUE(PluginHandle::isLoaded(FAULTY_PLUGIN));
  EXPECT_TRUE(instance.fetch(request(FetchMode::Full)).ok());
  EXPECT_THROW(plugin.open(Json::object()), std::logic_error);
  instance.close();
  EXPECT_FALSE(PluginHandle::isLoaded(FAULTY_PLUGIN))
      << "the last instance closed, so the library should be gone";
}

TEST(PluginHandleTest, UnloadingAndLoadingAgainRunsTheLibraryAfresh) {
  auto first = PluginHandle::load(FAULTY_CHANGING_MANIFEST_PLUGIN);
  const std::string before = first.manifestJson().value("description", "");
  EXPECT_TRUE(first.unload());
  EXPECT_FALSE(PluginHandle::isLoaded(FAULTY_CHANGING_MANIFEST_PLUGIN));
  auto second = PluginHandle::load(FAULTY_CHANGING_MANIFEST_PLUGIN);
  const std::string after = second.manifestJson().value("description", "");
  EXPECT_NE(before, after) << "the manifest is built on every load, so a fresh load differs";
}

TEST(PluginHandleTest, CallsOnAnInstanceThatIsNotOpenThrow) {
  Instance instance;
  EXPECT_FALSE(instance.isOpen());
  EXPECT_THROW(instance.check(), std::logic_error);
  EXPECT_THROW(instance.fetch(request(FetchMode::Full)), std::logic_error);
  instance.close();
}

}  // namespace
}  // namespace syncpod::testkit
