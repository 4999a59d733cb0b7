#include "api.hpp"

#include <chrono>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "handlers.hpp"
#include "metrics.hpp"
#include "prometheus_check.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

ApiError errorOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return {};
}

TEST(ParseJsonObject, AcceptsAnObjectWithinTheDepth) {
  EXPECT_EQ(parseJsonObject(R"({"a": {"b": [1, "]]]"]}})", 3)["a"]["b"][1], "]]]");
}

TEST(ParseJsonObject, SaysWhatIsWrong) {
  EXPECT_EQ(errorOf([] { parseJsonObject("", 8); }).message, "the request needs a JSON object body");
  const auto malformed = errorOf([] { parseJsonObject(R"({"a": )", 8); });
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.code, "invalid_json");
  EXPECT_NE(malformed.message.find("not valid JSON"), std::string::npos) << malformed.message;
  EXPECT_EQ(malformed.details["byte"], 7);
  EXPECT_EQ(errorOf([] { parseJsonObject("[1]", 8); }).message, "the body must be a JSON object, not array");
}

TEST(ParseJsonObject, NumbersBeyondADoubleAreInvalidJson) {
  for (const char* body : {R"({"a": 1e999})", R"({"a": -1E400})", R"({"a": [1.8e308]})"}) {
    const auto error = errorOf([&] { parseJsonObject(body, 8); });
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_EQ(error.code, "invalid_json") << body;
    EXPECT_NE(error.message.find("number overflow"), std::string::npos) << error.message;
  }
  // Integers beyond 64 bits are read as doubles, which is fine.
  EXPECT_TRUE(parseJsonObject(R"({"a": 123456789012345678901234567890})", 8)["a"].is_number_float());
}

TEST(ParseJsonObject, RefusesNulCharactersAndSaysWhere) {
  const auto value = errorOf([] { parseJsonObject(R"({"keys": ["1", "a\u0000b"]})", 8); });
  EXPECT_EQ(value.code, "invalid_json");
  EXPECT_EQ(value.details["pointer"], "/keys/1");
  EXPECT_NE(value.message.find("NUL"), std::string::npos) << value.message;
  const auto name = errorOf([] { parseJsonObject(R"({"a/b": {"x\u0000": 1}})", 8); });
  EXPECT_EQ(name.details["pointer"], std::string("/a~1b/x\0", 8));
  EXPECT_EQ(parseJsonObject(R"({"a": "\u0001"})", 8)["a"], "\x01");
}

TEST(ParseJsonObject, RefusesDeepNestingBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto error = errorOf([&] { parseJsonObject("{\"a\": " + deep + "}", 32); });
  EXPECT_EQ(error.message, "the JSON body is nested deeper than 32 levels");
}

TEST(ParseId, AcceptsPositiveIntegersOnly) {
  EXPECT_EQ(parseId("17", "job id"), 17);
  for (const char* bad : {"", "0", "-1", "1e3", "12a", "99999999999999999999"}) {
    const auto error = errorOf([&] { (void)parseId(bad, "job id"); });
    EXPECT_EQ(error.code, "invalid_id") << bad;
    EXPECT_EQ(error.details["parameter"], "job id") << bad;
  }
}

TEST(ParseUuid, AcceptsTheTextFormInAnyCaseOnly) {
  EXPECT_EQ(parseUuid("3F2C1E9A-0000-4000-8000-00000000000a", "worker id"),
            "3f2c1e9a-0000-4000-8000-00000000000a");
  for (const char* bad :
       {"", "17", "3f2c1e9a00004000800000000000000a", "3f2c1e9a-0000-4000-8000-00000000000g",
        "3f2c1e9a-0000-4000-8000-00000000000a0", "{3f2c1e9a-0000-4000-8000-00000000000a}"}) {
    const auto error = errorOf([&] { (void)parseUuid(bad, "worker id"); });
    EXPECT_EQ(error.code, "invalid_id") << bad;
    EXPECT_EQ(error.details["parameter"], "worker id") << bad;
  }
}

