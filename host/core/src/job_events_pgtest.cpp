// Job events against a real PostgreSQL: the writer a runner records with (batches in the
// background, the cap on log lines, text PostgreSQL would refuse, a store that fails), the
// ends of attempts the queue records, reading them in pages, deleting them with their jobs, and
// a real sync job's events.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "job_event_store.hpp"
#include "pg.hpp"
#include "pg_test_support.hpp"
#include "syncpod/core/integrations.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/sync_job_runner.hpp"

namespace syncpod::core {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::eventually;
using testing::execute;
using testing::queryScalar;

template <class T>
T must(Result<T> result, const std::string& what) {
  if (!result) throw std::runtime_error(what + ": " + result.error().message);
  return std::move(result).value();
}

class JobEventsTest : public testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    queue_ = std::make_unique<JobQueue>(target_);
    worker_ = must(queue_->registerWorker({1, "test", "localhost", 1}), "register");
  }

  void TearDown() override {
    queue_.reset();
    PgTest::TearDown();
  }

  /// A new job of a new integration, claimed by worker_: running, attempt 1.
  Job runningJob() {
    EnqueueRequest request;
    request.integration_id = createIntegration("events-" + std::to_string(++integrations_));
    request.merge = false;
    must(queue_->enqueue(request), "enqueue");
    auto claimed = must(queue_->claim(worker_, 1), "claim");
    if (claimed.size() != 1) throw std::runtime_error("nothing claimed");
    return claimed[0];
  }

  std::vector<JobEvent> events(JobId job, JobEventId after = 0, int limit = 500) {
    return must(queue_->events(job, after, limit), "events");
  }

  static std::vector<std::string> kinds(const std::vector<JobEvent>& events) {
    std::vector<std::string> kinds;
    for (const auto& event : events) kinds.push_back(event.kind + ":" + event.level);
    return kinds;
  }

  std::unique_ptr<JobQueue> queue_;
  WorkerId worker_;
  int integrations_ = 0;
};

TEST_F(JobEventsTest, WriterWritesInTheBackgroundAndCapsLogLines) {
  const auto job = runningJob();
  auto connection = pg::connect(target_);
  std::mutex mutex;
  JobEventOptions options;
  options.max_log_lines = 3;
  options.flush_interval = 50ms;
  job_events::Writer writer(*connection, mutex, job, options);
  writer.record("state", "info", "attempt 1 started", R"({"worker_id": "w"})");
  writer.log(SYNCPOD_LOG_DEBUG, "not stored");
  for (int i = 1; i <= 5; ++i) writer.log(SYNCPOD_LOG_INFO, "line " + std::to_string(i));
  writer.log(SYNCPOD_LOG_ERROR, "an error past the cap");
  writer.progress({10, 8, 2, 0});

  // Written while the job still runs, without finish().
  ASSERT_TRUE(eventually([&] {
    const auto written = events(job.id);
    return !written.empty() && written.back().kind == "progress";
  }));
  EXPECT_EQ(
      queryScalar(target_, "SELECT fetched || '/' || applied FROM job_progress WHERE job_id = " +
                               std::to_string(job.id)),
      "10/2");
  writer.progress({20, 18, 5, 1});
  writer.finish();
  writer.log(SYNCPOD_LOG_INFO, "after the end");

  const auto written = events(job.id);
  EXPECT_EQ(kinds(written),
            (std::vector<std::string>{"state:info", "log:info", "log:info", "log:info",
                                      "progress:info", "progress:info", "log:warn"}));
  ASSERT_EQ(written.size(), 7U);
  EXPECT_EQ(written[0].message, "attempt 1 started");
  EXPECT_EQ(Json::parse(written[0].data_json)["worker_id"], "w");
  EXPECT_EQ(written[1].message, "line 1");
  EXPECT_EQ(written[3].message, "line 3");
  EXPECT_TRUE(written[1].data_json.empty());
  EXPECT_EQ(written[4].message, "fetched 10, diffed 8, applied 2, failed 0");
  EXPECT_EQ(Json::parse(written[5].data_json),
            (Json{{"fetched", 20}, {"diffed", 18}, {"applied", 5}, {"failed", 1}}));
  EXPECT_EQ(written[6].message,
            "3 more log line(s) of this attempt were not stored: at most 3 are kept per attempt "
            "(setting job_event_log_lines)");
  EXPECT_EQ(Json::parse(written[6].data_json)["dropped"], 3);
  for (std::size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ(written[i].attempt, 1);
    if (i > 0) {
      EXPECT_GT(written[i].id, written[i - 1].id);
      EXPECT_GE(written[i].at, written[i - 1].at);
    }
  }
  EXPECT_EQ(
      queryScalar(target_, "SELECT fetched || '/' || failed FROM job_progress WHERE job_id = " +
                               std::to_string(job.id)),
      "20/1");
}

