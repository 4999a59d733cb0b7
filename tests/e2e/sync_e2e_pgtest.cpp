// Sync jobs end to end: jobs go through the real queue, the real jsonl and postgres plugins are
// loaded from their .so files, and the "foreign systems" are files in a temporary directory and
// a table in the test PostgreSQL.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "pg_test_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/sync_job_runner.hpp"

namespace syncpod::core {
namespace {

namespace fs = std::filesystem;
using syncpod::testing::execute;
using syncpod::testing::queryScalar;

template <class T>
T must(Result<T> result, const std::string& what) {
  if (!result) throw std::runtime_error(what + ": " + result.error().message);
  return std::move(result).value();
}

const PluginRegistry& plugins() {
  static const PluginRegistry registry = PluginRegistry::load({SYNCPOD_PLUGIN_DIR});
  return registry;
}

class SyncEndToEnd : public syncpod::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    for (const auto& error : plugins().errors()) ADD_FAILURE() << error.message;
    ASSERT_NE(plugins().find("jsonl"), nullptr);
    ASSERT_NE(plugins().find("postgres"), nullptr);
    directory_ = fs::temp_directory_path() / ("syncpod-e2e-" + std::to_string(getpid()) + "-" + target_.schema);
    fs::create_directories(directory_);
    crm_ = target_.schema + "_crm";
    execute(target_, "CREATE SCHEMA " + crm_ + ";" +
                         "CREATE TABLE " + crm_ + ".people (id integer PRIMARY KEY, full_name text NOT NULL,"
                         " email text, updated_at timestamptz NOT NULL DEFAULT now())");
  }

  void TearDown() override {
    execute(target_, "DROP SCHEMA IF EXISTS " + crm_ + " CASCADE");
    fs::remove_all(directory_);
    PgTest::TearDown();
  }

  Json jsonlEndpoint() const {
    return {{"plugin", "jsonl"},
            {"config", {{"directory", directory_.string()},
                        {"streams", {{"users", {{"file", "users.jsonl"}, {"key_fields", {"id"}}}}}}}}};
  }

  Json postgresEndpoint() const {
    return {{"plugin", "postgres"},
            {"config", {{"url", syncpod::testing::testDatabaseUrl()},
                        {"schema", crm_},
                        {"streams", {{"people", {{"table", "people"}, {"key_fields", {"id"}},
                                                 {"updated_column", "updated_at"}}}}}}}};
  }

  /// jsonl users → postgres people.
  Json toCrm(const char* policy, Json fields = nullptr) const {
    if (fields.is_null()) fields = {{"id", "id"}, {"name", "full_name"}, {"email", "email"}};
    return {{"source", jsonlEndpoint()},
            {"target", postgresEndpoint()},
            {"deletion_policy", policy},
            {"batch_size", 2},
            {"streams", {{{"name", "users"}, {"source_stream", "users"}, {"target_stream", "people"},
                          {"key", {"id"}}, {"fields", fields}}}}};
  }

  IntegrationId integrate(const Json& config) {
    const auto id = createIntegration("e2e-" + std::to_string(++integrations_));
    execute(target_, "UPDATE integrations SET config = '" + config.dump() + "'::jsonb WHERE id = " + std::to_string(id));
    return id;
  }

  void writeUsers(const std::vector<Json>& users) {
    std::ofstream file(directory_ / "users.jsonl", std::ios::trunc);
    for (const auto& user : users) file << user.dump() << "\n";
  }

  std::vector<Json> readUsers() {
    std::vector<Json> users;
    std::ifstream file(directory_ / "users.jsonl");
    std::string line;
    while (std::getline(file, line)) {
      if (!line.empty()) users.push_back(Json::parse(line));
    }
    std::sort(users.begin(), users.end(), [](const Json& a, const Json& b) { return a["id"] < b["id"]; });
    return users;
  }

  /// "id:full_name:email" per row, ordered by id.
  std::string people() {
    return queryScalar(target_, "SELECT coalesce(string_agg(id || ':' || full_name || ':' || coalesce(email, '-'), ' '"
                                " ORDER BY id), '') FROM " + crm_ + ".people");
  }