TEST(Router, RouteOfNamesThePatternThatAnswers) {
  Router router;
  const ServiceOptions options;
  const auto plugins = core::PluginRegistry::load({});
  const HttpMetrics http;
  addRoutes(router, RouteContext{options, plugins, http});
  EXPECT_EQ(router.routeOf("GET", "/api/v1/jobs/17"), "/api/v1/jobs/{id}");
  EXPECT_EQ(router.routeOf("POST", "/api/v1/integrations/validate"),
            "/api/v1/integrations/validate");
  // GET has no validate route: the {id} route answers it (with a 400).
  EXPECT_EQ(router.routeOf("GET", "/api/v1/integrations/validate"), "/api/v1/integrations/{id}");
  EXPECT_EQ(router.routeOf("DELETE", "/healthz"), "/healthz");  // a 405
  EXPECT_EQ(router.routeOf("GET", "/api/v1/jobs/17/nothing"), "");
}

core::QueueMetrics sampleQueue() {
  core::QueueMetrics queue;
  long long count = 0;
  for (const auto state :
       {core::JobState::Queued, core::JobState::Running, core::JobState::Succeeded,
        core::JobState::Failed, core::JobState::Cancelled}) {
    queue.jobs[state] = ++count;
  }
  for (const auto state :
       {core::WorkerState::Inactive, core::WorkerState::Active, core::WorkerState::Retired,
        core::WorkerState::Terminating, core::WorkerState::Terminated}) {
    queue.workers[state] = 0;
  }
  queue.oldest_due_job_age_seconds = 12.5;
  queue.scaling.count = 3;
  queue.scaling.computed_at = core::TimePoint(std::chrono::seconds(1764133200));
  const auto buckets = core::attemptDurationBounds().size();
  for (const char* outcome : {"succeeded", "failed"})
    queue.attempt_durations[outcome].cumulative.assign(buckets, 0);
  auto& succeeded = queue.attempt_durations["succeeded"];
  for (std::size_t i = 2; i < buckets; ++i) succeeded.cumulative[i] = 2;  // two attempts of 5 s
  succeeded.count = 3;  // and one longer than the last bound
  succeeded.sum_seconds = 10 + 40000;
  return queue;
}

std::string problemsOf(const testing::PromDocument& document) {
  std::string text;
  for (const auto& problem : document.problems) text += problem + "\n";
  return text;
}

TEST(Metrics, RenderValidPrometheusText) {
  HttpMetrics http;
  http.count("/api/v1/jobs/{id}", "GET", 200);
  http.count("/api/v1/jobs/{id}", "GET", 200);
  http.count("/api/v1/jobs/{id}", "GET", 404);
  http.count(HttpMetrics::kUnmatched, "BREW", 404);
  const auto text = renderMetrics(http, sampleQueue());
  const auto document = testing::parsePrometheusText(text);
  EXPECT_TRUE(document.problems.empty()) << problemsOf(document) << text;
  EXPECT_EQ(document.value("syncpod_http_requests_total",
                           {{"route", "/api/v1/jobs/{id}"}, {"method", "GET"}, {"status", "200"}}),
            2);
  EXPECT_EQ(document.value("syncpod_http_requests_total",
                           {{"route", "unmatched"}, {"method", "other"}, {"status", "404"}}),
            1);
  EXPECT_EQ(document.value("syncpod_database_up"), 1);
  EXPECT_EQ(document.value("syncpod_jobs", {{"state", "failed"}}), 4);
  EXPECT_EQ(document.value("syncpod_workers", {{"state", "TERMINATING"}}), 0);
  EXPECT_EQ(document.value("syncpod_queue_oldest_due_job_age_seconds"), 12.5);
  EXPECT_EQ(document.value("syncpod_desired_pod_count"), 3);
  EXPECT_EQ(document.value("syncpod_desired_pod_count_computed_timestamp_seconds"), 1764133200);
  EXPECT_EQ(document.value("syncpod_job_attempt_duration_seconds_bucket",
                           {{"outcome", "succeeded"}, {"le", "5"}}),
            2);
  EXPECT_EQ(document.value("syncpod_job_attempt_duration_seconds_bucket",
                           {{"outcome", "succeeded"}, {"le", "+Inf"}}),
            3);
  EXPECT_EQ(document.value("syncpod_job_attempt_duration_seconds_sum", {{"outcome", "succeeded"}}),
            40010);
  EXPECT_NE(
      text.find(
          "syncpod_job_attempt_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.5\"} 0\n"),
      std::string::npos)
      << text;
}

