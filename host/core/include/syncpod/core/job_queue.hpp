#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/job_events.hpp"
#include "syncpod/core/leader_lease.hpp"
#include "syncpod/core/result.hpp"
#include "syncpod/core/scaling.hpp"
#include "syncpod/core/webhooks.hpp"

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

/// A worker_lifecycle row.
struct WorkerRecord {
  WorkerId id;
  WorkerState state = WorkerState::Inactive;
  TimePoint started_at;
  TimePoint state_changed_at;
  TimePoint last_heartbeat_at;
  int capacity = 1;
  int running_jobs = 0;  ///< as of its last heartbeat
  std::string version;
  std::string host;
  std::optional<int> pid;
};

/// One entry of worker_lifecycle.transitions.
struct WorkerTransition {
  std::string state;  ///< as recorded: INACTIVE, ACTIVE, RETIRED, TERMINATING, TERMINATED
  TimePoint at;
  std::optional<std::string> reason;  ///< set when the singleton marked the worker gone
};

/// A worker with its history and what it runs now.
struct WorkerDetails {
  WorkerRecord worker;
  std::vector<WorkerTransition> transitions;  ///< oldest first
  std::vector<JobId> running_job_ids;         ///< its running jobs, by id
};

/// A place in listWorkers()' order (started_at, then id, both descending).
struct WorkerPosition {
  TimePoint started_at;
  WorkerId id;
};

/// Which workers listWorkers() returns.
struct WorkerFilter {
  std::optional<WorkerState> state;
  std::optional<WorkerPosition> after;  ///< only workers after this one (the next page)
  int limit = 50;
};

/// A cumulative histogram of attempt durations (one outcome).
struct DurationHistogram {
  /// cumulative[i]: attempts that took at most attemptDurationBounds()[i] seconds.
  std::vector<long long> cumulative;
  long long count = 0;
  double sum_seconds = 0;
};

/// Upper bounds of the attempt duration buckets in seconds, ascending: 0.5 s to 8 h (the
/// default max_runtime), for syncs that take from seconds to hours.
const std::vector<double>& attemptDurationBounds();

/// The state of the queue as /metrics reports it, read in one snapshot.
struct QueueMetrics {
  /// Rows of `jobs` by state; every state present.
  std::map<JobState, long long> jobs;
  /// worker_lifecycle rows by state; every state present.
  std::map<WorkerState, long long> workers;
  /// How long the longest-waiting queued job that could start now (due, its integration not
  /// running another job) has waited since its run_at; 0 when there is none.
  double oldest_due_job_age_seconds = 0;
  /// Finished attempts job_attempts still holds, by outcome; every outcome present.
  std::map<std::string, DurationHistogram> attempt_durations;
  ScalingRecord scaling;  ///< the desired_pod_count row
};

/// What cleanup() removes, and how much per call.
struct CleanupOptions {
  /// Finished jobs, TERMINATED workers, cron fires and webhook events that became jobs older
  /// than this are deleted.
  std::chrono::milliseconds retention{std::chrono::hours(24 * 14)};
  /// A worker not TERMINATED whose heartbeat is older than this is marked TERMINATED (gone).
  std::chrono::milliseconds stale_after{std::chrono::seconds(30)};
  /// Rows deleted per transaction, and transactions per kind of row per call.
  int batch_size = 1000;
  int max_batches = 10;
  /// No batch starts after this instant: a leader must come back in time to renew its lease.
  std::chrono::steady_clock::time_point stop_by = std::chrono::steady_clock::time_point::max();
};

struct CleanupResult {
  int workers_gone = 0;      ///< marked TERMINATED for want of a heartbeat
  int jobs_deleted = 0;      ///< finished jobs (with their attempts, progress and events)
  int workers_deleted = 0;   ///< TERMINATED worker rows
  int cron_fires_deleted = 0;
  int webhook_events_deleted = 0;
  bool stopped_early = false;  ///< stop_by came with rows perhaps left: call again soon
};

/// An enabled integration that has a schedule or asks for change detection.
struct ScheduledIntegration {
  IntegrationId id = 0;
  std::string name;
  std::string config_json;
  TimePoint updated_at;
  std::optional<TimePoint> last_cron_fire;  ///< the latest fire_time in cron_fires
};

struct CronFireResult {
  bool fired = false;  ///< false: this (integration, fire time) had fired already
  JobId job = 0;       ///< the full job it enqueued or merged into
  bool merged = false;
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

  /// Turns the pending webhook events of `integration` (at most `limit`, oldest first) into
  /// one partial job of their keys, merged into a queued one when there is one, and links
  /// them to it, in one transaction: on an error nothing changed and they stay pending.
  /// Nothing when the integration is disabled; events another transaction is turning into a
  /// job are skipped.
  Result<std::optional<WebhookJob>> enqueueWebhookEvents(IntegrationId integration, int limit = 1000);

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
  /// The job's events with ids above `after`, oldest first, at most `limit` of them.
  Result<std::vector<JobEvent>> events(JobId id, JobEventId after, int limit);

  // --- reading (REST API, /metrics) ------------------------------------------------------

  /// Workers matching `filter`, newest first (started_at, then id, descending).
  Result<std::vector<WorkerRecord>> listWorkers(const WorkerFilter& filter);

