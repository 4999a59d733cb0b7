// Tests of what is particular to the jsonl connector, through its real shared library and the C
// ABI (the SDK test kit's PluginHandle). jsonl_conformance_test.cpp runs the SDK's conformance
// suite against it.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <syncpod/sdk/json_schema.hpp>
#include <syncpod/sdk/manifest_check.hpp>
#include <syncpod/testkit/plugin_handle.hpp>
#include <syncpod/testkit/scratch_directory.hpp>
#include <sys/stat.h>

namespace syncpod::plugins::jsonl {
namespace {

using testkit::ApplyOutcome;
using testkit::Batch;
using testkit::FetchOutcome;
using testkit::Instance;
using testkit::PluginHandle;
using testkit::ScratchDirectory;

namespace fs = std::filesystem;

/// The fields of every record, in order.
std::vector<Json> fieldsOf(const std::vector<Record>& records) {
  std::vector<Json> fields;
  for (const auto& record : records) fields.push_back(record.fields);
  return fields;
}

/// Each result's status as its ABI name ("applied", "noop", ...).
std::vector<std::string> statuses(const ApplyOutcome& outcome) {
  std::vector<std::string> names;
  for (const auto& result : outcome.results) names.emplace_back(toString(result.status));
  return names;
}

class JsonlTest : public ::testing::Test {
 protected:
  Json config(Json streams = {{"users", {{"key_fields", {"id"}}}}}) const {
    return {{"directory", dir_.string()}, {"streams", std::move(streams)}};
  }

  /// Opens an instance with `cfg`; the one opened before is closed.
  void open(const Json& cfg) {
    auto opened = plugin_.open(cfg);
    ASSERT_TRUE(opened.ok()) << opened.describe();
    instance_ = std::move(opened.instance);
  }

  void write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(dir_ / name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  static FetchRequest fetchRequest(const std::string& stream, FetchMode mode,
                                   std::size_t batch_size = 100) {
    FetchRequest request;
    request.stream = stream;
    request.mode = mode;
    request.batch_size = batch_size;
    return request;
  }

  FetchOutcome fetchAll(const std::string& stream = "users") {
    auto result = instance_.fetch(fetchRequest(stream, FetchMode::Full));
    EXPECT_TRUE(result.ok()) << result.describe();
    return result;
  }

  /// A fetch that keeps every batch as the plugin emitted it.
  std::vector<Batch> fetchBatches(const FetchRequest& request) {
    std::vector<Batch> batches;
    const auto result = instance_.fetch(request, [&](Batch&& batch) {
      batches.push_back(std::move(batch));
      return true;
    });
    EXPECT_TRUE(result.ok()) << result.describe();
    return batches;
  }

  /// Applies a changeset written as the JSON document the host sends.
  ApplyOutcome apply(const std::string& mode, Json changes, Json key_fields = {"id"}) {
    const auto [changeset, apply_mode] = changesetFromJson({{"stream", "users"},
                                                            {"key_fields", std::move(key_fields)},
                                                            {"mode", mode},
                                                            {"changes", std::move(changes)}});
    return instance_.apply(changeset, apply_mode);
  }

  ScratchDirectory scratch_{"syncpod-jsonl"};
  fs::path dir_ = scratch_.path();
  PluginHandle plugin_ = PluginHandle::load(SYNCPOD_TESTKIT_PLUGIN_FILE);
  Instance instance_;
};

TEST_F(JsonlTest, ManifestIsValid) {
  const Json manifest = plugin_.manifestJson();
  EXPECT_TRUE(manifestProblems(manifest).empty()) << manifest.dump(2);
  EXPECT_EQ(manifest["id"], "jsonl");
  EXPECT_EQ(manifest["capabilities"]["configurable_streams"], true);
  EXPECT_EQ(manifest["capabilities"]["fetch"], Json({"full", "incremental", "keys"}));
  EXPECT_TRUE(json_schema::checkSchema(manifest["config_schema"]).empty());
}

TEST_F(JsonlTest, BadConfigIsRejectedWithWhatIsWrong) {
  auto result = plugin_.open({{"streams", Json::object()}});
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("/directory: is required"), std::string::npos) << result.message;