TEST_F(JobEventsTest, MessagesAreStoredAsTextPostgresqlAccepts) {
  const auto job = runningJob();
  auto connection = pg::connect(target_);
  std::mutex mutex;
  {
    job_events::Writer writer(*connection, mutex, job, {});
    writer.log(SYNCPOD_LOG_WARN, std::string("nul\0byte", 8));
    writer.log(SYNCPOD_LOG_WARN, "bad \xff\xfe utf-8");
    writer.log(SYNCPOD_LOG_INFO, std::string(3000, 'a') + std::string(2000, 'b'));
    writer.log(SYNCPOD_LOG_INFO, std::string(4095, 'c') + "é");  // cut inside the last character
    writer.log(SYNCPOD_LOG_INFO, "line one\nline two");
  }
  const auto written = events(job.id);
  ASSERT_EQ(written.size(), 5U);
  EXPECT_EQ(written[0].message, "nulbyte");
  EXPECT_EQ(written[1].message.rfind("bad \xEF\xBF\xBD", 0), 0U) << "replaced, not refused";
  EXPECT_TRUE(written[1].message.ends_with(" utf-8"));
  EXPECT_EQ(written[2].message, std::string(3000, 'a') + std::string(1096, 'b') + "…");
  EXPECT_EQ(written[3].message, std::string(4095, 'c') + "…");
  EXPECT_EQ(written[4].message, "line one\nline two");
}

TEST_F(JobEventsTest, AStoreThatFailsNeverFailsTheJob) {
  const auto job = runningJob();
  auto connection = pg::connect(target_);
  std::mutex mutex;
  execute(target_, "ALTER TABLE job_events RENAME TO job_events_gone");
  JobEventOptions options;
  options.flush_interval = 10ms;
  job_events::Writer writer(*connection, mutex, job, options);
  for (int i = 0; i < 100; ++i) writer.log(SYNCPOD_LOG_INFO, "line " + std::to_string(i));
  writer.progress({1, 1, 1, 0});
  // The batches fail in the background while the job goes on using the connection.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(5ms);
    std::lock_guard lock(mutex);
    pqxx::nontransaction tx(*connection);
    EXPECT_EQ(tx.exec1("SELECT 1")[0].as<int>(), 1);
  }
  writer.finish();
  std::lock_guard lock(mutex);
  pqxx::nontransaction tx(*connection);
  EXPECT_EQ(tx.exec1("SELECT 2")[0].as<int>(), 2) << "the connection is still usable";
}

