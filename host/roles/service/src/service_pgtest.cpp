// The REST API over real HTTP on 127.0.0.1, against the test PostgreSQL.

#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "service_pgtest_support.hpp"
#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/webhooks.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

using syncpod::testing::execute;

const core::PluginRegistry& plugins() { return testing::testPlugins(); }

using testing::Reply;

class ServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    options_.webhook_max_body_bytes = 1024;
    options_.webhook_tolerance = std::chrono::seconds(300);
    ServiceFixture::SetUp();
  }

  core::JobId enqueue() {
    core::JobQueue queue(target_);
    core::EnqueueRequest request;
    request.integration_id = integration_ ? integration_ : (integration_ = createIntegration("api"));
    request.merge = false;
    auto result = queue.enqueue(request);
    EXPECT_TRUE(result) << result.error().message;
    return result ? result->id : 0;
  }

  /// An integration config from a memory source holding a secret token to a memory target.
  static Json memoryConfig(const std::string& token = "s3cret-token") {
    return {{"source", {{"plugin", "memory"},
                        {"config", {{"records", {{"items", Json::array({{{"id", 1}, {"name", "a"}}})}}},
                                    {"token", token}}}}},
            {"target", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array()}}}}}}},
            {"deletion_policy", "additive"},
            {"streams", {{{"name", "items"}, {"source_stream", "items"}, {"target_stream", "items"},
                          {"key", {"id"}}, {"fields", {{"id", "id"}, {"name", "name"}}}}}}};
  }

  Reply create(const std::string& name, const Json& config = memoryConfig()) {
    return call("POST", "/api/v1/integrations", core::TokenScope::Write,
                Json{{"name", name}, {"config", config}}.dump());
  }

  std::string storedToken(std::int64_t id) {
    return syncpod::testing::queryScalar(target_, "SELECT config->'source'->'config'->>'token' FROM " +
                                                      target_.schema + ".integrations WHERE id = " + std::to_string(id));
  }

  core::IntegrationId integration_ = 0;
};

TEST_F(ServiceTest, HealthAndReadinessNeedNoToken) {
  const auto health = call("GET", "/healthz", std::nullopt);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body["status"], "ok");
  const auto ready = call("GET", "/readyz", std::nullopt);
  EXPECT_EQ(ready.status, 200) << ready.text;

  // A schema behind the binary is not ready, and says why.
  execute(target_, "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)");
  const auto behind = call("GET", "/readyz", std::nullopt);
  expectError(behind, 503, "not_ready");
  EXPECT_NE(behind.body["error"]["message"].get<std::string>().find("syncpod migrate"), std::string::npos)
      << behind.text;
}

TEST_F(ServiceTest, ASecondServiceCannotTakeThePortOfTheFirst) {
  ServiceOptions options;
  options.host = "127.0.0.1";
  options.port = service_->port();
  options.threads = 1;
  Service second(target_, options, plugins());
  try {
    second.start();
    FAIL() << "a second service listened on port " << options.port;
  } catch (const core::StartupError& error) {
    EXPECT_NE(std::string(error.what()).find("cannot listen on 127.0.0.1:" + std::to_string(options.port)),
              std::string::npos)
        << error.what();
  }
}

TEST_F(ServiceTest, AuthenticationAndScopes) {
  const auto job = std::to_string(enqueue());
  const auto none = call("GET", "/api/v1/jobs/" + job, std::nullopt);
  expectError(none, 401, "unauthenticated");
  ASSERT_EQ(none.headers.count("WWW-Authenticate"), 1U);
  EXPECT_EQ(none.headers.at("WWW-Authenticate"), "Bearer realm=\"syncpod\"");
  expectError(call("GET", "/api/v1/jobs/" + job, std::nullopt, "", {{"Authorization", "Basic abc"}}), 401,
              "unauthenticated");
  expectError(call("GET", "/api/v1/jobs/" + job, std::nullopt, "", {{"Authorization", "Bearer sp_guess"}}), 401,
              "unauthenticated");
  EXPECT_EQ(call("GET", "/api/v1/jobs/" + job, core::TokenScope::Read).status, 200);

  const auto forbidden = call("POST", "/api/v1/jobs/" + job + "/cancel", core::TokenScope::Read);
  expectError(forbidden, 403, "forbidden");
  EXPECT_EQ(forbidden.body["error"]["details"]["required_scope"], "write");
  EXPECT_EQ(call("POST", "/api/v1/jobs/" + job + "/cancel", core::TokenScope::Admin).status, 202);

  core::TokenStore tokens(target_);
  ASSERT_TRUE(tokens.revoke("read"));
  expectError(call("GET", "/api/v1/jobs/" + job, core::TokenScope::Read), 401, "unauthenticated");
}

TEST_F(ServiceTest, GetsAndCancelsJobs) {
  const auto id = enqueue();
  const auto job = call("GET", "/api/v1/jobs/" + std::to_string(id), core::TokenScope::Read);
  ASSERT_EQ(job.status, 200) << job.text;
  EXPECT_EQ(job.body["id"], id);
  EXPECT_EQ(job.body["state"], "queued");
  EXPECT_EQ(job.body["kind"], "full");
  EXPECT_TRUE(job.body["created_at"].get<std::string>().ends_with("Z")) << job.text;
  EXPECT_TRUE(job.body["finished_at"].is_null());

  const auto cancelled = call("POST", "/api/v1/jobs/" + std::to_string(id) + "/cancel", core::TokenScope::Write);
  EXPECT_EQ(cancelled.status, 202) << cancelled.text;
  EXPECT_EQ(cancelled.body["state"], "cancelled");
  expectError(call("POST", "/api/v1/jobs/" + std::to_string(id) + "/cancel", core::TokenScope::Write), 409,
              "conflict");
  expectError(call("GET", "/api/v1/jobs/999999", core::TokenScope::Read), 404, "not_found");
  const auto bad = call("GET", "/api/v1/jobs/x1", core::TokenScope::Read);
  expectError(bad, 400, "invalid_id");
}