  result =
      plugin_.open({{"directory", dir_.string()}, {"streams", Json::object()}, {"colour", "red"}});
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("/colour: is not a known setting"), std::string::npos)
      << result.message;

  result = plugin_.open({{"directory", "relative/dir"}, {"streams", Json::object()}});
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("must be an absolute path"), std::string::npos) << result.message;

  result = plugin_.open(config({{"users", {{"file", "../escape.jsonl"}}}}));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("streams.users.file"), std::string::npos) << result.message;

  result = plugin_.open(config({{"users", {{"key_fields", Json::array()}}}}));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("/streams/users/key_fields"), std::string::npos) << result.message;

  result = plugin_.openRaw("{not json");
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
}

TEST_F(JsonlTest, FullFetchReadsEveryLineInOrder) {
  write("users.jsonl",
        "{\"id\": 1, \"name\": \"Ada\"}\n"
        "\n"
        "   \n"
        "{\"id\": 2, \"name\": \"Bob\", \"tags\": [\"x\"]}\r\n"
        "{\"id\": \"3\", \"name\": null}");  // no final newline
  open(config());
  const auto records = fieldsOf(fetchAll().records);
  ASSERT_EQ(records.size(), 3U);
  EXPECT_EQ(records[0], Json({{"id", 1}, {"name", "Ada"}}));
  EXPECT_EQ(records[1], Json({{"id", 2}, {"name", "Bob"}, {"tags", {"x"}}}));
  EXPECT_EQ(records[2], Json({{"id", "3"}, {"name", nullptr}}));
}

TEST_F(JsonlTest, FetchEmitsBatchesOfTheRequestedSize) {
  std::string content;
  for (int i = 1; i <= 7; ++i) content += "{\"id\":" + std::to_string(i) + "}\n";
  write("users.jsonl", content);
  open(config());
  // fetchBatches fails the test if a batch names another stream than the request's.
  std::vector<std::size_t> sizes;
  for (const auto& batch : fetchBatches(fetchRequest("users", FetchMode::Full, 3)))
    sizes.push_back(batch.records.size());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 1}));
}

TEST_F(JsonlTest, KeysFetchEmitsOnlyRequestedKeysAndTreatsNumbersAsText) {
  write("users.jsonl",
        "{\"id\": 1, \"name\": \"Ada\"}\n"
        "{\"id\": \"2\", \"name\": \"Bob\"}\n"
        "{\"id\": 3, \"name\": \"Cy\"}\n");
  open(config());
  auto request = fetchRequest("users", FetchMode::Keys);
  request.keys = {{"2"}, {"3"}, {"99"}};  // "3" matches the number 3, 99 is missing
  const auto result = instance_.fetch(request);
  ASSERT_TRUE(result.ok()) << result.describe();
  const auto records = fieldsOf(result.records);
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[0]["name"], "Bob");
  EXPECT_EQ(records[1]["name"], "Cy");

  request.keys = {{"1", "extra"}};
  const auto wrong = instance_.fetch(request);
  EXPECT_EQ(wrong.status, SYNCPOD_INVALID);
  EXPECT_NE(wrong.message.find("key 1"), std::string::npos) << wrong.message;
}

TEST_F(JsonlTest, KeysFetchUsesTheRequestsKeyFieldsOverTheConfig) {
  write("users.jsonl", "{\"id\": 1, \"email\": \"a@x\"}\n{\"id\": 2, \"email\": \"b@x\"}\n");
  open(config());
  auto request = fetchRequest("users", FetchMode::Keys);
  request.key_fields = {"email"};
  request.keys = {{"b@x"}};
  const auto result = instance_.fetch(request);
  ASSERT_TRUE(result.ok()) << result.describe();
  ASSERT_EQ(result.records.size(), 1U);
  EXPECT_EQ(result.records[0].fields["id"], 2);
}

