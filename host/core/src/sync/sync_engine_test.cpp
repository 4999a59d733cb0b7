#include "syncpod/core/sync/sync_engine.hpp"

#include <gtest/gtest.h>

#include "memory_endpoint.hpp"

namespace syncpod::core {
namespace {

using testing::MemoryEndpoint;
using testing::MemorySyncState;

/// users: key id; name and email owned by the record owner unless said otherwise.
Json config(const char* policy = "additive", const char* owner = "source", Json fields = nullptr) {
  if (fields.is_null()) fields = {{"id", "id"}, {"name", "full_name"}, {"email", "email"}};
  return {{"source", {{"plugin", "memory"}}},
          {"target", {{"plugin", "memory"}}},
          {"deletion_policy", policy},
          {"batch_size", 2},
          {"streams", {{{"name", "users"}, {"key", {"id"}}, {"owner", owner}, {"fields", fields}}}}};
}

Json user(int id, const char* name, const char* email) { return {{"id", id}, {"name", name}, {"email", email}}; }
Json person(int id, const char* name, const char* email) {
  return {{"id", id}, {"full_name", name}, {"email", email}};
}

class SyncEngineTest : public ::testing::Test {
 protected:
  Result<SyncReport> sync(const Json& integration, SyncRequest request = {}) {
    auto spec = parseIntegrationSpec(integration);
    EXPECT_TRUE(spec) << spec.error().message;
    spec_ = *spec;
    SyncEngine engine(spec_, source, target, state, hooks);
    return engine.run(request);
  }

  /// The target's users, ordered by id.
  std::vector<Json> people() {
    auto records = target.streams["users"];
    std::sort(records.begin(), records.end(), [](const Json& a, const Json& b) { return a["id"] < b["id"]; });
    return records;
  }

  MemoryEndpoint source{"source"};
  MemoryEndpoint target{"target"};
  MemorySyncState state;
  SyncHooks hooks;
  IntegrationSpec spec_;
};

TEST_F(SyncEngineTest, FullSyncCreatesAndUpdatesFieldsTheSourceOwns) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x"), user(3, "Cy", "cy@x")};
  target.streams["users"] = {person(1, "Ada", "ada@x"), person(2, "Robert", "bob@x"), person(9, "Zed", "z@x")};

  const auto report = sync(config());
  ASSERT_TRUE(report) << report.error().message;
  const auto& users = report->streams.at(0);
  EXPECT_EQ(users.to_target.create, 1);
  EXPECT_EQ(users.to_target.update, 1);
  EXPECT_EQ(users.to_target.remove, 0);  // additive: 9 stays
  EXPECT_EQ(users.unchanged, 1);
  EXPECT_EQ(users.fetched_source, 3);
  EXPECT_EQ(users.fetched_target, 3);
  EXPECT_EQ(people(), (std::vector<Json>{person(1, "Ada", "ada@x"), person(2, "Bob", "bob@x"),
                                         person(3, "Cy", "cy@x"), person(9, "Zed", "z@x")}));
  // Only the changed field travels in an update.
  bool saw_update = false;
  for (const auto& changeset : target.committed) {
    for (const auto& change : changeset.changes) {
      if (change.op != ChangeOp::Update) continue;
      saw_update = true;
      EXPECT_EQ(change.fields, (Json{{"full_name", "Bob"}}));
      EXPECT_EQ(change.key, std::vector<std::string>{"2"});
    }
  }
  EXPECT_TRUE(saw_update);
}

TEST_F(SyncEngineTest, SecondFullSyncChangesNothing) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")};
  ASSERT_TRUE(sync(config()));
  target.committed.clear();
  const auto report = sync(config());
  ASSERT_TRUE(report);
  EXPECT_EQ(report->streams[0].unchanged, 2);
  EXPECT_TRUE(target.committed.empty());
}

TEST_F(SyncEngineTest, OverwriteDeletesWhatTheOwnerNoLongerHas) {
  source.streams["users"] = {user(1, "Ada", "ada@x")};
  target.streams["users"] = {person(1, "Ada", "ada@x"), person(2, "Bob", "bob@x")};
  const auto report = sync(config("overwrite"));
  ASSERT_TRUE(report);
  EXPECT_EQ(report->streams[0].to_target.remove, 1);
  EXPECT_EQ(people(), std::vector<Json>{person(1, "Ada", "ada@x")});
}