TEST_F(ServiceTest, ListsAJobsEventsOldestFirstInPages) {
  const auto id = enqueue();
  const auto path = "/api/v1/jobs/" + std::to_string(id) + "/events";
  const auto none = call("GET", path, core::TokenScope::Read);
  ASSERT_EQ(none.status, 200) << none.text;
  EXPECT_EQ(none.body["items"], Json::array());
  EXPECT_EQ(none.body["next_cursor"], "0") << "a queued job has events to come";

  core::JobQueue queue(target_);
  const auto worker = queue.registerWorker({1, "test", "localhost", 1});
  ASSERT_TRUE(worker);
  auto claimed = queue.claim(*worker, 1);
  ASSERT_TRUE(claimed && claimed->size() == 1);
  execute(target_, "INSERT INTO job_events (job_id, attempt, kind, level, message, data) VALUES "
                   "(" + std::to_string(id) + ", 1, 'state', 'info', 'attempt 1 started', '{\"worker_id\": \"w\"}'), "
                   "(" + std::to_string(id) + ", 1, 'log', 'info', 'fetching', NULL), "
                   "(" + std::to_string(id) + ", 1, 'progress', 'info', 'fetched 3', '{\"fetched\": 3}')");

  const auto all = call("GET", path, core::TokenScope::Read);
  ASSERT_EQ(all.status, 200) << all.text;
  ASSERT_EQ(all.body["items"].size(), 3U) << all.text;
  const auto& first = all.body["items"][0];
  EXPECT_TRUE(first["id"].is_number_integer());
  EXPECT_TRUE(first["at"].get<std::string>().ends_with("Z")) << all.text;
  EXPECT_EQ(first["attempt"], 1);
  EXPECT_EQ(first["kind"], "state");
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["message"], "attempt 1 started");
  EXPECT_EQ(first["data"]["worker_id"], "w");
  EXPECT_TRUE(all.body["items"][1]["data"].is_null());
  EXPECT_EQ(all.body["items"][2]["data"]["fetched"], 3);
  const auto last_id = std::to_string(all.body["items"][2]["id"].get<long long>());
  EXPECT_EQ(all.body["next_cursor"], last_id) << "the job runs: more may come";

  // Pages of two, then nothing new yet: the cursor stays where it was.
  const auto page1 = call("GET", path + "?limit=2", core::TokenScope::Read);
  ASSERT_EQ(page1.body["items"].size(), 2U);
  EXPECT_EQ(page1.body["items"][0]["id"], first["id"]);
  const auto page2 = call("GET", path + "?limit=2&after=" + page1.body["next_cursor"].get<std::string>(),
                          core::TokenScope::Read);
  ASSERT_EQ(page2.body["items"].size(), 1U) << page2.text;
  EXPECT_EQ(page2.body["items"][0]["kind"], "progress");
  const auto caught_up = call("GET", path + "?after=" + last_id, core::TokenScope::Read);
  EXPECT_EQ(caught_up.body["items"], Json::array());
  EXPECT_EQ(caught_up.body["next_cursor"], last_id);

  // Once the job ended, its end is the last event and the cursor runs out.
  ASSERT_TRUE(queue.complete(*worker, core::Completion{id, 1}));
  const auto end = call("GET", path + "?after=" + last_id, core::TokenScope::Read);
  ASSERT_EQ(end.body["items"].size(), 1U) << end.text;
  EXPECT_EQ(end.body["items"][0]["message"], "attempt 1 ended: succeeded");
  EXPECT_TRUE(end.body["next_cursor"].is_null()) << end.text;
  const auto partial = call("GET", path + "?limit=3", core::TokenScope::Read);
  EXPECT_EQ(partial.body["next_cursor"], last_id) << "a full page of an ended job still has a next one";

  expectError(call("GET", "/api/v1/jobs/999999/events", core::TokenScope::Read), 404, "not_found");
  expectError(call("GET", "/api/v1/jobs/x/events", core::TokenScope::Read), 400, "invalid_id");
  for (const char* bad : {"x", "-1", "1.5", "", "99999999999999999999"}) {
    const auto refused = call("GET", path + "?after=" + bad, core::TokenScope::Read);
    expectError(refused, 400, "invalid_parameter");
    EXPECT_EQ(refused.body["error"]["details"]["parameter"], "after") << bad;
  }
  expectError(call("GET", path + "?limit=501", core::TokenScope::Read), 400, "invalid_parameter");
  expectError(call("GET", path + "?cursor=3", core::TokenScope::Read), 400, "unknown_parameter");
  expectError(call("GET", path, std::nullopt), 401, "unauthenticated");
}

TEST_F(ServiceTest, UnknownPathsMethodsAndOversizedBodies) {
  expectError(call("GET", "/api/v1/nothing", core::TokenScope::Read), 404, "not_found");
  const auto method = call("DELETE", "/healthz", std::nullopt);
  expectError(method, 405, "method_not_allowed");
  ASSERT_EQ(method.headers.count("Allow"), 1U);
  EXPECT_EQ(method.headers.at("Allow"), "GET");
  expectError(call("POST", "/api/v1/jobs/1/cancel", core::TokenScope::Write, std::string(5000, 'x')), 413,
              "too_large");
  // The service is still there.
  EXPECT_EQ(call("GET", "/healthz", std::nullopt).status, 200);
}