TEST_F(JsonlTest, MalformedLineFailsWithFileAndLineNumber) {
  write("users.jsonl", "{\"id\": 1}\n\n{\"id\": 2,, }\n{\"id\": 3}\n");
  open(config());
  const auto result = instance_.fetch(fetchRequest("users", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find((dir_ / "users.jsonl").string() + ", line 3: invalid JSON"),
            std::string::npos)
      << result.message;

  auto keys = fetchRequest("users", FetchMode::Keys);
  keys.keys = {{"3"}};
  EXPECT_EQ(instance_.fetch(keys).status, SYNCPOD_INVALID);
  const auto applied = apply("commit", {{{"op", "delete"}, {"key", {"1"}}}});
  EXPECT_EQ(applied.status, SYNCPOD_INVALID);
  EXPECT_NE(applied.message.find("line 3"), std::string::npos) << applied.message;
}

TEST_F(JsonlTest, LineThatIsNotAnObjectIsReportedWithItsLine) {
  write("users.jsonl", "{\"id\": 1}\n[1, 2]\n");
  open(config());
  const auto result = instance_.fetch(fetchRequest("users", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("line 2: expected a JSON object"), std::string::npos)
      << result.message;

  write("users.jsonl", "{\"name\": \"\xff\xfe\"}\n");  // invalid UTF-8
  EXPECT_EQ(instance_.fetch(fetchRequest("users", FetchMode::Full)).status, SYNCPOD_INVALID);
}

TEST_F(JsonlTest, UnknownStreamIsInvalidAndNamed) {
  open(config());
  const auto result = instance_.fetch(fetchRequest("orders", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("\"orders\" is not configured"), std::string::npos)
      << result.message;
  EXPECT_NE(result.message.find("users"), std::string::npos) << result.message;
}

TEST_F(JsonlTest, MissingFileIsEmptyUnlessCreateMissingIsOff) {
  open(config());
  EXPECT_TRUE(fetchAll().records.empty());
  EXPECT_TRUE(instance_.check().ok());

  auto strict = config();
  strict["create_missing"] = false;
  open(strict);
  const auto result = instance_.fetch(fetchRequest("users", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("does not exist"), std::string::npos) << result.message;
  EXPECT_EQ(instance_.check().status, SYNCPOD_INVALID);

  auto elsewhere = config();
  elsewhere["directory"] = (dir_ / "nope").string();
  open(elsewhere);
  EXPECT_EQ(instance_.check().status, SYNCPOD_INVALID);
  EXPECT_EQ(instance_.fetch(fetchRequest("users", FetchMode::Full)).status, SYNCPOD_INVALID);
}

TEST_F(JsonlTest, ApplyCreatesUpdatesAndDeletesKeepingUntouchedLines) {
  const std::string untouched = "{ \"id\" : 2,   \"name\": \"Bob\", \"n\": 1.50 }";
  write("users.jsonl", "{\"id\": 1, \"name\": \"Ada\", \"role\": \"admin\"}\n" + untouched + "\n" +
                           "{\"id\": 3, \"name\": \"Cy\"}\n");
  open(config());
  const Json changes = {
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "Ada L."}}}},
      {{"op", "delete"}, {"key", {"3"}}},
      {{"op", "create"}, {"key", {"4"}}, {"fields", {{"name", "Dee"}, {"active", true}}}},
  };
  const auto result = apply("commit", changes);
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"applied", "applied", "applied"}));

  // The untouched line is byte for byte what it was; the updated one keeps its member order.
  EXPECT_EQ(read("users.jsonl"), "{\"id\":1,\"name\":\"Ada L.\",\"role\":\"admin\"}\n" + untouched +
                                     "\n" + "{\"id\":\"4\",\"active\":true,\"name\":\"Dee\"}\n");
  const auto records = fieldsOf(fetchAll().records);
  ASSERT_EQ(records.size(), 3U);
  EXPECT_EQ(records[0]["name"], "Ada L.");
  EXPECT_EQ(records[1]["name"], "Bob");
  EXPECT_EQ(records[2]["name"], "Dee");
}

TEST_F(JsonlTest, SecondApplyOfTheSameChangesetIsAllNoop) {
  write("users.jsonl", "{\"id\": 1, \"name\": \"Ada\"}\n{\"id\": 3, \"name\": \"Cy\"}\n");
  open(config());
  const Json changes = {
      {{"op", "create"}, {"key", {"2"}}, {"fields", {{"id", 2}, {"name", "Bob"}}}},
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "Ada L."}, {"tags", {"a", "b"}}}}},
      {{"op", "delete"}, {"key", {"3"}}},
  };
  const auto first = apply("commit", changes);
  ASSERT_TRUE(first.ok()) << first.describe();
  EXPECT_EQ(statuses(first), (std::vector<std::string>{"applied", "applied", "applied"}));
  const std::string after_first = read("users.jsonl");

  const auto second = apply("commit", changes);
  ASSERT_TRUE(second.ok()) << second.describe();
  EXPECT_EQ(statuses(second), (std::vector<std::string>{"noop", "noop", "noop"}));
  EXPECT_EQ(read("users.jsonl"), after_first);
}

