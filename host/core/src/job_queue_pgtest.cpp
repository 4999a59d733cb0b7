#include "syncpod/core/job_queue.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "pg_test_support.hpp"
#include "syncpod/core/migrator.hpp"

namespace syncpod::core {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

/// Unwraps a Result; a failure aborts the test with the queue's own message.
template <class T>
T must(Result<T> result, const std::string& what) {
  if (!result.ok()) throw std::runtime_error(what + " failed: " + result.error().message);
  return std::move(result).value();
}

EnqueueRequest fullJob(IntegrationId integration, bool merge = true) {
  EnqueueRequest request;
  request.integration_id = integration;
  request.kind = JobKind::Full;
  request.merge = merge;
  return request;
}

EnqueueRequest partialJob(IntegrationId integration, std::vector<std::string> keys,
                          bool incremental = false, bool merge = true) {
  EnqueueRequest request;
  request.integration_id = integration;
  request.kind = JobKind::Partial;
  request.keys = std::move(keys);
  request.incremental = incremental;
  request.merge = merge;
  return request;
}

Completion completion(const Job& job, Completion::Outcome outcome) {
  Completion done;
  done.id = job.id;
  done.attempt = job.attempt;
  done.outcome = outcome;
  return done;
}

/// Worker threads for the concurrency tests. Each owns a JobQueue and a worker row and runs
/// `cycle` (which returns how many jobs it completed) until `total` jobs are done, one thread
/// fails (which stops them all), or 45 s pass.
class WorkerThreads {
 public:
  using Cycle = std::function<std::size_t(JobQueue&, const WorkerId&, std::size_t index)>;

  WorkerThreads(const DatabaseTarget& target, std::size_t count, std::size_t total, Cycle cycle)
      : total_(total), deadline_(SteadyClock::now() + 45s), errors_(count) {
    for (std::size_t index = 0; index < count; ++index) {
      threads_.emplace_back([this, &target, cycle, index] {
        try {
          JobQueue queue(target);
          const auto worker = must(queue.registerWorker({1, "test", "localhost", 1}), "register");
          while (running()) {
            if (SteadyClock::now() > deadline_) throw std::runtime_error("deadline passed");
            completed_ += cycle(queue, worker, index);
          }
        } catch (const std::exception& error) {
          errors_[index] = error.what();
          stop_ = true;
        }
      });
    }
  }

  ~WorkerThreads() { join(); }

  bool running() const { return !stop_ && completed_ < total_; }
  SteadyClock::time_point deadline() const { return deadline_; }
  void stop() { stop_ = true; }

  /// Joins the threads; returns each one's error ("" when it had none).
  std::vector<std::string> join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    return errors_;
  }

 private:
  std::size_t total_;
  SteadyClock::time_point deadline_;
  std::atomic<std::size_t> completed_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::string> errors_;
  std::vector<std::thread> threads_;
};

/// Claims with limit 1 and insists on getting a job.
Job claimOne(JobQueue& queue, const WorkerId& worker) {
  auto jobs = must(queue.claim(worker, 1), "claim");
  if (jobs.size() != 1) {
    throw std::runtime_error("expected one job to claim, got " + std::to_string(jobs.size()));
  }
  return jobs.front();
}

std::vector<IntegrationId> parseIds(const std::string& csv) {
  std::vector<IntegrationId> ids;
  std::stringstream stream(csv);
  std::string item;
  while (std::getline(stream, item, ',')) ids.push_back(std::stoll(item));
  return ids;
}

/// Backoff options with no jitter, so delays can be checked tightly.
JobQueueOptions exactBackoff(std::chrono::seconds base, std::chrono::seconds max = 1h) {
  JobQueueOptions options;
  options.retry.base = base;
  options.retry.max = max;
  options.retry.jitter = 0.0;
  return options;
}

class JobQueueTest : public testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    queue_ = makeQueue();
  }

  void TearDown() override {
    queue_.reset();
    PgTest::TearDown();
  }

  JobQueuePtr makeQueue(JobQueueOptions options = {}) {
    return std::make_unique<JobQueue>(target_, options);
  }

  /// Inserts `count` integrations in one statement; returns their ids in ascending order.
  std::vector<IntegrationId> createIntegrations(int count, const std::string& prefix = "bulk_") {
    return parseIds(sql("WITH created AS (INSERT INTO integrations (name) SELECT '" + prefix +
                        "' || g FROM generate_series(1, " + std::to_string(count) +
                        ") AS g RETURNING id) SELECT string_agg(id::text, ',' ORDER BY id) "
                        "FROM created"));
  }

  static WorkerId registerWorker(JobQueue& queue) {
    return must(queue.registerWorker({1, "test", "localhost", 1}), "registerWorker");
  }

  JobId enqueueOne(const EnqueueRequest& request) {
    return must(queue_->enqueue(request), "enqueue").id;
  }

  std::string sql(const std::string& query) { return testing::queryScalar(target_, query); }
  double sqlNumber(const std::string& query) { return std::stod(sql(query)); }
  long long sqlCount(const std::string& query) { return std::stoll(sql(query)); }

  std::string jobColumn(JobId id, const std::string& column) {
    return sql("SELECT " + column + " FROM jobs WHERE id = " + std::to_string(id));
  }
  /// The whole row as text: equal snapshots mean nothing was written.
  std::string jobRow(JobId id) {
    return sql("SELECT row_to_json(j)::text FROM jobs j WHERE id = " + std::to_string(id));
  }
  /// Seconds from now until the job is due (negative when overdue).
  double secondsUntilDue(JobId id) {
    return sqlNumber("SELECT extract(epoch FROM run_at - now()) FROM jobs WHERE id = " +
                     std::to_string(id));
  }
  /// Moves a queued job's run_at (kept both on the job and its job_queue row).
  void setRunAt(JobId id, const std::string& at) {
    const std::string ids = std::to_string(id);
    testing::execute(target_, "UPDATE jobs SET run_at = " + at + " WHERE id = " + ids +
                                  "; UPDATE job_queue SET run_at = " + at + " WHERE job_id = " +
                                  ids);
  }
  void makeDue(JobId id) { setRunAt(id, "now() - interval '1 second'"); }
  void ageHeartbeat(const WorkerId& worker, const std::string& interval) {
    testing::execute(target_, "UPDATE worker_lifecycle SET last_heartbeat_at = now() - interval '" +
                                  interval + "' WHERE id = '" + worker + "'");
  }
  std::string keysOf(JobId id) {
    return sql(
        "SELECT string_agg(k, ',' ORDER BY n) FROM jobs, "
        "jsonb_array_elements_text(payload -> 'keys') WITH ORDINALITY AS t(k, n) "
        "WHERE id = " +
        std::to_string(id));
  }

  JobQueuePtr queue_;
};

// --- concurrency -----------------------------------------------------------------------

TEST_F(JobQueueTest, EightWorkersClaimTenThousandJobsEachExactlyOnce) {
  constexpr int kIntegrations = 1000;
  constexpr int kJobsPerIntegration = 10;
  constexpr int kWorkers = 8;
  constexpr std::size_t kTotal = std::size_t{kIntegrations} * kJobsPerIntegration;
  const auto integrations = createIntegrations(kIntegrations);
  ASSERT_EQ(integrations.size(), std::size_t{kIntegrations});

  // One batch per round: every integration gets one more job, none merged.
  std::set<JobId> enqueued;
  for (int round = 0; round < kJobsPerIntegration; ++round) {
    std::vector<EnqueueRequest> batch;
    for (const auto integration : integrations) batch.push_back(fullJob(integration, false));
    const auto results = must(queue_->enqueue(batch), "enqueue batch");
    ASSERT_EQ(results.size(), batch.size());
    for (const auto& result : results) {
      EXPECT_FALSE(result.merged);
      enqueued.insert(result.id);
    }
  }
  ASSERT_EQ(enqueued.size(), kTotal);

  std::vector<std::vector<JobId>> claimed(kWorkers);
  WorkerThreads workers(target_, kWorkers, kTotal,
                        [&](JobQueue& queue, const WorkerId& worker, std::size_t w) {
    const auto jobs = must(queue.claim(worker, 8), "claim");
    std::vector<Completion> done;
    for (const auto& job : jobs) {
      if (job.state != JobState::Running || job.worker_id != worker || job.attempt != 1) {
        throw std::runtime_error("job " + std::to_string(job.id) + " claimed in bad shape");
      }
      claimed[w].push_back(job.id);
      done.push_back(completion(job, Completion::Outcome::Succeeded));
    }
    for (const auto& result : must(queue.complete(worker, done), "complete")) {
      if (!result.accepted || result.state != JobState::Succeeded) {
        throw std::runtime_error("completion of " + std::to_string(result.id) + " refused");
      }
    }
    return jobs.size();
  });
  for (const auto& error : workers.join()) EXPECT_EQ(error, "");

  std::vector<JobId> all;
  for (const auto& ids : claimed) all.insert(all.end(), ids.begin(), ids.end());
  EXPECT_EQ(all.size(), kTotal) << "a job was claimed twice or lost";
  const std::set<JobId> distinct(all.begin(), all.end());
  EXPECT_EQ(distinct.size(), all.size()) << "a job was claimed twice";
  EXPECT_EQ(distinct, enqueued) << "claimed jobs differ from enqueued jobs";

  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state = 'succeeded'"),
            static_cast<long long>(kTotal));
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state <> 'succeeded'"), 0);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts"), static_cast<long long>(kTotal));
  EXPECT_EQ(sqlCount("SELECT count(DISTINCT job_id) FROM job_attempts WHERE outcome = 'succeeded'"
                     " AND attempt = 1"),
            static_cast<long long>(kTotal));
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_lanes WHERE running_job_id IS NOT NULL"), 0);
}