TEST_F(SyncEngineTest, ConservativeDeletesOnlyRecordsTheIntegrationCreated) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")};
  target.streams["users"] = {person(7, "Pre", "pre@x")};
  ASSERT_TRUE(sync(config("conservative")));
  ASSERT_EQ(people().size(), 3U);

  source.streams["users"] = {user(1, "Ada", "ada@x")};  // 2 gone at the source
  const auto report = sync(config("conservative"));
  ASSERT_TRUE(report);
  EXPECT_EQ(report->streams[0].to_target.remove, 1);
  // 2 was created by the integration and is deleted; 7 was there before and stays.
  EXPECT_EQ(people(), (std::vector<Json>{person(1, "Ada", "ada@x"), person(7, "Pre", "pre@x")}));
}

TEST_F(SyncEngineTest, AFieldTheTargetOwnsFlowsBackToTheSource) {
  const Json fields = {{"id", "id"}, {"name", "full_name"}, {"email", {{"target", "email"}, {"owner", "target"}}}};
  source.streams["users"] = {user(1, "Ada", "old@x")};
  target.streams["users"] = {person(1, "Ada L.", "new@x")};
  const auto report = sync(config("additive", "source", fields));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(source.streams["users"], std::vector<Json>{user(1, "Ada", "new@x")});
  EXPECT_EQ(people(), std::vector<Json>{person(1, "Ada", "new@x")});
  EXPECT_EQ(report->streams[0].to_source.update, 1);
  EXPECT_EQ(report->streams[0].to_target.update, 1);
}

TEST_F(SyncEngineTest, RecordsTheTargetOwnsAreCreatedAtTheSource) {
  target.streams["users"] = {person(5, "Eve", "eve@x")};
  const auto report = sync(config("additive", "target"));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(source.streams["users"], std::vector<Json>{user(5, "Eve", "eve@x")});
  EXPECT_EQ(report->streams[0].to_source.create, 1);
}

TEST_F(SyncEngineTest, PlanWritesNothingAndListsTheChanges) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")};
  target.streams["users"] = {person(2, "Robert", "bob@x"), person(3, "Cy", "cy@x")};
  SyncRequest request;
  request.mode = ApplyMode::Plan;
  const auto report = sync(config("overwrite"), request);
  ASSERT_TRUE(report);
  EXPECT_TRUE(target.committed.empty());
  EXPECT_EQ(people(), (std::vector<Json>{person(2, "Robert", "bob@x"), person(3, "Cy", "cy@x")}));
  ASSERT_EQ(report->planned.size(), 3U);
  std::multiset<std::string> ops;
  for (const auto& change : report->planned) ops.insert(std::string(syncpod::toString(change.op)));
  EXPECT_EQ(ops, (std::multiset<std::string>{"create", "delete", "update"}));
  EXPECT_TRUE(state.created.empty());
  EXPECT_TRUE(report->toJson().contains("planned"));
}

TEST_F(SyncEngineTest, PartialSyncByKeysTouchesOnlyThoseRecords) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x"), user(3, "Cy", "cy@x")};
  target.streams["users"] = {person(1, "A", "ada@x"), person(2, "B", "bob@x"), person(4, "D", "d@x")};
  SyncRequest request;
  request.scope = SyncRequest::Scope::Keys;
  request.keys = {"users/2", "3", "4"};
  const auto report = sync(config("overwrite"), request);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(people(), (std::vector<Json>{person(1, "A", "ada@x"), person(2, "Bob", "bob@x"), person(3, "Cy", "cy@x")}));
  EXPECT_EQ(report->streams[0].to_target.remove, 1);  // 4 is gone at the source

  // A single-stream integration reads a prefix that names no stream as part of the key.
  request.keys = {"nosuch/1"};
  const auto unknown = sync(config(), request);
  ASSERT_TRUE(unknown) << unknown.error().message;
  EXPECT_EQ(unknown->streams.at(0).fetched_source, 0);
}