TEST_F(JsonlTest, PlanSaysWhatCommitWouldDoAndWritesNothing) {
  const std::string content = "{\"id\": 1, \"name\": \"Ada\"}\n{\"id\": 3, \"name\": \"Cy\"}\n";
  write("users.jsonl", content);
  struct stat before {};
  ASSERT_EQ(::stat((dir_ / "users.jsonl").c_str(), &before), 0);
  open(config());
  const Json changes = {
      {{"op", "create"}, {"key", {"2"}}, {"fields", {{"name", "Bob"}}}},
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "Ada"}}}},  // equal already
      {{"op", "delete"}, {"key", {"3"}}},
      {{"op", "delete"}, {"key", {"9"}}},
  };
  const auto plan = apply("plan", changes);
  ASSERT_TRUE(plan.ok()) << plan.describe();
  EXPECT_EQ(statuses(plan), (std::vector<std::string>{"applied", "noop", "applied", "noop"}));
  EXPECT_EQ(read("users.jsonl"), content);
  struct stat after {};
  ASSERT_EQ(::stat((dir_ / "users.jsonl").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(files(), std::vector<std::string>{"users.jsonl"});

  const auto commit = apply("commit", changes);
  EXPECT_EQ(statuses(commit), statuses(plan));

  // Planning against a missing file creates nothing either.
  fs::remove(dir_ / "users.jsonl");
  EXPECT_TRUE(apply("plan", changes).ok());
  EXPECT_TRUE(files().empty());
}

TEST_F(JsonlTest, AtomicRewriteLeavesNoTemporaryFilesAndKeepsPermissions) {
  write("users.jsonl", "{\"id\": 1}\n");
  ASSERT_EQ(::chmod((dir_ / "users.jsonl").c_str(), 0640), 0);
  // A reader that opened the file before must keep reading the old content: the file is
  // replaced, never rewritten in place.
  std::ifstream reader(dir_ / "users.jsonl", std::ios::binary);
  open(config());
  for (int i = 2; i < 5; ++i) {
    const auto result = apply(
        "commit", {{{"op", "create"}, {"key", {std::to_string(i)}}, {"fields", Json::object()}}});
    ASSERT_TRUE(result.ok()) << result.describe();
  }
  EXPECT_EQ(files(), std::vector<std::string>{"users.jsonl"});
  std::stringstream old_content;
  old_content << reader.rdbuf();
  EXPECT_EQ(old_content.str(), "{\"id\": 1}\n");
  struct stat after {};
  ASSERT_EQ(::stat((dir_ / "users.jsonl").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0640U);
  EXPECT_EQ(fetchAll().records.size(), 4U);
}

TEST_F(JsonlTest, ApplyCreatesAMissingFile) {
  open(config({{"users", {{"file", "sub/people.jsonl"}, {"key_fields", {"id"}}}}}));
  const auto result =
      apply("commit", {{{"op", "create"}, {"key", {"7"}}, {"fields", {{"id", 7}}}}});
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(read("sub/people.jsonl"), "{\"id\":7}\n");

  auto strict = config();
  strict["create_missing"] = false;
  open(strict);
  const auto refused =
      apply("commit", {{{"op", "create"}, {"key", {"7"}}, {"fields", {{"id", 7}}}}});
  EXPECT_EQ(refused.status, SYNCPOD_INVALID);
  EXPECT_FALSE(fs::exists(dir_ / "users.jsonl"));
}

TEST_F(JsonlTest, CompositeKeysFetchAndApply) {
  write("users.jsonl",
        "{\"region\": \"eu\", \"id\": 1, \"name\": \"Ada\"}\n"
        "{\"region\": \"us\", \"id\": 1, \"name\": \"Al\"}\n");
  open(config({{"users", {{"key_fields", {"region", "id"}}}}}));
  auto request = fetchRequest("users", FetchMode::Keys);
  request.keys = {{"us", "1"}, {"eu", "2"}};
  const auto fetched = instance_.fetch(request);
  ASSERT_TRUE(fetched.ok()) << fetched.describe();
  ASSERT_EQ(fetched.records.size(), 1U);
  EXPECT_EQ(fetched.records[0].fields["name"], "Al");

  const Json key_fields = {"region", "id"};
  const Json changes = {
      {{"op", "update"}, {"key", {"eu", "1"}}, {"fields", {{"name", "Ada L."}}}},
      {{"op", "create"},
       {"key", {"eu", "2"}},
       {"fields", {{"region", "eu"}, {"id", 2}, {"name", "Bea"}}}},
      {{"op", "delete"}, {"key", {"us", "1"}}},
      {{"op", "update"}, {"key", {"eu"}}, {"fields", {{"name", "x"}}}},
  };
  const auto applied = apply("commit", changes, key_fields);
  ASSERT_TRUE(applied.ok()) << applied.describe();
  EXPECT_EQ(statuses(applied),
            (std::vector<std::string>{"applied", "applied", "applied", "rejected"}));
  EXPECT_NE(applied.results[3].message.find("has 1 values"), std::string::npos);
  EXPECT_EQ(read("users.jsonl"),
            "{\"region\":\"eu\",\"id\":1,\"name\":\"Ada L.\"}\n"
            "{\"region\":\"eu\",\"id\":2,\"name\":\"Bea\"}\n");
  EXPECT_EQ(statuses(apply("commit", changes, key_fields)),
            (std::vector<std::string>{"noop", "noop", "noop", "rejected"}));
}

TEST_F(JsonlTest, NumberAndStringKeysNameTheSameRecord) {
  write("users.jsonl", "{\"id\": 42, \"name\": \"Ada\"}\n{\"id\": \"7\", \"name\": \"Bob\"}\n");
  open(config());
  const auto result = apply(
      "commit", {
                    {{"op", "update"}, {"key", {"42"}}, {"fields", {{"name", "Ada L."}}}},
                    {{"op", "create"}, {"key", {"7"}}, {"fields", {{"id", 7}, {"name", "Bob"}}}},
                    {{"op", "create"}, {"key", {"42"}}, {"fields", {{"id", "43"}}}},
                });
  ASSERT_TRUE(result.ok()) << result.describe();
  // The create of 7 finds the record whose id is "7"; its id value (7 vs "7") differs.
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"applied", "applied", "rejected"}));
  EXPECT_NE(result.results[2].message.find("a key cannot change"), std::string::npos);
  EXPECT_EQ(fetchAll().records.size(), 2U);
}

