// The CLI client against a running service: `syncpod tokens`, `syncpod sync` and `syncpod jobs`
// drive the real binary over real HTTP on 127.0.0.1, as an operator would.

#include <csignal>
#include <regex>
#include <sstream>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pg_test_support.hpp"
#include "process.hpp"

namespace syncpod::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kBinary = SYNCPOD_BINARY;

class ApiCliTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    const auto created = runSplit({kBinary, "tokens", "create", "--name=cli", "--scope=write",
                                   "--database-url=" + target_.url, "--schema=" + target_.schema});
    ASSERT_EQ(created.exit_code, 0) << created.errors;
    token_ = created.output.substr(0, created.output.find('\n'));
    const Json config = {
        {"source", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array({{{"id", 1}, {"name", "a"}},
                                                                                         {{"id", 2}, {"name", "b"}}})}}}}}}},
        {"target", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array()}}}}}}},
        {"streams", {{{"name", "items"}, {"source_stream", "items"}, {"target_stream", "items"},
                      {"key", {"id"}}, {"fields", {{"id", "id"}, {"name", "name"}}}}}}};
    integration_ = std::to_string(createIntegration("cli"));
    execute(target_, "UPDATE integrations SET config = '" + config.dump() + "'::jsonb WHERE id = " + integration_);
  }

  /// Starts `serve` with `role` (and `extra` arguments) on a free port and returns the API URL
  /// it listens on.
  std::string startServe(const std::string& role, const std::vector<std::string>& extra = {},
                         const std::string& plugin_path = SYNCPOD_TEST_PLUGIN_DIR "/libmemory.so:" SYNCPOD_TEST_PLUGIN_DIR
                                                                                   "/libworkload.so") {
    std::vector<std::string> args = {
        kBinary, "serve", "--role=" + role, "--database-url=" + target_.url, "--schema=" + target_.schema,
        "--http-host=127.0.0.1", "--http-port=0", "--plugin-path=" + plugin_path,
        "--terminating-grace=300ms", "--scale-interval=100ms", "--keda-polling-interval=100ms",
        "--heartbeat-interval=200ms", "--rescue-lease=2s"};
    args.insert(args.end(), extra.begin(), extra.end());
    serve_ = std::make_unique<ChildProcess>(args);
    EXPECT_TRUE(serve_->waitForOutput("ready: role", 20s)) << serve_->output();
    std::smatch port;
    const auto output = serve_->output();
    EXPECT_TRUE(std::regex_search(output, port, std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)"))) << output;
    return "http://127.0.0.1:" + port[1].str();
  }

  void TearDown() override {
    if (serve_) {
      serve_->signal(SIGTERM);
      EXPECT_EQ(serve_->wait(30s), 0) << serve_->output();
    }
    PgTest::TearDown();
  }

  SplitRunResult cli(std::vector<std::string> args, const std::string& url) {
    args.insert(args.begin(), kBinary);
    return runSplit(args, {{"SYNCPOD_API_URL", url}, {"SYNCPOD_API_TOKEN", token_}});
  }

  /// GET `path` from the API at `url` with the test's token; the parsed body.
  Json get(const std::string& url, const std::string& path) {
    const Poco::URI uri(url);
    Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
    Poco::Net::HTTPRequest request("GET", path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Authorization", "Bearer " + token_);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::string body;
    Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
    EXPECT_EQ(response.getStatus(), Poco::Net::HTTPResponse::HTTP_OK) << path << ": " << body;
    return Json::parse(body, nullptr, false);
  }

  std::string token_;
  std::string integration_;
  std::unique_ptr<ChildProcess> serve_;
};

TEST_F(ApiCliTest, QueuesShowsListsAndCancelsJobs) {
  const auto url = startServe("service");
  const auto queued = cli({"sync", integration_, "--no-wait"}, url);
  ASSERT_EQ(queued.exit_code, 0) << queued.errors;
  std::smatch id;
  ASSERT_TRUE(std::regex_search(queued.output, id, std::regex("job ([0-9]+) queued"))) << queued.output;
  const auto job = id[1].str();

  const auto listed = cli({"jobs", "list", "--json"}, url);
  ASSERT_EQ(listed.exit_code, 0) << listed.errors;
  EXPECT_EQ(Json::parse(listed.output)["items"][0]["id"].dump(), job);
  const auto table = cli({"jobs", "list", "--state=queued"}, url);
  EXPECT_NE(table.output.find(job + " "), std::string::npos) << table.output;
  const auto shown = cli({"jobs", "show", job}, url);
  EXPECT_NE(shown.output.find("full  queued  integration " + integration_), std::string::npos) << shown.output;

  EXPECT_EQ(cli({"jobs", "cancel", job}, url).output, "job " + job + ": cancelled\n");
  const auto watched = cli({"jobs", "watch", job}, url);
  EXPECT_EQ(watched.exit_code, 1) << "a cancelled job is not a success";
  EXPECT_NE(watched.output.find("cancelled"), std::string::npos) << watched.output;

  const auto missing = cli({"jobs", "show", "999999"}, url);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.errors.find("404: no job 999999"), std::string::npos) << missing.errors;
  const auto unauthorised = runSplit({kBinary, "jobs", "list"}, {{"SYNCPOD_API_URL", url}, {"SYNCPOD_API_TOKEN", "sp_wrong"}});
  EXPECT_EQ(unauthorised.exit_code, 1);
  EXPECT_NE(unauthorised.errors.find("401"), std::string::npos) << unauthorised.errors;
}