TEST_F(ServiceTest, TokensAreStoredHashedAndNeverShownAgain) {
  core::TokenStore tokens(target_);
  const auto secret = secrets_.at(core::TokenScope::Write);
  EXPECT_EQ(syncpod::testing::queryScalar(target_, "SELECT count(*) FROM " + target_.schema +
                                                       ".api_tokens WHERE prefix = '" + secret.substr(0, 7) + "'"),
            "1");
  EXPECT_EQ(syncpod::testing::queryScalar(target_, "SELECT count(*) FROM " + target_.schema +
                                                       ".api_tokens WHERE position('" + secret +
                                                       "' IN token_sha256::text || name || prefix) > 0"),
            "0");
  auto listed = tokens.list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 3U);
  auto duplicate = tokens.create("write", core::TokenScope::Read);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().message, "a token named 'write' exists already");
  auto bad_name = tokens.create("no spaces", core::TokenScope::Read);
  ASSERT_FALSE(bad_name);
  EXPECT_NE(bad_name.error().message.find("invalid token name 'no spaces'"), std::string::npos);
  auto verified = tokens.verify(secret);
  ASSERT_TRUE(verified && *verified);
  EXPECT_EQ((*verified)->name, "write");
  EXPECT_TRUE((*verified)->last_used_at.has_value());  // the use was recorded
  ASSERT_TRUE(tokens.revoke("write"));
  auto revoked = tokens.verify(secret);
  ASSERT_TRUE(revoked);
  EXPECT_FALSE(revoked->has_value());
}

TEST_F(ServiceTest, IntegrationsAreCreatedReadAndListedWithSecretsHidden) {
  const auto created = create("crm");
  ASSERT_EQ(created.status, 201) << created.text;
  const auto id = created.body["id"].get<std::int64_t>();
  EXPECT_EQ(created.body["config"]["source"]["config"]["token"], "********");
  EXPECT_EQ(created.body["enabled"], true);
  EXPECT_EQ(storedToken(id), "s3cret-token");

  const auto one = call("GET", "/api/v1/integrations/" + std::to_string(id), core::TokenScope::Read);
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.text.find("s3cret"), std::string::npos) << one.text;
  ASSERT_EQ(create("erp").status, 201);
  const auto first = call("GET", "/api/v1/integrations?limit=1", core::TokenScope::Read);
  ASSERT_EQ(first.status, 200) << first.text;
  ASSERT_EQ(first.body["items"].size(), 1U);
  EXPECT_EQ(first.body["items"][0]["name"], "crm");
  ASSERT_TRUE(first.body["next_cursor"].is_string()) << first.text;
  const auto second = call("GET", "/api/v1/integrations?limit=1&cursor=" + first.body["next_cursor"].get<std::string>(),
                           core::TokenScope::Read);
  EXPECT_EQ(second.body["items"][0]["name"], "erp") << second.text;
  EXPECT_TRUE(second.body["next_cursor"].is_null()) << second.text;
  EXPECT_EQ(second.text.find("s3cret"), std::string::npos) << second.text;
  expectError(call("GET", "/api/v1/integrations?limit=0", core::TokenScope::Read), 400, "invalid_parameter");
  expectError(call("GET", "/api/v1/integrations?colour=red", core::TokenScope::Read), 400, "unknown_parameter");
}

TEST_F(ServiceTest, UpdatesKeepSecretsSentBackHidden) {
  const auto id = create("crm").body["id"].get<std::int64_t>();
  const auto path = "/api/v1/integrations/" + std::to_string(id);
  auto shown = call("GET", path, core::TokenScope::Read).body;
  auto config = shown["config"];
  config["deletion_policy"] = "conservative";
  const auto kept = call("PUT", path, core::TokenScope::Write, Json{{"name", "crm2"}, {"config", config}}.dump());
  ASSERT_EQ(kept.status, 200) << kept.text;
  EXPECT_EQ(kept.body["name"], "crm2");
  EXPECT_EQ(kept.body["config"]["deletion_policy"], "conservative");
  EXPECT_EQ(storedToken(id), "s3cret-token");

  config["source"]["config"]["token"] = "new-token";
  ASSERT_EQ(call("PUT", path, core::TokenScope::Write, Json{{"name", "crm2"}, {"config", config}}.dump()).status, 200);
  EXPECT_EQ(storedToken(id), "new-token");

  ASSERT_EQ(call("POST", path + "/disable", core::TokenScope::Write).body["enabled"], false);
  ASSERT_EQ(call("POST", path + "/enable", core::TokenScope::Write).body["enabled"], true);
  expectError(call("PUT", "/api/v1/integrations/999", core::TokenScope::Write,
                   Json{{"name", "x"}, {"config", memoryConfig()}}.dump()),
              404, "not_found");
}