TEST_F(JsonlTest, ChangeOutcomesForMissingAndExistingRecords) {
  write("users.jsonl", "{\"id\": 1, \"name\": \"Ada\", \"extra\": 1}\n");
  open(config());
  const auto result = apply(
      "commit", {
                    {{"op", "create"}, {"key", {"1"}}, {"fields", {{"id", 1}, {"name", "Ada"}}}},
                    {{"op", "update"}, {"key", {"5"}}, {"fields", {{"name", "x"}}}},
                    {{"op", "delete"}, {"key", {"5"}}},
                    {{"op", "update"}, {"key", {"1"}}, {"fields", {{"id", 2}}}},
                });
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"noop", "conflict", "noop", "rejected"}));
  EXPECT_EQ(read("users.jsonl"), "{\"id\": 1, \"name\": \"Ada\", \"extra\": 1}\n");
}

TEST_F(JsonlTest, DuplicateKeysInTheFileRejectChangesOnThatKey) {
  write("users.jsonl", "{\"id\": 1}\n{\"id\": 2}\n{\"id\": \"1\", \"dup\": true}\n");
  open(config());
  const auto result =
      apply("commit", {
                          {{"op", "delete"}, {"key", {"1"}}},
                          {{"op", "update"}, {"key", {"2"}}, {"fields", {{"seen", true}}}},
                      });
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"rejected", "applied"}));
  EXPECT_NE(result.results[0].message.find("is on lines 1, 3 of"), std::string::npos)
      << result.results[0].message;
}

