// The singleton's statements against a real PostgreSQL: the leader lease and its fencing, the
// scaling inputs, cron fires and cleanup.

#include <thread>

#include <gtest/gtest.h>

#include "pg_test_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"

namespace syncpod::testing {
namespace {

using namespace std::chrono_literals;
using core::Error;

template <class T>
T must(core::Result<T> result, const std::string& what) {
  if (!result) throw std::runtime_error(what + ": " + result.error().message);
  return std::move(result).value();
}

class SingletonStoreTest : public PgTest {
 protected:
  std::string count(const std::string& table, const std::string& where = "true") {
    return queryScalar(target_, "SELECT count(*) FROM " + target_.schema + "." + table + " WHERE " + where);
  }
  /// Takes the singleton lease as `holder` and returns its token.
  core::LeaseToken lead(core::LeaderLease& lease) {
    auto token = must(lease.acquire(), "acquire");
    if (!token) throw std::runtime_error("the lease is held by someone else");
    return *token;
  }
};

/// Tries to acquire the lease until the current holder's term expired (at most 5 s); nullopt
/// if it never did.
std::optional<core::LeaseToken> takeOver(core::LeaderLease& lease) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto taken = must(lease.acquire(), "acquire")) return taken;
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

TEST_F(SingletonStoreTest, KedaQueryReturnsOneIntegerOnAFreshDatabase) {
  EXPECT_EQ(count("desired_pod_count"), "1");
  EXPECT_EQ(queryScalar(target_, "SELECT count FROM " + target_.schema + ".desired_pod_count"), "0");
  core::JobQueue queue(target_);
  const auto record = must(queue.readScaling(), "read");
  EXPECT_EQ(record.policy_name, "initial");
}

TEST_F(SingletonStoreTest, OneHolderLeadsAndAStandbyTakesOverOnlyAfterExpiryOrRelease) {
  core::LeaderLease a(target_, "singleton", "a", 1500ms);
  core::LeaderLease b(target_, "singleton", "b", 1500ms);
  const auto first = lead(a);
  EXPECT_EQ(first.term, 1);
  EXPECT_FALSE(must(b.acquire(), "b acquire"));
  EXPECT_EQ(lead(a).term, 1) << "a renewal keeps the term";
  // a stops renewing: b leads once the lease expired, with a new term.
  const auto taken = takeOver(b);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->term, 2);
  EXPECT_FALSE(must(a.acquire(), "a acquire")) << "a must not take it back while b holds it";
  // A release hands over at once.
  must(b.release(*taken), "release");
  EXPECT_EQ(lead(a).term, 3);
  const auto state = must(a.read(), "read");
  EXPECT_EQ(state.holder, "a");
  EXPECT_TRUE(state.valid);
}

TEST_F(SingletonStoreTest, APausedLeadersWritesAreFenced) {
  core::LeaderLease a(target_, "singleton", "a", 1000ms);
  core::LeaderLease b(target_, "singleton", "b", 30s);
  const auto old_token = lead(a);
  core::JobQueue queue(target_);
  core::ScalingRecord record;
  record.count = 7;
  must(queue.storeScaling(old_token, record), "store while leading");
  EXPECT_EQ(queryScalar(target_, "SELECT count FROM " + target_.schema + ".desired_pod_count"), "7");

  // a "pauses" past its lease; b takes over.
  const auto taken = takeOver(b);
  ASSERT_TRUE(taken);

  // Every write of the old term is refused and changes nothing.
  record.count = 99;
  auto stored = queue.storeScaling(old_token, record);
  ASSERT_FALSE(stored);
  EXPECT_EQ(stored.error().code, Error::Code::Fenced);
  EXPECT_NE(stored.error().message.find("term 1 is no longer held by a"), std::string::npos);
  EXPECT_EQ(queryScalar(target_, "SELECT count FROM " + target_.schema + ".desired_pod_count"), "7");
  const auto integration = createIntegration("fenced");
  auto fired = queue.fireCron(old_token, integration, core::Clock::now());
  ASSERT_FALSE(fired);
  EXPECT_EQ(fired.error().code, Error::Code::Fenced);
  EXPECT_EQ(count("cron_fires"), "0");
  EXPECT_EQ(count("jobs"), "0");
  auto cleaned = queue.cleanup(old_token, {});
  ASSERT_FALSE(cleaned);
  EXPECT_EQ(cleaned.error().code, Error::Code::Fenced);
  EXPECT_FALSE(queue.rescue(old_token));
  core::EnqueueRequest partial;
  partial.integration_id = integration;
  partial.kind = core::JobKind::Partial;
  partial.incremental = true;
  EXPECT_FALSE(queue.enqueue(old_token, std::vector<core::EnqueueRequest>{partial}));
  EXPECT_EQ(count("jobs"), "0");

  // The new leader writes.
  record.count = 3;
  must(queue.storeScaling(*taken, record), "store by the new leader");
  EXPECT_EQ(queryScalar(target_, "SELECT leader || ':' || term FROM " + target_.schema + ".desired_pod_count"), "b:2");
}