TEST_F(SyncEngineTest, KeysMustNameAStreamWhenThereAreSeveral) {
  Json integration = config();
  Json second = integration["streams"][0];
  second["name"] = "admins";
  integration["streams"].push_back(second);
  SyncRequest request;
  request.scope = SyncRequest::Scope::Keys;
  request.keys = {"1"};
  const auto report = sync(integration, request);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, Error::Code::Invalid);
  EXPECT_NE(report.error().message.find("<stream>/<key>"), std::string::npos);
}

TEST_F(SyncEngineTest, IncrementalStoresTheCursorOnlyWhenEverythingWasApplied) {
  Json a = user(1, "Ada", "ada@x");
  a["updated"] = 10;
  Json b = user(2, "Bob", "bob@x");
  b["updated"] = 20;
  source.streams["users"] = {a, b};
  Json fields = {{"id", "id"}, {"name", "full_name"}, {"email", "email"}};
  SyncRequest request;
  request.scope = SyncRequest::Scope::Incremental;

  source.retryable_keys = {"2"};
  target.retryable_keys = {"2"};
  auto report = sync(config("additive", "source", fields), request);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->worthRetrying());
  EXPECT_TRUE(state.cursors.empty());

  target.retryable_keys.clear();
  report = sync(config("additive", "source", fields), request);
  ASSERT_TRUE(report);
  EXPECT_EQ(state.cursors.at({"users", Side::Source}), "20");
  EXPECT_EQ(people().size(), 2U);

  // Nothing changed since the cursor: nothing is fetched by keys, nothing applied.
  target.committed.clear();
  report = sync(config("additive", "source", fields), request);
  ASSERT_TRUE(report);
  EXPECT_TRUE(target.committed.empty());
  EXPECT_EQ(report->streams[0].fetched_source, 0);
}

TEST_F(SyncEngineTest, TheReceivingPluginsDiffDecidesWhatDiffers) {
  source.streams["users"] = {user(1, "ADA", "ada@x")};
  target.streams["users"] = {person(1, "ada", "ada@x")};
  target.case_insensitive_diff = true;
  const auto report = sync(config());
  ASSERT_TRUE(report);
  EXPECT_EQ(report->streams[0].unchanged, 1);
  EXPECT_TRUE(target.committed.empty());
}

TEST_F(SyncEngineTest, CancellationStopsBetweenBatches) {
  for (int i = 0; i < 10; ++i) source.streams["users"].push_back(user(i, "n", "e"));
  int batches = 0;
  hooks.cancelled = [&] { return batches >= 2; };
  hooks.progress = [&](const SyncProgress&) { ++batches; };
  const auto report = sync(config());
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, Error::Code::Cancelled);
  EXPECT_LT(people().size(), 10U);
}

TEST_F(SyncEngineTest, FailedChangesAreReportedAndMakeTheJobWorthRetrying) {
  source.streams["users"] = {user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")};
  target.retryable_keys = {"2"};
  const auto report = sync(config());
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->worthRetrying());
  ASSERT_EQ(report->failures.size(), 1U);
  EXPECT_EQ(report->failures[0].key, "2");
  EXPECT_EQ(report->failures[0].status, ChangeStatus::Retryable);
  const auto json = report->toJson();
  EXPECT_EQ(json["failures"][0]["key"], Json::array({"2"}));
  EXPECT_EQ(json["streams"][0]["target"]["retryable"], 1);
}

TEST(HashValue, AgreesWithJsonEquality) {
  EXPECT_EQ(hashValue(Json(1)), hashValue(Json(1.0)));
  EXPECT_EQ(hashValue(Json(1)), hashValue(Json(1U)));
  EXPECT_NE(hashValue(Json(1)), hashValue(Json("1")));
  EXPECT_NE(hashValue(Json(nullptr)), hashValue(Json(false)));
  EXPECT_NE(hashValue(Json(1.5)), hashValue(Json(1)));
  EXPECT_EQ(hashValue(Json::parse(R"({"a":1,"b":[1,2]})")), hashValue(Json::parse(R"({"b":[1,2],"a":1})")));
  EXPECT_NE(hashValue(Json::parse("[1,2]")), hashValue(Json::parse("[2,1]")));
}

TEST(Keys, JoinAndSplitRoundTrip) {
  EXPECT_EQ(splitKey(joinKey({"a", "", "c"})), (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(splitKey("x"), std::vector<std::string>{"x"});
}

}  // namespace
}  // namespace syncpod::core