TEST(Metrics, ADatabaseErrorLeavesOnlyTheHttpCounters) {
  HttpMetrics http;
  http.count("/metrics", "GET", 200);
  const core::Result<core::QueueMetrics> failed =
      core::Error{core::Error::Code::Unavailable, "down"};
  const auto document = testing::parsePrometheusText(renderMetrics(http, failed));
  EXPECT_TRUE(document.problems.empty()) << problemsOf(document);
  EXPECT_EQ(document.value("syncpod_database_up"), 0);
  EXPECT_EQ(document.value("syncpod_http_requests_total",
                           {{"route", "/metrics"}, {"method", "GET"}, {"status", "200"}}),
            1);
  for (const auto& sample : document.samples) {
    EXPECT_TRUE(sample.name == "syncpod_database_up" ||
                sample.name == "syncpod_http_requests_total")
        << sample.name;
  }
}

TEST(Metrics, LabelValuesAreEscaped) {
  HttpMetrics http;
  http.count("a\"b\\c\nd", "GET", 200);
  const auto text = renderMetrics(http, core::Error{core::Error::Code::Unavailable, "down"});
  EXPECT_NE(text.find(R"(route="a\"b\\c\nd")"), std::string::npos) << text;
  const auto document = testing::parsePrometheusText(text);
  EXPECT_TRUE(document.problems.empty()) << problemsOf(document);
  ASSERT_EQ(document.samples.size(), 2U);
  EXPECT_EQ(document.samples[0].labels.at("route"), "a\"b\\c\nd");
}

/// The checker the metrics tests rely on must itself catch what a scraper would refuse.
TEST(PrometheusCheck, FindsWhatAScraperWouldRefuse) {
  const std::string help = "# HELP h_seconds x\n# TYPE h_seconds histogram\n";
  const auto problems = [](const std::string& text) {
    return testing::parsePrometheusText(text).problems.size();
  };
  EXPECT_EQ(problems(help + "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                            "h_seconds_sum 3\nh_seconds_count 2\n"),
            0U);
  EXPECT_GT(problems(help + "h_seconds_bucket{le=\"1\"} 3\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                            "h_seconds_sum 3\nh_seconds_count 2\n"),
            0U)
      << "not cumulative";
  EXPECT_GT(problems(help + "h_seconds_bucket{le=\"1\"} 1\nh_seconds_sum 3\nh_seconds_count 1\n"),
            0U)
      << "no +Inf bucket";
  EXPECT_GT(
      problems(help + "h_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 3\nh_seconds_count 3\n"), 0U)
      << "+Inf differs from _count";
  EXPECT_GT(problems("g 1\n"), 0U) << "no HELP and TYPE";
  EXPECT_GT(problems("# HELP c x\n# TYPE c counter\nc 1\n"), 0U) << "a counter not named _total";
  EXPECT_GT(problems("# HELP g x\n# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n"), 0U) << "repeated";
  EXPECT_GT(problems("# HELP g x\n# TYPE g gauge\ng{a=1} 1\n"), 0U) << "unquoted label";
  EXPECT_GT(problems("# HELP g x\n# TYPE g gauge\ng 1 1700000000\n"), 0U) << "a timestamp";
  EXPECT_GT(problems("# HELP g x\n# TYPE g gauge\ng one\n"), 0U) << "not a number";
}

/// "GET /api/v1/jobs/{id}" for every operation in docs/openapi.yaml, read from its layout: paths
/// at two spaces of indentation, methods at four.
std::set<std::string> documentedOperations() {
  std::ifstream file(SYNCPOD_OPENAPI_FILE);
  EXPECT_TRUE(file) << SYNCPOD_OPENAPI_FILE;
  std::set<std::string> operations;
  std::string line;
  std::string path;
  bool in_paths = false;
  while (std::getline(file, line)) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (!line.empty() && line[0] != ' ') in_paths = false;
    if (!in_paths) continue;
    if (line.rfind("  /", 0) == 0 && line.back() == ':') {
      path = line.substr(2, line.size() - 3);
    } else if (line.size() > 5 && line.rfind("    ", 0) == 0 && line[4] != ' ' && line.back() == ':') {
      std::string method = line.substr(4, line.size() - 5);
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      operations.insert(method + " " + path);
    }
  }
  return operations;
}

TEST(OpenApi, DescribesEveryRouteAndNothingElse) {
  Router router;
  const ServiceOptions options;
  const auto plugins = core::PluginRegistry::load({});
  const HttpMetrics http;
  addRoutes(router, RouteContext{options, plugins, http});
  std::set<std::string> served;
  for (const auto& route : router.routes()) served.insert(route.method + " " + route.pattern);
  EXPECT_EQ(served, documentedOperations());
  EXPECT_FALSE(served.empty());
}

}  // namespace
}  // namespace syncpod::service