TEST_F(JobQueueTest, NeverTwoRunningJobsOfOneIntegrationUnderContention) {
  constexpr int kIntegrations = 5;
  constexpr int kJobsPerIntegration = 200;
  constexpr int kWorkers = 8;
  constexpr std::size_t kTotal = std::size_t{kIntegrations} * kJobsPerIntegration;
  const auto integrations = createIntegrations(kIntegrations);
  std::map<IntegrationId, std::size_t> lane_of;
  for (std::size_t i = 0; i < integrations.size(); ++i) lane_of[integrations[i]] = i;

  // Integration by integration: the head of the queue is one integration's backlog.
  std::vector<EnqueueRequest> batch;
  for (const auto integration : integrations) {
    for (int j = 0; j < kJobsPerIntegration; ++j) batch.push_back(fullJob(integration, false));
  }
  ASSERT_EQ(must(queue_->enqueue(batch), "enqueue").size(), kTotal);

  // What each worker holds, per integration; a second holder is a violation.
  std::vector<std::atomic<int>> holders(kIntegrations);
  std::atomic<int> violations{0};
  std::vector<std::vector<JobId>> claimed(kWorkers);
  WorkerThreads workers(target_, kWorkers, kTotal,
                        [&](JobQueue& queue, const WorkerId& worker, std::size_t w) {
    const auto jobs = must(queue.claim(worker, 3), "claim");
    std::vector<Completion> done;
    for (const auto& job : jobs) {
      if (++holders[lane_of.at(job.integration_id)] != 1) ++violations;
      claimed[w].push_back(job.id);
      done.push_back(completion(job, Completion::Outcome::Succeeded));
    }
    if (jobs.empty()) return std::size_t{0};
    // Hold the jobs across a round trip, as a real worker would, to widen the window.
    if (!must(queue.heartbeat(worker), "heartbeat").known) {
      throw std::runtime_error("worker unknown");
    }
    // Released from the bookkeeping before the completion commits: the lane is still
    // held in the database until then, so nobody can legitimately take it earlier.
    for (const auto& job : jobs) --holders[lane_of.at(job.integration_id)];
    for (const auto& result : must(queue.complete(worker, done), "complete")) {
      if (!result.accepted) throw std::runtime_error("completion refused");
    }
    return jobs.size();
  });

  // Samples the database while the workers run: duplicates, and lanes that disagree.
  long long samples = 0;
  long long busy_samples = 0;
  long long duplicate_samples = 0;
  long long lane_mismatches = 0;
  std::string sampler_error;
  try {
    pqxx::connection connection(target_.url);
    connection.set_variable("search_path", connection.quote_name(target_.schema));
    while (workers.running() && SteadyClock::now() < workers.deadline()) {
      pqxx::nontransaction tx(connection);
      const auto row = tx.exec(
          "SELECT (SELECT count(*) FROM (SELECT integration_id FROM jobs WHERE state = 'running'"
          "        GROUP BY 1 HAVING count(*) > 1) AS d),"
          "       (SELECT count(*) FROM jobs j JOIN job_lanes l USING (integration_id)"
          "        WHERE j.state = 'running' AND l.running_job_id IS DISTINCT FROM j.id),"
          "       (SELECT count(*) FROM jobs WHERE state = 'running')")[0];
      ++samples;
      duplicate_samples += row[0].as<long long>() > 0 ? 1 : 0;
      lane_mismatches += row[1].as<long long>();
      busy_samples += row[2].as<long long>() > 0 ? 1 : 0;
    }
  } catch (const std::exception& error) {
    sampler_error = error.what();  // the workers must still be joined
    workers.stop();
  }
  const auto errors = workers.join();
  EXPECT_EQ(sampler_error, "");
  for (const auto& error : errors) EXPECT_EQ(error, "");

  EXPECT_EQ(violations.load(), 0) << "two workers held jobs of one integration at once";
  EXPECT_EQ(duplicate_samples, 0) << "the database showed two running jobs of one integration";
  EXPECT_EQ(lane_mismatches, 0) << "a running job did not hold its integration's lane";
  EXPECT_GT(busy_samples, 0) << "the sampler never saw a running job (" << samples << " samples)";

  std::vector<JobId> all;
  for (const auto& ids : claimed) all.insert(all.end(), ids.begin(), ids.end());
  EXPECT_EQ(all.size(), kTotal);
  EXPECT_EQ(std::set<JobId>(all.begin(), all.end()).size(), kTotal);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state = 'succeeded'"),
            static_cast<long long>(kTotal));
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts"), static_cast<long long>(kTotal));
}

// --- claim order -----------------------------------------------------------------------

TEST_F(JobQueueTest, ClaimsInPriorityThenRunAtThenIdOrder) {
  const auto ids = createIntegrations(5);
  auto low_priority = fullJob(ids[0]);
  low_priority.priority = 5;
  const JobId late_low = enqueueOne(low_priority);       // oldest run_at, but priority 5
  const JobId later = enqueueOne(fullJob(ids[1]));       // priority 0, run_at 10:10
  const JobId tie_first = enqueueOne(fullJob(ids[2]));   // priority 0, run_at 10:00, lower id
  const JobId tie_second = enqueueOne(fullJob(ids[3]));  // priority 0, run_at 10:00, higher id
  auto urgent = fullJob(ids[4]);
  urgent.priority = -3;
  const JobId first = enqueueOne(urgent);  // newest run_at, but priority -3
  setRunAt(late_low, "'2020-01-01 09:00Z'");
  setRunAt(later, "'2020-01-01 10:10Z'");
  setRunAt(tie_first, "'2020-01-01 10:00Z'");
  setRunAt(tie_second, "'2020-01-01 10:00Z'");

  const auto worker = registerWorker(*queue_);
  std::vector<JobId> order;
  for (int i = 0; i < 6; ++i) {
    const auto jobs = must(queue_->claim(worker, 1), "claim");
    ASSERT_LE(jobs.size(), 1u);
    if (jobs.empty()) break;
    order.push_back(jobs.front().id);
  }
  EXPECT_EQ(order, (std::vector<JobId>{first, tie_first, tie_second, later, late_low}));
}

TEST_F(JobQueueTest, ClaimRespectsLimitAndReturnsJobsInDueOrder) {
  const auto ids = createIntegrations(6);
  std::vector<JobId> jobs;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto request = fullJob(ids[i]);
    request.priority = static_cast<int>(ids.size() - i);  // later integrations run first
    jobs.push_back(enqueueOne(request));
  }
  // A second job of the most urgent integration waits for the first to finish.
  auto behind = fullJob(ids.back(), false);
  behind.priority = 1;
  const JobId follower = enqueueOne(behind);

  const auto worker = registerWorker(*queue_);
  const auto first = must(queue_->claim(worker, 4), "claim");
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[0].id, jobs[5]);
  EXPECT_EQ(first[1].id, jobs[4]);
  EXPECT_EQ(first[2].id, jobs[3]);
  EXPECT_EQ(first[3].id, jobs[2]);
  for (const auto& job : first) {
    EXPECT_EQ(job.state, JobState::Running);
    EXPECT_EQ(job.worker_id, worker);
    EXPECT_EQ(job.attempt, 1);
    ASSERT_TRUE(job.claimed_at && job.deadline_at);
    EXPECT_EQ(*job.deadline_at - *job.claimed_at, std::chrono::hours(8));
  }
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state = 'running'"), 4);

  // The rest, but never the follower while its integration runs.
  const auto second = must(queue_->claim(worker, 100), "claim");
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].id, jobs[1]);
  EXPECT_EQ(second[1].id, jobs[0]);
  EXPECT_TRUE(must(queue_->claim(worker, 100), "claim").empty());

  ASSERT_TRUE(must(queue_->complete(worker, completion(first[0], Completion::Outcome::Succeeded)),
                   "complete")
                  .accepted);
  const auto third = must(queue_->claim(worker, 100), "claim");
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].id, follower);
}

TEST_F(JobQueueTest, DelayedJobIsNotClaimedBeforeItIsDue) {
  const auto ids = createIntegrations(2);
  auto later = fullJob(ids[0]);
  later.delay = 1h;
  const JobId hour = enqueueOne(later);
  auto soon = fullJob(ids[1]);
  soon.delay = 1s;
  const JobId second = enqueueOne(soon);
  EXPECT_NEAR(secondsUntilDue(hour), 3600.0, 5.0);

  const auto worker = registerWorker(*queue_);
  // Whatever a claim returns must be due: claimed_at >= run_at (robust to a slow machine
  // that lets the one-second delay pass before this claim).
  for (const auto& job : must(queue_->claim(worker, 10), "claim")) {
    EXPECT_EQ(job.id, second);
    EXPECT_GE(*job.claimed_at, job.run_at);
  }

  // The one-second job becomes claimable by itself; poll for it with a deadline.
  const auto deadline = SteadyClock::now() + 10s;
  while (jobColumn(second, "state") == "queued" && SteadyClock::now() < deadline) {
    for (const auto& job : must(queue_->claim(worker, 10), "claim")) EXPECT_EQ(job.id, second);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(jobColumn(second, "state"), "running");
  EXPECT_EQ(jobColumn(second, "claimed_at >= run_at"), "t");
  EXPECT_EQ(jobColumn(hour, "state"), "queued");

  makeDue(hour);
  const auto due = must(queue_->claim(worker, 10), "claim");
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, hour);
}