TEST_F(ServiceTest, BadIntegrationsAreRefusedSayingWhatIsWrong) {
  auto config = memoryConfig();
  config["source"]["plugin"] = "nosuch";
  config["streams"][0]["fields"]["name"] = 7;
  const auto invalid = create("bad", config);
  expectError(invalid, 422, "invalid_config");
  ASSERT_TRUE(invalid.body["error"]["details"]["problems"].is_array()) << invalid.text;
  EXPECT_FALSE(invalid.body["error"]["details"]["problems"].empty());
  EXPECT_TRUE(invalid.body["error"]["details"]["problems"][0]["path"].is_string());

  auto unknown_plugin = memoryConfig();
  unknown_plugin["source"]["plugin"] = "nosuch";
  const auto problems = create("bad", unknown_plugin).body["error"]["details"]["problems"];
  EXPECT_NE(problems.dump().find("nosuch"), std::string::npos) << problems.dump();

  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Write, R"({"name": "x", "config": {}, "colour": 1})"),
              400, "unknown_field");
  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Write, R"({"name": 5, "config": {}})"), 400,
              "wrong_type");
  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Write, R"({"config": {}})"), 400, "missing_field");
  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Write, R"({"name": "x", "config": )"), 400,
              "invalid_json");
  ASSERT_EQ(create("twice").status, 201);
  expectError(create("twice"), 409, "conflict");
  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Read, "{}"), 403, "forbidden");

  const auto valid = call("POST", "/api/v1/integrations/validate", core::TokenScope::Write,
                          Json{{"config", memoryConfig()}}.dump());
  EXPECT_EQ(valid.body["valid"], true) << valid.text;
  const auto not_valid = call("POST", "/api/v1/integrations/validate", core::TokenScope::Write,
                              Json{{"config", config}}.dump());
  EXPECT_EQ(not_valid.body["valid"], false) << not_valid.text;
  EXPECT_FALSE(not_valid.body["problems"].empty());
}

TEST_F(ServiceTest, SyncsAreQueuedMergedListedAndRefusedWhenWrong) {
  const auto id = create("crm").body["id"].get<std::int64_t>();
  const auto syncs = "/api/v1/integrations/" + std::to_string(id) + "/syncs";
  const auto full = call("POST", syncs, core::TokenScope::Write, "");
  ASSERT_EQ(full.status, 202) << full.text;
  EXPECT_EQ(full.body["kind"], "full");
  EXPECT_EQ(full.body["state"], "queued");
  EXPECT_EQ(full.body["merged"], false);
  const auto again = call("POST", syncs, core::TokenScope::Write, R"({"kind": "full"})");
  EXPECT_EQ(again.body["id"], full.body["id"]);
  EXPECT_EQ(again.body["merged"], true);
  const auto partial = call("POST", syncs, core::TokenScope::Write, R"({"kind": "partial", "keys": ["1"]})");
  ASSERT_EQ(partial.status, 202) << partial.text;
  const auto plan = call("POST", syncs, core::TokenScope::Write, R"({"plan": true})");
  ASSERT_EQ(plan.status, 202) << plan.text;
  EXPECT_EQ(plan.body["payload"]["plan"], true) << plan.text;

  expectError(call("POST", syncs, core::TokenScope::Write, R"({"kind": "partial"})"), 400, "invalid_field");
  expectError(call("POST", syncs, core::TokenScope::Write, R"({"kind": "sideways"})"), 400, "invalid_field");
  expectError(call("POST", syncs, core::TokenScope::Write, R"({"keys": ["1"]})"), 400, "invalid_field");
  expectError(call("POST", "/api/v1/integrations/999/syncs", core::TokenScope::Write, ""), 404, "not_found");
  ASSERT_EQ(call("POST", "/api/v1/integrations/" + std::to_string(id) + "/disable", core::TokenScope::Write).status, 200);
  expectError(call("POST", syncs, core::TokenScope::Write, ""), 409, "conflict");

  const auto listed = call("GET", "/api/v1/jobs?integration_id=" + std::to_string(id) + "&limit=2", core::TokenScope::Read);
  ASSERT_EQ(listed.status, 200) << listed.text;
  ASSERT_EQ(listed.body["items"].size(), 2U);
  EXPECT_EQ(listed.body["items"][0]["id"], plan.body["id"]);  // newest first
  const auto rest = call("GET", "/api/v1/jobs?integration_id=" + std::to_string(id) + "&limit=2&cursor=" +
                                    listed.body["next_cursor"].get<std::string>(),
                         core::TokenScope::Read);
  ASSERT_EQ(rest.body["items"].size(), 1U) << rest.text;
  EXPECT_EQ(rest.body["items"][0]["id"], full.body["id"]);
  const auto partials = call("GET", "/api/v1/jobs?kind=partial&state=queued", core::TokenScope::Read);
  ASSERT_EQ(partials.body["items"].size(), 1U) << partials.text;
  expectError(call("GET", "/api/v1/jobs?state=done", core::TokenScope::Read), 400, "invalid_parameter");
}

TEST_F(ServiceTest, DeletingAnIntegrationWaitsForItsRunningJob) {
  const auto id = create("crm").body["id"].get<std::int64_t>();
  const auto path = "/api/v1/integrations/" + std::to_string(id);
  ASSERT_EQ(call("POST", path + "/syncs", core::TokenScope::Write, "").status, 202);
  core::JobQueue queue(target_);
  const auto worker = queue.registerWorker({1, "test", "localhost", 1});
  ASSERT_TRUE(worker);
  auto claimed = queue.claim(*worker, 1);
  ASSERT_TRUE(claimed && claimed->size() == 1);
  expectError(call("DELETE", path, core::TokenScope::Write), 409, "conflict");
  ASSERT_TRUE(queue.complete(*worker, core::Completion{(*claimed)[0].id, (*claimed)[0].attempt}));
  execute(target_, "INSERT INTO job_progress (job_id, fetched, diffed, applied) VALUES (" +
                       std::to_string((*claimed)[0].id) + ", 3, 2, 1)");
  const auto job = call("GET", "/api/v1/jobs/" + std::to_string((*claimed)[0].id), core::TokenScope::Read);
  ASSERT_EQ(job.body["attempts"].size(), 1U) << job.text;
  EXPECT_EQ(job.body["attempts"][0]["outcome"], "succeeded");
  EXPECT_EQ(job.body["attempts"][0]["worker_id"], *worker);
  EXPECT_EQ(job.body["progress"]["fetched"], 3);
  EXPECT_EQ(job.body["progress"]["applied"], 1);
  const auto deleted = call("DELETE", path, core::TokenScope::Write);
  EXPECT_EQ(deleted.status, 204) << deleted.text;
  expectError(call("GET", path, core::TokenScope::Read), 404, "not_found");
  expectError(call("DELETE", path, core::TokenScope::Write), 404, "not_found");
}