  struct Outcome {
    Completion completion;
    Json result;
  };

  /// postgres people → jsonl users, people's updated_at the cursor.
  Json fromCrm() const {
    return {{"source", postgresEndpoint()},
            {"target", jsonlEndpoint()},
            {"streams", {{{"name", "people"}, {"source_stream", "people"}, {"target_stream", "users"},
                          {"key", {"id"}},
                          {"fields", {{"id", "id"}, {"full_name", "name"}, {"email", "email"}}}}}}};
  }

  /// Enqueues one job and claims it as `worker_` does.
  Job claimOne(IntegrationId integration, JobKind kind, std::vector<std::string> keys = {},
               bool incremental = false, bool plan = false) {
    JobQueue queue(target_);
    EnqueueRequest request;
    request.integration_id = integration;
    request.kind = kind;
    request.keys = std::move(keys);
    request.incremental = incremental;
    request.plan = plan;
    request.merge = false;
    must(queue.enqueue(request), "enqueue");
    worker_ = must(queue.registerWorker({1, "e2e", "localhost", getpid()}), "register");
    const auto jobs = must(queue.claim(worker_, 1), "claim");
    if (jobs.size() != 1) throw std::runtime_error("no job claimed");
    return jobs[0];
  }

  /// Enqueues, claims and runs one job the way a worker does, and completes it.
  Outcome run(IntegrationId integration, JobKind kind, std::vector<std::string> keys = {}, bool incremental = false,
              bool plan = false) {
    const auto job = claimOne(integration, kind, std::move(keys), incremental, plan);
    SyncJobRunner runner(target_, plugins());
    Outcome outcome{runner.run(job, [] { return false; }), Json()};
    must(JobQueue(target_).complete(worker_, outcome.completion), "complete");
    if (!outcome.completion.result_json.empty()) outcome.result = Json::parse(outcome.completion.result_json);
    last_job_ = job.id;
    return outcome;
  }

  static const Json& counts(const Outcome& outcome, const char* side) { return outcome.result["streams"][0][side]; }

  fs::path directory_;
  std::string crm_;
  int integrations_ = 0;
  JobId last_job_ = 0;
  WorkerId worker_;
};

Json user(int id, const char* name, const char* email) { return {{"id", id}, {"name", name}, {"email", email}}; }