// --- dedupe and coalescing ----------------------------------------------------------------

TEST_F(JobQueueTest, QueuedFullJobAbsorbsFullRequests) {
  const auto ids = createIntegrations(2);
  auto slow = fullJob(ids[0]);
  slow.priority = 5;
  slow.delay = 1h;
  const auto created = must(queue_->enqueue(slow), "enqueue");
  EXPECT_FALSE(created.merged);

  auto urgent = fullJob(ids[0]);
  urgent.priority = 1;
  const auto again = must(queue_->enqueue(urgent), "enqueue");
  EXPECT_EQ(again.id, created.id);
  EXPECT_TRUE(again.merged);
  // The merged job keeps the more urgent priority and the earlier run_at.
  EXPECT_EQ(jobColumn(created.id, "priority"), "1");
  EXPECT_LT(secondsUntilDue(created.id), 5.0);

  // Within one batch, and against the existing job in the same batch.
  const auto batch =
      must(queue_->enqueue({fullJob(ids[1]), fullJob(ids[1]), fullJob(ids[0])}), "enqueue");
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_FALSE(batch[0].merged);
  EXPECT_TRUE(batch[1].merged);
  EXPECT_EQ(batch[1].id, batch[0].id);
  EXPECT_NE(batch[0].id, created.id);
  EXPECT_TRUE(batch[2].merged);
  EXPECT_EQ(batch[2].id, created.id);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 2);
}

TEST_F(JobQueueTest, PlanJobsNeverMerge) {
  const auto ids = createIntegrations(1);
  const auto real = must(queue_->enqueue(fullJob(ids[0])), "enqueue");
  auto dry_run = fullJob(ids[0]);
  dry_run.plan = true;
  const auto plans = must(queue_->enqueue({dry_run, dry_run}), "enqueue");
  EXPECT_FALSE(plans[0].merged);
  EXPECT_FALSE(plans[1].merged);
  EXPECT_NE(plans[0].id, real.id);
  EXPECT_NE(plans[0].id, plans[1].id);
  EXPECT_EQ(jobColumn(plans[0].id, "payload"), R"({"plan": true})");
  // A real request still merges into the real job, not into a plan.
  const auto again = must(queue_->enqueue(fullJob(ids[0])), "enqueue");
  EXPECT_EQ(again.id, real.id);
}

TEST_F(JobQueueTest, BatchResultsFollowRequestOrder) {
  const auto ids = createIntegrations(20);
  std::vector<EnqueueRequest> batch;
  for (int round = 0; round < 3; ++round) {
    // Reverse order each round, alternating kinds, so rows and requests interleave.
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
      batch.push_back((*it + round) % 2 == 0 ? fullJob(*it) : partialJob(*it, {"k"}));
    }
  }
  const auto results = must(queue_->enqueue(batch), "enqueue");
  ASSERT_EQ(results.size(), batch.size());
  // id → "integration:kind", read in one query.
  std::map<JobId, std::string> stored;
  std::stringstream rows(
      sql("SELECT string_agg(id || '=' || integration_id || ':' || kind, ',') FROM jobs"));
  for (std::string row; std::getline(rows, row, ',');) {
    const auto equals = row.find('=');
    stored[std::stoll(row.substr(0, equals))] = row.substr(equals + 1);
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(stored[results[i].id],
              std::to_string(batch[i].integration_id) + ":" + std::string(toString(batch[i].kind)))
        << "request " << i;
    EXPECT_EQ(results[i].merged, i >= 2 * ids.size()) << "request " << i;
  }
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 2 * 20);
}

TEST_F(JobQueueTest, FullRequestAfterClaimMakesNewQueuedJob) {
  const auto integration = createIntegration("crm");
  const JobId first = enqueueOne(fullJob(integration));
  const auto worker = registerWorker(*queue_);
  ASSERT_EQ(must(queue_->claim(worker, 1), "claim").size(), 1u);

  const auto second = must(queue_->enqueue(fullJob(integration)), "enqueue");
  EXPECT_FALSE(second.merged);
  EXPECT_NE(second.id, first);
  EXPECT_EQ(jobColumn(first, "state"), "running");
  EXPECT_EQ(jobColumn(second.id, "state"), "queued");

  const auto third = must(queue_->enqueue(fullJob(integration)), "enqueue");
  EXPECT_TRUE(third.merged);
  EXPECT_EQ(third.id, second.id);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 2);
}

// A running job that goes back to the queue while a newer mergeable job of the same integration
// and kind waits there must not collide with it (both are queued; the returning one stays apart),
// and a later request merges into the waiting one.
TEST_F(JobQueueTest, RetriedJobReturnsBesideAQueuedMergeableJob) {
  auto queue = makeQueue(exactBackoff(0s));
  const auto integration = createIntegration("crm");
  const JobId first = must(queue->enqueue(fullJob(integration)), "enqueue").id;
  const auto worker = registerWorker(*queue);
  const auto running = claimOne(*queue, worker);
  const JobId waiting = must(queue->enqueue(fullJob(integration)), "enqueue").id;

  const auto retried = must(queue->complete(worker, completion(running, Completion::Outcome::Retry)),
                            "complete");
  EXPECT_TRUE(retried.accepted);
  EXPECT_EQ(retried.state, JobState::Queued);
  EXPECT_EQ(jobColumn(first, "state"), "queued");
  EXPECT_EQ(jobColumn(waiting, "state"), "queued");

  const auto later = must(queue->enqueue(fullJob(integration)), "enqueue");
  EXPECT_TRUE(later.merged);
  EXPECT_EQ(later.id, waiting);
}

TEST_F(JobQueueTest, ReleasedJobReturnsBesideAQueuedMergeableJob) {
  const auto integration = createIntegration("crm");
  enqueueOne(partialJob(integration, {"a"}));
  const auto worker = registerWorker(*queue_);
  const auto running = claimOne(*queue_, worker);
  const JobId waiting = enqueueOne(partialJob(integration, {"b"}));
  const auto released = must(
      queue_->complete(worker, completion(running, Completion::Outcome::Released)), "complete");
  EXPECT_TRUE(released.accepted);
  EXPECT_EQ(released.state, JobState::Queued);
  EXPECT_EQ(keysOf(waiting), "b");
}

TEST_F(JobQueueTest, RescuedJobReturnsBesideAQueuedMergeableJob) {
  JobQueueOptions options = exactBackoff(0s);
  options.rescue_lease = 30s;
  auto queue = makeQueue(options);
  const auto integration = createIntegration("crm");
  const JobId first = must(queue->enqueue(fullJob(integration)), "enqueue").id;
  const auto worker = registerWorker(*queue);
  claimOne(*queue, worker);
  const JobId waiting = must(queue->enqueue(fullJob(integration)), "enqueue").id;
  ageHeartbeat(worker, "1 hour");

  const auto rescued = must(queue->rescue(), "rescue");
  EXPECT_EQ(rescued.requeued, 1);
  EXPECT_EQ(jobColumn(first, "state"), "queued");
  EXPECT_EQ(jobColumn(waiting, "state"), "queued");
}

TEST_F(JobQueueTest, ConcurrentProducersOfOneFullJobGetTheSameJob) {
  const auto ids = createIntegrations(20);
  constexpr int kProducers = 8;
  std::vector<std::vector<JobId>> got(kProducers);
  std::vector<std::string> errors(kProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      try {
        JobQueue queue(target_);
        // Every producer asks for a full sync of every integration, in its own order.
        for (std::size_t i = 0; i < ids.size(); ++i) {
          const auto integration = ids[(i + static_cast<std::size_t>(p) * 3) % ids.size()];
          got[static_cast<std::size_t>(p)].push_back(
              must(queue.enqueue(fullJob(integration)), "enqueue").id);
        }
      } catch (const std::exception& error) {
        errors[static_cast<std::size_t>(p)] = error.what();
      }
    });
  }
  for (auto& producer : producers) producer.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), static_cast<long long>(ids.size()));
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_queue"), static_cast<long long>(ids.size()));
  std::set<JobId> distinct;
  for (const auto& list : got) distinct.insert(list.begin(), list.end());
  EXPECT_EQ(distinct.size(), ids.size());
}

TEST_F(JobQueueTest, QueuedPartialJobsCoalesceKeysAndIncremental) {
  const auto ids = createIntegrations(2);
  const auto created = must(queue_->enqueue(partialJob(ids[0], {"b", "a", "b"})), "enqueue");
  EXPECT_FALSE(created.merged);
  EXPECT_EQ(keysOf(created.id), "a,b");
  EXPECT_EQ(jobColumn(created.id, "payload ->> 'incremental'"), "false");

  const auto merged = must(queue_->enqueue(partialJob(ids[0], {"c", "a"}, true)), "enqueue");
  EXPECT_TRUE(merged.merged);
  EXPECT_EQ(merged.id, created.id);
  EXPECT_EQ(keysOf(created.id), "a,b,c");
  EXPECT_EQ(jobColumn(created.id, "payload ->> 'incremental'"), "true");

  // Incremental is ORed: a later non-incremental request does not clear it.
  EXPECT_TRUE(must(queue_->enqueue(partialJob(ids[0], {"B"})), "enqueue").merged);
  EXPECT_EQ(keysOf(created.id), "B,a,b,c");
  EXPECT_EQ(jobColumn(created.id, "payload ->> 'incremental'"), "true");

  // The same inside one batch.
  const auto batch =
      must(queue_->enqueue({partialJob(ids[1], {"z", "y"}), partialJob(ids[1], {}, true),
                            partialJob(ids[1], {"x", "z"})}),
           "enqueue");
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_FALSE(batch[0].merged);
  EXPECT_TRUE(batch[1].merged);
  EXPECT_TRUE(batch[2].merged);
  EXPECT_EQ(batch[1].id, batch[0].id);
  EXPECT_EQ(batch[2].id, batch[0].id);
  EXPECT_EQ(keysOf(batch[0].id), "x,y,z");
  EXPECT_EQ(jobColumn(batch[0].id, "payload ->> 'incremental'"), "true");
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 2);
}