// --- webhooks ----------------------------------------------------------------------------

const std::string kWebhookSecret = "whsec_test_webhook_secret_0123456789";

class WebhookTest : public ServiceTest {
 protected:
  static std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  /// Creates an integration through the API, with `secret` as its webhook secret unless empty.
  std::int64_t webhookIntegration(const std::string& name, const std::string& secret = kWebhookSecret) {
    Json body = {{"name", name}, {"config", memoryConfig()}};
    if (!secret.empty()) body["webhook_secret"] = secret;
    const auto created = call("POST", "/api/v1/integrations", core::TokenScope::Write, body.dump());
    EXPECT_EQ(created.status, 201) << created.text;
    return created.body.value("id", std::int64_t{0});
  }

  static std::string webhookPath(std::int64_t id) { return "/api/v1/integrations/" + std::to_string(id) + "/webhook"; }

  /// A delivery as a sender makes it: signed with `secret` at `timestamp` (default: now).
  Reply deliver(std::int64_t id, const std::string& body, const std::string& secret = kWebhookSecret,
                std::optional<std::int64_t> timestamp = std::nullopt) {
    const auto at = std::to_string(timestamp.value_or(now()));
    return call("POST", webhookPath(id), std::nullopt, body,
                {{"X-Syncpod-Timestamp", at}, {"X-Syncpod-Signature", "v1=" + core::webhookSignature(secret, at, body)}});
  }

  std::string scalar(const std::string& sql) { return syncpod::testing::queryScalar(target_, sql); }
  std::string events(const std::string& where = "true") {
    return scalar("SELECT count(*) FROM " + target_.schema + ".webhook_events WHERE " + where);
  }

  static void expectUnauthenticated(const Reply& reply, const std::string& reason) {
    expectError(reply, 401, "unauthenticated");
    EXPECT_EQ(reply.body["error"]["details"]["reason"], reason) << reply.text;
    ASSERT_EQ(reply.headers.count("WWW-Authenticate"), 1U) << reply.text;
    EXPECT_EQ(reply.headers.at("WWW-Authenticate"), "Syncpod-Signature realm=\"syncpod\"");
  }
};

TEST_F(WebhookTest, ValidDeliveriesBecomeOneQueuedPartialJobOfTheirKeys) {
  const auto id = webhookIntegration("crm");
  const auto first = deliver(id, R"({"id": "evt-1", "keys": ["items/2", "items/1"]})");
  ASSERT_EQ(first.status, 202) << first.text;
  EXPECT_EQ(first.body["integration_id"], id);
  EXPECT_EQ(first.body["event_id"], "evt-1");
  EXPECT_EQ(first.body["keys"], Json({"items/2", "items/1"}));
  EXPECT_EQ(first.body["incremental"], false);
  EXPECT_EQ(first.body["duplicate"], false);
  EXPECT_TRUE(first.body["received_at"].get<std::string>().ends_with("Z")) << first.text;
  ASSERT_TRUE(first.body["job_id"].is_number_integer()) << first.text;
  const auto job_id = first.body["job_id"].get<core::JobId>();

  const auto job = call("GET", "/api/v1/jobs/" + std::to_string(job_id), core::TokenScope::Read);
  ASSERT_EQ(job.status, 200) << job.text;
  EXPECT_EQ(job.body["kind"], "partial");
  EXPECT_EQ(job.body["state"], "queued");
  EXPECT_EQ(job.body["integration_id"], id);
  EXPECT_EQ(job.body["payload"]["keys"], Json({"items/1", "items/2"}));

  // A second delivery while the job is queued coalesces into it.
  const auto second = deliver(id, R"({"keys": ["items/3", "items/1"]})");
  ASSERT_EQ(second.status, 202) << second.text;
  EXPECT_EQ(second.body["job_id"], job_id);
  EXPECT_TRUE(second.body["event_id"].is_null());
  const auto merged = call("GET", "/api/v1/jobs/" + std::to_string(job_id), core::TokenScope::Read);
  EXPECT_EQ(merged.body["payload"]["keys"], Json({"items/1", "items/2", "items/3"})) << merged.text;
  // "Something changed" without keys: the same job also fetches the changes since the cursor.
  const auto changes = deliver(id, R"({"incremental": true})");
  ASSERT_EQ(changes.status, 202) << changes.text;
  EXPECT_EQ(changes.body["job_id"], job_id);
  EXPECT_EQ(call("GET", "/api/v1/jobs/" + std::to_string(job_id), core::TokenScope::Read).body["payload"]["incremental"],
            true);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema + ".jobs"), "1");
  EXPECT_EQ(events("job_id = " + std::to_string(job_id)), "3");

  // Signed but not of the documented shape: 400, and nothing stored.
  expectError(deliver(id, R"({"keys": []})"), 400, "invalid_field");
  expectError(deliver(id, R"({"keys": [17]})"), 400, "invalid_field");
  expectError(deliver(id, R"({"key": ["1"]})"), 400, "unknown_field");
  expectError(deliver(id, R"({"keys": ["1"])"), 400, "invalid_json");
  EXPECT_EQ(events(), "3");
}

