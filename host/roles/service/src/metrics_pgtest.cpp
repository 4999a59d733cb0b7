// /metrics over real HTTP, against the test PostgreSQL: read as Prometheus reads it, and
// compared with the rows the test made.

#include <set>
#include <string>
#include <unistd.h>

#include "handlers.hpp"
#include "metrics.hpp"
#include "prometheus_check.hpp"
#include "router.hpp"
#include "service_pgtest_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"

namespace syncpod::service {
namespace {

using syncpod::testing::execute;
using testing::PromDocument;

template <class T>
T must(core::Result<T> result) {
  EXPECT_TRUE(result) << result.error().message;
  return std::move(result.value());
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

class MetricsTest : public testing::ServiceFixture {
 protected:
  /// GET /metrics without a token, checked as a scraper would read it.
  PromDocument scrape() {
    const auto reply = call("GET", "/metrics", std::nullopt);
    EXPECT_EQ(reply.status, 200) << reply.text;
    const auto type = reply.headers.find("Content-Type");
    EXPECT_EQ(type == reply.headers.end() ? "" : type->second,
              "text/plain; version=0.0.4; charset=utf-8");
    auto document = testing::parsePrometheusText(reply.text);
    EXPECT_TRUE(document.problems.empty()) << joined(document.problems) << reply.text;
    return document;
  }

  static double jobs(const PromDocument& document, const std::string& state) {
    return document.value("syncpod_jobs", {{"state", state}}).value_or(-1);
  }
  static double workers(const PromDocument& document, const std::string& state) {
    return document.value("syncpod_workers", {{"state", state}}).value_or(-1);
  }
  static double requests(const PromDocument& document, const std::string& route,
                         const std::string& method, const std::string& status) {
    return document
        .value("syncpod_http_requests_total",
               {{"route", route}, {"method", method}, {"status", status}})
        .value_or(0);
  }
  static double bucket(const PromDocument& document, const std::string& outcome,
                       const std::string& le) {
    return document
        .value("syncpod_job_attempt_duration_seconds_bucket", {{"outcome", outcome}, {"le", le}})
        .value_or(-1);
  }

  /// Moves a queued job's due time `seconds` into the past, in jobs and job_queue alike.
  void dueSince(core::JobId job, int seconds) {
    const auto at = "now() - interval '" + std::to_string(seconds) + " seconds'";
    execute(target_, "UPDATE jobs SET run_at = " + at + " WHERE id = " + std::to_string(job) +
                         "; UPDATE job_queue SET run_at = " + at +
                         " WHERE job_id = " + std::to_string(job));
  }
};

TEST_F(MetricsTest, AnEmptyInstallationHasEverySeriesAtZero) {
  const auto document = scrape();
  EXPECT_EQ(document.value("syncpod_database_up"), 1);
  for (const char* state : {"queued", "running", "succeeded", "failed", "cancelled"}) {
    EXPECT_EQ(jobs(document, state), 0) << state;
  }
  for (const char* state : {"INACTIVE", "ACTIVE", "RETIRED", "TERMINATING", "TERMINATED"}) {
    EXPECT_EQ(workers(document, state), 0) << state;
  }
  EXPECT_EQ(document.value("syncpod_queue_oldest_due_job_age_seconds"), 0);
  EXPECT_EQ(document.value("syncpod_desired_pod_count"), 0);
  EXPECT_GT(document.value("syncpod_desired_pod_count_computed_timestamp_seconds").value_or(0),
            1.7e9);
  for (const char* outcome : {"succeeded", "failed", "retry", "rescued", "cancelled", "released"}) {
    EXPECT_EQ(bucket(document, outcome, "+Inf"), 0) << outcome;
    EXPECT_EQ(document.value("syncpod_job_attempt_duration_seconds_count", {{"outcome", outcome}}),
              0)
        << outcome;
  }
  EXPECT_EQ(document.types.at("syncpod_jobs"), "gauge");
  EXPECT_EQ(document.types.at("syncpod_http_requests_total"), "counter");
  EXPECT_EQ(document.types.at("syncpod_job_attempt_duration_seconds"), "histogram");
  // Scrape configs may add query parameters; they change nothing.
  EXPECT_EQ(call("GET", "/metrics?format=prometheus", std::nullopt).status, 200);
}

TEST_F(MetricsTest, GaugesFollowTheDatabase) {
  core::JobQueue queue(target_);
  core::EnqueueRequest request;
  request.merge = false;
  request.integration_id = createIntegration("a");
  const auto failing = must(queue.enqueue(request)).id;
  const auto busy = createIntegration("b");
  request.integration_id = busy;
  const auto running = must(queue.enqueue(request)).id;
  const auto worker = must(queue.registerWorker({2, "1.0.0", "pod-a", 1}));
  must(queue.setWorkerState(worker, core::WorkerState::Active));
  must(queue.registerWorker({1, "1.0.0", "pod-b", 2}));
  const auto claimed = must(queue.claim(worker, 2));
  ASSERT_EQ(claimed.size(), 2U);
  const auto attempt = claimed[0].id == failing ? claimed[0].attempt : claimed[1].attempt;
  ASSERT_TRUE(must(queue.complete(
                       worker, core::Completion{failing, attempt, core::Completion::Outcome::Failed,
                                                "", "the source refused"}))
                  .accepted);
  execute(
      target_,
      "UPDATE job_attempts SET started_at = finished_at - interval '42 seconds' WHERE job_id = " +
          std::to_string(failing));

  // Two queued jobs: one that could start, waiting 100 s, and an older one behind the running
  // job of its integration, which the age leaves out.
  request.integration_id = createIntegration("c");
  const auto waiting = must(queue.enqueue(request)).id;
  dueSince(waiting, 100);
  request.integration_id = busy;
  dueSince(must(queue.enqueue(request)).id, 1000);
  execute(target_, "UPDATE desired_pod_count SET count = 4");

  auto document = scrape();
  EXPECT_EQ(jobs(document, "queued"), 2);
  EXPECT_EQ(jobs(document, "running"), 1);
  EXPECT_EQ(jobs(document, "failed"), 1);
  EXPECT_EQ(jobs(document, "succeeded"), 0);
  EXPECT_EQ(jobs(document, "cancelled"), 0);
  EXPECT_EQ(workers(document, "ACTIVE"), 1);
  EXPECT_EQ(workers(document, "INACTIVE"), 1);
  EXPECT_EQ(workers(document, "TERMINATED"), 0);
  const auto age = document.value("syncpod_queue_oldest_due_job_age_seconds").value_or(-1);
  EXPECT_GE(age, 100);
  EXPECT_LT(age, 160);
  EXPECT_EQ(document.value("syncpod_desired_pod_count"), 4);
  EXPECT_EQ(bucket(document, "failed", "30"), 0);
  EXPECT_EQ(bucket(document, "failed", "60"), 1);
  EXPECT_EQ(bucket(document, "failed", "+Inf"), 1);
  EXPECT_NEAR(document.value("syncpod_job_attempt_duration_seconds_sum", {{"outcome", "failed"}})
                  .value_or(0),
              42, 0.01);
  EXPECT_EQ(
      document.value("syncpod_job_attempt_duration_seconds_count", {{"outcome", "succeeded"}}), 0);

  // The running job succeeds, the waiting one is cancelled.
  const auto running_attempt = claimed[0].id == running ? claimed[0].attempt : claimed[1].attempt;
  ASSERT_TRUE(must(queue.complete(worker, core::Completion{running, running_attempt})).accepted);
  ASSERT_EQ(must(queue.cancel(waiting)), core::CancelOutcome::Cancelled);
  // A duration on a bound counts in that bound's bucket (le: at most); one above every bound
  // only in +Inf.
  execute(
      target_,
      "UPDATE job_attempts SET started_at = finished_at - interval '60 seconds' WHERE job_id = " +
          std::to_string(running) +
          "; UPDATE job_attempts SET started_at = finished_at - "
          "interval '9 hours' WHERE job_id = " +
          std::to_string(failing));
  document = scrape();
  EXPECT_EQ(jobs(document, "queued"), 1);
  EXPECT_EQ(jobs(document, "running"), 0);
  EXPECT_EQ(jobs(document, "succeeded"), 1);
  EXPECT_EQ(jobs(document, "cancelled"), 1);
  EXPECT_EQ(bucket(document, "succeeded", "30"), 0);
  EXPECT_EQ(bucket(document, "succeeded", "60"), 1);
  EXPECT_EQ(bucket(document, "succeeded", "+Inf"), 1);
  EXPECT_EQ(bucket(document, "failed", "28800"), 0);
  EXPECT_EQ(bucket(document, "failed", "+Inf"), 1);
  EXPECT_NEAR(document.value("syncpod_job_attempt_duration_seconds_sum", {{"outcome", "failed"}})
                  .value_or(0),
              32400, 0.01);
  // The job left waiting was held back by its integration; now it could start.
  EXPECT_GE(document.value("syncpod_queue_oldest_due_job_age_seconds").value_or(-1), 1000);
}

TEST_F(MetricsTest, WholeTablesAreReadAtMostOncePerScanInterval) {
  options_.metrics_scan_interval = std::chrono::hours(1);
  startService(target_);
  core::JobQueue queue(target_);
  core::EnqueueRequest request;
  request.integration_id = createIntegration("a");
  const auto job = must(queue.enqueue(request)).id;
  auto document = scrape();
  EXPECT_EQ(jobs(document, "queued"), 1);
  EXPECT_EQ(jobs(document, "succeeded"), 0);

  const auto worker = must(queue.registerWorker({1, "1.0.0", "pod-a", 1}));
  const auto claimed = must(queue.claim(worker, 1));
  ASSERT_EQ(claimed.size(), 1U);
  ASSERT_TRUE(must(queue.complete(worker, core::Completion{job, claimed[0].attempt})).accepted);
  // The small tables are read by every scrape; finished jobs and attempts wait for the interval.
  document = scrape();
  EXPECT_EQ(jobs(document, "queued"), 0);
  EXPECT_EQ(jobs(document, "running"), 0);
  EXPECT_EQ(workers(document, "INACTIVE"), 1);
  EXPECT_EQ(jobs(document, "succeeded"), 0);
  EXPECT_EQ(
      document.value("syncpod_job_attempt_duration_seconds_count", {{"outcome", "succeeded"}}), 0);

  // A new service process reads them at its first scrape.
  startService(target_);
  document = scrape();
  EXPECT_EQ(jobs(document, "succeeded"), 1);
  EXPECT_EQ(
      document.value("syncpod_job_attempt_duration_seconds_count", {{"outcome", "succeeded"}}), 1);
}

TEST_F(MetricsTest, HttpRequestsAreCountedByRoutePattern) {
  expectError(call("GET", "/api/v1/jobs/1", core::TokenScope::Read), 404, "not_found");
  expectError(call("GET", "/api/v1/jobs/2", core::TokenScope::Read), 404, "not_found");
  expectError(call("GET", "/api/v1/jobs/3", std::nullopt), 401, "unauthenticated");
  expectError(call("GET", "/no/such/path", std::nullopt), 404, "not_found");
  expectError(call("DELETE", "/healthz", std::nullopt), 405, "method_not_allowed");
  expectError(call("BREW", "/healthz", std::nullopt), 405, "method_not_allowed");

  auto document = scrape();
  EXPECT_EQ(requests(document, "/api/v1/jobs/{id}", "GET", "404"), 2);
  EXPECT_EQ(requests(document, "/api/v1/jobs/{id}", "GET", "401"), 1);
  EXPECT_EQ(requests(document, "unmatched", "GET", "404"), 1);
  EXPECT_EQ(requests(document, "/healthz", "DELETE", "405"), 1);
  EXPECT_EQ(requests(document, "/healthz", "other", "405"), 1);
  EXPECT_EQ(requests(document, "/metrics", "GET", "200"), 0) << "a scrape is counted once answered";

  // Only route patterns appear, never the paths themselves.
  Router router;
  const ServiceOptions options;
  const HttpMetrics unused;
  addRoutes(router, RouteContext{options, testing::testPlugins(), unused});
  std::set<std::string> patterns = {"unmatched"};
  for (const auto& route : router.routes()) patterns.insert(route.pattern);
  for (const auto& sample : document.samples) {
    if (sample.name != "syncpod_http_requests_total") continue;
    EXPECT_EQ(patterns.count(sample.labels.at("route")), 1U) << sample.labels.at("route");
  }

  ASSERT_EQ(call("GET", "/api/v1/jobs?limit=1", core::TokenScope::Read).status, 200);
  document = scrape();
  EXPECT_EQ(requests(document, "/metrics", "GET", "200"), 1);
  EXPECT_EQ(requests(document, "/api/v1/jobs", "GET", "200"), 1);
  EXPECT_EQ(requests(document, "/api/v1/jobs/{id}", "GET", "404"), 2);
  EXPECT_EQ(requests(scrape(), "/metrics", "GET", "200"), 2);
}

TEST_F(MetricsTest, ADatabaseOutageStillAnswersWithTheHttpCounters) {
  // A database of its own, dropped under the running service: its connections are cut and
  // cannot come back.
  const auto name = "syncpod_outage_" + std::to_string(::getpid());
  const auto& url = target_.url;
  core::DatabaseTarget outage{
      url + (url.find('?') == std::string::npos ? "?" : "&") + "dbname=" + name, target_.schema};
  execute(target_, "DROP DATABASE IF EXISTS " + name);
  execute(target_, "CREATE DATABASE " + name);
  core::Migrator(outage, core::embeddedMigrations()).apply();
  startService(outage);
  EXPECT_EQ(scrape().value("syncpod_database_up"), 1);

  execute(target_, "DROP DATABASE " + name + " WITH (FORCE)");
  const auto document = scrape();
  EXPECT_EQ(document.value("syncpod_database_up"), 0);
  EXPECT_FALSE(document.value("syncpod_jobs", {{"state", "queued"}}).has_value());
  EXPECT_FALSE(document.value("syncpod_desired_pod_count").has_value());
  EXPECT_EQ(requests(document, "/metrics", "GET", "200"), 1);
  EXPECT_EQ(call("GET", "/healthz", std::nullopt).status, 200);
  expectError(call("GET", "/api/v1/jobs", core::TokenScope::Read), 503, "unavailable");
  EXPECT_EQ(requests(scrape(), "/api/v1/jobs", "GET", "503"), 1);
}

}  // namespace
}  // namespace syncpod::service