TEST_F(JobQueueTest, PartialRequestAfterClaimDoesNotChangeRunningJob) {
  const auto integration = createIntegration("crm");
  const JobId running = enqueueOne(partialJob(integration, {"a"}));
  const auto worker = registerWorker(*queue_);
  ASSERT_EQ(must(queue_->claim(worker, 1), "claim").size(), 1u);
  const auto before = jobRow(running);

  const auto next = must(queue_->enqueue(partialJob(integration, {"b"}, true)), "enqueue");
  EXPECT_FALSE(next.merged);
  EXPECT_NE(next.id, running);
  EXPECT_EQ(jobRow(running), before);
  EXPECT_EQ(keysOf(next.id), "b");
}

TEST_F(JobQueueTest, MergeFalseJobsNeitherMergeNorAbsorb) {
  const auto ids = createIntegrations(2);
  const auto apart = must(queue_->enqueue(fullJob(ids[0], false)), "enqueue");
  EXPECT_FALSE(apart.merged);
  const auto mergeable = must(queue_->enqueue(fullJob(ids[0])), "enqueue");
  EXPECT_FALSE(mergeable.merged) << "a merge=false job must not be a merge target";
  EXPECT_NE(mergeable.id, apart.id);
  const auto apart_again = must(queue_->enqueue(fullJob(ids[0], false)), "enqueue");
  EXPECT_FALSE(apart_again.merged) << "a merge=false request must not merge";
  EXPECT_NE(apart_again.id, mergeable.id);
  EXPECT_NE(apart_again.id, apart.id);
  const auto joins = must(queue_->enqueue(fullJob(ids[0])), "enqueue");
  EXPECT_TRUE(joins.merged);
  EXPECT_EQ(joins.id, mergeable.id);

  // Partial jobs: the merge=false job keeps its keys while the mergeable one collects.
  const auto batch = must(queue_->enqueue({partialJob(ids[1], {"a"}, false, false),
                                           partialJob(ids[1], {"b"}, false, false),
                                           partialJob(ids[1], {"c"}), partialJob(ids[1], {"d"})}),
                          "enqueue");
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_FALSE(batch[0].merged);
  EXPECT_FALSE(batch[1].merged);
  EXPECT_FALSE(batch[2].merged);
  EXPECT_TRUE(batch[3].merged);
  EXPECT_EQ(std::set<JobId>({batch[0].id, batch[1].id, batch[2].id}).size(), 3u);
  EXPECT_EQ(batch[3].id, batch[2].id);
  EXPECT_EQ(keysOf(batch[0].id), "a");
  EXPECT_EQ(keysOf(batch[1].id), "b");
  EXPECT_EQ(keysOf(batch[2].id), "c,d");
  EXPECT_EQ(jobColumn(batch[0].id, "mergeable"), "f");
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 6);
}

TEST_F(JobQueueTest, FullAndPartialJobsDoNotMerge) {
  const auto ids = createIntegrations(2);
  const auto full = must(queue_->enqueue(fullJob(ids[0])), "enqueue");
  const auto partial = must(queue_->enqueue(partialJob(ids[0], {"a"})), "enqueue");
  EXPECT_FALSE(partial.merged);
  EXPECT_NE(partial.id, full.id);
  EXPECT_EQ(jobColumn(full.id, "payload::text"), "{}");

  const auto batch =
      must(queue_->enqueue({partialJob(ids[1], {}, true), fullJob(ids[1])}), "enqueue");
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_FALSE(batch[0].merged);
  EXPECT_FALSE(batch[1].merged);
  EXPECT_NE(batch[0].id, batch[1].id);
  EXPECT_EQ(jobColumn(batch[0].id, "kind"), "partial");
  EXPECT_EQ(jobColumn(batch[1].id, "kind"), "full");
}

TEST_F(JobQueueTest, InvalidRequestsAreRefusedAndInsertNothing) {
  const auto integration = createIntegration("crm");
  auto full_with_keys = fullJob(integration);
  full_with_keys.keys = {"a"};
  auto full_incremental = fullJob(integration);
  full_incremental.incremental = true;
  const auto empty_partial = partialJob(integration, {}, false);
  const auto unknown_integration = fullJob(integration + 1000);

  for (const auto& request :
       {full_with_keys, full_incremental, empty_partial, unknown_integration}) {
    const auto single = queue_->enqueue(request);
    ASSERT_FALSE(single.ok());
    EXPECT_EQ(single.error().code, Error::Code::Invalid) << single.error().message;
    // A bad request spoils its whole batch, even after a valid one.
    const auto batch = queue_->enqueue({partialJob(integration, {"x"}), request});
    ASSERT_FALSE(batch.ok());
    EXPECT_EQ(batch.error().code, Error::Code::Invalid) << batch.error().message;
  }
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 0);

  // The queue still works afterwards.
  EXPECT_FALSE(must(queue_->enqueue(fullJob(integration)), "enqueue").merged);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs"), 1);
}

// --- fenced completion ---------------------------------------------------------------------

TEST_F(JobQueueTest, StaleCompletionsAreRefusedAndChangeNothing) {
  JobQueueOptions options = exactBackoff(0s);
  options.rescue_lease = 1s;
  auto queue = makeQueue(options);
  const auto integration = createIntegration("crm");
  const JobId id = enqueueOne(fullJob(integration));
  const auto first_worker = registerWorker(*queue);
  const auto second_worker = registerWorker(*queue);
  const auto claimed = must(queue->claim(first_worker, 1), "claim");
  ASSERT_EQ(claimed.size(), 1u);
  const Job& job = claimed[0];

  auto stale = [&](const WorkerId& worker, int attempt) {
    const auto before = jobRow(id);
    Completion done{id, attempt, Completion::Outcome::Succeeded, R"({"stale":true})", "stale"};
    const auto result = must(queue->complete(worker, done), "complete");
    EXPECT_FALSE(result.accepted) << "worker " << worker << " attempt " << attempt;
    EXPECT_EQ(result.id, id);
    EXPECT_EQ(jobRow(id), before);
  };
  stale(second_worker, job.attempt);     // wrong worker
  stale(first_worker, job.attempt + 1);  // wrong attempt
  stale(first_worker, job.attempt - 1);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts"), 0);

  // The first worker goes silent; its job is rescued and claimed by the second worker.
  ageHeartbeat(first_worker, "1 hour");
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 1);
  const auto reclaimed = must(queue->claim(second_worker, 1), "claim");
  ASSERT_EQ(reclaimed.size(), 1u);
  ASSERT_EQ(reclaimed[0].id, id);
  ASSERT_EQ(reclaimed[0].attempt, job.attempt + 1);
  stale(first_worker, job.attempt);           // the old owner wakes up
  stale(first_worker, reclaimed[0].attempt);  // the right attempt, the wrong worker
  stale(second_worker, job.attempt);          // the right worker, an old attempt

  // A batch reports per item, in input order.
  Completion unknown{id + 100, 1, Completion::Outcome::Succeeded, "", ""};
  const auto results =
      must(queue->complete(second_worker,
                           {unknown, completion(reclaimed[0], Completion::Outcome::Succeeded)}),
           "complete");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].id, unknown.id);
  EXPECT_FALSE(results[0].accepted);
  EXPECT_EQ(results[1].id, id);
  EXPECT_TRUE(results[1].accepted);
  EXPECT_EQ(results[1].state, JobState::Succeeded);
  EXPECT_EQ(jobColumn(id, "state"), "succeeded");
  EXPECT_EQ(jobColumn(id, "worker_id::text"), second_worker);

  // Completing a finished job again is stale too.
  stale(second_worker, reclaimed[0].attempt);
  EXPECT_EQ(sql("SELECT string_agg(attempt || ':' || outcome || ':' || worker_id, ',' ORDER BY "
                "attempt) FROM job_attempts WHERE job_id = " +
                std::to_string(id)),
            "1:rescued:" + first_worker + ",2:succeeded:" + second_worker);
}

// --- rescue --------------------------------------------------------------------------------

