#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// Backoff between attempts: min(base * 2^(attempt-1), max), scaled by 1 ± jitter.
struct RetryPolicy {
  std::chrono::seconds base{10};
  std::chrono::seconds max{std::chrono::hours(1)};
  double jitter = 0.2;
};

struct JobQueueOptions {
  /// A running job whose worker has not heartbeaten for this long is rescued.
  std::chrono::seconds rescue_lease{30};
  RetryPolicy retry;
};

/// Which jobs list() returns: every given condition holds.
struct JobFilter {
  std::optional<IntegrationId> integration_id;
  std::optional<JobState> state;
  std::optional<JobKind> kind;
  std::optional<JobId> before;  ///< only ids below this (the next page after a job)
  int limit = 50;
};

/// Registration data of a worker process.
struct WorkerInfo {
  int capacity = 1;
  std::string version;
  std::string host;
  int pid = 0;
};

/// The job queue: every SQL statement that touches jobs and workers lives behind it.
///
/// One instance owns one database connection and is not thread-safe: give each thread its
/// own. No method keeps a transaction open after it returns. Expected failures (database
/// down, stale fencing) come back as values; only the constructor throws.
class JobQueue {
 public:
  /// Connects at once; throws DatabaseUnavailable with a one-line message.
  JobQueue(DatabaseTarget target, JobQueueOptions options = {});
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // --- producers -------------------------------------------------------------------------

  /// Enqueues all requests in one statement, and wakes listening workers once. When a
  /// concurrent producer created the same new mergeable job first, the statement runs again
  /// and merges into it. Results are in request order.
  Result<std::vector<EnqueueResult>> enqueue(const std::vector<EnqueueRequest>& requests);
  Result<EnqueueResult> enqueue(const EnqueueRequest& request);

  /// Queued → cancelled at once; running → cancel_requested_at is set and the worker
  /// learns of it at its next heartbeat.
  Result<CancelOutcome> cancel(JobId id);

  Result<std::optional<Job>> find(JobId id);

  /// Jobs matching `filter`, newest first.
  Result<std::vector<Job>> list(const JobFilter& filter);
  /// The job's finished attempts, oldest first (the running one is in the job row).
  Result<std::vector<JobAttempt>> attempts(JobId id);
  /// What the job's sync last published; nullopt before it published anything.
  Result<std::optional<JobProgress>> progress(JobId id);

  // --- workers ---------------------------------------------------------------------------

  /// Inserts a worker_lifecycle row in state INACTIVE and returns its id.
  Result<WorkerId> registerWorker(const WorkerInfo& info);

  /// Records a lifecycle transition and its time.
  Result<Done> setWorkerState(const WorkerId& worker, WorkerState state);

  /// Claims up to `limit` due jobs in one statement: queued, run_at reached, at most one
  /// running job per integration, in priority, run_at, id order.
  Result<std::vector<Job>> claim(const WorkerId& worker, int limit);

  /// Refreshes the worker's heartbeat and running-job count; returns the ids of its jobs
  /// whose cancellation was requested.
  Result<HeartbeatResult> heartbeat(const WorkerId& worker);

  /// Ends attempts, fenced by worker, attempt and state='running', in one statement.
  /// Results are in input order; a stale completion is reported, not applied.
  Result<std::vector<CompletionResult>> complete(const WorkerId& worker,
                                                 const std::vector<Completion>& completions);
  Result<CompletionResult> complete(const WorkerId& worker, const Completion& completion);

  /// complete() then claim() in one transaction: a worker whose jobs ended takes new ones
  /// with one commit instead of two. The claim sees the lanes the completions freed. On an
  /// error neither happened.
  Result<CompleteAndClaimResult> completeAndClaim(const WorkerId& worker,
                                                  const std::vector<Completion>& completions,
                                                  int limit);

  // --- maintenance (singleton) -----------------------------------------------------------

  /// Running jobs whose worker is missing or silent for longer than the lease, or that are
  /// past their deadline, go back to queued (attempt counts, with backoff) or fail once
  /// they have used max_attempts.
  Result<RescueResult> rescue();

  /// The NOTIFY channel workers LISTEN on for this installation.
  static std::string wakeChannel(const std::string& schema);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using JobQueuePtr = std::unique_ptr<JobQueue>;

}  // namespace syncpod::core
