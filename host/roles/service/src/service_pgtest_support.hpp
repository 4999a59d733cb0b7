#pragma once
// Test support for the service's *_pgtest.cpp: a Service on 127.0.0.1 over a fresh migrated
// schema, a token of each scope, and a plain HTTP client.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include "api.hpp"
#include "pg_test_support.hpp"
#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service::testing {

/// The two well-behaved fake plugins: memory and memory-loose (which diffs itself).
inline const core::PluginRegistry& testPlugins() {
  static const auto registry = core::PluginRegistry::load(
      {SYNCPOD_TEST_PLUGIN_DIR "/libmemory.so", SYNCPOD_TEST_PLUGIN_DIR "/libmemory_loose.so"});
  return registry;
}

struct Reply {
  int status = 0;
  Json body;  ///< discarded when the body is not JSON
  std::string text;
  std::map<std::string, std::string> headers;
};

class ServiceFixture : public syncpod::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    startService(target_);
    core::TokenStore tokens(target_);
    for (const auto scope :
         {core::TokenScope::Read, core::TokenScope::Write, core::TokenScope::Admin}) {
      auto created = tokens.create(std::string(core::toString(scope)), scope);
      ASSERT_TRUE(created) << created.error().message;
      secrets_[scope] = created->secret;
    }
  }

  void TearDown() override {
    service_.reset();
    PgTest::TearDown();
  }

  /// The test service's options; startService() uses them as they are then.
  static ServiceOptions testOptions() {
    ServiceOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.max_body_bytes = 4096;
    options.metrics_scan_interval = std::chrono::milliseconds(0);  // every scrape reads all
    return options;
  }

  /// (Re)starts the service on `target`, on a free port.
  void startService(const core::DatabaseTarget& target) {
    service_.reset();
    service_ = std::make_unique<Service>(target, options_, testPlugins());
    service_->start();
  }

  Reply call(const std::string& method, const std::string& path,
             std::optional<core::TokenScope> scope, const std::string& body = "",
             const std::map<std::string, std::string>& headers = {}) {
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

  /// The error shape every failure has, with this status and code.
  static void expectError(const Reply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.text;
    EXPECT_EQ(reply.body["error"]["code"], code) << reply.text;
    EXPECT_TRUE(reply.body["error"]["message"].is_string()) << reply.text;
    EXPECT_TRUE(reply.body["error"]["details"].is_object()) << reply.text;
  }

  ServiceOptions options_ = testOptions();
  std::unique_ptr<Service> service_;
  std::map<core::TokenScope, std::string> secrets_;
};

}  // namespace syncpod::service::testing