TEST_F(JobQueueTest, RescueRequeuesJobsOfSilentWorkerOnly) {
  JobQueueOptions options = exactBackoff(10s);
  options.rescue_lease = 30s;
  auto queue = makeQueue(options);
  const auto ids = createIntegrations(3);
  const JobId dead_job = enqueueOne(fullJob(ids[0]));
  const JobId dead_follower = enqueueOne(fullJob(ids[0], false));
  const JobId live_job = enqueueOne(fullJob(ids[1]));
  const JobId slow_job = enqueueOne(fullJob(ids[2]));
  const auto dead = registerWorker(*queue);
  const auto live = registerWorker(*queue);
  const auto slow = registerWorker(*queue);
  ASSERT_EQ(claimOne(*queue, dead).id, dead_job);
  ASSERT_EQ(claimOne(*queue, live).id, live_job);
  ASSERT_EQ(claimOne(*queue, slow).id, slow_job);
  ageHeartbeat(dead, "31 seconds");
  ageHeartbeat(slow, "20 seconds");  // late, but within the lease
  const auto live_before = jobRow(live_job);
  const auto slow_before = jobRow(slow_job);

  const auto rescued = must(queue->rescue(), "rescue");
  EXPECT_EQ(rescued.requeued, 1);
  EXPECT_EQ(rescued.failed, 0);
  EXPECT_EQ(rescued.cancelled, 0);
  EXPECT_EQ(jobRow(live_job), live_before);
  EXPECT_EQ(jobRow(slow_job), slow_before);

  EXPECT_EQ(jobColumn(dead_job, "state"), "queued");
  EXPECT_EQ(jobColumn(dead_job, "attempt"), "1");
  EXPECT_EQ(jobColumn(dead_job, "worker_id IS NULL"), "t");
  EXPECT_NE(jobColumn(dead_job, "last_error").find("stopped heartbeating"), std::string::npos);
  // Backed off by base * 2^0 (no jitter).
  const double due_in = secondsUntilDue(dead_job);
  EXPECT_GT(due_in, 8.0);
  EXPECT_LE(due_in, 10.0);
  EXPECT_EQ(sql("SELECT attempt || ':' || outcome || ':' || worker_id FROM job_attempts WHERE "
                "job_id = " +
                std::to_string(dead_job)),
            "1:rescued:" + dead);
  EXPECT_EQ(sql("SELECT running_job_id IS NULL FROM job_lanes WHERE integration_id = " +
                std::to_string(ids[0])),
            "t");
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 0) << "a second pass must find nothing";

  // The lane is free: the follower (due now) runs first, the rescued job once it is due.
  const auto other = registerWorker(*queue);
  const auto next = must(queue->claim(other, 10), "claim");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, dead_follower);
  must(queue->complete(other, completion(next[0], Completion::Outcome::Succeeded)), "complete");
  EXPECT_TRUE(must(queue->claim(other, 10), "claim").empty()) << "claimed before its backoff";
  makeDue(dead_job);
  const auto retried = must(queue->claim(other, 10), "claim");
  ASSERT_EQ(retried.size(), 1u);
  EXPECT_EQ(retried[0].id, dead_job);
  EXPECT_EQ(retried[0].attempt, 2);
}

TEST_F(JobQueueTest, HeartbeatKeepsWorkerFromBeingRescued) {
  JobQueueOptions options;
  options.rescue_lease = 30s;
  auto queue = makeQueue(options);
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  ASSERT_EQ(must(queue->claim(worker, 1), "claim").size(), 1u);
  ageHeartbeat(worker, "1 hour");
  ASSERT_TRUE(must(queue->heartbeat(worker), "heartbeat").known);
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 0);
  EXPECT_EQ(jobColumn(id, "state"), "running");
}

TEST_F(JobQueueTest, RescueRequeuesJobPastItsDeadline) {
  auto queue = makeQueue(exactBackoff(0s));
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  ASSERT_EQ(must(queue->claim(worker, 1), "claim").size(), 1u);
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 0) << "a live job within its deadline";

  // Past its deadline, the job is left to its worker, which stops it and reports, for a lease.
  const auto pastDeadlineBy = [&](const std::string& interval) {
    testing::execute(target_, "UPDATE jobs SET deadline_at = now() - interval '" + interval +
                                  "' WHERE id = " + std::to_string(id));
  };
  pastDeadlineBy("1 second");
  ASSERT_TRUE(must(queue->heartbeat(worker), "heartbeat").known);
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 0) << "rescued within the lease past its deadline";
  pastDeadlineBy("31 seconds");  // the queue's lease: 30 s
  ASSERT_TRUE(must(queue->heartbeat(worker), "heartbeat").known);
  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 1);
  EXPECT_EQ(jobColumn(id, "state"), "queued");
  EXPECT_NE(jobColumn(id, "last_error").find("deadline"), std::string::npos);
  EXPECT_EQ(jobColumn(id, "deadline_at IS NULL"), "t");
  // The worker's late completion is refused.
  EXPECT_FALSE(
      must(queue->complete(worker, Completion{id, 1, Completion::Outcome::Succeeded, "", ""}),
           "complete")
          .accepted);
  EXPECT_EQ(jobColumn(id, "state"), "queued");
}

TEST_F(JobQueueTest, RescueFailsJobThatUsedItsAttempts) {
  auto queue = makeQueue(exactBackoff(0s));
  auto request = fullJob(createIntegration("crm"));
  request.max_attempts = 2;
  const JobId id = enqueueOne(request);
  const auto worker = registerWorker(*queue);

  ASSERT_EQ(must(queue->claim(worker, 1), "claim").size(), 1u);
  testing::execute(target_, "DELETE FROM worker_lifecycle");
  auto first = must(queue->rescue(), "rescue");
  EXPECT_EQ(first.requeued, 1);
  EXPECT_EQ(first.failed, 0);

  const auto again = registerWorker(*queue);
  const auto claimed = must(queue->claim(again, 1), "claim");
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempt, 2);
  ageHeartbeat(again, "1 hour");
  auto second = must(queue->rescue(), "rescue");
  EXPECT_EQ(second.requeued, 0);
  EXPECT_EQ(second.failed, 1);
  EXPECT_EQ(jobColumn(id, "state"), "failed");
  EXPECT_EQ(jobColumn(id, "finished_at IS NOT NULL"), "t");
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts WHERE outcome = 'rescued' AND job_id = " +
                     std::to_string(id)),
            2);
  EXPECT_TRUE(must(queue->claim(again, 1), "claim").empty());
  EXPECT_EQ(sql("SELECT count(*) FROM job_lanes WHERE running_job_id IS NOT NULL"), "0");
}

TEST_F(JobQueueTest, RescueRequeuesJobsOfDeletedOrTerminatedWorkers) {
  auto queue = makeQueue(exactBackoff(0s));
  const auto ids = createIntegrations(2);
  const JobId gone_job = enqueueOne(fullJob(ids[0]));
  const JobId terminated_job = enqueueOne(fullJob(ids[1]));
  const auto gone = registerWorker(*queue);
  const auto terminated = registerWorker(*queue);
  ASSERT_EQ(claimOne(*queue, gone).id, gone_job);
  ASSERT_EQ(claimOne(*queue, terminated).id, terminated_job);
  testing::execute(target_, "DELETE FROM worker_lifecycle WHERE id = '" + gone + "'");
  must(queue->setWorkerState(terminated, WorkerState::Terminated), "setWorkerState");

  EXPECT_EQ(must(queue->rescue(), "rescue").requeued, 2);
  EXPECT_EQ(jobColumn(gone_job, "state"), "queued");
  EXPECT_NE(jobColumn(gone_job, "last_error").find("is gone"), std::string::npos);
  EXPECT_EQ(jobColumn(terminated_job, "state"), "queued");

  // Backoff base 0: both are due again at once.
  const auto other = registerWorker(*queue);
  EXPECT_EQ(must(queue->claim(other, 10), "claim").size(), 2u);
}

TEST_F(JobQueueTest, RescueOfCancelRequestedJobCancelsIt) {
  auto queue = makeQueue(exactBackoff(0s));
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  ASSERT_EQ(must(queue->claim(worker, 1), "claim").size(), 1u);
  ASSERT_EQ(must(queue->cancel(id), "cancel"), CancelOutcome::Requested);
  ageHeartbeat(worker, "1 hour");
  const auto rescued = must(queue->rescue(), "rescue");
  EXPECT_EQ(rescued.cancelled, 1);
  EXPECT_EQ(rescued.requeued, 0);
  EXPECT_EQ(jobColumn(id, "state"), "cancelled");
  EXPECT_TRUE(must(queue->claim(registerWorker(*queue), 1), "claim").empty());
}

// --- retry, backoff, release ---------------------------------------------------------------

TEST_F(JobQueueTest, RetryBacksOffExponentiallyWithinJitterBounds) {
  JobQueueOptions options;
  options.retry.base = 10s;
  options.retry.max = 1h;
  options.retry.jitter = 0.2;
  auto queue = makeQueue(options);
  constexpr int kJobs = 30;
  const auto ids = createIntegrations(kJobs);
  std::vector<EnqueueRequest> batch;
  for (const auto id : ids) batch.push_back(fullJob(id));
  must(queue->enqueue(batch), "enqueue");
  const auto worker = registerWorker(*queue);

  for (int attempt = 1; attempt <= 3; ++attempt) {
    const auto jobs = must(queue->claim(worker, 100), "claim");
    ASSERT_EQ(jobs.size(), std::size_t{kJobs}) << "attempt " << attempt;
    std::vector<Completion> retries;
    for (const auto& job : jobs) {
      EXPECT_EQ(job.attempt, attempt);
      retries.push_back(completion(job, Completion::Outcome::Retry));
    }
    for (const auto& result : must(queue->complete(worker, retries), "complete")) {
      EXPECT_TRUE(result.accepted);
      EXPECT_EQ(result.state, JobState::Queued);
    }
    const double nominal = 10.0 * (1 << (attempt - 1));
    const double shortest = sqlNumber("SELECT min(extract(epoch FROM run_at - now())) FROM jobs");
    const double longest = sqlNumber("SELECT max(extract(epoch FROM run_at - now())) FROM jobs");
    // Time passes between the completion and this query, hence the slack below.
    EXPECT_GE(shortest, nominal * 0.8 - 1.0) << "attempt " << attempt;
    EXPECT_LE(longest, nominal * 1.2) << "attempt " << attempt;
    EXPECT_GT(longest - shortest, nominal * 0.05) << "no jitter at attempt " << attempt;
    EXPECT_TRUE(must(queue->claim(worker, 100), "claim").empty()) << "claimed during backoff";
    testing::execute(target_, "UPDATE jobs SET run_at = now() - interval '1 second'; "
                              "UPDATE job_queue SET run_at = now() - interval '1 second'");
  }
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts WHERE outcome = 'retry'"), 3 * kJobs);
}

