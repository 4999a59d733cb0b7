// The worker role as it runs in production: the real `syncpod serve --role=worker` binary,
// jobs in the real queue, the `workload` test plugin loaded from its .so file, short periods.

#include <algorithm>
#include <csignal>
#include <functional>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pg_test_support.hpp"
#include "process.hpp"
#include "workload_integration.hpp"
#include "syncpod/core/job_queue.hpp"

namespace syncpod::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using core::JobId;

const std::string kBinary = SYNCPOD_BINARY;

template <class T>
T must(core::Result<T> result, const std::string& what) {
  if (!result) throw std::runtime_error(what + ": " + result.error().message);
  return std::move(result).value();
}

class WorkerTest : public PgTest {
 protected:
  /// Settings of the workers a test starts; tests change them before starting one.
  std::map<std::string, std::string> settings_ = {
      {"active-period", "60s"},        {"heartbeat-interval", "200ms"},
      {"rescue-lease", "2s"},          {"poll-interval", "200ms"},
      {"terminating-grace", "300ms"},  {"scale-interval", "100ms"},
      {"keda-polling-interval", "200ms"}, {"drain-deadline", "30s"},
      {"stop-grace", "2s"},            {"worker-capacity", "1"},
      {"isolation", "process"},        {"plugin-path", SYNCPOD_TEST_PLUGIN_DIR "/libworkload.so"}};

  std::unique_ptr<ChildProcess> startWorker() {
    std::vector<std::string> args = {kBinary, "serve", "--role=worker",
                                     "--database-url=" + target_.url, "--schema=" + target_.schema};
    for (const auto& [name, value] : settings_) args.push_back("--" + name + "=" + value);
    return std::make_unique<ChildProcess>(args);
  }

  std::unique_ptr<ChildProcess> startSingleton() {
    return std::make_unique<ChildProcess>(std::vector<std::string>{
        kBinary, "serve", "--role=singleton", "--database-url=" + target_.url,
        "--schema=" + target_.schema, "--rescue-interval=200ms", "--rescue-lease=1s"});
  }

  /// An integration from a workload source (`source` is its config) to a workload target.
  core::IntegrationId integration(const Json& source) {
    const auto id = createIntegration("work-" + std::to_string(++integrations_));
    const Json config = workloadIntegrationConfig(source);
    execute(target_, "UPDATE integrations SET config = '" + config.dump() +
                         "'::jsonb WHERE id = " + std::to_string(id));
    return id;
  }

  JobId enqueue(core::IntegrationId integration, int max_attempts = 1,
                std::chrono::seconds max_runtime = std::chrono::hours(8)) {
    core::JobQueue queue(target_);
    core::EnqueueRequest request;
    request.integration_id = integration;
    request.max_attempts = max_attempts;
    request.max_runtime = max_runtime;
    request.merge = false;
    return must(queue.enqueue(request), "enqueue").id;
  }

  /// How the job's attempts ended, from job_attempts: "rescued succeeded".
  std::string outcomes(JobId job) {
    return queryScalar(target_, "SELECT string_agg(outcome, ' ' ORDER BY attempt) FROM " + target_.schema +
                                    ".job_attempts WHERE job_id = " + std::to_string(job));
  }

  std::string jobColumn(JobId job, const std::string& column) {
    return queryScalar(target_, "SELECT " + column + " FROM " + target_.schema +
                                    ".jobs WHERE id = " + std::to_string(job));
  }
  std::string state(JobId job) { return jobColumn(job, "state"); }

  bool reaches(JobId job, const std::string& wanted, std::chrono::milliseconds timeout = 20s) {
    return eventually([&] { return state(job) == wanted; }, timeout);
  }

  /// The states a worker process went through, in order, from worker_lifecycle.transitions.
  std::string transitions(pid_t pid) {
    return queryScalar(target_,
                       "SELECT string_agg(t->>'state', ' ' ORDER BY n) FROM " + target_.schema +
                           ".worker_lifecycle w, jsonb_array_elements(w.transitions) WITH "
                           "ORDINALITY AS x(t, n) WHERE w.pid = " + std::to_string(pid));
  }

  /// The job's events, as the API reads them.
  std::vector<core::JobEvent> events(JobId job) {
    core::JobQueue queue(target_);
    auto read = queue.events(job, 0, 1000);
    EXPECT_TRUE(read) << read.error().message;
    return read ? *read : std::vector<core::JobEvent>{};
  }