TEST_F(JobEventsTest, TheQueueRecordsHowEachAttemptEnded) {
  JobQueueOptions options;
  options.retry.base = 0s;
  options.retry.jitter = 0;
  options.rescue_lease = 30s;
  queue_ = std::make_unique<JobQueue>(target_, options);
  auto job = runningJob();
  Completion retry{job.id, job.attempt, Completion::Outcome::Retry, "", "plugin x: timed out"};
  must(queue_->complete(worker_, retry), "complete");
  job = must(queue_->claim(worker_, 1), "claim").at(0);
  execute(target_, "UPDATE worker_lifecycle SET last_heartbeat_at = now() - interval '1 minute'");
  EXPECT_EQ(must(queue_->rescue(), "rescue").requeued, 1);
  job = must(queue_->claim(worker_, 1), "claim").at(0);
  must(queue_->complete(worker_, Completion{job.id, job.attempt}), "complete");

  const auto written = events(job.id);
  ASSERT_EQ(written.size(), 3U);
  EXPECT_EQ(kinds(written), (std::vector<std::string>{"state:warn", "state:warn", "state:info"}));
  EXPECT_EQ(written[0].message, "attempt 1 ended: retry: plugin x: timed out; job queued");
  EXPECT_EQ(Json::parse(written[0].data_json),
            (Json{{"outcome", "retry"}, {"state", "queued"}, {"error", "plugin x: timed out"}}));
  EXPECT_EQ(written[1].attempt, 2);
  EXPECT_EQ(written[1].message.rfind(
                "attempt 2 ended: rescued: worker " + worker_ + " stopped heartbeating", 0),
            0U)
      << written[1].message;
  EXPECT_EQ(written[2].message, "attempt 3 ended: succeeded");
  EXPECT_EQ(Json::parse(written[2].data_json)["error"], nullptr);

  // A final failure is an error; a stale completion records nothing.
  auto failing = runningJob();
  must(queue_->complete(worker_, Completion{failing.id, failing.attempt,
                                            Completion::Outcome::Failed, "", "bad config"}),
       "complete");
  EXPECT_FALSE(must(queue_->complete(worker_, Completion{failing.id, failing.attempt}), "complete")
                   .accepted);
  const auto failed = events(failing.id);
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].level, "error");
  EXPECT_EQ(failed[0].message, "attempt 1 ended: failed: bad config");

  // Pages: after an id, at most limit.
  const auto page = events(job.id, written[0].id, 1);
  ASSERT_EQ(page.size(), 1U);
  EXPECT_EQ(page[0].id, written[1].id);
  EXPECT_TRUE(events(job.id, written[2].id).empty());
  EXPECT_TRUE(events(999999).empty());
}

TEST_F(JobEventsTest, EndsWrittenAsEventRowsBeforeMigration8ReadAsBefore) {
  // Before 0008 an attempt's end was a job_events row beside its job_attempts row. Attempt 1
  // was written before the migration (no event id); attempt 2 by the previous version still
  // running after it (an event id by default, no job_state). Each end is read once, in order,
  // with the ends that came after.
  auto job = runningJob();
  const auto id = std::to_string(job.id);
  const auto oldEnd = [&](int attempt, const std::string& event_id) {
    const auto n = std::to_string(attempt);
    execute(target_, "INSERT INTO job_attempts (job_id, attempt, outcome, error" +
                         std::string(event_id.empty() ? "" : ", event_id") + ") VALUES (" + id + ", " +
                         n + ", 'retry', 'timed out'" + (event_id.empty() ? "" : ", " + event_id) + "); "
                         "INSERT INTO job_events (job_id, attempt, kind, level, message) VALUES (" +
                         id + ", " + n + ", 'state', 'warn', 'attempt " + n +
                         " ended: retry: timed out; job queued')");
  };
  oldEnd(1, "NULL");
  oldEnd(2, "");
  execute(target_, "UPDATE jobs SET attempt = 3 WHERE id = " + id);
  job.attempt = 3;
  must(queue_->complete(worker_, Completion{job.id, job.attempt}), "complete");
  const auto written = events(job.id);
  ASSERT_EQ(written.size(), 3U);
  EXPECT_EQ(written[0].message, "attempt 1 ended: retry: timed out; job queued");
  EXPECT_EQ(written[1].message, "attempt 2 ended: retry: timed out; job queued");
  EXPECT_EQ(written[2].message, "attempt 3 ended: succeeded");
  EXPECT_LT(written[0].id, written[1].id);
  EXPECT_LT(written[1].id, written[2].id);
}