TEST_F(JobQueueTest, RetryBackoffIsCappedAtMax) {
  auto queue = makeQueue(exactBackoff(10s, 15s));
  auto request = fullJob(createIntegration("crm"));
  request.max_attempts = 10;
  const JobId id = enqueueOne(request);
  const auto worker = registerWorker(*queue);
  const double expected[] = {10.0, 15.0, 15.0};
  for (const double delay : expected) {
    const auto jobs = must(queue->claim(worker, 1), "claim");
    ASSERT_EQ(jobs.size(), 1u);
    ASSERT_TRUE(
        must(queue->complete(worker, completion(jobs[0], Completion::Outcome::Retry)), "complete")
            .accepted);
    const double due_in = secondsUntilDue(id);
    EXPECT_GT(due_in, delay - 1.0) << "attempt " << jobs[0].attempt;
    EXPECT_LE(due_in, delay) << "attempt " << jobs[0].attempt;
    makeDue(id);
  }
}

TEST_F(JobQueueTest, RetryAtMaxAttemptsFails) {
  auto queue = makeQueue(exactBackoff(0s));
  auto request = fullJob(createIntegration("crm"));
  request.max_attempts = 3;
  const JobId id = enqueueOne(request);
  const auto worker = registerWorker(*queue);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const auto jobs = must(queue->claim(worker, 1), "claim");
    ASSERT_EQ(jobs.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(jobs[0].attempt, attempt);
    Completion retry = completion(jobs[0], Completion::Outcome::Retry);
    retry.error = "boom " + std::to_string(attempt);
    const auto result = must(queue->complete(worker, retry), "complete");
    EXPECT_TRUE(result.accepted);
    EXPECT_EQ(result.state, attempt < 3 ? JobState::Queued : JobState::Failed);
  }
  EXPECT_EQ(jobColumn(id, "state"), "failed");
  EXPECT_EQ(jobColumn(id, "last_error"), "boom 3");
  EXPECT_EQ(jobColumn(id, "finished_at IS NOT NULL"), "t");
  EXPECT_TRUE(must(queue->claim(worker, 1), "claim").empty());
  EXPECT_EQ(sql("SELECT string_agg(attempt || ':' || outcome || ':' || error, ',' ORDER BY attempt)"
                " FROM job_attempts"),
            "1:retry:boom 1,2:retry:boom 2,3:retry:boom 3");
}

TEST_F(JobQueueTest, ReleasedJobIsRequeuedAtOnceWithoutCountingAnAttempt) {
  // A long backoff proves that a release does not back off.
  auto queue = makeQueue(exactBackoff(1h));
  auto request = fullJob(createIntegration("crm"));
  request.max_attempts = 1;
  const JobId id = enqueueOne(request);
  const auto worker = registerWorker(*queue);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const auto jobs = must(queue->claim(worker, 1), "claim");
    ASSERT_EQ(jobs.size(), 1u) << "release " << attempt;
    EXPECT_EQ(jobs[0].attempt, attempt) << "the attempt still rises as a fencing token";
    const auto result = must(
        queue->complete(worker, completion(jobs[0], Completion::Outcome::Released)), "complete");
    EXPECT_TRUE(result.accepted);
    EXPECT_EQ(result.state, JobState::Queued);
    EXPECT_LE(secondsUntilDue(id), 0.0);
    EXPECT_EQ(jobColumn(id, "worker_id IS NULL AND finished_at IS NULL"), "t");
  }
  // Released three times with max_attempts = 1, and it still runs.
  const auto jobs = must(queue->claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].attempt, 4);
  const auto result = must(
      queue->complete(worker, completion(jobs[0], Completion::Outcome::Succeeded)), "complete");
  EXPECT_EQ(result.state, JobState::Succeeded);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_attempts WHERE outcome = 'released'"), 3);
}

TEST_F(JobQueueTest, RetryAfterReleasesBacksOffByFailuresOnly) {
  auto queue = makeQueue(exactBackoff(10s));
  auto request = fullJob(createIntegration("crm"));
  request.max_attempts = 2;
  const JobId id = enqueueOne(request);
  const auto worker = registerWorker(*queue);
  for (int i = 0; i < 2; ++i) {
    const auto jobs = must(queue->claim(worker, 1), "claim");
    ASSERT_EQ(jobs.size(), 1u);
    must(queue->complete(worker, completion(jobs[0], Completion::Outcome::Released)), "complete");
  }
  const auto jobs = must(queue->claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(jobs[0].attempt, 3);
  const auto result =
      must(queue->complete(worker, completion(jobs[0], Completion::Outcome::Retry)), "complete");
  // The first failure: queued again (1 of 2 attempts used), backed off by base * 2^0.
  EXPECT_EQ(result.state, JobState::Queued);
  const double due_in = secondsUntilDue(id);
  EXPECT_GT(due_in, 9.0);
  EXPECT_LE(due_in, 10.0);
}

TEST_F(JobQueueTest, FailedIsFinalAndSucceededStoresResult) {
  auto queue = makeQueue(exactBackoff(0s));
  const auto ids = createIntegrations(2);
  const JobId failing = enqueueOne(fullJob(ids[0]));
  const JobId succeeding = enqueueOne(fullJob(ids[1]));
  const auto worker = registerWorker(*queue);
  const auto jobs = must(queue->claim(worker, 2), "claim");
  ASSERT_EQ(jobs.size(), 2u);
  std::vector<Completion> done;
  for (const auto& job : jobs) {
    if (job.id == failing) {
      Completion failed = completion(job, Completion::Outcome::Failed);
      failed.error = "credentials revoked";
      done.push_back(failed);
    } else {
      Completion succeeded = completion(job, Completion::Outcome::Succeeded);
      succeeded.result_json = R"({"records": 42})";
      done.push_back(succeeded);
    }
  }
  const auto results = must(queue->complete(worker, done), "complete");
  for (const auto& result : results) {
    EXPECT_TRUE(result.accepted);
    EXPECT_EQ(result.state, result.id == failing ? JobState::Failed : JobState::Succeeded);
  }
  EXPECT_EQ(jobColumn(failing, "state"), "failed");
  EXPECT_EQ(jobColumn(failing, "last_error"), "credentials revoked");
  EXPECT_EQ(jobColumn(failing, "attempt"), "1");
  EXPECT_EQ(jobColumn(succeeding, "result ->> 'records'"), "42");
  EXPECT_TRUE(must(queue->claim(worker, 10), "claim").empty());

  const auto found = must(queue->find(succeeding), "find");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state, JobState::Succeeded);
  EXPECT_TRUE(found->finished_at.has_value());
  EXPECT_EQ(found->worker_id, worker);
  EXPECT_FALSE(must(queue->find(succeeding + 1000), "find").has_value());
}

TEST_F(JobQueueTest, TextPostgresqlCannotStoreIsReplacedNotRefused) {
  // A NUL or a byte that is not UTF-8 from a plugin, in an error, a result or a key: refused,
  // it would fail every later completion of the worker's batch, or every enqueue of the keys.
  const auto ids = createIntegrations(2);
  const JobId partial = enqueueOne(partialJob(ids[0], {std::string("a\0b", 3), "c\xff"}));
  EXPECT_EQ(jobColumn(partial, "payload -> 'keys'"), "[\"a\xEF\xBF\xBD" "b\", \"c\xEF\xBF\xBD\"]");
  const JobId full = enqueueOne(fullJob(ids[1]));
  const auto worker = registerWorker(*queue_);
  const auto jobs = must(queue_->claim(worker, 2), "claim");
  ASSERT_EQ(jobs.size(), 2u);
  Completion failed = completion(jobs[0].id == partial ? jobs[0] : jobs[1], Completion::Outcome::Failed);
  failed.error = std::string("bad\0byte \xfe", 10);
  Completion succeeded = completion(jobs[0].id == full ? jobs[0] : jobs[1], Completion::Outcome::Succeeded);
  succeeded.result_json = R"({"note": "x\u0000y", "path\\u0000": 1})";
  for (const auto& result : must(queue_->complete(worker, {failed, succeeded}), "complete")) {
    EXPECT_TRUE(result.accepted);
  }
  EXPECT_EQ(jobColumn(partial, "last_error"), "bad\xEF\xBF\xBD" "byte \xEF\xBF\xBD");
  EXPECT_EQ(jobColumn(full, "result ->> 'note'"), "x\xEF\xBF\xBDy");
  // An escaped backslash before "u0000" is a backslash and text, not a NUL.
  EXPECT_EQ(jobColumn(full, "result ->> 'path\\u0000'"), "1");
}

// --- cancel --------------------------------------------------------------------------------