  /// How many of the job's events say `text`.
  std::size_t eventsMentioning(JobId job, const std::string& text) {
    const auto all = events(job);
    return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const core::JobEvent& event) {
      return event.message.find(text) != std::string::npos;
    }));
  }

  /// How the job's attempts ended, from its events: "attempt 1 ended: rescued attempt 2 …".
  std::string ends(JobId job) {
    std::string text;
    for (const auto& event : events(job)) {
      const auto end = event.message.find(" ended: ");
      if (event.kind != "state" || end == std::string::npos) continue;
      const auto outcome_end = event.message.find_first_not_of("abcdefghijklmnopqrstuvwxyz", end + 8);
      text += (text.empty() ? "" : " ") + event.message.substr(0, outcome_end);
    }
    return text;
  }

  std::string workerState(pid_t pid) {
    return queryScalar(target_, "SELECT state FROM " + target_.schema +
                                    ".worker_lifecycle WHERE pid = " + std::to_string(pid));
  }

  int integrations_ = 0;
};

TEST_F(WorkerTest, GoesThroughEveryStateInOrderAndExitsZero) {
  settings_["active-period"] = "500ms";
  auto worker = startWorker();
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
  EXPECT_EQ(transitions(worker->pid()), "INACTIVE ACTIVE RETIRED TERMINATING TERMINATED");
  // Each transition is stamped, in order, and the grace is spent TERMINATING.
  EXPECT_EQ(queryScalar(target_,
                        "SELECT bool_and(a < b) FROM (SELECT (t->>'at')::timestamptz AS a, "
                        "lead((t->>'at')::timestamptz) OVER (ORDER BY n) AS b FROM " +
                            target_.schema + ".worker_lifecycle w, jsonb_array_elements("
                            "w.transitions) WITH ORDINALITY AS x(t, n) WHERE w.pid = " +
                            std::to_string(worker->pid()) + ") s WHERE b IS NOT NULL"),
            "t");
  EXPECT_EQ(queryScalar(target_,
                        "SELECT (transitions->4->>'at')::timestamptz - (transitions->3->>'at')::"
                        "timestamptz >= interval '300 ms' FROM " + target_.schema +
                            ".worker_lifecycle WHERE pid = " + std::to_string(worker->pid())),
            "t");
}

TEST_F(WorkerTest, JobSpanningRetirementCompletesAndRetiredWorkerClaimsNothing) {
  const auto long_job = enqueue(integration({{"fetch_ms", 2500}}));
  settings_["active-period"] = "1s";
  auto worker = startWorker();
  ASSERT_TRUE(reaches(long_job, "running")) << worker->output();
  ASSERT_TRUE(eventually([&] { return workerState(worker->pid()) == "RETIRED"; })) << worker->output();
  EXPECT_EQ(state(long_job), "running");  // retired with the job still running
  const auto late_job = enqueue(integration({{"fetch_ms", 0}}));

  EXPECT_EQ(worker->wait(30s), 0) << worker->output();
  EXPECT_EQ(state(long_job), "succeeded") << jobColumn(long_job, "last_error");
  EXPECT_EQ(state(late_job), "queued");
  EXPECT_EQ(transitions(worker->pid()), "INACTIVE ACTIVE RETIRED TERMINATING TERMINATED");
}

TEST_F(WorkerTest, RunsAtMostCapacityJobsAtOnce) {
  settings_["worker-capacity"] = "3";
  std::vector<JobId> jobs;
  for (int i = 0; i < 9; ++i) jobs.push_back(enqueue(integration({{"fetch_ms", 400}})));
  auto worker = startWorker();
  for (const auto job : jobs) ASSERT_TRUE(reaches(job, "succeeded", 30s)) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
  // The largest number of attempts that overlapped in time.
  const auto overlap = queryScalar(
      target_, "SELECT max(c) FROM (SELECT (SELECT count(*) FROM " + target_.schema +
                   ".job_attempts b WHERE b.started_at <= a.started_at AND b.finished_at > "
                   "a.started_at) AS c FROM " + target_.schema + ".job_attempts a) s");
  EXPECT_EQ(overlap, "3");
}

class CrashingPlugin : public WorkerTest, public ::testing::WithParamInterface<std::pair<const char*, const char*>> {};