TEST_F(SingletonStoreTest, ScalingInputsCountOnlyAliveWorkers) {
  core::JobQueue queue(target_);
  std::vector<core::IntegrationId> integrations;
  for (int i = 0; i < 6; ++i) integrations.push_back(createIntegration("i" + std::to_string(i)));
  const auto worker = [&](core::WorkerState state) {
    const auto id = must(queue.registerWorker({4, "t", "h", 1}), "register");
    must(queue.setWorkerState(id, state), "state");
    return id;
  };
  const auto active = worker(core::WorkerState::Active);
  const auto retired = worker(core::WorkerState::Active);
  const auto stale = worker(core::WorkerState::Active);
  worker(core::WorkerState::Terminating);
  worker(core::WorkerState::Terminated);
  const auto stale_retired = worker(core::WorkerState::Retired);
  for (std::size_t i = 0; i < 5; ++i) {
    core::EnqueueRequest request;
    request.integration_id = integrations[i];
    must(queue.enqueue(request), "enqueue");
  }
  ASSERT_EQ(must(queue.claim(active, 2), "claim").size(), 2U);
  ASSERT_EQ(must(queue.claim(retired, 1), "claim").size(), 1U);
  ASSERT_EQ(must(queue.claim(stale, 1), "claim").size(), 1U);
  must(queue.setWorkerState(retired, core::WorkerState::Retired), "retire");
  execute(target_, "UPDATE worker_lifecycle SET last_heartbeat_at = now() - interval '1 hour' WHERE id IN ('" +
                       stale + "', '" + stale_retired + "')");
  // One more queued job of a busy integration is not runnable; one of a free one is.
  core::EnqueueRequest again;
  again.integration_id = integrations[0];
  again.merge = false;
  must(queue.enqueue(again), "enqueue");

  const auto inputs = must(queue.scalingInputs(30s), "inputs");
  EXPECT_EQ(inputs.ongoing_jobs, 3) << "the stale worker's job is not counted";
  EXPECT_EQ(inputs.runs_in_retired_workers, 1);
  EXPECT_EQ(inputs.retired_workers, 1) << "the stale retired worker is not alive";
  EXPECT_EQ(inputs.active_workers, 1) << "TERMINATING and stale workers do not count";
  EXPECT_EQ(inputs.queued_jobs, 1);
  // seed: (3 - 1) / 4 + 1 = 1 → minimum 2, + 1 retired.
  EXPECT_EQ(core::desiredPodCount(inputs, {core::ScalingPolicy::Seed, 4, 2}), 3);
}

TEST_F(SingletonStoreTest, ACronFireIsRecordedOnceWithItsJob) {
  core::LeaderLease lease(target_, "singleton", "a", 30s);
  const auto token = lead(lease);
  core::JobQueue queue(target_);
  const auto integration = createIntegration("nightly");
  execute(target_, "UPDATE integrations SET config = '{\"schedule\": {\"cron\": \"0 5 * * *\"}}' WHERE id = " +
                       std::to_string(integration));
  const auto fire_time = core::TimePoint(std::chrono::sys_days(std::chrono::year(2025) / 1 / 2) + 5h);
  const auto first = must(queue.fireCron(token, integration, fire_time), "fire");
  EXPECT_TRUE(first.fired);
  EXPECT_FALSE(first.merged);
  const auto again = must(queue.fireCron(token, integration, fire_time), "fire again");
  EXPECT_FALSE(again.fired);
  EXPECT_EQ(count("jobs"), "1");
  EXPECT_EQ(count("cron_fires", "job_id = " + std::to_string(first.job)), "1");
  // The next slot merges into the still queued full job.
  const auto next = must(queue.fireCron(token, integration, fire_time + 24h), "next");
  EXPECT_TRUE(next.fired);
  EXPECT_TRUE(next.merged);
  EXPECT_EQ(next.job, first.job);
  const auto scheduled = must(queue.scheduledIntegrations(), "scheduled");
  ASSERT_EQ(scheduled.size(), 1U);
  EXPECT_EQ(scheduled[0].last_cron_fire, fire_time + 24h);
}

