// The conformance suite: GoogleTest tests that drive a connector plugin file through the C ABI
// (PluginHandle) and check what syncpod relies on. A plugin author describes their plugin and
// a scratch foreign system in a Subject and instantiates the suite with one macro:
//
//   class HelloSubject : public syncpod::testkit::Subject { ... };
//   SYNCPOD_CONFORMANCE_TESTS(HelloSubject)
//
// which defines the tests HelloSubjectConformance.ManifestIsValid, .FullFetchesAgree, ... .
// Each test builds a new Subject and calls prepare() first, so every test starts from an empty
// foreign system. Tests of capabilities the manifest does not list are skipped.
//
// docs/plugin-authoring.md lists the tests and what each requires.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "syncpod/abi.h"
#include "syncpod/sdk/json_schema.hpp"
#include "syncpod/sdk/manifest_check.hpp"
#include "syncpod/sdk/model.hpp"
#include "syncpod/testkit/plugin_handle.hpp"

namespace syncpod::testkit {

/// A record's key: its key fields' texts, in key-field order (see syncpod::keyOf).
using Key = std::vector<std::string>;

/// What the suite tests: a plugin file, configs for it, and the data to write through it. The
/// suite makes a new Subject for every test and destroys it after the test, so a Subject may
/// own per-test resources (a ScratchDirectory, a database schema) and release them in its
/// destructor.
class Subject {
 public:
  virtual ~Subject() = default;

  /// The plugin file (.so) to test.
  virtual std::string pluginPath() const = 0;

  /// Resets the foreign system to empty (a fresh scratch directory, truncated tables). Runs
  /// first in every test, before the plugin is loaded and any other member is called.
  virtual void prepare() {}

  /// A config that open and check accept, naming the system prepare() reset.
  virtual Json goodConfig() const = 0;
  /// A config that open must refuse with SYNCPOD_INVALID: a value the schema rejects or one
  /// the connector's constructor refuses.
  virtual Json badConfig() const = 0;
  /// Secrets the host hands out through host->secret, by name.
  virtual std::map<std::string, std::string> secrets() const { return {}; }

  /// The stream to test and the fields of its key.
  virtual std::string stream() const = 0;
  virtual std::vector<std::string> keyFields() const = 0;

  /// Creates (only) that fill the empty system: at least two records, with distinct keys. Must
  /// return the same changes every time it is called (so must secondChanges).
  virtual std::vector<Change> seedChanges() const = 0;
  /// Changes to the seeded records — updates, creates and deletes — each of which changes
  /// something (so that committing them yields "applied" for every one).
  virtual std::vector<Change> secondChanges() const = 0;

  /// A key that no record has, for the fetch by keys test. The default uses
  /// "syncpod-testkit-missing" for every key field; override it when keys have a format (an
  /// integer column, a UUID).
  virtual Key missingKey() const { return Key(keyFields().size(), "syncpod-testkit-missing"); }

  /// Writes the seed records into the system without the plugin. Only called for a plugin
  /// whose manifest cannot create records (a read-only connector); the default throws.
  virtual void seedDirectly() {
    throw std::logic_error(
        "the plugin cannot create records, so the Subject must override seedDirectly()");
  }
};

/// The checks of the suite, one method per test. ConformanceTest runs them as GoogleTest tests;
/// they may also be called directly (setUp first, tearDown last). Failures are reported with
/// GoogleTest assertions; capabilities the manifest does not list make a check GTEST_SKIP.
class Conformance {
 public:
  /// Batch size of every fetch: small, so that even a small seed needs several batches.
  static constexpr std::size_t kBatchSize = 2;

  explicit Conformance(std::unique_ptr<Subject> subject) : subject_(std::move(subject)) {}

  /// Prepares the subject, checks that it is usable and loads the plugin.
  void setUp() {
    try {
      subject_->prepare();
    } catch (const std::exception& error) {
      FAIL() << "Subject::prepare() threw: " << error.what();
    }
    ASSERT_NO_FATAL_FAILURE(checkSubject());
    try {
      loadPlugin();
    } catch (const std::exception& error) {
      FAIL() << error.what();
    }
    manifest_json_ = plugin_->manifestJson();
    if (!manifest_json_.is_discarded() && manifestProblems(manifest_json_).empty()) {
      manifest_ = manifestFromJson(manifest_json_);
    }
  }

  /// Checks what applies to every test: no secret leaked into a log line or failure message,
  /// and no host function was called outside a plugin call.
  void tearDown() {
    if (plugin_) expectNothingLeaked(plugin_->host());
  }

  Subject& subject() { return *subject_; }
  /// The plugin under test (loaded by setUp).
  PluginHandle& plugin() { return *plugin_; }