TEST_F(JobEventsTest, EventsGoWithTheirJobs) {
  // Cleanup deletes an old job's events with it.
  const auto old = runningJob();
  must(queue_->complete(worker_, Completion{old.id, old.attempt}), "complete");
  const auto kept = runningJob();
  must(queue_->complete(worker_, Completion{kept.id, kept.attempt}), "complete");
  execute(target_,
          "UPDATE jobs SET created_at = now() - interval '20 days', finished_at = now() - interval "
          "'20 days' WHERE id = " +
              std::to_string(old.id));
  LeaderLease lease(target_, "singleton", "a", 30s);
  const auto token = must(lease.acquire(), "acquire");
  ASSERT_TRUE(token);
  CleanupOptions options;
  options.retention = 14 * 24h;
  EXPECT_EQ(must(queue_->cleanup(*token, options), "cleanup").jobs_deleted, 1);
  EXPECT_TRUE(events(old.id).empty());
  EXPECT_EQ(events(kept.id).size(), 1U);

  // Deleting an integration deletes its jobs' events and attempts.
  IntegrationStore integrations(target_);
  ASSERT_TRUE(must(integrations.remove(kept.integration_id), "remove"));
  EXPECT_TRUE(events(kept.id).empty());
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) FROM job_attempts WHERE job_id = " +
                                     std::to_string(kept.id)),
            "0");
}

TEST_F(JobEventsTest, ASyncJobRecordsItsStartLogLinesAndProgressWithSecretsHidden) {
  const auto plugins = PluginRegistry::load({SYNCPOD_TEST_PLUGIN_DIR "/libworkload.so"});
  const auto job = runningJob();
  const Json config = {
      {"source",
       {{"plugin", "workload"},
        {"config", {{"records", 4}, {"log_lines", 5}, {"token", "hunter2"}}}}},
      {"target", {{"plugin", "workload"}, {"config", {{"records", 0}}}}},
      {"streams",
       {{{"name", "items"}, {"key", {"id"}}, {"fields", {{"id", "id"}, {"value", "value"}}}}}}};
  execute(target_, "UPDATE integrations SET config = '" + config.dump() +
                       "' WHERE id = " + std::to_string(job.integration_id));
  JobEventOptions options;
  options.max_log_lines = 4;
  SyncJobRunner runner(target_, plugins, options);
  const auto completion = runner.run(job, [] { return false; });
  ASSERT_EQ(completion.outcome, Completion::Outcome::Succeeded) << completion.error;

  // All of it is written when run() returns, before the worker reports the end.
  const auto written = events(job.id);
  std::vector<std::string> messages;
  for (const auto& event : written) messages.push_back(event.message);
  ASSERT_GE(written.size(), 7U);
  EXPECT_EQ(written[0].kind, "state");
  EXPECT_EQ(written[0].message, "attempt 1 of 5 started on worker " + worker_);
  EXPECT_EQ(Json::parse(written[0].data_json)["worker_id"], worker_);
  EXPECT_EQ(messages[1], "workload: line 1 of 5");
  EXPECT_EQ(messages[4], "workload: line 4 of 5");
  const auto& progress = written[written.size() - 2];
  EXPECT_EQ(progress.kind, "progress");
  EXPECT_EQ(Json::parse(progress.data_json)["applied"], 4);
  // Line 5 and the warning quoting the token were over the cap; the debug line never counts.
  EXPECT_EQ(written.back().message.rfind("2 more log line(s)", 0), 0U) << written.back().message;
  for (const auto& message : messages)
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;

  // With room for it, the warning is there with the token replaced.
  const auto again = runningJob();
  execute(target_, "UPDATE integrations SET config = '" + config.dump() +
                       "' WHERE id = " + std::to_string(again.integration_id));
  SyncJobRunner roomy(target_, plugins);
  ASSERT_EQ(roomy.run(again, [] { return false; }).outcome, Completion::Outcome::Succeeded);
  bool warned = false;
  for (const auto& event : events(again.id)) {
    EXPECT_EQ(event.message.find("hunter2"), std::string::npos) << event.message;
    if (event.message == "workload: using token ***") warned = event.level == "warn";
  }
  EXPECT_TRUE(warned);
  EXPECT_EQ(queryScalar(target_, "SELECT applied FROM job_progress WHERE job_id = " +
                                     std::to_string(again.id)),
            "4");
}

}  // namespace
}  // namespace syncpod::core