TEST_P(CrashingPlugin, FailsOnlyItsOwnJobInProcessIsolation) {
  const auto [crash, expected_error] = GetParam();
  settings_["worker-capacity"] = "2";
  if (std::string(crash) == "oom") {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer reserves terabytes of address space: an address-space limit stops it
    // from starting at all, and its allocator aborts on exhaustion instead of throwing.
    GTEST_SKIP() << "job_memory_limit (RLIMIT_AS) cannot work under AddressSanitizer";
#endif
    settings_["job-memory-limit"] = "1GiB";
  }
  const auto sibling = enqueue(integration({{"fetch_ms", 1500}}));
  auto worker = startWorker();
  ASSERT_TRUE(reaches(sibling, "running")) << worker->output();
  const auto crashing = enqueue(integration({{"crash", crash}}));

  // Allocating up to the limit takes a while on a busy machine.
  ASSERT_TRUE(reaches(crashing, "failed", 60s)) << worker->output();
  EXPECT_NE(jobColumn(crashing, "last_error").find(expected_error), std::string::npos)
      << jobColumn(crashing, "last_error") << worker->output();
  // Its process wrote no end, but its events have it.
  EXPECT_EQ(ends(crashing), "attempt 1 ended: retry");
  EXPECT_EQ(eventsMentioning(crashing, expected_error), 1);
  ASSERT_TRUE(reaches(sibling, "succeeded")) << jobColumn(sibling, "last_error") << worker->output();
  // The worker goes on taking jobs.
  const auto next = enqueue(integration({{"fetch_ms", 0}}));
  EXPECT_TRUE(reaches(next, "succeeded")) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

INSTANTIATE_TEST_SUITE_P(Crashes, CrashingPlugin,
                         ::testing::Values(std::pair{"segv", "SIGSEGV"}, std::pair{"abort", "SIGABRT"},
                                           std::pair{"oom", "bad_alloc"}),
                         [](const auto& param_info) { return std::string(param_info.param.first); });

TEST_F(WorkerTest, AResultReportedBeforeTheProcessFailsOnItsWayOutCounts) {
  // The job's work is done and reported; the process then exits with status 7 (a plugin that
  // fails as it is unloaded). The job succeeded, and the worker says what happened after.
  const auto job = enqueue(integration({{"crash", "exit_7_at_exit"}}));
  auto worker = startWorker();
  EXPECT_TRUE(reaches(job, "succeeded")) << jobColumn(job, "last_error") << worker->output();
  EXPECT_TRUE(worker->waitForOutput("exited with status 7 after reporting its result", 5s)) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, ThreadIsolationRunsJobsInProcess) {
  settings_["isolation"] = "thread";
  settings_["worker-capacity"] = "2";
  const auto first = enqueue(integration({{"fetch_ms", 100}}));
  const auto second = enqueue(integration({{"records", 5}}));
  auto worker = startWorker();
  EXPECT_TRUE(reaches(first, "succeeded")) << worker->output();
  EXPECT_TRUE(reaches(second, "succeeded")) << worker->output();
  EXPECT_EQ(Json::parse(jobColumn(second, "result"))["streams"][0]["target"]["create"], 5)
      << jobColumn(second, "result");
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, SigtermLetsRunningJobFinishThenExitsZero) {
  const auto job = enqueue(integration({{"fetch_ms", 1500}}));
  auto worker = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << worker->output();
  worker->signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return workerState(worker->pid()) == "RETIRED"; })) << worker->output();
  const auto queued_later = enqueue(integration({{"fetch_ms", 0}}));
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
  EXPECT_EQ(state(job), "succeeded") << jobColumn(job, "last_error");
  EXPECT_EQ(state(queued_later), "queued");
  EXPECT_EQ(transitions(worker->pid()), "INACTIVE ACTIVE RETIRED TERMINATING TERMINATED");
}

TEST_F(WorkerTest, JobOutlivingTheDrainDeadlineIsHandedBackAndFinishedByAnotherWorker) {
  settings_["drain-deadline"] = "500ms";
  const auto job = enqueue(integration({{"fetch_ms", 3000}}), /*max_attempts=*/1);
  auto first = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << first->output();
  first->signal(SIGTERM);
  first->signal(SIGTERM);  // a second signal does not cut the drain short
  EXPECT_EQ(first->wait(20s), 0) << first->output();
  EXPECT_EQ(state(job), "queued");
  EXPECT_EQ(queryScalar(target_, "SELECT outcome FROM " + target_.schema +
                                     ".job_attempts WHERE job_id = " + std::to_string(job)),
            "released");

  // Handing back cost no attempt: with max_attempts 1 the job still runs to success.
  auto second = startWorker();
  EXPECT_TRUE(reaches(job, "succeeded")) << jobColumn(job, "last_error") << second->output();
  EXPECT_EQ(jobColumn(job, "attempt"), "2");
  EXPECT_EQ(ends(job), "attempt 1 ended: released attempt 2 ended: succeeded");
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(20s), 0) << second->output();
}