  /// The manifest is a JSON object without problems (manifestProblems), of this ABI major, its
  /// "abi" is the table's version, and it lists the tested stream.
  void manifestIsValid() {
    const auto& table = plugin_->table();
    EXPECT_EQ(table.abi_major, static_cast<std::uint32_t>(SYNCPOD_ABI_MAJOR))
        << "the plugin table's ABI major";
    EXPECT_LE(table.abi_minor, static_cast<std::uint32_t>(SYNCPOD_ABI_MINOR))
        << "the plugin table's ABI minor is newer than this kit's";
    ASSERT_FALSE(manifest_json_.is_discarded())
        << "the manifest is not valid JSON: " << plugin_->manifestText().substr(0, 200);
    const auto problems = manifestProblems(manifest_json_);
    EXPECT_TRUE(problems.empty()) << "manifest problems: " << join(problems);
    if (const auto abi = manifest_json_.find("abi");
        abi != manifest_json_.end() && abi->is_string()) {
      EXPECT_EQ(abi->get<std::string>(),
                std::to_string(table.abi_major) + "." + std::to_string(table.abi_minor))
          << "the manifest's \"abi\" must be the version of the plugin table";
    }
    if (manifest_ && !manifest_->capabilities.configurable_streams) {
      bool listed = false;
      for (const auto& stream : manifest_->streams)
        listed = listed || stream.name == subject_->stream();
      EXPECT_TRUE(listed) << "the manifest lists no stream \"" << subject_->stream()
                          << "\" (and its streams are not configurable)";
    }
  }

  /// config_schema is usable (checkSchema), describes an object, declares every property it
  /// requires, and accepts the good config.
  void configSchemaIsValid() {
    ASSERT_TRUE(manifest_json_.is_object() && manifest_json_.contains("config_schema"))
        << "the manifest has no config_schema";
    const Json& schema = manifest_json_.at("config_schema");
    const auto problems = json_schema::checkSchema(schema);
    std::vector<std::string> texts;
    for (const auto& problem : problems) texts.push_back(problem.text());
    EXPECT_TRUE(problems.empty()) << "config_schema problems: " << join(texts);
    EXPECT_EQ(schema.value("type", Json()), Json("object"))
        << "config_schema must say \"type\": \"object\"";
    if (const auto required = schema.find("required");
        required != schema.end() && required->is_array()) {
      const auto properties = schema.find("properties");
      for (const auto& name : *required) {
        EXPECT_TRUE(properties != schema.end() && name.is_string() &&
                    properties->contains(name.get<std::string>()))
            << "config_schema requires " << name.dump()
            << " but \"properties\" does not declare it";
      }
    }
    std::vector<std::string> violations;
    for (const auto& violation : json_schema::validate(schema, subject_->goodConfig())) {
      violations.push_back(violation.text());
    }
    EXPECT_TRUE(violations.empty()) << "the good config breaks config_schema: " << join(violations);
  }

  /// open and check accept the good config.
  void openAndCheckAcceptGoodConfig() {
    auto opened = plugin_->open(subject_->goodConfig());
    ASSERT_TRUE(opened.ok()) << "open(good config): " << opened.describe();
    const auto checked = opened.instance.check();
    EXPECT_TRUE(checked.ok()) << "check: " << checked.describe();
  }

  /// open refuses the bad config with SYNCPOD_INVALID and a message.
  void openRejectsBadConfig() {
    const auto opened = plugin_->open(subject_->badConfig());
    EXPECT_EQ(opened.status, SYNCPOD_INVALID)
        << "open(bad config) must fail with SYNCPOD_INVALID; it returned " << opened.describe();
    EXPECT_FALSE(opened.message.empty()) << "open(bad config) gave no message";
    EXPECT_TRUE(opened.problems.empty()) << join(opened.problems);
  }

  /// Documents that are not JSON, or not of the documented shape, fail with SYNCPOD_INVALID
  /// and a message; nothing crashes.
  void malformedDocumentsAreInvalid() {
    expectInvalid(plugin_->openRaw("{\"unterminated"), "open with a config that is not JSON");
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    expectInvalid(instance.fetchRaw("[1, 2"), "fetch with a request that is not JSON");
    expectInvalid(
        instance.fetchRaw(Json{{"stream", subject_->stream()}, {"mode", "sideways"}}.dump()),
        "fetch with mode \"sideways\"");
    expectInvalid(instance.fetchRaw(Json{{"mode", "full"}}.dump()), "fetch without a stream");
    expectInvalid(instance.applyRaw("{"), "apply with a changeset that is not JSON");
    const Json bad_op = {{"stream", subject_->stream()},
                         {"key_fields", subject_->keyFields()},
                         {"mode", "plan"},
                         {"changes", {{{"op", "explode"}, {"key", missingKey()}}}}};
    expectInvalid(instance.applyRaw(bad_op.dump()), "apply with a change whose op is \"explode\"");
    if (plugin_->hasCustomDiff()) {
      expectInvalid(instance.diffRaw("nonsense"), "diff with pairs that are not JSON");
    }
  }