TEST_F(SingletonStoreTest, RetentionDeletesOnlyWhatIsOld) {
  core::LeaderLease lease(target_, "singleton", "a", 30s);
  const auto token = lead(lease);
  core::JobQueue queue(target_);
  const auto integration = createIntegration("old-and-new");
  const auto worker = must(queue.registerWorker({1, "t", "h", 1}), "register");
  std::vector<core::JobId> jobs;
  for (int i = 0; i < 5; ++i) {
    core::EnqueueRequest request;
    request.integration_id = integration;
    request.merge = false;
    jobs.push_back(must(queue.enqueue(request), "enqueue").id);
  }
  for (int i = 0; i < 4; ++i) {
    const auto claimed = must(queue.claim(worker, 1), "claim");
    ASSERT_EQ(claimed.size(), 1U);
    must(queue.complete(worker, core::Completion{claimed[0].id, claimed[0].attempt}), "complete");
  }
  // Jobs 0..2 were created and finished 20 days ago; job 3 was created then but finished just
  // now; job 4, created then too, is still queued.
  const auto ids = [&](std::initializer_list<std::size_t> which) {
    std::string list;
    for (auto i : which) list += (list.empty() ? "" : ",") + std::to_string(jobs[i]);
    return list;
  };
  execute(target_, "UPDATE jobs SET created_at = now() - interval '20 days', finished_at = now() - interval '20 days' WHERE id IN (" + ids({0, 1, 2}) + ")");
  execute(target_, "UPDATE jobs SET created_at = now() - interval '20 days' WHERE id IN (" + ids({3, 4}) + ")");
  // Workers: one ended long ago, one ended just now, one silent for an hour.
  const auto ended_old = must(queue.registerWorker({1, "t", "h", 2}), "register");
  const auto ended_new = must(queue.registerWorker({1, "t", "h", 3}), "register");
  const auto silent = must(queue.registerWorker({1, "t", "h", 4}), "register");
  must(queue.setWorkerState(ended_old, core::WorkerState::Terminated), "state");
  must(queue.setWorkerState(ended_new, core::WorkerState::Terminated), "state");
  execute(target_, "UPDATE worker_lifecycle SET state_changed_at = now() - interval '20 days' WHERE id = '" + ended_old + "'");
  execute(target_, "UPDATE worker_lifecycle SET last_heartbeat_at = now() - interval '1 hour' WHERE id = '" + silent + "'");
  // Cron fires: two old ones of which the latest stays.
  must(queue.fireCron(token, integration, core::Clock::now() - 48h), "fire");
  must(queue.fireCron(token, integration, core::Clock::now() - 24h), "fire");
  execute(target_, "UPDATE cron_fires SET fired_at = now() - interval '20 days'");

  core::CleanupOptions options;
  options.retention = 14 * 24h;
  options.stale_after = 30s;
  options.batch_size = 2;  // several batches
  // Out of time before the first batch (a leader that must renew its lease): nothing is
  // deleted, and it says there may be more. Silent workers are still marked gone: one short
  // statement, before any batch.
  options.stop_by = std::chrono::steady_clock::now();
  const auto cut_short = must(queue.cleanup(token, options), "cleanup");
  EXPECT_TRUE(cut_short.stopped_early);
  EXPECT_EQ(cut_short.jobs_deleted + cut_short.workers_deleted + cut_short.cron_fires_deleted, 0);
  EXPECT_EQ(cut_short.workers_gone, 1);
  options.stop_by = std::chrono::steady_clock::time_point::max();
  const auto cleaned = must(queue.cleanup(token, options), "cleanup");
  EXPECT_FALSE(cleaned.stopped_early);
  EXPECT_EQ(cleaned.jobs_deleted, 3);
  EXPECT_EQ(cleaned.workers_deleted, 1);
  EXPECT_EQ(cleaned.workers_gone, 0);  // by the call before
  EXPECT_EQ(cleaned.cron_fires_deleted, 1);
  EXPECT_EQ(count("jobs", "id IN (" + ids({0, 1, 2}) + ")"), "0");
  EXPECT_EQ(count("job_attempts", "job_id IN (" + ids({0, 1, 2}) + ")"), "0");
  EXPECT_EQ(count("jobs", "id IN (" + ids({3, 4}) + ")"), "2") << "recently finished or unfinished jobs stay";
  EXPECT_EQ(count("job_attempts", "job_id = " + std::to_string(jobs[3])), "1");
  EXPECT_EQ(count("worker_lifecycle", "id = '" + ended_old + "'"), "0");
  EXPECT_EQ(count("worker_lifecycle", "id = '" + ended_new + "'"), "1");
  EXPECT_EQ(count("worker_lifecycle", "id = '" + silent + "' AND state = 'TERMINATED'"), "1");
  EXPECT_EQ(count("worker_lifecycle", "id = '" + worker + "' AND state = 'INACTIVE'"), "1");
  EXPECT_EQ(count("cron_fires"), "1");
  // A worker marked gone learns it at its next heartbeat.
  EXPECT_FALSE(must(queue.heartbeat(silent), "heartbeat").known);
  EXPECT_TRUE(must(queue.heartbeat(worker), "heartbeat").known);
}

}  // namespace
}  // namespace syncpod::testing