  /// The worker with its transitions and running jobs; nullopt when there is no such row.
  /// `id` must be a UUID (Invalid otherwise).
  Result<std::optional<WorkerDetails>> findWorker(const WorkerId& id);

  /// Everything /metrics shows of the database, in one read-only snapshot of four
  /// statements. Queued and running jobs, workers and the scaling row come from small tables;
  /// counting finished jobs reads all of `jobs`, and the durations all of `job_attempts` (no
  /// index can cover jobs.state: claims and completions must stay HOT updates).
  /// docs/operations.md#metrics has the cost. With `whole_tables` false those two are not
  /// read: the finished states count 0 and attempt_durations stays empty.
  Result<QueueMetrics> metrics(bool whole_tables = true);

  // --- workers ---------------------------------------------------------------------------

  /// Inserts a worker_lifecycle row in state INACTIVE and returns its id.
  Result<WorkerId> registerWorker(const WorkerInfo& info);

  /// Records a lifecycle transition and its time.
  Result<Done> setWorkerState(const WorkerId& worker, WorkerState state);

  /// Claims up to `limit` due jobs in one statement: queued, run_at reached, at most one
  /// running job per integration, in priority, run_at, id order. Its commit does not wait
  /// for the WAL flush (faster pickup): a claim lost in a database crash only makes the job
  /// queued again, and the fence refuses the worker's completion of it.
  Result<std::vector<Job>> claim(const WorkerId& worker, int limit);

  /// Refreshes the worker's heartbeat and running-job count; returns the ids of its jobs
  /// whose cancellation was requested.
  Result<HeartbeatResult> heartbeat(const WorkerId& worker);

  /// Ends attempts, fenced by worker, attempt and state='running', in one statement that also
  /// records each end in the attempt history and as a job event. Results are in input order;
  /// a stale completion is reported, not applied.
  Result<std::vector<CompletionResult>> complete(const WorkerId& worker,
                                                 const std::vector<Completion>& completions);
  Result<CompletionResult> complete(const WorkerId& worker, const Completion& completion);

  /// complete() then claim() in one transaction: a worker whose jobs ended takes new ones
  /// with one commit instead of two. The claim sees the lanes the completions freed. On an
  /// error neither happened. Without completions it is claim().
  Result<CompleteAndClaimResult> completeAndClaim(const WorkerId& worker,
                                                  const std::vector<Completion>& completions,
                                                  int limit);

  // --- maintenance (singleton) -----------------------------------------------------------

  /// Running jobs whose worker is missing or silent for longer than the lease, or that are a
  /// lease past their deadline (their worker stops them at it), go back to queued (attempt counts, with backoff) or fail once
  /// they have used max_attempts. Each rescued attempt is recorded like a completion.
  Result<RescueResult> rescue();

  // --- the leading singleton: every write is fenced by its lease term --------------------
  // A write whose token no longer holds the lease (checked in its own transaction, the lease
  // row locked FOR SHARE) changes nothing and returns Error::Code::Fenced.

  /// rescue(), fenced.
  Result<RescueResult> rescue(const LeaseToken& fence);

  /// The inputs of desired_pod_count now. Workers count only while INACTIVE, ACTIVE or
  /// RETIRED with a heartbeat newer than `alive_within`.
  Result<ScalingInputs> scalingInputs(std::chrono::milliseconds alive_within);

  /// Writes record.count and its inputs into the desired_pod_count row.
  Result<Done> storeScaling(const LeaseToken& fence, const ScalingRecord& record);

  /// The desired_pod_count row.
  Result<ScalingRecord> readScaling();

  /// Enabled integrations whose config has "schedule" or "detect_changes", by id.
  Result<std::vector<ScheduledIntegration>> scheduledIntegrations();

  /// The cursors stored for the source side of an integration, by stream mapping name.
  Result<std::map<std::string, std::string>> sourceCursors(IntegrationId integration);

  /// Records the cron fire (integration, fire_time) and enqueues a full job in the same
  /// transaction; a fire recorded before is not enqueued again (fired = false).
  Result<CronFireResult> fireCron(const LeaseToken& fence, IntegrationId integration,
                                  TimePoint fire_time);

  /// enqueue(), fenced.
  Result<std::vector<EnqueueResult>> enqueue(const LeaseToken& fence,
                                             const std::vector<EnqueueRequest>& requests);

  /// enqueueWebhookEvents() for the pending events of every enabled integration, at most
  /// `limit` events in all (oldest first): what the service could not turn into a job.
  Result<std::vector<WebhookJob>> enqueueWebhookEvents(const LeaseToken& fence, int limit);

  /// Marks workers with stale heartbeats TERMINATED, then deletes finished jobs (with their
  /// attempts, progress and events), TERMINATED workers, cron fires (an integration's latest
  /// fire stays) and webhook events that became jobs older than the retention, in batches of
  /// their own short transactions. Pending webhook events are kept whatever their age.
  Result<CleanupResult> cleanup(const LeaseToken& fence, const CleanupOptions& options);

  /// The NOTIFY channel workers LISTEN on for this installation.
  static std::string wakeChannel(const std::string& schema);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using JobQueuePtr = std::unique_ptr<JobQueue>;

}  // namespace syncpod::core