TEST_F(WebhookTest, ReplaysAreAnsweredWithTheFirstEventAndStoreNothing) {
  const auto id = webhookIntegration("crm");
  const auto at = now();
  const std::string body = R"({"keys": ["1"]})";
  const auto first = deliver(id, body, kWebhookSecret, at);
  ASSERT_EQ(first.status, 202) << first.text;
  // The same signed delivery again (a replay, or a sender's retry): 200, the same event.
  const auto replay = deliver(id, body, kWebhookSecret, at);
  ASSERT_EQ(replay.status, 200) << replay.text;
  EXPECT_EQ(replay.body["duplicate"], true);
  EXPECT_EQ(replay.body["id"], first.body["id"]);
  EXPECT_EQ(replay.body["job_id"], first.body["job_id"]);
  // A sender that names its events: a retry signed anew is still the same event.
  const auto named = deliver(id, R"({"id": "evt-7", "keys": ["2"]})", kWebhookSecret, at);
  ASSERT_EQ(named.status, 202) << named.text;
  const auto retried = deliver(id, R"({"id": "evt-7", "keys": ["2"]})", kWebhookSecret, at + 1);
  ASSERT_EQ(retried.status, 200) << retried.text;
  EXPECT_EQ(retried.body["id"], named.body["id"]);
  EXPECT_EQ(events(), "2");
  // A replay after the tolerance is refused by its timestamp.
  expectUnauthenticated(deliver(id, body, kWebhookSecret, at - 301), "stale_timestamp");
}

TEST_F(WebhookTest, UnsignedBadlySignedAndStaleDeliveriesAreRefused) {
  const auto id = webhookIntegration("crm");
  const std::string body = R"({"keys": ["1"]})";
  const auto at = std::to_string(now());
  const auto signature = "v1=" + core::webhookSignature(kWebhookSecret, at, body);

  const auto unsigned_ = call("POST", webhookPath(id), std::nullopt, body);
  expectUnauthenticated(unsigned_, "missing_header");
  EXPECT_NE(unsigned_.body["error"]["message"].get<std::string>().find("X-Syncpod-Signature"), std::string::npos);
  expectUnauthenticated(call("POST", webhookPath(id), std::nullopt, body, {{"X-Syncpod-Timestamp", at}}),
                        "missing_header");
  expectUnauthenticated(call("POST", webhookPath(id), std::nullopt, body, {{"X-Syncpod-Signature", signature}}),
                        "missing_header");
  // A bearer token is no substitute for the signature.
  expectUnauthenticated(call("POST", webhookPath(id), core::TokenScope::Admin, body), "missing_header");
  for (const std::string timestamp : {"abc", "-5", "1.5", "+1700000000", "99999999999999"}) {
    expectUnauthenticated(call("POST", webhookPath(id), std::nullopt, body,
                               {{"X-Syncpod-Timestamp", timestamp}, {"X-Syncpod-Signature", signature}}),
                          "malformed_header");
  }
  const auto wrong_secret = deliver(id, body, "whsec_someone_elses_secret_0123");
  expectUnauthenticated(wrong_secret, "bad_signature");
  const auto tampered = call("POST", webhookPath(id), std::nullopt, R"({"keys": ["2"]})",
                             {{"X-Syncpod-Timestamp", at}, {"X-Syncpod-Signature", signature}});
  expectUnauthenticated(tampered, "bad_signature");
  const auto other_time = call("POST", webhookPath(id), std::nullopt, body,
                               {{"X-Syncpod-Timestamp", std::to_string(now() - 1)}, {"X-Syncpod-Signature", signature}});
  expectUnauthenticated(other_time, "bad_signature");
  expectUnauthenticated(call("POST", webhookPath(id), std::nullopt, body,
                             {{"X-Syncpod-Timestamp", at}, {"X-Syncpod-Signature", signature.substr(3)}}),
                        "bad_signature");

  // Outside the tolerance, in the past or in the future, even when signed correctly.
  const auto stale = deliver(id, body, kWebhookSecret, now() - 301);
  expectUnauthenticated(stale, "stale_timestamp");
  EXPECT_EQ(stale.body["error"]["details"]["tolerance_s"], 300) << stale.text;
  expectUnauthenticated(deliver(id, body, kWebhookSecret, now() + 301), "stale_timestamp");
  EXPECT_EQ(events(), "0");
  EXPECT_EQ(deliver(id, body, kWebhookSecret, now() - 240).status, 202);
  EXPECT_EQ(deliver(id, R"({"keys": ["2"]})", kWebhookSecret, now() + 240).status, 202);
  EXPECT_EQ(events(), "2");
}

TEST_F(WebhookTest, OversizedDeliveriesAreRefused) {
  const auto id = webhookIntegration("crm");
  // Over the webhook limit (1024 bytes here), under the service's (4096).
  const auto big = R"({"keys": [")" + std::string(1100, 'k') + R"("]})";
  const auto refused = deliver(id, big);
  expectError(refused, 413, "too_large");
  EXPECT_EQ(refused.body["error"]["details"]["limit_bytes"], 1024) << refused.text;
  expectError(deliver(id, R"({"keys": [")" + std::string(5000, 'k') + R"("]})"), 413, "too_large");
  EXPECT_EQ(events(), "0");
  // Just under the limit is fine.
  const auto fits = R"({"keys": [")" + std::string(1000, 'k') + R"("]})";
  ASSERT_LE(fits.size(), 1024U);
  EXPECT_EQ(deliver(id, fits).status, 202);
}