TEST_F(WorkerTest, JobOfAKilledWorkerIsRescuedAndFinishedByAnother) {
  settings_["rescue-lease"] = "1s";
  settings_["heartbeat-interval"] = "200ms";
  const auto job = enqueue(integration({{"fetch_ms", 2000}}), /*max_attempts=*/3);
  auto doomed = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << doomed->output();
  doomed->signal(SIGKILL);
  EXPECT_EQ(doomed->wait(10s), 128 + SIGKILL);

  auto singleton = startSingleton();
  auto rescuer = startWorker();
  EXPECT_TRUE(reaches(job, "succeeded", 30s)) << jobColumn(job, "last_error") << singleton->output()
                                               << rescuer->output();
  EXPECT_EQ(outcomes(job), "rescued succeeded");
  EXPECT_EQ(ends(job), "attempt 1 ended: rescued attempt 2 ended: succeeded");
  rescuer->signal(SIGTERM);
  singleton->signal(SIGTERM);
  EXPECT_EQ(rescuer->wait(20s), 0) << rescuer->output();
  EXPECT_EQ(singleton->wait(20s), 0) << singleton->output();
}

TEST_F(WorkerTest, CancellationReachesThePluginWithinAHeartbeat) {
  for (const auto* isolation : {"process", "thread"}) {
    SCOPED_TRACE(isolation);
    settings_["isolation"] = isolation;
    const auto job = enqueue(integration({{"fetch_ms", 60000}}));
    auto worker = startWorker();
    ASSERT_TRUE(reaches(job, "running")) << worker->output();
    core::JobQueue queue(target_);
    ASSERT_EQ(must(queue.cancel(job), "cancel"), core::CancelOutcome::Requested);
    const auto asked = std::chrono::steady_clock::now();
    EXPECT_TRUE(reaches(job, "cancelled", 10s)) << worker->output();
    // One heartbeat (200 ms) plus the plugin's next check and the report.
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 3s);
    EXPECT_TRUE(worker->waitForOutput("workload: stopping, cancelled after", 5s)) << worker->output();
    worker->signal(SIGTERM);
    EXPECT_EQ(worker->wait(20s), 0) << worker->output();
  }
}