  /// A plugin whose streams are fixed refuses a stream it does not have, with SYNCPOD_INVALID.
  void unknownStreamIsInvalid() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (manifest_->capabilities.configurable_streams) {
      GTEST_SKIP() << "the manifest says streams are configurable";
    }
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    auto request = fetchRequest(FetchMode::Full);
    request.stream = "syncpod-testkit-no-such-stream";
    expectInvalid(instance.fetch(request), "fetch of stream \"" + request.stream + "\"");
    if (!manifest_->capabilities.apply_ops.empty()) {
      Changeset changeset = changesetOf(subject_->seedChanges());
      changeset.stream = request.stream;
      expectInvalid(instance.apply(changeset, ApplyMode::Plan),
                    "apply (plan) to stream \"" + request.stream + "\"");
    }
  }

  /// After seeding, a full fetch returns exactly the seeded records (compared with the
  /// plugin's diff, so a system may add fields or normalise values the way its diff allows).
  void seededRecordsAreFetched() {
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    FetchOutcome fetched;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Full), fetched, "full fetch"));
    expectState(instance, live(fetched.records, "full fetch"), seedState(),
                "full fetch after seeding");
  }

  /// Two full fetches, from two instances, return the same records (in any order).
  void fullFetchesAgree() {
    Instance first;
    ASSERT_NO_FATAL_FAILURE(open(first));
    ASSERT_NO_FATAL_FAILURE(seed(first));
    FetchOutcome one;
    ASSERT_NO_FATAL_FAILURE(fetch(first, fetchRequest(FetchMode::Full), one, "first full fetch"));
    Instance second;
    ASSERT_NO_FATAL_FAILURE(open(second));
    FetchOutcome two;
    ASSERT_NO_FATAL_FAILURE(fetch(second, fetchRequest(FetchMode::Full), two, "second full fetch"));
    expectSameRecords(one.records, two.records, "the second full fetch");
  }

  /// An incremental fetch without a cursor returns every record and ends with a cursor; an
  /// incremental fetch from that cursor returns nothing (nothing changed since).
  void incrementalFetchEndsWithCursor() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!supports(FetchMode::Incremental))
      GTEST_SKIP() << "the manifest lists no incremental fetch";
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    FetchOutcome scratch;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Incremental), scratch,
                                  "incremental fetch without a cursor"));
    expectState(instance, live(scratch.records, "incremental fetch"), seedState(),
                "incremental fetch without a cursor");
    ASSERT_TRUE(scratch.cursor) << "an incremental fetch must end with a cursor";
    FetchOutcome again;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Incremental, scratch.cursor),
                                  again, "incremental fetch from its cursor"));
    EXPECT_TRUE(again.records.empty())
        << "nothing changed since cursor " << *scratch.cursor << ", yet the fetch from it returned "
        << keysOf(again.records);
  }

  /// After the second changeset, an incremental fetch from the earlier cursor returns every
  /// created and updated record as it now is, reports the deleted ones as tombstones if the
  /// manifest promises deletion detection (and never as live records), and ends with a cursor
  /// from which nothing is left to fetch.
  void incrementalFetchFromCursorSeesLaterChanges() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!supports(FetchMode::Incremental))
      GTEST_SKIP() << "the manifest lists no incremental fetch";
    if (!canApply(subject_->secondChanges()))
      GTEST_SKIP() << "the plugin cannot apply the second changeset";
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    FetchOutcome before;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Incremental), before,
                                  "incremental fetch without a cursor"));
    ASSERT_TRUE(before.cursor) << "an incremental fetch must end with a cursor";
    ASSERT_NO_FATAL_FAILURE(commitSecond(instance));

    FetchOutcome changes;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Incremental, before.cursor),
                                  changes, "incremental fetch from the cursor"));
    const auto expected = secondState();
    std::map<Key, Record> live_records;
    std::set<Key> tombstones;
    for (const auto& record : changes.records) {
      const Key key = keyOf(record.fields, subject_->keyFields());
      if (record.deleted) {
        tombstones.insert(key);
      } else if (!live_records.emplace(key, record).second) {
        ADD_FAILURE() << "the incremental fetch returned key " << detail::keyText(key) << " twice";
      }
    }
    for (const auto& change : subject_->secondChanges()) {
      const std::string key = detail::keyText(change.key);
      if (change.op == ChangeOp::Delete) {
        EXPECT_EQ(live_records.count(change.key), 0u)
            << "the incremental fetch returned deleted key " << key << " as a live record";
        if (manifest_->capabilities.deletion_detection) {
          EXPECT_EQ(tombstones.count(change.key), 1u)
              << "the manifest promises deletion detection, but the incremental fetch reported no "
                 "deletion of key "
              << key;
        }
      } else {
        EXPECT_EQ(live_records.count(change.key), 1u)
            << "the incremental fetch from the cursor misses key " << key << ", "
            << (change.op == ChangeOp::Create ? "created" : "updated") << " after the cursor";
      }
    }
    for (const auto& key : tombstones) {
      EXPECT_EQ(expected.count(key), 0u)
          << "the incremental fetch reported key " << detail::keyText(key) << " deleted; it exists";
    }
    std::map<Key, Record> present;
    for (const auto& [key, record] : live_records) {
      if (expected.count(key) != 0) present.emplace(key, record);
    }
    expectFields(instance, present, expected, "incremental fetch from the cursor");
    for (const auto& [key, record] : live_records) {
      EXPECT_EQ(expected.count(key), 1u) << "the incremental fetch returned key "
                                         << detail::keyText(key) << ", which does not exist";
    }
    ASSERT_TRUE(changes.cursor) << "an incremental fetch must end with a cursor";
    FetchOutcome after;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, fetchRequest(FetchMode::Incremental, changes.cursor),
                                  after, "incremental fetch from the last cursor"));
    EXPECT_TRUE(after.records.empty())
        << "nothing changed since cursor " << *changes.cursor << ", yet the fetch from it returned "
        << keysOf(after.records);
  }

  /// Committing a changeset a second time changes nothing: every result is "noop".
  void applyTwiceIsNoop() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!canApply(subject_->seedChanges())) GTEST_SKIP() << "the plugin cannot create records";
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    const auto seed_again = instance.apply(changesetOf(subject_->seedChanges()), ApplyMode::Commit);
    expectStatuses(seed_again, subject_->seedChanges(), ChangeStatus::Noop,
                   "the seed changeset, committed again");
    if (!canApply(subject_->secondChanges())) return;
    ASSERT_NO_FATAL_FAILURE(commitSecond(instance));
    const auto second_again =
        instance.apply(changesetOf(subject_->secondChanges()), ApplyMode::Commit);
    expectStatuses(second_again, subject_->secondChanges(), ChangeStatus::Noop,
                   "the second changeset, committed again");
  }

  /// What apply committed is there for a new instance: a full fetch shows the seed with the
  /// second changeset applied.
  void committedChangesPersist() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!canApply(subject_->secondChanges()))
      GTEST_SKIP() << "the plugin cannot apply the second changeset";
    {
      Instance writer;
      ASSERT_NO_FATAL_FAILURE(open(writer));
      ASSERT_NO_FATAL_FAILURE(seed(writer));
      ASSERT_NO_FATAL_FAILURE(commitSecond(writer));
    }
    Instance reader;
    ASSERT_NO_FATAL_FAILURE(open(reader));
    FetchOutcome fetched;
    ASSERT_NO_FATAL_FAILURE(fetch(reader, fetchRequest(FetchMode::Full), fetched, "full fetch"));
    expectState(reader, live(fetched.records, "full fetch"), secondState(),
                "full fetch after the second changeset");
  }

  /// Plan mode writes nothing (a full fetch before and after is the same) and returns one result
  /// per change, each "applied": what a commit would do.
  void planModeWritesNothing() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!canApply(subject_->seedChanges())) GTEST_SKIP() << "the plugin cannot create records";
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    const auto planned_seed = instance.apply(changesetOf(subject_->seedChanges()), ApplyMode::Plan);
    expectStatuses(planned_seed, subject_->seedChanges(), ChangeStatus::Applied,
                   "the seed changeset, planned on the empty system");
    FetchOutcome empty;
    ASSERT_NO_FATAL_FAILURE(
        fetch(instance, fetchRequest(FetchMode::Full), empty, "full fetch after plan"));
    EXPECT_TRUE(empty.records.empty())
        << "plan mode wrote to the empty system: a full fetch returned " << keysOf(empty.records);
    if (!canApply(subject_->secondChanges())) return;
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    FetchOutcome before;
    ASSERT_NO_FATAL_FAILURE(
        fetch(instance, fetchRequest(FetchMode::Full), before, "full fetch before plan"));
    const auto planned = instance.apply(changesetOf(subject_->secondChanges()), ApplyMode::Plan);
    expectStatuses(planned, subject_->secondChanges(), ChangeStatus::Applied,
                   "the second changeset, planned");
    FetchOutcome after;
    ASSERT_NO_FATAL_FAILURE(
        fetch(instance, fetchRequest(FetchMode::Full), after, "full fetch after plan"));
    expectSameRecords(before.records, after.records,
                      "the full fetch after planning the second changeset");
  }

  /// A fetch by keys returns exactly the existing records it names, once each, and skips a key
  /// that no record has.
  void fetchByKeysReturnsExactlyThem() {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!supports(FetchMode::Keys)) GTEST_SKIP() << "the manifest lists no fetch by keys";
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    const auto seeds = subject_->seedChanges();
    const Key& first = seeds.front().key;
    const Key& last = seeds.back().key;
    auto request = fetchRequest(FetchMode::Keys);
    request.keys = {first, missingKey(), last};
    FetchOutcome fetched;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, request, fetched, "fetch by keys"));
    const auto all = seedState();
    std::map<Key, Json> wanted = {{first, all.at(first)}, {last, all.at(last)}};
    expectState(instance, live(fetched.records, "fetch by keys"), wanted, "fetch by keys");
  }

  /// A fetch stops with SYNCPOD_CANCELLED once host->cancelled says so (from the start, and
  /// after the first batch), and the instance still works afterwards.
  void fetchStopsWhenCancelled() {
    Instance instance;
    ASSERT_NO_FATAL_FAILURE(open(instance));
    ASSERT_NO_FATAL_FAILURE(seed(instance));
    auto request = fetchRequest(FetchMode::Full);
    request.batch_size = 1;
    auto& host = plugin_->host();
    host.setCancelled(true);
    const auto cancelled = instance.fetch(request);
    host.clearCancellation();
    EXPECT_EQ(cancelled.status, SYNCPOD_CANCELLED)
        << "a fetch while the host says cancelled must end with SYNCPOD_CANCELLED; it returned "
        << cancelled.describe();
    EXPECT_TRUE(cancelled.problems.empty()) << join(cancelled.problems);
    host.cancelAfterDocuments(1);
    const auto stopped = instance.fetch(request);
    host.clearCancellation();
    EXPECT_EQ(stopped.status, SYNCPOD_CANCELLED)
        << "a fetch cancelled after its first batch must end with SYNCPOD_CANCELLED; it returned "
        << stopped.describe() << " after " << stopped.batches << " batches";
    FetchOutcome fetched;
    ASSERT_NO_FATAL_FAILURE(fetch(instance, request, fetched, "full fetch after a cancelled one"));
    EXPECT_EQ(fetched.records.size(), subject_->seedChanges().size())
        << "records of a full fetch after a cancelled one";
  }

  /// The library unloads (dlclose) and loads again, with the same manifest, and works then.
  void unloadsAndReloads() {
    const std::string manifest = plugin_->manifestText();
    {
      auto opened = plugin_->open(subject_->goodConfig());
      ASSERT_TRUE(opened.ok()) << "open(good config): " << opened.describe();
    }
    expectNothingLeaked(plugin_->host());
    bool closed = false;
    try {
      closed = plugin_->unload();
    } catch (const std::exception& error) {
      FAIL() << error.what();
    }
    EXPECT_TRUE(closed) << "unload must dlclose the library once no instance is open";
    if (PluginHandle::isLoaded(subject_->pluginPath())) {
      // Not a failure: the host works either way, but it cannot reload a changed file in place.
      std::cerr << "[ WARNING  ] " << subject_->pluginPath()
                << " stays mapped after dlclose: STB_GNU_UNIQUE symbols (build with "
                   "-fno-gnu-unique, as syncpod_add_plugin does) or thread_local objects with "
                   "destructors keep a library loaded\n";
    }
    try {
      loadPlugin();
    } catch (const std::exception& error) {
      FAIL() << "reloading: " << error.what();
    }
    EXPECT_EQ(plugin_->manifestText(), manifest) << "the manifest differs after reloading";
    auto opened = plugin_->open(subject_->goodConfig());
    ASSERT_TRUE(opened.ok()) << "open(good config) after reloading: " << opened.describe();
    const auto checked = opened.instance.check();
    EXPECT_TRUE(checked.ok()) << "check after reloading: " << checked.describe();
  }

 private:
  static std::string join(const std::vector<std::string>& items) {
    std::string text;
    for (std::size_t i = 0; i < items.size(); ++i) text += (i == 0 ? "" : "; ") + items[i];
    return text;
  }

  void loadPlugin() {
    plugin_.reset();
    plugin_.emplace(PluginHandle::load(subject_->pluginPath()));
    for (const auto& [name, value] : subject_->secrets()) plugin_->host().setSecret(name, value);
  }

  void checkSubject() {
    const auto key_fields = subject_->keyFields();
    ASSERT_FALSE(key_fields.empty()) << "Subject::keyFields() is empty";
    const auto seeds = subject_->seedChanges();
    ASSERT_GE(seeds.size(), 2u) << "Subject::seedChanges() must create at least two records";
    std::set<Key> keys;
    for (const auto& change : seeds) {
      ASSERT_TRUE(change.op == ChangeOp::Create) << "Subject::seedChanges() may only create";
      ASSERT_EQ(change.key.size(), key_fields.size())
          << "a seed key " << detail::keyText(change.key) << " must have one text per key field";
      ASSERT_TRUE(keys.insert(change.key).second)
          << "Subject::seedChanges() creates key " << detail::keyText(change.key) << " twice";
    }
    const auto second = subject_->secondChanges();
    ASSERT_FALSE(second.empty()) << "Subject::secondChanges() is empty";
    for (const auto& change : second) {
      ASSERT_EQ(change.key.size(), key_fields.size())
          << "a second-changeset key " << detail::keyText(change.key)
          << " must have one text per key field";
    }
  }

  void requireManifest() {
    ASSERT_TRUE(manifest_.has_value())
        << "the manifest is invalid (see ManifestIsValid): "
        << (manifest_json_.is_discarded() ? std::string("not JSON")
                                          : join(manifestProblems(manifest_json_)));
  }

  bool supports(FetchMode mode) const {
    const auto& modes = manifest_->capabilities.fetch_modes;
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  }

  bool canApply(const std::vector<Change>& changes) const {
    if (!manifest_) return false;
    const auto& ops = manifest_->capabilities.apply_ops;
    for (const auto& change : changes) {
      if (std::find(ops.begin(), ops.end(), change.op) == ops.end()) return false;
    }
    return true;
  }

  Key missingKey() const { return subject_->missingKey(); }

  FetchRequest fetchRequest(FetchMode mode,
                            std::optional<std::string> cursor = std::nullopt) const {
    FetchRequest request;
    request.stream = subject_->stream();
    request.mode = mode;
    request.cursor = std::move(cursor);
    request.key_fields = subject_->keyFields();
    request.batch_size = kBatchSize;
    return request;
  }

  Changeset changesetOf(std::vector<Change> changes) const {
    return {subject_->stream(), subject_->keyFields(), std::move(changes)};
  }

  void open(Instance& instance) {
    auto opened = plugin_->open(subject_->goodConfig());
    ASSERT_TRUE(opened.ok()) << "open(good config): " << opened.describe();
    instance = std::move(opened.instance);
  }

  /// Puts the seed records into the empty system: through apply (every result "applied"), or
  /// with Subject::seedDirectly for a plugin that cannot create.
  void seed(Instance& instance) {
    ASSERT_NO_FATAL_FAILURE(requireManifest());
    if (!canApply(subject_->seedChanges())) {
      try {
        subject_->seedDirectly();
      } catch (const std::exception& error) {
        FAIL() << "Subject::seedDirectly() threw: " << error.what();
      }
      return;
    }
    const auto applied = instance.apply(changesetOf(subject_->seedChanges()), ApplyMode::Commit);
    ASSERT_NO_FATAL_FAILURE(expectStatuses(applied, subject_->seedChanges(), ChangeStatus::Applied,
                                           "the seed changeset, committed to the empty system"));
  }

  void commitSecond(Instance& instance) {
    const auto applied = instance.apply(changesetOf(subject_->secondChanges()), ApplyMode::Commit);
    ASSERT_NO_FATAL_FAILURE(expectStatuses(applied, subject_->secondChanges(),
                                           ChangeStatus::Applied,
                                           "the second changeset, committed"));
  }

  /// The call succeeded with one result per change, each `expected`; fatal if the call failed.
  static void expectStatuses(const ApplyOutcome& outcome, const std::vector<Change>& changes,
                             ChangeStatus expected, const std::string& what) {
    ASSERT_TRUE(outcome.ok()) << what << ": " << outcome.describe();
    ASSERT_EQ(outcome.results.size(), changes.size()) << what << ": results";
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& result = outcome.results[i];
      EXPECT_TRUE(result.status == expected)
          << what << ": change " << i << " (" << toString(changes[i].op) << " "
          << detail::keyText(changes[i].key) << ") must be " << toString(expected) << ", it is "
          << toString(result.status) << (result.message.empty() ? "" : ": " + result.message);
    }
  }

  static void expectInvalid(const CallOutcome& outcome, const std::string& what) {
    EXPECT_EQ(outcome.status, SYNCPOD_INVALID)
        << what << " must fail with SYNCPOD_INVALID; it returned " << outcome.describe();
    EXPECT_FALSE(outcome.message.empty()) << what << " gave no message";
    EXPECT_TRUE(outcome.problems.empty()) << what << ": " << join(outcome.problems);
  }

  static void fetch(Instance& instance, const FetchRequest& request, FetchOutcome& out,
                    const std::string& what) {
    out = instance.fetch(request);
    ASSERT_TRUE(out.ok()) << what << ": " << out.describe();
  }

  std::string keysOf(const std::vector<Record>& records) const {
    std::string text;
    for (const auto& record : records) {
      text +=
          (text.empty() ? "" : ", ") + detail::keyText(keyOf(record.fields, subject_->keyFields()));
      if (record.deleted) text += " (deleted)";
    }
    return text.empty() ? "nothing" : text;
  }

  /// The records by key; a tombstone or a key seen twice is a failure.
  std::map<Key, Record> live(const std::vector<Record>& records, const std::string& what) const {
    std::map<Key, Record> by_key;
    for (const auto& record : records) {
      const Key key = keyOf(record.fields, subject_->keyFields());
      if (record.deleted) {
        ADD_FAILURE() << what << " returned a deletion of key " << detail::keyText(key)
                      << "; only an incremental fetch from a cursor may";
      } else if (!by_key.emplace(key, record).second) {
        ADD_FAILURE() << what << " returned key " << detail::keyText(key) << " twice";
      }
    }
    return by_key;
  }

  static void applyChanges(std::map<Key, Json>& state, const std::vector<Change>& changes) {
    for (const auto& change : changes) {
      switch (change.op) {
        case ChangeOp::Create: state[change.key] = change.fields; break;
        case ChangeOp::Update: {
          const auto found = state.find(change.key);
          if (found != state.end()) found->second.update(change.fields);
          break;
        }
        case ChangeOp::Delete: state.erase(change.key); break;
      }
    }
  }

  std::map<Key, Json> seedState() const {
    std::map<Key, Json> state;
    applyChanges(state, subject_->seedChanges());
    return state;
  }

  std::map<Key, Json> secondState() const {
    auto state = seedState();
    applyChanges(state, subject_->secondChanges());
    return state;
  }

  /// `actual` holds exactly the keys of `expected`, and the plugin's diff finds no field of an
  /// expected record that differs from the fetched one.
  void expectState(Instance& instance, const std::map<Key, Record>& actual,
                   const std::map<Key, Json>& expected, const std::string& what) {
    for (const auto& [key, fields] : expected) {
      EXPECT_EQ(actual.count(key), 1u) << what << ": key " << detail::keyText(key) << " is missing";
    }
    for (const auto& [key, record] : actual) {
      EXPECT_EQ(expected.count(key), 1u)
          << what << ": key " << detail::keyText(key) << " should not be there";
    }
    std::map<Key, Record> present;
    for (const auto& [key, record] : actual) {
      if (expected.count(key) != 0) present.emplace(key, record);
    }
    expectFields(instance, present, expected, what);
  }

  void expectFields(Instance& instance, const std::map<Key, Record>& actual,
                    const std::map<Key, Json>& expected, const std::string& what) {
    std::vector<Key> keys;
    std::vector<std::pair<Json, Json>> pairs;
    for (const auto& [key, record] : actual) {
      keys.push_back(key);
      pairs.emplace_back(record.fields, expected.at(key));
    }
    if (pairs.empty()) return;
    const auto compared = instance.diff(subject_->stream(), pairs);
    ASSERT_TRUE(compared.ok()) << what << ": diff: " << compared.describe();
    ASSERT_EQ(compared.changed.size(), pairs.size()) << what << ": diff results";
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      EXPECT_TRUE(compared.changed[i].empty())
          << what << ": record " << detail::keyText(keys[i]) << " differs in "
          << Json(compared.changed[i]).dump() << "; expected " << pairs[i].second.dump()
          << ", fetched " << pairs[i].first.dump();
    }
  }

  void expectSameRecords(const std::vector<Record>& before, const std::vector<Record>& after,
                         const std::string& what) const {
    const auto index = [&](const std::vector<Record>& records) {
      std::map<Key, Json> by_key;
      for (const auto& record : records)
        by_key[keyOf(record.fields, subject_->keyFields())] = toJson(record);
      return by_key;
    };
    EXPECT_EQ(before.size(), after.size())
        << what << " returned " << after.size() << " records instead of " << before.size();
    const auto one = index(before);
    const auto two = index(after);
    for (const auto& [key, record] : one) {
      const auto found = two.find(key);
      if (found == two.end()) {
        ADD_FAILURE() << what << " lacks key " << detail::keyText(key);
      } else {
        EXPECT_TRUE(found->second == record)
            << what << " differs for key " << detail::keyText(key) << ": " << found->second.dump()
            << " instead of " << record.dump();
      }
    }
    for (const auto& [key, record] : two) {
      EXPECT_EQ(one.count(key), 1u) << what << " has an extra key " << detail::keyText(key);
    }
  }

  /// Every secret the plugin could see: values of the configs' "writeOnly" properties and of
  /// Subject::secrets(), each with where it came from. Very short values are left out: they
  /// would match by accident.
  std::vector<std::pair<std::string, std::string>> secretValues() const {
    std::vector<std::pair<std::string, std::string>> values;
    const auto add = [&](std::string where, const Json& value) {
      if (value.is_string() && value.get_ref<const std::string&>().size() >= 4) {
        values.emplace_back(std::move(where), value.get<std::string>());
      }
    };
    if (manifest_) {
      for (const auto& [name, config] :
           {std::pair<const char*, Json>{"good config", subject_->goodConfig()},
            std::pair<const char*, Json>{"bad config", subject_->badConfig()}}) {
        for (const auto& path : json_schema::secretPointers(manifest_->config_schema, config)) {
          add(std::string(name) + " " + path, config.at(Json::json_pointer(path)));
        }
      }
    }
    for (const auto& [name, value] : subject_->secrets()) add("secret \"" + name + "\"", value);
    return values;
  }

  void expectNothingLeaked(const TestHost& host) const {
    const auto secrets = secretValues();
    for (const auto& [where, value] : secrets) {
      for (const auto& line : host.logs()) {
        EXPECT_EQ(line.message.find(value), std::string::npos)
            << "a log line shows the value of " << where << " (secrets must never be logged)";
      }
      for (const auto& message : host.failMessages()) {
        EXPECT_EQ(message.find(value), std::string::npos)
            << "a failure message shows the value of " << where
            << " (secrets must never be in errors)";
      }
    }
    EXPECT_TRUE(host.misuses().empty())
        << "host functions used outside a plugin call: " << join(host.misuses());
  }

  // Declared first, destroyed last: the subject's foreign system outlives the plugin.
  std::unique_ptr<Subject> subject_;
  std::optional<PluginHandle> plugin_;
  Json manifest_json_;
  std::optional<Manifest> manifest_;
};

