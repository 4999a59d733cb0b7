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
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

using syncpod::testing::execute;

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
    service_ = std::make_unique<Service>(target_, options);
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

}  // namespace
}  // namespace syncpod::service