TEST_F(WorkerTest, ReconnectsWhenItsDatabaseConnectionsAreCut) {
  const auto job = enqueue(integration({{"fetch_ms", 1500}}), /*max_attempts=*/3);
  auto worker = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << worker->output();
  // Cut the worker's own connections (queue and LISTEN), not its job's.
  const auto cut = queryScalar(target_, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE application_name = 'syncpod:" + target_.schema + ":worker'");
  EXPECT_NE(cut, "0");
  EXPECT_TRUE(reaches(job, "succeeded")) << jobColumn(job, "last_error") << worker->output();
  const auto next = enqueue(integration({{"fetch_ms", 0}}));
  EXPECT_TRUE(reaches(next, "succeeded")) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, StopsItsJobsWhenItCannotHeartbeatForLongerThanTheLease) {
  settings_["rescue-lease"] = "1s";
  settings_["heartbeat-interval"] = "200ms";
  settings_["drain-deadline"] = "300ms";
  const auto job = enqueue(integration({{"fetch_ms", 60000}}), /*max_attempts=*/1);
  auto worker = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << worker->output();
  // Heartbeats fail while the table is out of reach; the job itself does not touch it.
  execute(target_, "ALTER TABLE worker_lifecycle RENAME TO worker_lifecycle_hidden");
  // It stops its jobs before the lease runs out (here 1 s), so that they have stopped when
  // the queue's rescue gives them to other workers.
  EXPECT_TRUE(worker->waitForOutput("before the lease (1000 ms) runs out", 10s)) << worker->output();
  EXPECT_TRUE(worker->waitForOutput("workload: stopping, cancelled after", 10s)) << worker->output();
  execute(target_, "ALTER TABLE worker_lifecycle_hidden RENAME TO worker_lifecycle");
  // Reported once the queue answers again: handed back, not failed, though max_attempts is 1.
  EXPECT_TRUE(eventually([&] {
    return queryScalar(target_, "SELECT outcome FROM " + target_.schema +
                                    ".job_attempts WHERE attempt = 1 AND job_id = " + std::to_string(job)) ==
           "released";
  })) << worker->output();
  EXPECT_TRUE(worker->waitForOutput("database reachable again", 10s)) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, AJobTheQueueRescuedIsStoppedWhereItStillRuns) {
  // The queue gives a job to another attempt while its worker still runs it (here: rescued as
  // long past its deadline); the worker learns it at its next heartbeat and stops the job, so
  // the two attempts do not both write for long.
  for (const auto* isolation : {"process", "thread"}) {
    SCOPED_TRACE(isolation);
    settings_["isolation"] = isolation;
    // One attempt: the rescue fails the job, so that no attempt follows to blur the picture.
    const auto job = enqueue(integration({{"fetch_ms", 60000}, {"log_lines", 1}}), /*max_attempts=*/1);
    auto worker = startWorker();
    // Its plugin at work: a job process that starts after the rescue would not run it at all.
    ASSERT_TRUE(worker->waitForOutput("workload: line 1 of 1", 10s)) << worker->output();
    execute(target_, "UPDATE jobs SET deadline_at = now() - interval '1 hour' WHERE id = " + std::to_string(job));
    core::JobQueue queue(target_);
    ASSERT_EQ(must(queue.rescue(), "rescue").failed, 1);
    EXPECT_TRUE(worker->waitForOutput("no longer holds", 5s)) << worker->output();
    EXPECT_TRUE(worker->waitForOutput("workload: stopping, cancelled after", 5s)) << worker->output();
    // Its report is refused by the fence: the rescue's outcome stands.
    EXPECT_TRUE(worker->waitForOutput("was not recorded", 5s)) << worker->output();
    EXPECT_EQ(state(job), "failed");
    EXPECT_EQ(outcomes(job), "rescued");
    worker->signal(SIGTERM);
    EXPECT_EQ(worker->wait(20s), 0) << worker->output();
  }
}

TEST_F(WorkerTest, AJobPastItsDeadlineIsStoppedByItsWorker) {
  // Long enough for the job's process to start its plugin on a busy machine.
  const auto job = enqueue(integration({{"fetch_ms", 60000}}), /*max_attempts=*/1, /*max_runtime=*/3s);
  auto worker = startWorker();
  ASSERT_TRUE(reaches(job, "running")) << worker->output();
  // The worker stops it at its deadline and reports a failed attempt; the queue's rescue
  // would come a lease (here 2 s) later, and there is no singleton here anyway.
  EXPECT_TRUE(reaches(job, "failed", 15s)) << worker->output();
  EXPECT_NE(jobColumn(job, "last_error").find("reached its deadline of 3 s"), std::string::npos)
      << jobColumn(job, "last_error");
  EXPECT_EQ(outcomes(job), "retry");
  EXPECT_TRUE(worker->waitForOutput("workload: stopping, cancelled after", 5s)) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, AJobClaimedForTheWorkerWithoutItsKnowledgeIsHandedBack) {
  // What the queue holds under a worker whose claim's answer was lost (the connection broke
  // after the commit): here claimed in its name from outside. Its heartbeat hands it back, and
  // the job runs after all instead of waiting for its deadline.
  auto worker = startWorker();
  ASSERT_TRUE(eventually([&] { return workerState(worker->pid()) == "ACTIVE"; })) << worker->output();
  // While the worker is busy with a job of its own, so that it does not claim the next (long
  // enough for a slow machine to make the claim below in the meantime).
  const auto busy = enqueue(integration({{"fetch_ms", 5000}}));
  ASSERT_TRUE(reaches(busy, "running")) << worker->output();
  const auto job = enqueue(integration({{"fetch_ms", 0}}));
  const auto id = queryScalar(target_, "SELECT id FROM " + target_.schema + ".worker_lifecycle WHERE pid = " +
                                           std::to_string(worker->pid()));
  core::JobQueue queue(target_);
  ASSERT_EQ(must(queue.claim(id, 1), "claim").size(), 1u);
  EXPECT_TRUE(reaches(job, "succeeded")) << worker->output();
  EXPECT_EQ(outcomes(job), "released succeeded");
  EXPECT_TRUE(worker->waitForOutput("never learned of it", 5s)) << worker->output();
  EXPECT_TRUE(reaches(busy, "succeeded")) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s), 0) << worker->output();
}

TEST_F(WorkerTest, RefusesATerminatingGraceShorterThanScalingNeeds) {
  settings_["terminating-grace"] = "1s";
  settings_["scale-interval"] = "5s";
  settings_["keda-polling-interval"] = "15s";
  auto worker = startWorker();
  EXPECT_EQ(worker->wait(10s), 78) << worker->output();
  EXPECT_NE(worker->output().find("terminating_grace"), std::string::npos) << worker->output();
  EXPECT_NE(worker->output().find("keda_polling_interval"), std::string::npos) << worker->output();
}

}  // namespace
}  // namespace syncpod::testing