/// The GoogleTest fixture behind SYNCPOD_CONFORMANCE_TESTS: a Conformance for a new Subject per
/// test.
class ConformanceTest : public ::testing::Test {
 protected:
  virtual std::unique_ptr<Subject> makeSubject() = 0;

  void SetUp() override {
    conformance_.emplace(makeSubject());
    conformance_->setUp();
  }
  void TearDown() override {
    if (conformance_) conformance_->tearDown();
    conformance_.reset();
  }

  Conformance& conformance() { return *conformance_; }

 private:
  std::optional<Conformance> conformance_;
};

}  // namespace syncpod::testkit

/// Defines the conformance tests for SubjectClass (an unqualified name of a default-constructible
/// class derived from syncpod::testkit::Subject, visible where the macro is used), as the test
/// suite SubjectClass##Conformance. Use it once per Subject, at namespace scope of a test file.
#define SYNCPOD_CONFORMANCE_TESTS(SubjectClass)                                   \
  class SubjectClass##Conformance : public ::syncpod::testkit::ConformanceTest {  \
   protected:                                                                     \
    std::unique_ptr<::syncpod::testkit::Subject> makeSubject() override {         \
      return std::make_unique<SubjectClass>();                                    \
    }                                                                             \
  };                                                                              \
  TEST_F(SubjectClass##Conformance, ManifestIsValid) {                            \
    conformance().manifestIsValid();                                              \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, ConfigSchemaIsValid) {                        \
    conformance().configSchemaIsValid();                                          \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, OpenAndCheckAcceptGoodConfig) {               \
    conformance().openAndCheckAcceptGoodConfig();                                 \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, OpenRejectsBadConfig) {                       \
    conformance().openRejectsBadConfig();                                         \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, MalformedDocumentsAreInvalid) {               \
    conformance().malformedDocumentsAreInvalid();                                 \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, UnknownStreamIsInvalid) {                     \
    conformance().unknownStreamIsInvalid();                                       \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, SeededRecordsAreFetched) {                    \
    conformance().seededRecordsAreFetched();                                      \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, FullFetchesAgree) {                           \
    conformance().fullFetchesAgree();                                             \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, IncrementalFetchEndsWithCursor) {             \
    conformance().incrementalFetchEndsWithCursor();                               \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, IncrementalFetchFromCursorSeesLaterChanges) { \
    conformance().incrementalFetchFromCursorSeesLaterChanges();                   \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, ApplyTwiceIsNoop) {                           \
    conformance().applyTwiceIsNoop();                                             \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, CommittedChangesPersist) {                    \
    conformance().committedChangesPersist();                                      \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, PlanModeWritesNothing) {                      \
    conformance().planModeWritesNothing();                                        \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, FetchByKeysReturnsExactlyThem) {              \
    conformance().fetchByKeysReturnsExactlyThem();                                \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, FetchStopsWhenCancelled) {                    \
    conformance().fetchStopsWhenCancelled();                                      \
  }                                                                               \
  TEST_F(SubjectClass##Conformance, UnloadsAndReloads) {                          \
    conformance().unloadsAndReloads();                                            \
  }                                                                               \
  static_assert(true, "")
