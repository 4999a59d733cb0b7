#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncpod::core {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

using JobId = std::int64_t;
using IntegrationId = std::int64_t;
/// A worker's id: the UUID of its `worker_lifecycle` row, in text form.
using WorkerId = std::string;

enum class JobKind {
  Full = 1,     ///< the whole workspace
  Partial = 2,  ///< a set of keys and/or the changes since the stored cursor
};

enum class JobState {
  Queued = 1,
  Running,
  Succeeded,
  Failed,
  Cancelled,
};

/// The worker lifecycle (docs/architecture.md); stored upper-case in worker_lifecycle.state.
enum class WorkerState {
  Inactive = 1,
  Active,
  Retired,
  Terminating,
  Terminated,
};

/// ISO-8601 in UTC with milliseconds, as the API and the CLI show times:
/// "2026-11-26T10:00:00.123Z".
std::string isoTime(TimePoint time);

std::string_view toString(JobKind kind);
std::string_view toString(JobState state);
std::string_view toString(WorkerState state);
std::optional<JobKind> parseJobKind(std::string_view text);
std::optional<JobState> parseJobState(std::string_view text);
std::optional<WorkerState> parseWorkerState(std::string_view text);

/// A job row as the queue stores it. JSON columns travel as UTF-8 text.
struct Job {
  JobId id = 0;
  IntegrationId integration_id = 0;
  JobKind kind = JobKind::Full;
  JobState state = JobState::Queued;
  int priority = 0;
  TimePoint run_at;
  int attempt = 0;
  int max_attempts = 0;
  bool mergeable = true;
  std::chrono::seconds max_runtime{0};
  std::optional<WorkerId> worker_id;
  std::optional<TimePoint> claimed_at;
  std::optional<TimePoint> deadline_at;
  std::optional<TimePoint> finished_at;
  std::optional<TimePoint> cancel_requested_at;
  std::string payload_json;
  std::optional<std::string> result_json;
  std::optional<std::string> last_error;
  TimePoint created_at;
};

/// One finished attempt of a job (job_attempts).
struct JobAttempt {
  int attempt = 0;
  std::optional<WorkerId> worker_id;
  std::optional<TimePoint> started_at;
  TimePoint finished_at;
  std::string outcome;  ///< succeeded, failed, retry, rescued, cancelled, released
  std::optional<std::string> error;
};

/// The counts a running sync publishes (job_progress).
struct JobProgress {
  long long fetched = 0;
  long long diffed = 0;
  long long applied = 0;
  long long failed = 0;
  TimePoint updated_at;
};

/// A request for one job.
struct EnqueueRequest {
  IntegrationId integration_id = 0;
  JobKind kind = JobKind::Full;
  /// Partial jobs: record keys to synchronise. Merged partial jobs take the union.
  std::vector<std::string> keys;
  /// Partial jobs: also fetch the changes since the stored cursor. Merging ORs it.
  bool incremental = false;
  /// Lower runs first.
  int priority = 0;
  /// Not claimable before now + delay.
  std::chrono::seconds delay{0};
  int max_attempts = 5;
  /// Hard deadline of one attempt, counted from its claim.
  std::chrono::seconds max_runtime = std::chrono::hours(8);
  /// Merge into a queued job of the same integration and kind when there is one: a full
  /// job is deduplicated, a partial job adds its keys. A job enqueued with merge=false
  /// stays apart and is never a merge target.
  bool merge = true;
  /// A dry run: the job plans its changes and writes nothing. It never merges, so a plan and
  /// a real sync of the same integration never absorb each other.
  bool plan = false;
};

struct EnqueueResult {
  JobId id = 0;
  bool merged = false;  ///< true when an already queued job absorbed the request
};

/// What a worker reports at the end of an attempt.
struct Completion {
  JobId id = 0;
  int attempt = 0;
  enum class Outcome {
    Succeeded = 1,
    Failed,     ///< a final failure: no retry
    Retry,      ///< a retryable failure: back to queued with backoff, or failed after max_attempts
    Cancelled,  ///< stopped because cancellation was requested
    Released,   ///< handed back unfinished (drain deadline): re-queued at once, attempt not counted
  };
  Outcome outcome = Outcome::Succeeded;
  std::string result_json;  ///< stored in jobs.result; empty keeps the column as it is
  std::string error;        ///< stored in jobs.last_error and the attempt history
};

/// The names job_attempts.outcome uses: succeeded, failed, retry, cancelled, released.
std::string_view toString(Completion::Outcome outcome);
std::optional<Completion::Outcome> parseOutcome(std::string_view text);

/// What happened to one Completion.
struct CompletionResult {
  JobId id = 0;
  /// false: the job is no longer running under this worker and attempt (rescued, cancelled,
  /// re-claimed); the write changed nothing.
  bool accepted = false;
  JobState state = JobState::Running;  ///< the state the job reached when accepted
};

/// What completeAndClaim() did.
struct CompleteAndClaimResult {
  std::vector<CompletionResult> completed;  ///< one per completion, in input order
  std::vector<Job> claimed;                 ///< newly claimed jobs, in due order
};

/// What a heartbeat tells the worker.
struct HeartbeatResult {
  /// A job the queue holds as running under the worker, at this attempt.
  struct Held {
    JobId id = 0;
    int attempt = 0;
  };
  bool known = false;                     ///< false: the worker row is gone (cleaned up)
  std::vector<JobId> cancel_requested;    ///< its running jobs whose cancellation was asked
  /// Every job running under the worker: one it runs that is missing here was taken from it
  /// (rescued), and one here it does not know of was claimed by a call whose answer was lost.
  std::vector<Held> held;
};

enum class CancelOutcome {
  Cancelled = 1,  ///< it was queued and is now cancelled
  Requested,      ///< it is running; the worker is asked to stop it
  AlreadyFinished,
  NotFound,
};

/// Counts of what a rescue pass did.
struct RescueResult {
  int requeued = 0;
  int failed = 0;     ///< attempts exhausted
  int cancelled = 0;  ///< cancellation had been requested
};

}  // namespace syncpod::core