TEST_F(JsonlTest, ExpectedVersionConflicts) {
  write("users.jsonl", "{\"id\": 1, \"updated_at\": \"2024-01-02T00:00:00Z\"}\n");
  open(config({{"users", {{"key_fields", {"id"}}, {"updated_field", "updated_at"}}}}));
  const auto fetched = fetchAll();
  ASSERT_EQ(fetched.records.size(), 1U);
  EXPECT_EQ(fetched.records[0].version, "2024-01-02T00:00:00Z");
  const auto result = apply("commit", {
                                          {{"op", "update"},
                                           {"key", {"1"}},
                                           {"fields", {{"a", 1}}},
                                           {"expected_version", "2024-01-01T00:00:00Z"}},
                                          {{"op", "update"},
                                           {"key", {"1"}},
                                           {"fields", {{"a", 2}}},
                                           {"expected_version", "2024-01-02T00:00:00Z"}},
                                      });
  ASSERT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"conflict", "applied"}));
}

TEST_F(JsonlTest, IncrementalFetchOrdersByUpdatedFieldAndResumesFromTheCursor) {
  write("users.jsonl",
        "{\"id\": 1, \"u\": \"2024-01-03\"}\n"
        "{\"id\": 2, \"u\": \"2024-01-01\"}\n"
        "{\"id\": 3}\n"  // no updated value: only full fetches see it
        "{\"id\": 4, \"u\": \"2024-01-02\"}\n"
        "{\"id\": 5, \"u\": \"2024-01-02\"}\n"
        "{\"id\": 6, \"u\": \"2024-01-02\"}\n");
  open(config({{"users", {{"key_fields", {"id"}}, {"updated_field", "u"}}}}));
  const auto first = fetchBatches(fetchRequest("users", FetchMode::Incremental, 2));
  std::vector<int> ids;
  for (const auto& batch : first) {
    for (const auto& record : batch.records) ids.push_back(record.fields["id"].get<int>());
  }
  EXPECT_EQ(ids, (std::vector<int>{2, 4, 5, 6, 1}));
  // Batches: [2,4] cursor 01-01 (the 01-02 group is not complete yet), [5,6] none, [1] 01-03.
  ASSERT_EQ(first.size(), 3U);
  EXPECT_EQ(first[0].cursor, "2024-01-01");
  EXPECT_FALSE(first[1].cursor.has_value());
  EXPECT_EQ(first[2].cursor, "2024-01-03");

  // Resuming from the first batch's cursor gives the whole 01-02 group again.
  auto resume = fetchRequest("users", FetchMode::Incremental, 10);
  resume.cursor = "2024-01-01";
  ids.clear();
  for (const auto& record : instance_.fetch(resume).records)
    ids.push_back(record.fields["id"].get<int>());
  EXPECT_EQ(ids, (std::vector<int>{4, 5, 6, 1}));

  resume.cursor = first.back().cursor;
  const auto nothing = instance_.fetch(resume);
  ASSERT_TRUE(nothing.ok()) << nothing.describe();
  EXPECT_TRUE(nothing.records.empty());

  ASSERT_TRUE(
      apply("commit", {{{"op", "update"}, {"key", {"2"}}, {"fields", {{"u", "2024-01-04"}}}}})
          .ok());
  const auto later = instance_.fetch(resume);
  ASSERT_EQ(later.records.size(), 1U);
  EXPECT_EQ(later.records[0].fields["id"], 2);
  EXPECT_EQ(later.cursor, "2024-01-04");
}

TEST_F(JsonlTest, IncrementalFetchNeedsAnUpdatedField) {
  open(config());
  const auto result = instance_.fetch(fetchRequest("users", FetchMode::Incremental));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("updated_field"), std::string::npos) << result.message;
}

TEST_F(JsonlTest, FetchStopsWhenTheHostCancels) {
  std::string content;
  for (int i = 0; i < 50; ++i) content += "{\"id\":" + std::to_string(i) + "}\n";
  write("users.jsonl", content);
  open(config());
  plugin_.host().cancelAfterDocuments(2);
  const auto result = instance_.fetch(fetchRequest("users", FetchMode::Full, 5));
  EXPECT_EQ(result.status, SYNCPOD_CANCELLED) << result.describe();
  EXPECT_EQ(result.batches, 2U);
}

}  // namespace
}  // namespace syncpod::plugins::jsonl