TEST_F(WebhookTest, IntegrationsWithoutASecretTakeNoWebhooks) {
  const auto id = webhookIntegration("plain", "");
  const auto shown = call("GET", "/api/v1/integrations/" + std::to_string(id), core::TokenScope::Read);
  EXPECT_TRUE(shown.body["webhook_secret"].is_null()) << shown.text;
  const auto refused = deliver(id, R"({"keys": ["1"]})");
  expectError(refused, 403, "forbidden");
  EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("no webhook secret"), std::string::npos)
      << refused.text;
  expectError(deliver(999999, R"({"keys": ["1"]})"), 404, "not_found");
  expectError(call("POST", "/api/v1/integrations/x/webhook", std::nullopt, "{}"), 400, "invalid_id");
  expectError(call("GET", webhookPath(id), std::nullopt), 405, "method_not_allowed");
  EXPECT_EQ(events(), "0");
}

TEST_F(WebhookTest, ADisabledIntegrationKeepsItsEventsAndTheyBecomeAJobLater) {
  const auto id = webhookIntegration("crm");
  const auto path = "/api/v1/integrations/" + std::to_string(id);
  ASSERT_EQ(call("POST", path + "/disable", core::TokenScope::Write).status, 200);
  const auto kept = deliver(id, R"({"keys": ["1"]})");
  ASSERT_EQ(kept.status, 202) << kept.text;
  EXPECT_TRUE(kept.body["job_id"].is_null()) << kept.text;
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema + ".jobs"), "0");

  // Enabled again, the next delivery takes the pending event along into its job.
  ASSERT_EQ(call("POST", path + "/enable", core::TokenScope::Write).status, 200);
  const auto next = deliver(id, R"({"keys": ["2"]})");
  ASSERT_EQ(next.status, 202) << next.text;
  ASSERT_TRUE(next.body["job_id"].is_number_integer()) << next.text;
  const auto job_id = next.body["job_id"].get<core::JobId>();
  EXPECT_EQ(events("job_id = " + std::to_string(job_id)), "2");
  EXPECT_EQ(call("GET", "/api/v1/jobs/" + std::to_string(job_id), core::TokenScope::Read).body["payload"]["keys"],
            Json({"1", "2"}));
}

TEST_F(WebhookTest, AnEventWhoseJobCannotBeInsertedIsKeptAndTheSingletonsPassEnqueuesIt) {
  const auto id = webhookIntegration("crm");
  execute(target_, R"SQL(
    CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the job insert fails'; END $$;
    CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs();
  )SQL");
  const auto accepted = deliver(id, R"({"keys": ["1"]})");
  ASSERT_EQ(accepted.status, 202) << accepted.text;
  EXPECT_TRUE(accepted.body["job_id"].is_null()) << accepted.text;
  EXPECT_EQ(events("job_id IS NULL"), "1");

  execute(target_, "DROP TRIGGER refuse_jobs ON jobs");
  core::LeaderLease lease(target_, "singleton", "test", std::chrono::seconds(30));
  const auto token = lease.acquire();
  ASSERT_TRUE(token && *token);
  core::JobQueue queue(target_);
  const auto jobs = queue.enqueueWebhookEvents(**token, 1000);
  ASSERT_TRUE(jobs) << jobs.error().message;
  ASSERT_EQ(jobs->size(), 1U);
  EXPECT_EQ(jobs->front().integration_id, id);
  EXPECT_EQ(events("job_id = " + std::to_string(jobs->front().job_id)), "1");
  // The sender retrying the same delivery now learns the job.
  const auto event_id = accepted.body["id"].get<std::int64_t>();
  EXPECT_EQ(scalar("SELECT job_id FROM " + target_.schema + ".webhook_events WHERE id = " + std::to_string(event_id)),
            std::to_string(jobs->front().job_id));
}