TEST_F(JobQueueTest, CancelQueuedJobCancelsItAtOnce) {
  const auto integration = createIntegration("crm");
  const JobId id = enqueueOne(fullJob(integration));
  EXPECT_EQ(must(queue_->cancel(id), "cancel"), CancelOutcome::Cancelled);
  EXPECT_EQ(jobColumn(id, "state"), "cancelled");
  EXPECT_EQ(jobColumn(id, "finished_at IS NOT NULL"), "t");
  const auto worker = registerWorker(*queue_);
  EXPECT_TRUE(must(queue_->claim(worker, 10), "claim").empty());
  // A cancelled job absorbs nothing.
  const auto next = must(queue_->enqueue(fullJob(integration)), "enqueue");
  EXPECT_FALSE(next.merged);
  EXPECT_NE(next.id, id);
}

TEST_F(JobQueueTest, CancelRunningJobIsRequestedAndReportedByHeartbeat) {
  const auto ids = createIntegrations(2);
  const JobId target = enqueueOne(fullJob(ids[0]));
  const JobId other = enqueueOne(fullJob(ids[1]));
  const auto worker = registerWorker(*queue_);
  ASSERT_EQ(must(queue_->claim(worker, 2), "claim").size(), 2u);
  EXPECT_TRUE(must(queue_->heartbeat(worker), "heartbeat").cancel_requested.empty());

  EXPECT_EQ(must(queue_->cancel(target), "cancel"), CancelOutcome::Requested);
  EXPECT_EQ(jobColumn(target, "state"), "running");
  const auto requested_at = jobColumn(target, "cancel_requested_at");
  EXPECT_NE(requested_at, "");
  EXPECT_EQ(must(queue_->cancel(target), "cancel"), CancelOutcome::Requested);
  EXPECT_EQ(jobColumn(target, "cancel_requested_at"), requested_at) << "the first request counts";

  const auto beat = must(queue_->heartbeat(worker), "heartbeat");
  EXPECT_TRUE(beat.known);
  EXPECT_EQ(beat.cancel_requested, std::vector<JobId>{target});

  const auto result = must(
      queue_->complete(
          worker, Completion{target, 1, Completion::Outcome::Cancelled, "", "cancelled by user"}),
      "complete");
  EXPECT_TRUE(result.accepted);
  EXPECT_EQ(result.state, JobState::Cancelled);
  EXPECT_EQ(jobColumn(target, "state"), "cancelled");
  EXPECT_EQ(jobColumn(other, "state"), "running");
  EXPECT_TRUE(must(queue_->heartbeat(worker), "heartbeat").cancel_requested.empty());
}

TEST_F(JobQueueTest, RetryOfCancelRequestedJobEndsCancelled) {
  auto queue = makeQueue(exactBackoff(0s));
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  const auto jobs = must(queue->claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(must(queue->cancel(id), "cancel"), CancelOutcome::Requested);
  const auto result =
      must(queue->complete(worker, completion(jobs[0], Completion::Outcome::Retry)), "complete");
  EXPECT_TRUE(result.accepted);
  EXPECT_EQ(result.state, JobState::Cancelled);
  EXPECT_EQ(jobColumn(id, "state"), "cancelled");
  EXPECT_EQ(jobColumn(id, "finished_at IS NOT NULL"), "t");
  EXPECT_TRUE(must(queue->claim(worker, 1), "claim").empty());
}

TEST_F(JobQueueTest, RetryRacingWithCancelRequestEndsCancelled) {
  auto queue = makeQueue(exactBackoff(0s));
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  const auto jobs = must(queue->claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);

  // Another session holds the job row, as cancel() does while it writes its request. (The
  // future is declared first so that, should the test stop early, the transaction rolls back
  // and releases the row before the future waits for the completion.)
  pqxx::connection canceller(target_.url);
  canceller.set_variable("search_path", canceller.quote_name(target_.schema));
  std::future<Result<CompletionResult>> retry;
  pqxx::work tx(canceller);
  const auto canceller_pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
  tx.exec("SELECT 1 FROM jobs WHERE id = " + std::to_string(id) + " FOR UPDATE");

  // The worker's Retry starts meanwhile and has to wait for the row.
  retry = std::async(std::launch::async, [&] {
    return queue->complete(worker, completion(jobs[0], Completion::Outcome::Retry));
  });
  const auto deadline = SteadyClock::now() + 10s;
  while (sql("SELECT count(*) FROM pg_stat_activity WHERE " + std::to_string(canceller_pid) +
             " = ANY (pg_blocking_pids(pid))") != "1") {
    ASSERT_LT(SteadyClock::now(), deadline) << "the completion never waited for the row";
    std::this_thread::sleep_for(10ms);
  }
  // The cancellation is requested and committed before the Retry takes effect.
  tx.exec("UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = " +
          std::to_string(id));
  tx.commit();

  const auto result = must(retry.get(), "complete");
  EXPECT_TRUE(result.accepted);
  EXPECT_EQ(result.state, JobState::Cancelled);
  EXPECT_EQ(jobColumn(id, "state"), "cancelled");
  EXPECT_TRUE(must(queue->claim(worker, 1), "claim").empty()) << "a cancelled job ran again";
}

TEST_F(JobQueueTest, ReleaseOfCancelRequestedJobEndsCancelled) {
  auto queue = makeQueue(exactBackoff(0s));
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  const auto worker = registerWorker(*queue);
  const auto jobs = must(queue->claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(must(queue->cancel(id), "cancel"), CancelOutcome::Requested);
  const auto result =
      must(queue->complete(worker, completion(jobs[0], Completion::Outcome::Released)), "complete");
  EXPECT_EQ(result.state, JobState::Cancelled);
  EXPECT_TRUE(must(queue->claim(worker, 1), "claim").empty());
}

// Cancels and claims of the same jobs at once: every call succeeds (no deadlock between them),
// and every job ends either cancelled or succeeded, with nothing left queued or held.
TEST_F(JobQueueTest, CancelsRacingClaimsLeaveEveryJobInOneFinalState) {
  const auto ids = createIntegrations(50);
  std::vector<EnqueueRequest> requests;
  for (int round = 0; round < 8; ++round) {
    for (const auto id : ids) requests.push_back(fullJob(id, false));
  }
  std::vector<JobId> jobs;
  for (const auto& result : must(queue_->enqueue(requests), "enqueue")) jobs.push_back(result.id);

  std::atomic<bool> claiming_done{false};
  std::string claim_error;
  std::thread claimer([&] {
    try {
      JobQueue queue(target_);
      const auto worker = registerWorker(queue);
      std::vector<Completion> completions;
      while (true) {
        auto cycle = must(queue.completeAndClaim(worker, completions, 7), "completeAndClaim");
        completions.clear();
        for (const auto& job : cycle.claimed) {
          completions.push_back(completion(job, Completion::Outcome::Succeeded));
        }
        if (cycle.claimed.empty() && sqlCount("SELECT count(*) FROM job_queue") == 0) break;
      }
    } catch (const std::exception& error) {
      claim_error = error.what();
    }
    claiming_done = true;
  });
  int cancelled = 0;
  for (std::size_t i = 0; i < jobs.size(); i += 3) {
    const auto outcome = must(queue_->cancel(jobs[i]), "cancel");
    if (outcome == CancelOutcome::Cancelled) ++cancelled;
  }
  claimer.join();
  EXPECT_EQ(claim_error, "");
  EXPECT_GT(cancelled, 0);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state = 'cancelled'"), cancelled);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM jobs WHERE state NOT IN ('cancelled', 'succeeded')"),
            0);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_queue"), 0);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM job_lanes WHERE running_job_id IS NOT NULL"), 0);
}

TEST_F(JobQueueTest, CancelOfFinishedJobReportsAlreadyFinished) {
  const auto ids = createIntegrations(3);
  const JobId succeeded = enqueueOne(fullJob(ids[0]));
  const JobId failed = enqueueOne(fullJob(ids[1]));
  const JobId cancelled = enqueueOne(fullJob(ids[2]));
  const auto worker = registerWorker(*queue_);
  std::vector<Completion> done;
  for (const auto& job : must(queue_->claim(worker, 2), "claim")) {
    done.push_back(completion(
        job, job.id == succeeded ? Completion::Outcome::Succeeded : Completion::Outcome::Failed));
  }
  ASSERT_EQ(done.size(), 2u);
  must(queue_->complete(worker, done), "complete");
  ASSERT_EQ(must(queue_->cancel(cancelled), "cancel"), CancelOutcome::Cancelled);

  for (const JobId id : {succeeded, failed, cancelled}) {
    const auto before = jobRow(id);
    EXPECT_EQ(must(queue_->cancel(id), "cancel"), CancelOutcome::AlreadyFinished) << id;
    EXPECT_EQ(jobRow(id), before);
  }
  EXPECT_EQ(jobColumn(succeeded, "state"), "succeeded");
  EXPECT_EQ(jobColumn(failed, "state"), "failed");
}

TEST_F(JobQueueTest, CancelOfUnknownJobReportsNotFound) {
  const JobId id = enqueueOne(fullJob(createIntegration("crm")));
  EXPECT_EQ(must(queue_->cancel(id + 1), "cancel"), CancelOutcome::NotFound);
  EXPECT_EQ(jobColumn(id, "state"), "queued");
}

// --- installations ---------------------------------------------------------------------------

