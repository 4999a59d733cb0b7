// The REST API over real HTTP on 127.0.0.1, against the test PostgreSQL.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include "api.hpp"
#include "pg_test_support.hpp"
#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

using syncpod::testing::execute;

const core::PluginRegistry& plugins() {
  static const auto registry = core::PluginRegistry::load({SYNCPOD_TEST_PLUGIN_DIR "/libmemory.so"});
  return registry;
}

struct Reply {
  int status = 0;
  Json body;
  std::string text;
  std::map<std::string, std::string> headers;
};

class ServiceTest : public syncpod::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    ServiceOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.max_body_bytes = 4096;
    service_ = std::make_unique<Service>(target_, options, plugins());
    service_->start();
    core::TokenStore tokens(target_);
    for (const auto scope : {core::TokenScope::Read, core::TokenScope::Write, core::TokenScope::Admin}) {
      auto created = tokens.create(std::string(core::toString(scope)), scope);
      ASSERT_TRUE(created) << created.error().message;
      secrets_[scope] = created->secret;
    }
  }

  void TearDown() override {
    service_.reset();
    PgTest::TearDown();
  }

  Reply call(const std::string& method, const std::string& path, std::optional<core::TokenScope> scope,
             const std::string& body = "", const std::map<std::string, std::string>& headers = {}) {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(service_->port()));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (scope) request.set("Authorization", "Bearer " + secrets_.at(*scope));
    for (const auto& [name, value] : headers) request.set(name, value);
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    auto& stream = session.receiveResponse(response);
    Reply reply;
    reply.status = static_cast<int>(response.getStatus());
    Poco::StreamCopier::copyToString(stream, reply.text);
    for (const auto& [name, value] : response) reply.headers[name] = value;
    reply.body = Json::parse(reply.text, nullptr, false);
    return reply;
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

  static void expectError(const Reply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.text;
    EXPECT_EQ(reply.body["error"]["code"], code) << reply.text;
    EXPECT_TRUE(reply.body["error"]["message"].is_string()) << reply.text;
    EXPECT_TRUE(reply.body["error"]["details"].is_object()) << reply.text;
  }

  std::unique_ptr<Service> service_;
  std::map<core::TokenScope, std::string> secrets_;
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

}  // namespace
}  // namespace syncpod::service