TEST_F(SyncEndToEnd, FullSyncFromFilesToATableAndAgainChangesNothing) {
  writeUsers({user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x"), user(3, "Cy", "cy@x")});
  const auto integration = integrate(toCrm("additive"));

  const auto first = run(integration, JobKind::Full);
  ASSERT_EQ(first.completion.outcome, Completion::Outcome::Succeeded) << first.completion.error;
  EXPECT_EQ(people(), "1:Ada:ada@x 2:Bob:bob@x 3:Cy:cy@x");
  EXPECT_EQ(counts(first, "target")["create"], 3);
  EXPECT_EQ(counts(first, "target")["applied"], 3);
  EXPECT_EQ(first.result["mode"], "commit");
  // Progress was published and holds the totals.
  EXPECT_EQ(queryScalar(target_, "SELECT applied FROM " + target_.schema + ".job_progress WHERE job_id = " +
                                     std::to_string(last_job_)),
            "3");

  const auto second = run(integration, JobKind::Full);
  ASSERT_EQ(second.completion.outcome, Completion::Outcome::Succeeded) << second.completion.error;
  EXPECT_EQ(second.result["streams"][0]["unchanged"], 3);
  EXPECT_EQ(counts(second, "target")["applied"], 0);
}

TEST_F(SyncEndToEnd, DeletionPolicies) {
  execute(target_, "INSERT INTO " + crm_ + ".people (id, full_name) VALUES (9, 'Pre')");
  writeUsers({user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")});
  const auto additive = integrate(toCrm("additive"));
  ASSERT_EQ(run(additive, JobKind::Full).completion.outcome, Completion::Outcome::Succeeded);
  writeUsers({user(1, "Ada", "ada@x")});
  ASSERT_EQ(run(additive, JobKind::Full).completion.outcome, Completion::Outcome::Succeeded);
  EXPECT_EQ(people(), "1:Ada:ada@x 2:Bob:bob@x 9:Pre:-");  // additive deletes nothing

  // Conservative: 2 was created by the additive integration, not by this one; 3 is this one's.
  const auto conservative = integrate(toCrm("conservative"));
  writeUsers({user(1, "Ada", "ada@x"), user(3, "Cy", "cy@x")});
  ASSERT_EQ(run(conservative, JobKind::Full).completion.outcome, Completion::Outcome::Succeeded);
  writeUsers({user(1, "Ada", "ada@x")});
  const auto conserved = run(conservative, JobKind::Full);
  ASSERT_EQ(conserved.completion.outcome, Completion::Outcome::Succeeded) << conserved.completion.error;
  EXPECT_EQ(counts(conserved, "target")["delete"], 1);
  EXPECT_EQ(people(), "1:Ada:ada@x 2:Bob:bob@x 9:Pre:-");

  // Overwrite: whatever the file no longer has goes.
  const auto overwrite = integrate(toCrm("overwrite"));
  const auto overwritten = run(overwrite, JobKind::Full);
  ASSERT_EQ(overwritten.completion.outcome, Completion::Outcome::Succeeded) << overwritten.completion.error;
  EXPECT_EQ(people(), "1:Ada:ada@x");
}

TEST_F(SyncEndToEnd, PartialSyncByKeysTouchesOnlyThoseRecords) {
  writeUsers({user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")});
  const auto integration = integrate(toCrm("additive"));
  ASSERT_EQ(run(integration, JobKind::Full).completion.outcome, Completion::Outcome::Succeeded);
  writeUsers({user(1, "Ada Lovelace", "ada@x"), user(2, "Robert", "bob@x"), user(3, "Cy", "cy@x")});

  const auto partial = run(integration, JobKind::Partial, {"users/2", "3"});
  ASSERT_EQ(partial.completion.outcome, Completion::Outcome::Succeeded) << partial.completion.error;
  EXPECT_EQ(people(), "1:Ada:ada@x 2:Robert:bob@x 3:Cy:cy@x");
  EXPECT_EQ(counts(partial, "target")["update"], 1);
  EXPECT_EQ(counts(partial, "target")["create"], 1);
}

TEST_F(SyncEndToEnd, PartialSyncByCursorFromATableToFiles) {
  execute(target_, "INSERT INTO " + crm_ + ".people (id, full_name, email, updated_at) VALUES"
                   " (1, 'Ada', 'ada@x', '2026-01-01'), (2, 'Bob', 'bob@x', '2026-01-02')");
  const auto integration = integrate(fromCrm());

  const auto first = run(integration, JobKind::Partial, {}, true);
  ASSERT_EQ(first.completion.outcome, Completion::Outcome::Succeeded) << first.completion.error;
  EXPECT_EQ(readUsers(), (std::vector<Json>{user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")}));
  const auto cursor = queryScalar(target_, "SELECT cursor FROM " + target_.schema + ".sync_cursors");
  EXPECT_FALSE(cursor.empty());

  // Only the row changed since the cursor is fetched and written.
  execute(target_, "UPDATE " + crm_ + ".people SET full_name = 'Robert', updated_at = '2026-02-01' WHERE id = 2");
  const auto second = run(integration, JobKind::Partial, {}, true);
  ASSERT_EQ(second.completion.outcome, Completion::Outcome::Succeeded) << second.completion.error;
  EXPECT_EQ(second.result["streams"][0]["fetched"]["source"], 2);  // once incremental, once by key
  EXPECT_EQ(counts(second, "target")["update"], 1);
  EXPECT_EQ(readUsers(), (std::vector<Json>{user(1, "Ada", "ada@x"), user(2, "Robert", "bob@x")}));
  EXPECT_NE(queryScalar(target_, "SELECT cursor FROM " + target_.schema + ".sync_cursors"), cursor);

  // Nothing changed: nothing to do.
  const auto third = run(integration, JobKind::Partial, {}, true);
  ASSERT_EQ(third.completion.outcome, Completion::Outcome::Succeeded) << third.completion.error;
  EXPECT_EQ(third.result["streams"][0]["fetched"]["source"], 0) << third.result.dump();
}

TEST_F(SyncEndToEnd, AnAttemptTheQueueTookBackMovesNoCursor) {
  execute(target_, "INSERT INTO " + crm_ + ".people (id, full_name, email, updated_at) VALUES"
                   " (1, 'Ada', 'ada@x', '2026-01-01')");
  const auto job = claimOne(integrate(fromCrm()), JobKind::Partial, {}, /*incremental=*/true);
  // Rescued while it runs (its attempt long past its deadline): another attempt owns the job.
  execute(target_, "UPDATE jobs SET deadline_at = now() - interval '1 hour'");
  ASSERT_EQ(must(JobQueue(target_).rescue(), "rescue").requeued, 1);

  SyncJobRunner runner(target_, plugins());
  const auto completion = runner.run(job, [] { return false; });
  EXPECT_NE(completion.outcome, Completion::Outcome::Succeeded);
  EXPECT_NE(completion.error.find("the cursor was not saved"), std::string::npos) << completion.error;
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) FROM " + target_.schema + ".sync_cursors"), "0");
}

TEST_F(SyncEndToEnd, PlanWritesNothing) {
  writeUsers({user(1, "Ada", "ada@x"), user(2, "Bob", "bob@x")});
  execute(target_, "INSERT INTO " + crm_ + ".people (id, full_name) VALUES (9, 'Pre')");
  const auto integration = integrate(toCrm("overwrite"));
  const auto plan = run(integration, JobKind::Full, {}, false, true);
  ASSERT_EQ(plan.completion.outcome, Completion::Outcome::Succeeded) << plan.completion.error;
  EXPECT_EQ(people(), "9:Pre:-");
  EXPECT_EQ(plan.result["mode"], "plan");
  ASSERT_EQ(plan.result["planned"].size(), 3U);
  std::multiset<std::string> ops;
  for (const auto& change : plan.result["planned"]) ops.insert(change["op"].get<std::string>());
  EXPECT_EQ(ops, (std::multiset<std::string>{"create", "create", "delete"}));
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) FROM " + target_.schema + ".sync_created_records"), "0");
}

TEST_F(SyncEndToEnd, AFieldTheTableOwnsFlowsBackToTheFile) {
  writeUsers({user(1, "Ada", "old@x")});
  execute(target_, "INSERT INTO " + crm_ + ".people (id, full_name, email) VALUES (1, 'Ada', 'new@x')");
  const Json fields = {{"id", "id"}, {"name", "full_name"}, {"email", {{"target", "email"}, {"owner", "target"}}}};
  const auto integration = integrate(toCrm("additive", fields));
  const auto outcome = run(integration, JobKind::Full);
  ASSERT_EQ(outcome.completion.outcome, Completion::Outcome::Succeeded) << outcome.completion.error;
  EXPECT_EQ(readUsers(), std::vector<Json>{user(1, "Ada", "new@x")});
  EXPECT_EQ(people(), "1:Ada:new@x");
}

TEST_F(SyncEndToEnd, ABadIntegrationConfigFailsTheJobNamingTheField) {
  Json config = toCrm("sometimes");
  config["target"]["config"]["streams"]["people"]["colour"] = "red";
  const auto outcome = run(integrate(config), JobKind::Full);
  EXPECT_EQ(outcome.completion.outcome, Completion::Outcome::Failed);
  EXPECT_NE(outcome.completion.error.find("/deletion_policy"), std::string::npos) << outcome.completion.error;

  Json unknown = toCrm("additive");
  unknown["target"]["config"]["streams"]["people"]["colour"] = "red";
  const auto refused = run(integrate(unknown), JobKind::Full);
  EXPECT_EQ(refused.completion.outcome, Completion::Outcome::Failed);
  EXPECT_NE(refused.completion.error.find("/target/config/streams/people/colour"), std::string::npos)
      << refused.completion.error;
  EXPECT_EQ(refused.completion.error.find(syncpod::testing::testDatabaseUrl()), std::string::npos);
}

}  // namespace
}  // namespace syncpod::core