TEST_F(ApiCliTest, SyncWatchesTheJobToItsEnd) {
  const auto url = startServe("all");
  const auto synced = cli({"sync", integration_}, url);
  EXPECT_EQ(synced.exit_code, 0) << synced.output << synced.errors << serve_->output();
  EXPECT_NE(synced.output.find("succeeded"), std::string::npos) << synced.output;
  EXPECT_NE(synced.output.find("items → target: 2 created, 0 updated, 0 deleted"), std::string::npos) << synced.output;
  const auto planned = cli({"sync", integration_, "--plan"}, url);
  EXPECT_EQ(planned.exit_code, 0) << planned.output << planned.errors;
  EXPECT_NE(planned.output.find("plan only"), std::string::npos) << planned.output;
}

class JobEventsThroughAWorker : public ApiCliTest, public ::testing::WithParamInterface<const char*> {};

// A real sync job run by a worker (in a job process or a thread): `jobs watch` shows its log
// lines while it runs, then its progress and its end; the endpoint has the same events.
TEST_P(JobEventsThroughAWorker, WatchAndTheEndpointShowLogLinesAndProgress) {
  const auto url = startServe("all", {std::string("--isolation=") + GetParam(), "--job-event-log-lines=3"});
  // The source logs five lines (three are kept) and a warning quoting its secret token, then
  // works for a while: long enough to be watched running.
  const Json config = {
      {"source", {{"plugin", "workload"},
                  {"config", {{"records", 4}, {"log_lines", 5}, {"fetch_ms", 3000}, {"token", "hunter2"}}}}},
      {"target", {{"plugin", "workload"}, {"config", {{"records", 0}}}}},
      {"streams", {{{"name", "items"}, {"key", {"id"}}, {"fields", {{"id", "id"}, {"value", "value"}}}}}}};
  execute(target_, "UPDATE integrations SET config = '" + config.dump() + "'::jsonb WHERE id = " + integration_);
  const auto queued = cli({"sync", integration_, "--no-wait"}, url);
  ASSERT_EQ(queued.exit_code, 0) << queued.errors;
  std::smatch id;
  ASSERT_TRUE(std::regex_search(queued.output, id, std::regex("job ([0-9]+) queued"))) << queued.output;
  const auto job = id[1].str();

  ChildProcess watch({kBinary, "jobs", "watch", job}, {{"SYNCPOD_API_URL", url}, {"SYNCPOD_API_TOKEN", token_}});
  ASSERT_TRUE(watch.waitForOutput("workload: line 3 of 5", 30s)) << watch.output() << serve_->output();
  EXPECT_EQ(queryScalar(target_, "SELECT state FROM jobs WHERE id = " + job), "running")
      << "the lines show while the job runs";
  EXPECT_EQ(watch.wait(30s), 0) << watch.output() << serve_->output();
  const auto output = watch.output();
  EXPECT_NE(output.find("  state     attempt 1 of 5 started on worker "), std::string::npos) << output;
  EXPECT_NE(output.find("  info      workload: line 1 of 5\n"), std::string::npos) << output;
  EXPECT_EQ(output.find("line 4 of 5"), std::string::npos) << output;
  EXPECT_NE(output.find("  warn      3 more log line(s) of this attempt were not stored"), std::string::npos) << output;
  EXPECT_TRUE(std::regex_search(output, std::regex("  progress  fetched 4, diffed [0-9]+, applied 4, failed 0\n")))
      << output;
  EXPECT_NE(output.find("  state     attempt 1 ended: succeeded\n"), std::string::npos) << output;
  EXPECT_NE(output.find("items → target: 4 created"), std::string::npos) << output;
  EXPECT_LT(output.find("line 1 of 5"), output.find("ended: succeeded"));
  EXPECT_EQ(output.find("hunter2"), std::string::npos) << output;

  const auto page = get(url, "/api/v1/jobs/" + job + "/events");
  ASSERT_TRUE(page["items"].is_array()) << page.dump();
  EXPECT_TRUE(page["next_cursor"].is_null()) << "the job ended: " << page.dump();
  std::vector<std::string> seen;
  for (const auto& event : page["items"]) {
    seen.push_back(event["kind"].get<std::string>() + " " + event["message"].get<std::string>());
  }
  ASSERT_GE(seen.size(), 7U) << page.dump();
  EXPECT_EQ(seen[1], "log workload: line 1 of 5");
  EXPECT_EQ(seen[3], "log workload: line 3 of 5");
  EXPECT_EQ(seen.back(), "state attempt 1 ended: succeeded");
  const auto& progress = page["items"][page["items"].size() - 3];
  EXPECT_EQ(progress["kind"], "progress") << page.dump();
  EXPECT_EQ(progress["data"]["fetched"], 4) << progress.dump();
  EXPECT_EQ(progress["data"]["applied"], 4) << progress.dump();
  EXPECT_EQ(page.dump().find("hunter2"), std::string::npos);
  // Paged by the cursor, the same events.
  const auto first = get(url, "/api/v1/jobs/" + job + "/events?limit=2");
  ASSERT_EQ(first["items"].size(), 2U);
  const auto rest = get(url, "/api/v1/jobs/" + job + "/events?after=" + first["next_cursor"].get<std::string>());
  EXPECT_EQ(rest["items"].size(), page["items"].size() - 2);
  EXPECT_EQ(rest["items"][0], page["items"][2]);
}