TEST_F(WebhookTest, SecretsAreWriteOnlySetRotatedAndRemovedThroughTheApi) {
  const auto id = webhookIntegration("crm");
  const auto path = "/api/v1/integrations/" + std::to_string(id);
  const auto shown = call("GET", path, core::TokenScope::Read);
  EXPECT_EQ(shown.body["webhook_secret"], "********") << shown.text;
  EXPECT_TRUE(shown.body["webhook_previous_expires_at"].is_null()) << shown.text;
  EXPECT_EQ(shown.text.find(kWebhookSecret), std::string::npos);
  const auto listed = call("GET", "/api/v1/integrations", core::TokenScope::Read);
  EXPECT_EQ(listed.body["items"][0]["webhook_secret"], "********") << listed.text;
  EXPECT_EQ(listed.text.find(kWebhookSecret), std::string::npos);

  // Sent back as shown, or left out, the secret stays.
  auto body = Json{{"name", "crm"}, {"config", shown.body["config"]}, {"webhook_secret", "********"}};
  const auto kept = call("PUT", path, core::TokenScope::Write, body.dump());
  ASSERT_EQ(kept.status, 200) << kept.text;
  EXPECT_EQ(kept.text.find(kWebhookSecret), std::string::npos);
  body.erase("webhook_secret");
  ASSERT_EQ(call("PUT", path, core::TokenScope::Write, body.dump()).status, 200);
  EXPECT_EQ(deliver(id, R"({"keys": ["1"]})").status, 202);

  // A generated secret is shown once; the old one stops working at once.
  const auto rotated = call("POST", path + "/webhook-secret", core::TokenScope::Write);
  ASSERT_EQ(rotated.status, 200) << rotated.text;
  const auto generated = rotated.body["webhook_secret"].get<std::string>();
  EXPECT_EQ(generated.rfind("whsec_", 0), 0U) << rotated.text;
  EXPECT_EQ(call("GET", path, core::TokenScope::Read).body["webhook_secret"], "********");
  expectUnauthenticated(deliver(id, R"({"keys": ["2"]})"), "bad_signature");
  EXPECT_EQ(deliver(id, R"({"keys": ["2"]})", generated).status, 202);

  // A chosen secret, with the generated one still accepted for an hour; a chosen secret is
  // not echoed.
  const std::string chosen = "a-chosen-secret-of-enough-length";
  const auto overlapping = call("POST", path + "/webhook-secret", core::TokenScope::Write,
                                Json{{"secret", chosen}, {"keep_previous_s", 3600}}.dump());
  ASSERT_EQ(overlapping.status, 200) << overlapping.text;
  EXPECT_EQ(overlapping.body["webhook_secret"], "********");
  EXPECT_TRUE(overlapping.body["webhook_previous_expires_at"].is_string()) << overlapping.text;
  EXPECT_EQ(overlapping.text.find(chosen), std::string::npos);
  EXPECT_EQ(deliver(id, R"({"keys": ["3"]})", chosen).status, 202);
  EXPECT_EQ(deliver(id, R"({"keys": ["4"]})", generated).status, 202);
  // A sender may sign with both while it switches over.
  const auto at = std::to_string(now());
  const std::string both_body = R"({"keys": ["5"]})";
  const auto both = call("POST", webhookPath(id), std::nullopt, both_body,
                         {{"X-Syncpod-Timestamp", at},
                          {"X-Syncpod-Signature", "v1=" + core::webhookSignature(generated, at, both_body) +
                                                      ",v1=" + core::webhookSignature(chosen, at, both_body)}});
  EXPECT_EQ(both.status, 202) << both.text;

  // Bad secrets are refused without being quoted.
  for (const auto& bad : {Json("short"), Json("has spaces in the middle of it"), Json(17)}) {
    const auto refused = call("PUT", path, core::TokenScope::Write,
                              Json{{"name", "crm"}, {"config", shown.body["config"]}, {"webhook_secret", bad}}.dump());
    EXPECT_EQ(refused.status, 400) << refused.text;
    if (bad.is_string()) {
      EXPECT_EQ(refused.text.find(bad.get<std::string>()), std::string::npos);
    }
  }
  expectError(call("POST", path + "/webhook-secret", core::TokenScope::Write, R"({"keep_previous_s": -1})"), 400,
              "invalid_field");
  expectError(call("POST", path + "/webhook-secret", core::TokenScope::Write, R"({"secret": "short"})"), 400,
              "invalid_field");
  expectError(call("POST", path + "/webhook-secret", core::TokenScope::Read), 403, "forbidden");
  expectError(call("POST", "/api/v1/integrations/999999/webhook-secret", core::TokenScope::Write), 404, "not_found");
  expectError(call("POST", "/api/v1/integrations", core::TokenScope::Write,
                   Json{{"name", "x"}, {"config", memoryConfig()}, {"webhook_secret", "********"}}.dump()),
              400, "invalid_field");

  // null removes it: no more webhooks.
  body["webhook_secret"] = nullptr;
  const auto removed = call("PUT", path, core::TokenScope::Write, body.dump());
  ASSERT_EQ(removed.status, 200) << removed.text;
  EXPECT_TRUE(removed.body["webhook_secret"].is_null());
  EXPECT_TRUE(removed.body["webhook_previous_expires_at"].is_null());
  expectError(deliver(id, R"({"keys": ["6"]})", chosen), 403, "forbidden");
}

TEST_F(WebhookTest, SecretsAndSignaturesNeverReachTheLog) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto logger = spdlog::default_logger();
  const auto level = logger->level();
  logger->sinks().push_back(sink);
  logger->set_level(spdlog::level::trace);

  const auto id = webhookIntegration("crm");
  const auto at = now();
  const std::string body = R"({"keys": ["1"]})";
  const auto signature = core::webhookSignature(kWebhookSecret, std::to_string(at), body);
  EXPECT_EQ(deliver(id, body, kWebhookSecret, at).status, 202);
  EXPECT_EQ(deliver(id, body, kWebhookSecret, at).status, 200);
  EXPECT_EQ(deliver(id, body, "whsec_a_wrong_secret_0123456789").status, 401);
  EXPECT_EQ(deliver(id, body, kWebhookSecret, at - 1000).status, 401);
  // The failure path logs the database's message (the job is queued: merging updates it).
  execute(target_, R"SQL(
    CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the job cannot be written'; END $$;
    CREATE TRIGGER refuse_jobs BEFORE INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs();
  )SQL");
  EXPECT_EQ(deliver(id, R"({"keys": ["2"]})").status, 202);
  const auto rotated = call("POST", "/api/v1/integrations/" + std::to_string(id) + "/webhook-secret", core::TokenScope::Write);
  ASSERT_EQ(rotated.status, 200);
  const auto generated = rotated.body["webhook_secret"].get<std::string>();
  // A failed update quotes the row it tried to write in PostgreSQL's message; the service logs it.
  execute(target_, "ALTER TABLE integrations ADD CONSTRAINT no_updates CHECK (name <> 'refused')");
  const auto refused = call("PUT", "/api/v1/integrations/" + std::to_string(id), core::TokenScope::Write,
                            Json{{"name", "refused"}, {"config", memoryConfig()},
                                 {"webhook_secret", "whsec_put_in_a_failing_update_012"}}
                                .dump());
  EXPECT_EQ(refused.status, 500) << refused.text;

  logger->flush();
  logger->sinks().pop_back();
  logger->set_level(level);
  const auto log = captured.str();
  EXPECT_NE(log.find("stays pending"), std::string::npos) << log;
  EXPECT_NE(log.find("check constraint"), std::string::npos) << log;
  EXPECT_NE(log.find("the row is not shown"), std::string::npos) << log;
  for (const auto& secret : {kWebhookSecret, generated, std::string("whsec_put_in_a_failing_update_012"), signature,
                             std::string("s3cret-token")}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in the log:\n" << log;
  }
}

}  // namespace
}  // namespace syncpod::service