TEST_F(JobQueueTest, LongestAllowedSchemaNameWorks) {
  // Schema names may be 63 bytes; the wake channel must still be a valid channel name.
  DatabaseTarget longest = target_;
  longest.schema = target_.schema + std::string(63 - target_.schema.size(), 'x');
  ASSERT_NO_THROW(longest.validate());
  DatabaseTarget sibling = longest;
  sibling.schema.back() = 'y';
  for (const auto& schema : {longest.schema, sibling.schema}) {
    EXPECT_LE(JobQueue::wakeChannel(schema).size(), 63u) << schema;
  }
  EXPECT_NE(JobQueue::wakeChannel(longest.schema), JobQueue::wakeChannel(sibling.schema))
      << "installations that share a long prefix must not share a channel";
  EXPECT_EQ(JobQueue::wakeChannel("syncpod"), "syncpod.jobs");

  struct DropSchema {
    const DatabaseTarget& target;
    ~DropSchema() {
      testing::execute(target, "DROP SCHEMA IF EXISTS \"" + target.schema + "\" CASCADE");
    }
  } drop{longest};
  Migrator(longest, embeddedMigrations()).apply();
  const auto integration = std::stoll(
      testing::queryScalar(longest, "INSERT INTO integrations (name) VALUES ('crm') RETURNING id"));

  JobQueue queue(longest, exactBackoff(0s));
  const auto enqueued = queue.enqueue(fullJob(integration));
  ASSERT_TRUE(enqueued.ok()) << enqueued.error().message;
  const auto worker = registerWorker(queue);
  const auto jobs = must(queue.claim(worker, 1), "claim");
  ASSERT_EQ(jobs.size(), 1u);
  // A retry notifies too.
  const auto retried = queue.complete(worker, completion(jobs[0], Completion::Outcome::Retry));
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(retried->state, JobState::Queued);
}

// --- workers -------------------------------------------------------------------------------

TEST_F(JobQueueTest, HeartbeatRefreshesTimestampAndRunningCount) {
  const auto ids = createIntegrations(3);
  for (const auto id : ids) enqueueOne(fullJob(id));
  const auto worker = registerWorker(*queue_);
  const auto bystander = registerWorker(*queue_);
  const auto jobs = must(queue_->claim(worker, 3), "claim");
  ASSERT_EQ(jobs.size(), 3u);
  ageHeartbeat(worker, "1 hour");
  ageHeartbeat(bystander, "1 hour");

  const auto beat = must(queue_->heartbeat(worker), "heartbeat");
  EXPECT_TRUE(beat.known);
  EXPECT_TRUE(beat.cancel_requested.empty());
  const std::string where = " FROM worker_lifecycle WHERE id = '" + worker + "'";
  EXPECT_LT(sqlNumber("SELECT extract(epoch FROM now() - last_heartbeat_at)" + where), 60.0);
  EXPECT_EQ(sql("SELECT running_jobs" + where), "3");
  EXPECT_GT(sqlNumber("SELECT extract(epoch FROM now() - last_heartbeat_at) FROM worker_lifecycle "
                      "WHERE id = '" +
                      bystander + "'"),
            3000.0)
      << "another worker's heartbeat moved";

  // Every job it holds, at its attempt.
  std::vector<std::pair<JobId, int>> held;
  for (const auto& job : beat.held) held.emplace_back(job.id, job.attempt);
  std::sort(held.begin(), held.end());
  EXPECT_EQ(held, (std::vector<std::pair<JobId, int>>{{jobs[0].id, 1}, {jobs[1].id, 1}, {jobs[2].id, 1}}));
  EXPECT_TRUE(must(queue_->heartbeat(bystander), "heartbeat").held.empty());

  must(queue_->complete(worker, completion(jobs[0], Completion::Outcome::Succeeded)), "complete");
  const auto after = must(queue_->heartbeat(worker), "heartbeat");
  ASSERT_TRUE(after.known);
  EXPECT_EQ(after.held.size(), 2u);
  EXPECT_EQ(sql("SELECT running_jobs" + where), "2");
}

TEST_F(JobQueueTest, CompleteAndClaimTakesTheNextJobOfTheFreedIntegration) {
  const auto integration = createIntegration("crm");
  const JobId first = enqueueOne(fullJob(integration, false));
  const JobId second = enqueueOne(fullJob(integration, false));
  const auto worker = registerWorker(*queue_);
  const auto running = claimOne(*queue_, worker);
  ASSERT_EQ(running.id, first);
  // The second job waits behind the first: its integration is busy.
  EXPECT_TRUE(must(queue_->claim(worker, 5), "claim").empty());

  const auto both = must(queue_->completeAndClaim(
                             worker, {completion(running, Completion::Outcome::Succeeded)}, 5),
                         "completeAndClaim");
  ASSERT_EQ(both.completed.size(), 1u);
  EXPECT_TRUE(both.completed[0].accepted);
  EXPECT_EQ(both.completed[0].state, JobState::Succeeded);
  ASSERT_EQ(both.claimed.size(), 1u);
  EXPECT_EQ(both.claimed[0].id, second);
  EXPECT_EQ(jobColumn(first, "state"), "succeeded");
  EXPECT_EQ(jobColumn(second, "state"), "running");
}

TEST_F(JobQueueTest, CompleteAndClaimChangesNothingWhenItFails) {
  const auto ids = createIntegrations(2);
  enqueueOne(fullJob(ids[0]));
  const JobId waiting = enqueueOne(fullJob(ids[1]));
  const auto worker = registerWorker(*queue_);
  auto running = claimOne(*queue_, worker);
  const std::string before = jobRow(running.id);

  auto bad = completion(running, Completion::Outcome::Succeeded);
  bad.result_json = "{not json";
  const auto failed = queue_->completeAndClaim(worker, {bad}, 5);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Error::Code::Invalid);
  EXPECT_EQ(jobRow(running.id), before);
  EXPECT_EQ(jobColumn(waiting, "state"), "queued");
}

TEST_F(JobQueueTest, QueueRecoversWhenItsConnectionIsKilled) {
  const auto integration = createIntegration("reconnect");
  const auto worker = registerWorker(*queue_);
  EnqueueRequest request;
  request.integration_id = integration;
  const JobId first = enqueueOne(request);

  // The queue's session is the only one tagged with this schema (the helpers here set none).
  EXPECT_EQ(sqlCount("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                     "pg_stat_activity WHERE application_name = 'syncpod:" + target_.schema +
                     "') AS killed"),
            1);

  // The call that meets the dead session reports it as a value; a later one reconnects.
  const auto failed = queue_->claim(worker, 1);
  if (!failed) {
    EXPECT_EQ(failed.error().code, Error::Code::Unavailable) << failed.error().message;
  }
  std::vector<Job> claimed = failed ? failed.value() : std::vector<Job>{};
  for (int attempt = 0; claimed.empty() && attempt < 3; ++attempt) {
    auto retried = queue_->claim(worker, 1);
    if (retried) claimed = retried.value();
  }
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed.front().id, first);
  EXPECT_TRUE(must(queue_->complete(worker, completion(claimed.front(), Completion::Outcome::Succeeded)),
                   "complete")
                  .accepted);
  EXPECT_EQ(jobColumn(first, "state"), "succeeded");
}

TEST_F(JobQueueTest, HeartbeatOfUnknownWorkerIsNotKnown) {
  const auto beat = must(queue_->heartbeat(sql("SELECT gen_random_uuid()")), "heartbeat");
  EXPECT_FALSE(beat.known);

  const auto worker = registerWorker(*queue_);
  EXPECT_TRUE(must(queue_->heartbeat(worker), "heartbeat").known);
  testing::execute(target_, "DELETE FROM worker_lifecycle WHERE id = '" + worker + "'");
  EXPECT_FALSE(must(queue_->heartbeat(worker), "heartbeat").known);
  EXPECT_EQ(sqlCount("SELECT count(*) FROM worker_lifecycle"), 0) << "heartbeat must not insert";
}

TEST_F(JobQueueTest, RegisterWorkerStoresInfoAsInactive) {
  const auto worker = must(queue_->registerWorker({3, "1.2.3", "pod-7", 4242}), "registerWorker");
  EXPECT_EQ(sql("SELECT concat_ws('|', state, capacity, version, host, pid) FROM worker_lifecycle "
                "WHERE id = '" +
                worker + "'"),
            "INACTIVE|3|1.2.3|pod-7|4242");
  EXPECT_FALSE(queue_->registerWorker({0, "", "", 0}).ok());
}

TEST_F(JobQueueTest, SetWorkerStateRecordsStateAndTime) {
  const auto worker = registerWorker(*queue_);
  const std::string where = " FROM worker_lifecycle WHERE id = '" + worker + "'";
  testing::execute(target_,
                   "UPDATE worker_lifecycle SET state_changed_at = now() - interval "
                   "'1 hour'");

  must(queue_->setWorkerState(worker, WorkerState::Active), "setWorkerState");
  EXPECT_EQ(sql("SELECT state" + where), "ACTIVE");
  EXPECT_LT(sqlNumber("SELECT extract(epoch FROM now() - state_changed_at)" + where), 60.0);

  must(queue_->setWorkerState(worker, WorkerState::Retired), "setWorkerState");
  EXPECT_EQ(sql("SELECT state" + where), "RETIRED");

  const auto unknown = queue_->setWorkerState(sql("SELECT gen_random_uuid()"), WorkerState::Active);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Error::Code::Invalid);
  EXPECT_EQ(sql("SELECT state" + where), "RETIRED");

  // TERMINATED is final: a worker that cleanup declared gone while it was cut off cannot bring
  // its row back with a transition it could not record before.
  must(queue_->setWorkerState(worker, WorkerState::Terminated), "setWorkerState");
  const auto late = queue_->setWorkerState(worker, WorkerState::Retired);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Error::Code::Invalid);
  EXPECT_EQ(sql("SELECT state" + where), "TERMINATED");
}

}  // namespace
}  // namespace syncpod::core