INSTANTIATE_TEST_SUITE_P(Isolations, JobEventsThroughAWorker, ::testing::Values("process", "thread"),
                         [](const auto& param_info) { return std::string(param_info.param); });

TEST_F(ApiCliTest, UnreachableServiceAndMissingTokenAreOneLine) {
  const auto down = cli({"jobs", "list"}, "http://127.0.0.1:1");
  EXPECT_EQ(down.exit_code, 78);
  EXPECT_NE(down.errors.find("cannot reach the syncpod service at http://127.0.0.1:1"), std::string::npos) << down.errors;
  const auto no_token = runSplit({kBinary, "jobs", "list"}, {{"SYNCPOD_API_TOKEN", ""}});
  EXPECT_EQ(no_token.exit_code, 78);
  EXPECT_NE(no_token.errors.find("SYNCPOD_API_TOKEN"), std::string::npos) << no_token.errors;
}

/// One HTTP request; returns the status line and the body, for searching.
std::string httpText(const std::string& url, const std::string& method, const std::string& path,
                     const std::map<std::string, std::string>& headers, const std::string& body = "") {
  const Poco::URI uri(url);
  Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::string text;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), text);
  return std::to_string(static_cast<int>(response.getStatus())) + " " + text;
}

TEST_F(ApiCliTest, SecretsShowInNoResponseOutputOrLogLine) {
  // Every secret the system holds: a database password inside a connector config, the API
  // token, a webhook secret. The sync fails (the table does not exist), so error paths log too.
  const std::string password = "Pa55-never-shown-7q";
  const std::string webhook_secret = "whsec-never-shown-0123456789";
  const auto at = target_.url.find('@');
  ASSERT_NE(at, std::string::npos) << "the test database URL has no user part: " << target_.url;
  const auto secret_url = target_.url.substr(0, at) + ":" + password + target_.url.substr(at);
  const auto url = startServe("all", {"--log-level=debug"},
                              SYNCPOD_TEST_PLUGIN_DIR "/libmemory.so:" SYNCPOD_PLUGIN_DIR "/libsyncpod_postgres.so");
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + token_},
                                                   {"Content-Type", "application/json"}};
  const Json create = {
      {"name", "secretive"},
      {"webhook_secret", webhook_secret},
      {"config",
       {{"source", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array({{{"id", 1}}})}}}}}}},
        {"target", {{"plugin", "postgres"},
                    {"config", {{"url", secret_url}, {"streams", {{"items", {{"table", "no_such_table"}}}}}}}}},
        {"streams", {{{"name", "items"}, {"key", {"id"}}, {"fields", {{"id", "id"}}}}}}}}};
  std::vector<std::string> seen;
  seen.push_back(httpText(url, "POST", "/api/v1/integrations", auth, create.dump()));
  std::smatch id;
  ASSERT_TRUE(std::regex_search(seen.back(), id, std::regex("^201 .*\"id\":([0-9]+)"))) << seen.back();
  const auto integration = id[1].str();

  const auto synced = cli({"sync", integration}, url);
  EXPECT_EQ(synced.exit_code, 1) << synced.output << synced.errors;  // failed, as meant
  seen.push_back(synced.output + synced.errors);
  std::smatch job;
  ASSERT_TRUE(std::regex_search(synced.output, job, std::regex("job ([0-9]+)"))) << synced.output;
  const auto shown = cli({"jobs", "show", job[1].str(), "--json"}, url);
  seen.push_back(shown.output + shown.errors);
  EXPECT_NE(shown.output.find("no_such_table"), std::string::npos) << "the job did not fail where meant: "
                                                                     << shown.output;
  seen.push_back(httpText(url, "GET", "/api/v1/integrations/" + integration, auth));
  EXPECT_NE(seen.back().find("\"url\":\"********\""), std::string::npos) << seen.back();
  seen.push_back(httpText(url, "GET", "/api/v1/integrations", auth));
  seen.push_back(httpText(url, "GET", "/api/v1/jobs", auth));
  seen.push_back(httpText(url, "POST", "/api/v1/integrations/" + integration + "/webhook",
                          {{"X-Syncpod-Timestamp", "1"}, {"X-Syncpod-Signature", "v1=00"}}, R"({"keys":["items/1"]})"));
  seen.push_back(httpText(url, "POST", "/api/v1/integrations/validate", auth,
                          Json{{"config", create["config"]}}.dump()));
  seen.push_back(httpText(url, "GET", "/api/v1/jobs", {{"Authorization", "Bearer " + token_ + "x"}}));

  serve_->signal(SIGTERM);
  EXPECT_EQ(serve_->wait(30s), 0);
  seen.push_back(serve_->output());
  serve_.reset();
  EXPECT_NE(seen.back().find("no_such_table"), std::string::npos) << "the log never saw the failure";

  for (const auto& text : seen) {
    for (const auto& secret : {password, webhook_secret, token_}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << "a secret shows in:\n" << text;
    }
  }
}

}  // namespace
}  // namespace syncpod::testing
