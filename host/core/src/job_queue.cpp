#include "syncpod/core/job_queue.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>

#include "job_event_store.hpp"
#include "pg.hpp"

namespace syncpod::core {
namespace {

// ---------------------------------------------------------------------------------------
// Every statement the queue runs. Each is a single statement, so it is atomic without an
// explicit transaction and costs one round trip.
// ---------------------------------------------------------------------------------------

// Column list shared by every statement that returns jobs (table alias j).
const std::string kJobColumns =
    "j.id, j.integration_id, j.kind, j.state, j.priority, " + pg::epochMicros("j.run_at") +
    ", j.attempt, j.max_attempts, j.mergeable, j.max_runtime_s, j.worker_id::text, " +
    pg::epochMicros("j.claimed_at") + ", " + pg::epochMicros("j.deadline_at") + ", " +
    pg::epochMicros("j.finished_at") + ", " + pg::epochMicros("j.cancel_requested_at") +
    ", j.payload::text, j.result::text, j.last_error, " + pg::epochMicros("j.created_at");

// $1: JSON array of rows (ord, integration_id, kind, priority, delay_s, max_attempts,
// max_runtime_s, mergeable, payload), $2: NOTIFY channel. A mergeable request for an
// integration and kind with a queued mergeable job merges into it (locked first; a job claimed
// meanwhile drops out and the request makes a new job): a full job is deduplicated, a partial
// job takes the union of keys, sorted byte-wise as the client sorts them, whatever the
// database's collation. Two producers inserting the same new mergeable job at once collide on
// job_queue_merge_idx; the loser gets a unique violation and enqueue() runs again, then merges.
// The rows come back merged first (with their ord), then the inserted ones in ord order.
// The scalar subquery runs once, so workers get one NOTIFY per statement.
const std::string kEnqueue = R"SQL(
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
    ord int, integration_id bigint, kind text, priority smallint, delay_s double precision,
    max_attempts int, max_runtime_s int, mergeable boolean, payload jsonb)
), targets AS MATERIALIZED (
  SELECT r.ord, q.job_id
  FROM input r JOIN job_queue q
    ON q.integration_id = r.integration_id AND q.kind = r.kind AND q.mergeable
  WHERE r.mergeable
  FOR UPDATE OF q
), merged AS (
  UPDATE jobs j SET
    priority = least(j.priority, r.priority),
    run_at = least(j.run_at, now() + make_interval(secs => r.delay_s)),
    payload = CASE WHEN j.kind = 'partial' THEN jsonb_build_object(
        'keys', (SELECT coalesce(jsonb_agg(k ORDER BY k COLLATE "C"), '[]'::jsonb)
                 FROM (SELECT DISTINCT k FROM jsonb_array_elements_text(
                         coalesce(j.payload -> 'keys', '[]'::jsonb) ||
                         coalesce(r.payload -> 'keys', '[]'::jsonb)) AS k) AS keys),
        'incremental', coalesce((j.payload ->> 'incremental')::boolean, false) OR
                       coalesce((r.payload ->> 'incremental')::boolean, false))
      ELSE j.payload END
  FROM targets t JOIN input r ON r.ord = t.ord
  WHERE j.id = t.job_id
  RETURNING t.ord, j.id, j.priority, j.run_at
), merged_queue AS (
  UPDATE job_queue q SET priority = m.priority, run_at = m.run_at
  FROM merged m WHERE q.job_id = m.id
), inserted AS (
  INSERT INTO jobs (integration_id, kind, priority, run_at, max_attempts, max_runtime_s,
                    mergeable, payload)
  SELECT integration_id, kind, priority, now() + make_interval(secs => delay_s), max_attempts,
         max_runtime_s, mergeable, payload
  FROM input r WHERE NOT EXISTS (SELECT 1 FROM targets t WHERE t.ord = r.ord)
  ORDER BY ord
  RETURNING id, integration_id, kind, priority, run_at, mergeable
), queued AS (
  INSERT INTO job_queue (job_id, integration_id, kind, priority, run_at, mergeable)
  SELECT id, integration_id, kind, priority, run_at, mergeable FROM inserted
), answer AS (
  SELECT ord, id, true AS merged FROM merged
  UNION ALL
  SELECT NULL, id, false FROM inserted
)
SELECT ord, id, merged, (SELECT count(*) FROM (SELECT pg_notify($2, '')) AS n) FROM answer
)SQL";

// $1: worker id, $2: how many. Candidates are due queued jobs whose integration looks idle,
// read without locks; one head job per integration is kept, and the lane rows of those
// integrations are locked with SKIP LOCKED: the lane, not the job row, is the mutex. A lane
// taken by a claimer that committed meanwhile is re-checked on its new version
// (running_job_id no longer NULL) and skipped, which keeps one running job per integration.
// Deleting the queue row re-checks it on its latest version (a job that was claimed, merged
// into or cancelled meanwhile is skipped), and only lanes of jobs actually claimed are set.
// Each lane is looked up by its key from inside a LATERAL subquery that OFFSET 0 keeps the
// planner from flattening: left to itself, it may compare every candidate with every busy
// lane, which cost 40 ms per claim with a few hundred busy lanes. The heads are sorted
// before the lanes are locked (OFFSET 0 again), so only the lanes of claimed jobs are locked.
const std::string kClaim = R"SQL(
WITH candidates AS MATERIALIZED (
  SELECT q.job_id, q.integration_id, q.priority, q.run_at
  FROM job_queue q
  CROSS JOIN LATERAL (SELECT l.running_job_id FROM job_lanes l
                      WHERE l.integration_id = q.integration_id OFFSET 0) AS lane
  WHERE q.run_at <= now() AND lane.running_job_id IS NULL
  ORDER BY q.priority, q.run_at, q.job_id
  LIMIT $2::int * 2 + 16
), picked AS MATERIALIZED (
  SELECT h.job_id, h.integration_id
  FROM (SELECT * FROM (SELECT DISTINCT ON (integration_id) job_id, integration_id, priority, run_at
                       FROM candidates
                       ORDER BY integration_id, priority, run_at, job_id) AS heads
        ORDER BY priority, run_at, job_id OFFSET 0) AS h
  CROSS JOIN LATERAL (SELECT FROM job_lanes l
                      WHERE l.integration_id = h.integration_id AND l.running_job_id IS NULL
                      FOR UPDATE SKIP LOCKED) AS lane
  ORDER BY h.priority, h.run_at, h.job_id
  LIMIT $2::int
), dequeued AS (
  DELETE FROM job_queue q USING picked p
  WHERE q.job_id = p.job_id AND q.run_at <= now()
  RETURNING q.job_id
), claimed AS (
  UPDATE jobs j SET
    state = 'running', worker_id = $1::uuid, attempt = j.attempt + 1, claimed_at = now(),
    deadline_at = now() + make_interval(secs => j.max_runtime_s), finished_at = NULL
  FROM dequeued d
  WHERE j.id = d.job_id
  RETURNING j.*
), lanes AS (
  UPDATE job_lanes l SET running_job_id = c.id
  FROM claimed c WHERE l.integration_id = c.integration_id
)
SELECT )SQL" + kJobColumns + " FROM claimed j";

// kClaim run on its own: its commit does not wait for the WAL flush (synchronous_commit off
// for this one transaction), which takes the flush, about half a millisecond here, out of
// every pickup. A claim lost in a database crash is harmless: the job is queued again, the
// worker's completion is refused by the fence (its worker id and attempt no longer match), and
// the job runs again, as after any lost worker. Completions and enqueues always wait for the
// flush; a claim made in the same transaction as completions (completeAndClaim) does too.
const std::string kClaimAlone =
    kClaim + " WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL";

// Backoff of the attempt that just ended, in seconds: $base * 2^(failures-1) capped at $max,
// times 1 ± $jitter. Parameters are spliced in as $3, $4, $5 by the statements below.
const std::string kBackoff =
    "make_interval(secs => least($3::float8 * power(2, greatest(j.attempt - j.releases, 1) - 1),"
    " $4::float8) * (1 + $5::float8 * (2 * random() - 1)))";

// Whether an ending attempt puts its job back in the queue (table alias j, input alias u): a
// release always does, a retry while attempts remain does, neither once cancellation was asked.
const std::string kRequeues =
    "((u.outcome = 'released' OR (u.outcome = 'retry' AND j.attempt - j.releases < "
    "j.max_attempts)) AND j.cancel_requested_at IS NULL)";

// Whether a job going back to the queue may stay a merge target (table alias j): not when a
// newer mergeable job of its integration and kind already waits there, which keeps the two
// apart instead of colliding on the merge index; that newer job takes later requests.
const std::string kStaysMergeable =
    "(j.mergeable AND NOT EXISTS (SELECT 1 FROM job_queue o WHERE o.integration_id = "
    "j.integration_id AND o.kind = j.kind AND o.mergeable))";

// The tail of the completion and rescue statements: puts the rows of `done` whose state is
// 'queued' back into job_queue, and wakes listening workers when that happened or when a freed
// lane has another job of its integration due. The waiting jobs are looked up per freed lane
// through job_queue_integration_idx: LIMIT 1 keeps the planner from turning the lookups into a
// hash join over a scan of the queue, which reads all of it when no freed lane has a waiting
// job. `channel_parameter` names the statement's NOTIFY channel parameter.
std::string requeueAndNotify(const std::string& channel_parameter) {
  return R"SQL(
), requeued AS (
  INSERT INTO job_queue (job_id, integration_id, kind, priority, run_at, mergeable)
  SELECT id, integration_id, kind, priority, run_at, mergeable FROM done WHERE state = 'queued'
)
SELECT ord, state,
       (SELECT count(*) FROM (SELECT pg_notify()SQL" + channel_parameter + R"SQL(, '')) AS n
        WHERE EXISTS (SELECT 1 FROM done WHERE state = 'queued')
           OR EXISTS (SELECT 1 FROM done d
                      CROSS JOIN LATERAL (SELECT 1 FROM job_queue q
                                          WHERE q.integration_id = d.integration_id
                                            AND q.run_at <= now() LIMIT 1) AS waiting))
FROM done
)SQL";
}

// $1: worker id, $2: JSON array (ord, id, attempt, outcome, result, error), $3..$5 backoff,
// $6: NOTIFY channel. Fenced: only rows still running under this worker and attempt change.
// The new values are computed in the UPDATE itself: when it waits for a row that a concurrent
// cancel() changed, PostgreSQL re-evaluates them on the latest row, so the request is seen.
const std::string kComplete = R"SQL(
WITH input AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb) AS r(
    ord int, id bigint, attempt int, outcome text, result jsonb, error text)
), done AS (
  UPDATE jobs j SET
    state = CASE WHEN )SQL" + kRequeues + R"SQL( THEN 'queued'
                 WHEN u.outcome IN ('retry', 'released') AND j.cancel_requested_at IS NOT NULL
                   THEN 'cancelled'
                 WHEN u.outcome IN ('retry', 'released') THEN 'failed'
                 ELSE u.outcome END,
    worker_id = CASE WHEN )SQL" + kRequeues + R"SQL( THEN NULL ELSE j.worker_id END,
    finished_at = CASE WHEN )SQL" + kRequeues + R"SQL( THEN NULL ELSE now() END,
    run_at = CASE WHEN NOT )SQL" + kRequeues + R"SQL( THEN j.run_at
                  WHEN u.outcome = 'released' THEN now()
                  ELSE now() + )SQL" + kBackoff + R"SQL( END,
    releases = j.releases + (u.outcome = 'released')::int,
    mergeable = CASE WHEN )SQL" + kRequeues + R"SQL( THEN )SQL" + kStaysMergeable + R"SQL(
                     ELSE j.mergeable END,
    deadline_at = NULL,
    result = coalesce(u.result, j.result),
    last_error = coalesce(u.error, j.last_error)
  FROM input u
  WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = $1::uuid AND j.state = 'running'
  RETURNING u.ord, j.id, j.integration_id, j.kind, j.state, j.priority, j.run_at, j.mergeable,
            j.attempt, j.claimed_at, u.outcome, u.error
), lanes AS (
  UPDATE job_lanes l SET running_job_id = NULL
  FROM done d WHERE l.integration_id = d.integration_id AND l.running_job_id = d.id
), history AS (
  INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error, job_state)
  SELECT id, attempt, $1::uuid, claimed_at, outcome, error, state FROM done
)SQL" + requeueAndNotify("$6");

// $1: worker id. Unknown worker, or one cleanup marked TERMINATED (gone) → no row. Its running jobs are found through the lanes, the
// only index of running jobs.
const std::string kHeartbeat = R"SQL(
WITH mine AS MATERIALIZED (
  SELECT j.id, j.attempt, j.cancel_requested_at
  FROM job_lanes l JOIN jobs j ON j.id = l.running_job_id
  WHERE l.running_job_id IS NOT NULL AND j.worker_id = $1::uuid AND j.state = 'running'
), w AS (
  UPDATE worker_lifecycle SET
    last_heartbeat_at = now(),
    running_jobs = (SELECT count(*) FROM mine)
  WHERE id = $1::uuid AND state <> 'TERMINATED'
  RETURNING id
)
SELECT m.id, m.attempt, m.cancel_requested_at IS NOT NULL FROM w LEFT JOIN mine m ON true
)SQL";

// cancel() runs these two in one transaction. The queue row is taken first, as claims and
// enqueues take it before the job row: the same lock order everywhere, so a cancel and a claim
// of one job never deadlock. $1: job id.
const std::string kCancelDequeue = "DELETE FROM job_queue WHERE job_id = $1";

// $1: job id. Returns the state the job had when locked.
const std::string kCancel = R"SQL(
WITH target AS (
  SELECT id, state FROM jobs WHERE id = $1 FOR UPDATE
), cancelled AS (
  UPDATE jobs j SET state = 'cancelled', finished_at = now(), last_error = 'cancelled while queued'
  FROM target t WHERE j.id = t.id AND t.state = 'queued'
), requested AS (
  UPDATE jobs j SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
  FROM target t WHERE j.id = t.id AND t.state = 'running'
)
SELECT state FROM target
)SQL";

// $1: lease seconds, $2: NOTIFY channel, $3..$5 backoff. Running jobs (found through the
// lanes) of missing, silent or terminated workers, and jobs a lease past their deadline, are
// rescued. A worker stops a job at its deadline and reports it within its stop grace; the
// lease on top keeps the rescue from giving the job to another worker while it still runs.
const std::string kRescue = R"SQL(
WITH lost AS (
  SELECT j.id, j.worker_id AS old_worker,
         CASE WHEN j.deadline_at < now() - make_interval(secs => $1::float8)
              THEN 'attempt passed its deadline of ' || j.max_runtime_s || ' s'
              WHEN w.id IS NULL THEN 'worker ' || j.worker_id || ' is gone'
              ELSE 'worker ' || j.worker_id || ' stopped heartbeating (lease ' || $1 || ' s)'
         END AS reason
  FROM job_lanes l
  JOIN jobs j ON j.id = l.running_job_id
  LEFT JOIN worker_lifecycle w ON w.id = j.worker_id
  WHERE l.running_job_id IS NOT NULL AND j.state = 'running'
    AND (w.id IS NULL OR w.state = 'TERMINATED'
         OR w.last_heartbeat_at < now() - make_interval(secs => $1::float8)
         OR j.deadline_at < now() - make_interval(secs => $1::float8))
  FOR UPDATE OF j SKIP LOCKED
), done AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                 WHEN j.attempt - j.releases >= j.max_attempts THEN 'failed'
                 ELSE 'queued' END,
    worker_id = NULL,
    finished_at = CASE WHEN j.cancel_requested_at IS NULL
                        AND j.attempt - j.releases < j.max_attempts THEN NULL ELSE now() END,
    run_at = now() + )SQL" + kBackoff + R"SQL(,
    mergeable = )SQL" + kStaysMergeable + R"SQL(,
    deadline_at = NULL,
    last_error = l.reason
  FROM lost l
  WHERE j.id = l.id
  RETURNING 0 AS ord, j.id, j.integration_id, j.kind, j.state, j.priority, j.run_at,
            j.mergeable, j.attempt, j.claimed_at, l.reason, l.old_worker
), lanes AS (
  UPDATE job_lanes l SET running_job_id = NULL
  FROM done d WHERE l.integration_id = d.integration_id AND l.running_job_id = d.id
), history AS (
  INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error, job_state)
  SELECT id, attempt, old_worker, claimed_at, 'rescued', reason, state FROM done
)SQL" + requeueAndNotify("$2");

const std::string kRegisterWorker = R"SQL(
INSERT INTO worker_lifecycle (capacity, version, host, pid, transitions)
VALUES ($1, $2, $3, $4, jsonb_build_array(jsonb_build_object('state', 'INACTIVE', 'at', now())))
RETURNING id::text
)SQL";

const std::string kSetWorkerState = R"SQL(
UPDATE worker_lifecycle SET
  state = $2,
  state_changed_at = now(),
  transitions = transitions || jsonb_build_object('state', $2::text, 'at', now())
WHERE id = $1::uuid AND state <> 'TERMINATED'
)SQL";

const std::string kFind = "SELECT " + kJobColumns + " FROM jobs j WHERE j.id = $1";

const std::string kAttempts = "SELECT attempt, worker_id::text, " + pg::epochMicros("started_at") +
                              ", " + pg::epochMicros("finished_at") +
                              ", outcome, error FROM job_attempts WHERE job_id = $1 ORDER BY attempt";

const std::string kProgress = "SELECT fetched, diffed, applied, failed, " +
                              pg::epochMicros("updated_at") + " FROM job_progress WHERE job_id = $1";

// $1 integration or NULL, $2 state or NULL, $3 kind or NULL, $4 only ids below, $5 limit.
// Newest first. With an integration, jobs_integration_idx serves the order; without, the
// primary key does.
const std::string kList = "SELECT " + kJobColumns + R"SQL( FROM jobs j
WHERE ($1::bigint IS NULL OR j.integration_id = $1) AND ($2::text IS NULL OR j.state = $2)
  AND ($3::text IS NULL OR j.kind = $3) AND j.id < $4
ORDER BY j.id DESC LIMIT $5)SQL";

// --- reading workers and metrics ------------------------------------------------------------

const std::string kWorkerColumns =
    "w.id::text, w.state, " + pg::epochMicros("w.started_at") + ", " +
    pg::epochMicros("w.state_changed_at") + ", " + pg::epochMicros("w.last_heartbeat_at") +
    ", w.capacity, w.running_jobs, w.version, w.host, w.pid";

// $1 state or NULL, $2 and $3 the place after which the page starts (started_at in epoch
// microseconds, id) or NULL, $4 limit. Rows are ordered and compared by the same expression
// they return, so a place taken from a row finds that row again exactly. The table holds the
// workers that ran within the retention, a few thousand rows: sorting them is cheap.
const std::string kWorkerStart = pg::epochMicros("w.started_at");
const std::string kListWorkers = "SELECT " + kWorkerColumns + R"SQL( FROM worker_lifecycle w
WHERE ($1::text IS NULL OR w.state = $1)
  AND ($2::bigint IS NULL OR ()SQL" + kWorkerStart + R"SQL(, w.id) < ($2, $3::uuid))
ORDER BY )SQL" + kWorkerStart + " DESC, w.id DESC LIMIT $4";

const std::string kFindWorker =
    "SELECT " + kWorkerColumns + " FROM worker_lifecycle w WHERE w.id = $1::uuid";

// The recorded times are text in whatever time zone the writing session had; the cast reads
// the offset they carry.
const std::string kWorkerTransitions =
    "SELECT e.t ->> 'state', " + pg::epochMicros("(e.t ->> 'at')::timestamptz") +
    R"SQL(, e.t ->> 'reason'
FROM worker_lifecycle w
CROSS JOIN LATERAL jsonb_array_elements(w.transitions) WITH ORDINALITY AS e(t, n)
WHERE w.id = $1::uuid
ORDER BY e.n
)SQL";

// Running jobs are found through the lanes, the only index of running jobs.
const std::string kWorkerJobs = R"SQL(
SELECT j.id FROM job_lanes l JOIN jobs j ON j.id = l.running_job_id
WHERE l.running_job_id IS NOT NULL AND j.worker_id = $1::uuid AND j.state = 'running'
ORDER BY j.id
)SQL";

constexpr WorkerState kAllWorkerStates[] = {WorkerState::Inactive, WorkerState::Active,
                                            WorkerState::Retired, WorkerState::Terminating,
                                            WorkerState::Terminated};
// The outcomes job_attempts allows (its CHECK constraint).
const std::vector<std::string> kAttemptOutcomes = {"succeeded", "failed",    "retry",
                                                   "rescued",   "cancelled", "released"};

std::string workerCounts() {
  std::string sql;
  for (const auto state : kAllWorkerStates) {
    sql += std::string(sql.empty() ? "" : ", ") + "count(*) FILTER (WHERE state = '" +
           std::string(toString(state)) + "')";
  }
  return sql;
}

// One row: queued jobs, running jobs, the age of the oldest queued job that could start now
// (due, and its integration's lane free), and workers by state (kAllWorkerStates order).
// Queued and running jobs are counted in their narrow tables, job_queue and job_lanes (one row
// per integration), which the queue's statements keep in step with jobs.state.
const std::string kMetricsCounts = R"SQL(
SELECT (SELECT count(*) FROM job_queue),
       (SELECT count(*) FROM job_lanes l JOIN jobs j ON j.id = l.running_job_id
        WHERE l.running_job_id IS NOT NULL AND j.state = 'running'),
       (SELECT coalesce(extract(epoch FROM now() - min(q.run_at))::float8, 0)
        FROM job_queue q JOIN job_lanes l ON l.integration_id = q.integration_id
        WHERE q.run_at <= now() AND l.running_job_id IS NULL),
       )SQL" + workerCounts() + R"SQL(
FROM worker_lifecycle
)SQL";

// Finished jobs have no table or index of their own, and none can have one: an index naming
// jobs.state would turn every claim and completion into a non-HOT update. So this reads all of
// `jobs`, the one statement of a scrape whose cost grows with the table.
const std::string kFinishedJobs = R"SQL(
SELECT state, count(*) FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') GROUP BY state
)SQL";

std::string sqlNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// Per outcome and bucket: how many attempts, and their durations summed in seconds. The bucket
// is the index of the smallest bound at or above the duration (a Prometheus `le`), or the number
// of bounds for a duration above them all. width_bucket() counts from below, so it is given the
// bounds negated, largest first: -d falls into bucket k exactly when d is at most the k-th
// bound from the top. One grouping pass over job_attempts, a narrow table (no payload); a
// count with a FILTER per bound took five times as long.
std::string attemptDurationsSql() {
  const auto& bounds = attemptDurationBounds();
  std::string negated;
  for (auto bound = bounds.rbegin(); bound != bounds.rend(); ++bound) {
    negated += (negated.empty() ? "" : ", ") + sqlNumber(-*bound);
  }
  return "SELECT outcome, " + std::to_string(bounds.size()) + " - width_bucket(-d, ARRAY[" +
         negated + R"SQL(]::float8[]), count(*), sum(d)
FROM (SELECT outcome, greatest(date_part('epoch', finished_at - started_at), 0) AS d
      FROM job_attempts WHERE started_at IS NOT NULL) AS a
GROUP BY 1, 2
)SQL";
}

const std::string kAttemptDurations = attemptDurationsSql();

// --- the leading singleton ---------------------------------------------------------------

// $1: lease name, $2: holder, $3: term. The first statement of every fenced transaction: the
// row lock makes a new holder's acquire wait until this transaction ends.
const std::string kCheckFence = R"SQL(
SELECT 1 FROM leader_lease
WHERE name = $1 AND holder = $2 AND term = $3 AND expires_at > now()
FOR SHARE
)SQL";

// $1: seconds within which a worker must have heartbeaten to count as alive.
const std::string kScalingInputs = R"SQL(
WITH alive AS MATERIALIZED (
  SELECT id, state FROM worker_lifecycle
  WHERE state IN ('INACTIVE', 'ACTIVE', 'RETIRED')
    AND last_heartbeat_at >= now() - make_interval(secs => $1::float8)
), running AS MATERIALIZED (
  SELECT a.state
  FROM job_lanes l
  JOIN jobs j ON j.id = l.running_job_id
  JOIN alive a ON a.id = j.worker_id
  WHERE l.running_job_id IS NOT NULL AND j.state = 'running'
)
SELECT (SELECT count(*) FROM running),
       (SELECT count(*) FROM running WHERE state = 'RETIRED'),
       (SELECT count(*) FROM alive WHERE state = 'RETIRED'),
       (SELECT count(*) FROM alive WHERE state <> 'RETIRED'),
       (SELECT count(DISTINCT q.integration_id)
        FROM job_queue q JOIN job_lanes l ON l.integration_id = q.integration_id
        WHERE q.run_at <= now() AND l.running_job_id IS NULL)
)SQL";

const std::string kStoreScaling = R"SQL(
UPDATE desired_pod_count SET
  count = $1, ongoing_jobs = $2, runs_in_retired_workers = $3, retired_workers = $4,
  queued_jobs = $5, active_workers = $6, policy = $7, worker_capacity = $8,
  minimum_active_workers = $9, leader = $10, term = $11, computed_at = now()
)SQL";

const std::string kReadScaling =
    "SELECT count, ongoing_jobs, runs_in_retired_workers, retired_workers, queued_jobs, "
    "active_workers, policy, worker_capacity, minimum_active_workers, leader, term, " +
    pg::epochMicros("computed_at") + " FROM desired_pod_count";

const std::string kScheduledIntegrations =
    "SELECT i.id, i.name, i.config::text, " + pg::epochMicros("i.updated_at") + ", (SELECT " +
    pg::epochMicros("max(f.fire_time)") +
    " FROM cron_fires f WHERE f.integration_id = i.id) FROM integrations i "
    "WHERE i.enabled AND (i.config ? 'schedule' OR i.config ? 'detect_changes') ORDER BY i.id";

// $1: integration, $2: fire time (epoch microseconds), $3: term.
const std::string kRecordCronFire = R"SQL(
INSERT INTO cron_fires (integration_id, fire_time, term)
VALUES ($1, to_timestamp($2::float8 / 1000000), $3)
ON CONFLICT DO NOTHING
RETURNING 1
)SQL";

const std::string kCronFireJob = R"SQL(
UPDATE cron_fires SET job_id = $3 WHERE integration_id = $1 AND fire_time = to_timestamp($2::float8 / 1000000)
)SQL";

// $1: seconds without a heartbeat. Workers that crashed or were killed never record their end.
const std::string kMarkWorkersGone = R"SQL(
UPDATE worker_lifecycle SET
  state = 'TERMINATED',
  state_changed_at = now(),
  transitions = transitions || jsonb_build_object(
      'state', 'TERMINATED', 'at', now(),
      'reason', 'no heartbeat since ' || last_heartbeat_at || '; marked gone by the singleton')
WHERE state <> 'TERMINATED' AND last_heartbeat_at < now() - make_interval(secs => $1::float8)
RETURNING id
)SQL";

// $1: retention in seconds, $2: batch size. A job that finished before the cutoff was also
// created before it: created_at is indexed, and never changes.
const std::string kDeleteOldJobs = R"SQL(
WITH old AS (
  SELECT id FROM jobs
  WHERE created_at < now() - make_interval(secs => $1::float8)
    AND state IN ('succeeded', 'failed', 'cancelled')
    AND finished_at < now() - make_interval(secs => $1::float8)
  ORDER BY created_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), attempts AS (
  DELETE FROM job_attempts a USING old o WHERE a.job_id = o.id
), events AS (
  )SQL" + job_events::deleteForJobsSql("SELECT id FROM old") + R"SQL(
)
DELETE FROM jobs j USING old o WHERE j.id = o.id RETURNING j.id
)SQL";

const std::string kDeleteOldWorkers = R"SQL(
DELETE FROM worker_lifecycle WHERE id IN (
  SELECT id FROM worker_lifecycle
  WHERE state = 'TERMINATED' AND state_changed_at < now() - make_interval(secs => $1::float8)
  ORDER BY state_changed_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
RETURNING id
)SQL";

// An integration's latest fire is where its schedule resumes: it is kept whatever its age.
const std::string kDeleteOldCronFires = R"SQL(
DELETE FROM cron_fires WHERE (integration_id, fire_time) IN (
  SELECT c.integration_id, c.fire_time FROM cron_fires c
  WHERE c.fired_at < now() - make_interval(secs => $1::float8)
    AND c.fire_time < (SELECT max(m.fire_time) FROM cron_fires m
                       WHERE m.integration_id = c.integration_id)
  LIMIT $2)
RETURNING 1
)SQL";

// $1: integration, or NULL for all; $2: most events. The pending webhook events of enabled
// integrations, oldest first, locked: events another transaction is turning into a job are
// skipped, so none becomes two jobs.
const std::string kPendingWebhookEvents = R"SQL(
SELECT e.id, e.integration_id, e.keys::text, e.incremental
FROM webhook_events e JOIN integrations i ON i.id = e.integration_id
WHERE e.job_id IS NULL AND i.enabled AND ($1::bigint IS NULL OR e.integration_id = $1)
ORDER BY e.id
LIMIT $2
FOR UPDATE OF e SKIP LOCKED
)SQL";

// $1: JSON array of (id, job_id).
const std::string kLinkWebhookEvents = R"SQL(
UPDATE webhook_events e SET job_id = v.job_id, enqueued_at = now()
FROM jsonb_to_recordset($1::jsonb) AS v(id bigint, job_id bigint)
WHERE e.id = v.id
)SQL";

// $1: retention in seconds, $2: batch size. Only events that became jobs: a pending event is
// work not yet done, whatever its age.
const std::string kDeleteOldWebhookEvents = R"SQL(
DELETE FROM webhook_events WHERE id IN (
  SELECT id FROM webhook_events
  WHERE job_id IS NOT NULL AND received_at < now() - make_interval(secs => $1::float8)
  ORDER BY received_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
RETURNING id
)SQL";

// ---------------------------------------------------------------------------------------

std::optional<TimePoint> optionalTime(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return pg::fromEpochMicros(field.as<long long>());
}

std::optional<std::string> optionalText(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::string>();
}

JobState stateOf(const pqxx::field& field) {
  return parseJobState(field.c_str()).value_or(JobState::Failed);
}

Job toJob(const pqxx::row& row) {
  Job job;
  job.id = row[0].as<JobId>();
  job.integration_id = row[1].as<IntegrationId>();
  job.kind = parseJobKind(row[2].c_str()).value_or(JobKind::Full);
  job.state = stateOf(row[3]);
  job.priority = row[4].as<int>();
  job.run_at = pg::fromEpochMicros(row[5].as<long long>());
  job.attempt = row[6].as<int>();
  job.max_attempts = row[7].as<int>();
  job.mergeable = row[8].as<bool>();
  job.max_runtime = std::chrono::seconds(row[9].as<long long>());
  job.worker_id = optionalText(row[10]);
  job.claimed_at = optionalTime(row[11]);
  job.deadline_at = optionalTime(row[12]);
  job.finished_at = optionalTime(row[13]);
  job.cancel_requested_at = optionalTime(row[14]);
  job.payload_json = row[15].as<std::string>();
  job.result_json = optionalText(row[16]);
  job.last_error = optionalText(row[17]);
  job.created_at = pg::fromEpochMicros(row[18].as<long long>());
  return job;
}

WorkerRecord toWorker(const pqxx::row& row) {
  WorkerRecord worker;
  worker.id = row[0].as<std::string>();
  worker.state = parseWorkerState(row[1].c_str()).value_or(WorkerState::Terminated);
  worker.started_at = pg::fromEpochMicros(row[2].as<long long>());
  worker.state_changed_at = pg::fromEpochMicros(row[3].as<long long>());
  worker.last_heartbeat_at = pg::fromEpochMicros(row[4].as<long long>());
  worker.capacity = row[5].as<int>();
  worker.running_jobs = row[6].as<int>();
  worker.version = row[7].as<std::string>();
  worker.host = row[8].as<std::string>();
  if (!row[9].is_null()) worker.pid = row[9].as<int>();
  return worker;
}

/// A row of kReadScaling.
ScalingRecord toScaling(const pqxx::row& row) {
  ScalingRecord record;
  record.count = row[0].as<int>();
  record.inputs.ongoing_jobs = row[1].as<int>();
  record.inputs.runs_in_retired_workers = row[2].as<int>();
  record.inputs.retired_workers = row[3].as<int>();
  record.inputs.queued_jobs = row[4].as<int>();
  record.inputs.active_workers = row[5].as<int>();
  record.policy_name = row[6].as<std::string>();
  record.settings.policy = parseScalingPolicy(record.policy_name).value_or(ScalingPolicy::Seed);
  record.settings.worker_capacity = row[7].as<int>();
  record.settings.minimum_active_workers = row[8].as<int>();
  record.leader = row[9].as<std::string>();
  record.term = row[10].as<std::int64_t>();
  record.computed_at = pg::fromEpochMicros(row[11].as<long long>());
  return record;
}

Error invalid(std::string message) { return {Error::Code::Invalid, std::move(message)}; }

/// Folds mergeable requests for the same integration and kind into one row, as the database
/// would if they arrived one by one (one statement may not touch a row twice).
struct EnqueuePlan {
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::size_t> row_of_request;
  std::vector<bool> merged_in_batch;
};

EnqueuePlan planEnqueue(const std::vector<EnqueueRequest>& requests) {
  EnqueuePlan plan;
  std::map<std::pair<IntegrationId, JobKind>, std::size_t> mergeable_rows;
  for (const auto& request : requests) {
    const auto key = std::make_pair(request.integration_id, request.kind);
    const bool merge = request.merge && !request.plan;
    const auto found = merge ? mergeable_rows.find(key) : mergeable_rows.end();
    if (found != mergeable_rows.end()) {
      auto& row = plan.rows[found->second];
      row["priority"] = std::min(row["priority"].get<int>(), request.priority);
      row["delay_s"] = std::min(row["delay_s"].get<double>(), double(request.delay.count()));
      if (request.kind == JobKind::Partial) {
        auto& keys = row["payload"]["keys"];
        for (const auto& k : request.keys) keys.push_back(k);
        row["payload"]["incremental"] =
            row["payload"]["incremental"].get<bool>() || request.incremental;
      }
      plan.row_of_request.push_back(found->second);
      plan.merged_in_batch.push_back(true);
      continue;
    }
    nlohmann::json payload = nlohmann::json::object();
    if (request.kind == JobKind::Partial) {
      payload["keys"] = request.keys;
      payload["incremental"] = request.incremental;
    }
    if (request.plan) payload["plan"] = true;
    const std::size_t index = plan.rows.size();
    plan.rows.push_back({{"ord", index},
                         {"integration_id", request.integration_id},
                         {"kind", toString(request.kind)},
                         {"priority", request.priority},
                         {"delay_s", double(request.delay.count())},
                         {"max_attempts", request.max_attempts},
                         {"max_runtime_s", request.max_runtime.count()},
                         {"mergeable", merge},
                         {"payload", std::move(payload)}});
    if (merge) mergeable_rows.emplace(key, index);
    plan.row_of_request.push_back(index);
    plan.merged_in_batch.push_back(false);
  }
  // Keys arrive in request order; the database keeps them sorted and unique.
  for (auto& row : plan.rows) {
    auto& payload = row["payload"];
    if (!payload.contains("keys")) continue;
    std::vector<std::string> keys = payload["keys"];
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    payload["keys"] = keys;
  }
  return plan;
}

std::optional<Error> validate(const EnqueueRequest& request) {
  if (request.integration_id <= 0) return invalid("integration id must be positive");
  if (request.kind == JobKind::Full && (!request.keys.empty() || request.incremental)) {
    return invalid("a full job takes no keys and is never incremental");
  }
  if (request.kind == JobKind::Partial && request.keys.empty() && !request.incremental) {
    return invalid("a partial job needs keys, or incremental=true for changes since the cursor");
  }
  if (request.max_attempts < 1) return invalid("max_attempts must be at least 1");
  if (request.max_runtime.count() <= 0) return invalid("max_runtime must be positive");
  if (request.delay.count() < 0) return invalid("delay must not be negative");
  if (request.priority < -32768 || request.priority > 32767) {
    return invalid("priority must fit in a smallint (-32768..32767)");
  }
  return std::nullopt;
}

/// The JSON array the completion statement reads; Invalid when a result is not JSON.
Result<std::string> completionInput(const std::vector<Completion>& completions) {
  nlohmann::json input = nlohmann::json::array();
  for (std::size_t i = 0; i < completions.size(); ++i) {
    const auto& completion = completions[i];
    nlohmann::json row = {{"ord", i},
                          {"id", completion.id},
                          {"attempt", completion.attempt},
                          {"outcome", toString(completion.outcome)}};
    if (!completion.result_json.empty()) {
      auto parsed = nlohmann::json::parse(completion.result_json, nullptr, false);
      if (parsed.is_discarded()) {
        return invalid("job " + std::to_string(completion.id) + ": result is not valid JSON");
      }
      row["result"] = std::move(parsed);
    }
    if (!completion.error.empty()) row["error"] = completion.error;
    input.push_back(std::move(row));
  }
  return pg::jsonText(input);
}

/// One result per completion, in input order; rows name the completions that were applied.
std::vector<CompletionResult> completionResults(const std::vector<Completion>& completions,
                                                const pqxx::result& rows) {
  std::vector<CompletionResult> results(completions.size());
  for (std::size_t i = 0; i < completions.size(); ++i) results[i].id = completions[i].id;
  for (const auto& row : rows) {
    auto& result = results.at(row[0].as<std::size_t>());
    result.accepted = true;
    result.state = stateOf(row[1]);
  }
  return results;
}

/// Claimed jobs in the order they were due (RETURNING follows no order).
std::vector<Job> claimedJobs(const pqxx::result& rows) {
  std::vector<Job> jobs;
  jobs.reserve(rows.size());
  for (const auto& row : rows) jobs.push_back(toJob(row));
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) {
    return std::tie(a.priority, a.run_at, a.id) < std::tie(b.priority, b.run_at, b.id);
  });
  return jobs;
}


RescueResult rescueResult(const pqxx::result& rows) {
  RescueResult result;
  for (const auto& row : rows) {
    switch (stateOf(row[1])) {
      case JobState::Queued: ++result.requeued; break;
      case JobState::Failed: ++result.failed; break;
      case JobState::Cancelled: ++result.cancelled; break;
      default: break;
    }
  }
  return result;
}

/// Maps enqueue's rows back to the requests (see JobQueue::enqueue).
Result<std::vector<EnqueueResult>> enqueueResults(const std::vector<EnqueueRequest>& requests,
                                                  const EnqueuePlan& plan,
                                                  const pqxx::result& rows) {
  if (rows.size() != plan.rows.size()) {
    return Error{Error::Code::Internal, "enqueue returned " + std::to_string(rows.size()) +
                                           " rows for " + std::to_string(plan.rows.size())};
  }
  // Merged rows name their request row; inserted rows fill the others in request-row order.
  std::vector<EnqueueResult> by_row(plan.rows.size());
  std::vector<bool> answered(plan.rows.size(), false);
  for (const auto& row : rows) {
    if (row[0].is_null()) continue;
    const auto index = row[0].as<std::size_t>();
    if (index >= answered.size() || answered[index]) {
      return Error{Error::Code::Internal, "enqueue merged a request twice"};
    }
    answered[index] = true;
    by_row[index] = {row[1].as<JobId>(), true};
  }
  std::size_t next = 0;
  for (const auto& row : rows) {
    if (!row[0].is_null()) continue;
    while (next < answered.size() && answered[next]) ++next;
    if (next == answered.size()) {
      return Error{Error::Code::Internal, "enqueue inserted more jobs than it was asked for"};
    }
    answered[next] = true;
    by_row[next] = {row[1].as<JobId>(), false};
  }
  std::vector<EnqueueResult> results;
  results.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto result = by_row[plan.row_of_request[i]];
    result.merged = result.merged || plan.merged_in_batch[i];
    results.push_back(result);
  }
  return results;
}

std::optional<Error> validateAll(const std::vector<EnqueueRequest>& requests) {
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (auto problem = validate(requests[i])) {
      problem->message = "request " + std::to_string(i) + ": " + problem->message;
      return problem;
    }
  }
  return std::nullopt;
}

/// Turns pending webhook events (kPendingWebhookEvents) into one partial job per integration
/// and links them to it, inside `tx`.
std::vector<WebhookJob> enqueueWebhookEventsIn(pqxx::work& tx, std::optional<IntegrationId> integration,
                                               int limit, const std::string& channel) {
  struct Pending {
    std::vector<std::int64_t> events;
    EnqueueRequest request;
  };
  std::map<IntegrationId, Pending> pending;
  for (const auto& row : tx.exec_params(kPendingWebhookEvents, integration, limit)) {
    auto& entry = pending[row[1].as<IntegrationId>()];
    entry.events.push_back(row[0].as<std::int64_t>());
    const auto keys = nlohmann::json::parse(row[2].c_str(), nullptr, false);
    if (keys.is_array()) {
      for (const auto& key : keys) {
        if (key.is_string()) entry.request.keys.push_back(key.get<std::string>());
      }
    }
    entry.request.incremental = entry.request.incremental || row[3].as<bool>();
  }
  if (pending.empty()) return {};
  std::vector<EnqueueRequest> requests;
  for (auto& [id, entry] : pending) {
    entry.request.integration_id = id;
    entry.request.kind = JobKind::Partial;
    // The service stores no event without keys or incremental; a row written by other means
    // that names nothing asks for the changes since the cursor.
    if (entry.request.keys.empty()) entry.request.incremental = true;
    requests.push_back(entry.request);
  }
  const auto plan = planEnqueue(requests);
  auto results = enqueueResults(requests, plan, tx.exec_prepared("enqueue", pg::jsonText(plan.rows), channel));
  if (!results) throw std::runtime_error(results.error().message);
  std::vector<WebhookJob> jobs;
  nlohmann::json links = nlohmann::json::array();
  std::size_t index = 0;
  for (const auto& [id, entry] : pending) {
    const auto& result = (*results)[index++];
    jobs.push_back({id, result.id, result.merged, static_cast<int>(entry.events.size())});
    for (const auto event : entry.events) links.push_back({{"id", event}, {"job_id", result.id}});
  }
  tx.exec_params(kLinkWebhookEvents, pg::jsonText(links));
  return jobs;
}

}  // namespace

class JobQueue::Impl {
 public:
  Impl(DatabaseTarget target, JobQueueOptions options)
      : target_(std::move(target)),
        options_(options),
        channel_(wakeChannel(target_.schema)),
        connection_(pg::connect(target_)) {
    // The statements are written so that one plan fits every argument (lookups by key, LIMIT
    // applied last). PostgreSQL would otherwise plan them afresh on each call, which took as
    // long as running them: half a millisecond of every pickup.
    connection_->set_variable("plan_cache_mode", "force_generic_plan");
    connection_->prepare("enqueue", kEnqueue);
    connection_->prepare("claim", kClaim);
    connection_->prepare("claim_alone", kClaimAlone);
    connection_->prepare("complete", kComplete);
    connection_->prepare("heartbeat", kHeartbeat);
    connection_->prepare("cancel_dequeue", kCancelDequeue);
    connection_->prepare("cancel", kCancel);
    connection_->prepare("rescue", kRescue);
    connection_->prepare("register_worker", kRegisterWorker);
    connection_->prepare("set_worker_state", kSetWorkerState);
    connection_->prepare("find", kFind);
    connection_->prepare("list", kList);
    connection_->prepare("attempts", kAttempts);
    connection_->prepare("progress", kProgress);
    connection_->prepare("events", job_events::readSql());
    connection_->prepare("list_workers", kListWorkers);
    connection_->prepare("find_worker", kFindWorker);
    connection_->prepare("worker_transitions", kWorkerTransitions);
    connection_->prepare("worker_jobs", kWorkerJobs);

    connection_->prepare("check_fence", kCheckFence);
  }

  /// Runs one prepared statement outside an explicit transaction; maps failures to Error.
  template <class... Args>
  Result<pqxx::result> run(const char* statement, Args&&... args) {
    try {
      pqxx::nontransaction tx(*connection_);
      return tx.exec_prepared(statement, std::forward<Args>(args)...);
    } catch (const std::exception& error) {
      return pg::toError(error);
    }
  }

  /// Runs `body` (given the transaction) in one transaction; maps failures to Error.
  template <class Body>
  auto inTransaction(Body&& body) {
    return pg::inTransaction(*connection_, std::forward<Body>(body));
  }

  /// Runs `body` in one transaction that first checks `fence` (the lease row locked FOR
  /// SHARE): a token that no longer holds the lease gets Fenced, and nothing is written.
  template <class Body>
  auto fenced(const LeaseToken& fence, Body&& body)
      -> Result<decltype(body(std::declval<pqxx::work&>()))> {
    try {
      pqxx::work tx(*connection_);
      if (tx.exec_prepared("check_fence", fence.name, fence.holder, fence.term).empty()) {
        return Error{Error::Code::Fenced, "lease '" + fence.name + "' term " +
                                              std::to_string(fence.term) + " is no longer held by " +
                                              fence.holder + "; nothing was written"};
      }
      auto value = body(tx);
      tx.commit();
      return value;
    } catch (const std::exception& error) {
      return pg::toError(error);
    }
  }

  /// fenced(), run again (at most three times) when a concurrent producer won a race on the
  /// merge index: run again, the statement merges into that producer's job.
  template <class Body>
  auto fencedWithRetry(const LeaseToken& fence, Body&& body) {
    auto result = fenced(fence, body);
    for (int retry = 0; retry < 3 && !result && result.error().code == Error::Code::Conflict; ++retry) {
      result = fenced(fence, body);
    }
    return result;
  }

  double backoffBase() const { return double(options_.retry.base.count()); }
  double backoffMax() const { return double(options_.retry.max.count()); }
  double backoffJitter() const { return options_.retry.jitter; }

  DatabaseTarget target_;
  JobQueueOptions options_;
  std::string channel_;
  std::unique_ptr<pqxx::connection> connection_;
};

JobQueue::JobQueue(DatabaseTarget target, JobQueueOptions options)
    : impl_(std::make_unique<Impl>(std::move(target), options)) {}

JobQueue::~JobQueue() = default;

std::string JobQueue::wakeChannel(const std::string& schema) {
  // A channel name is an identifier of at most 63 bytes: pg_notify refuses longer ones and
  // LISTEN truncates them. A schema name too long for the suffix keeps a prefix and a hash
  // of the whole name (FNV-1a: the same in every process), so installations stay apart.
  constexpr std::size_t kMaxChannel = 63;
  const std::string suffix = ".jobs";
  if (schema.size() + suffix.size() <= kMaxChannel) return schema + suffix;
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : schema) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return schema.substr(0, kMaxChannel - suffix.size() - 17) + "~" + hex + suffix;
}

Result<std::vector<EnqueueResult>> JobQueue::enqueue(const std::vector<EnqueueRequest>& requests) {
  if (requests.empty()) return std::vector<EnqueueResult>{};
  if (auto problem = validateAll(requests)) return *problem;
  const auto plan = planEnqueue(requests);
  const std::string input = pg::jsonText(plan.rows);
  // A concurrent producer that inserted the same new mergeable job first makes this statement
  // fail on the merge index; run again, it merges into that job.
  auto rows = impl_->run("enqueue", input, impl_->channel_);
  for (int retry = 0; retry < 3 && !rows && rows.error().code == Error::Code::Conflict; ++retry) {
    rows = impl_->run("enqueue", input, impl_->channel_);
  }
  if (!rows) return rows.error();
  return enqueueResults(requests, plan, *rows);
}

Result<EnqueueResult> JobQueue::enqueue(const EnqueueRequest& request) {
  auto results = enqueue(std::vector<EnqueueRequest>{request});
  if (!results) return results.error();
  return results->front();
}

Result<std::optional<WebhookJob>> JobQueue::enqueueWebhookEvents(IntegrationId integration, int limit) {
  const auto once = [&] {
    return impl_->inTransaction([&](pqxx::work& tx) -> std::optional<WebhookJob> {
      auto jobs = enqueueWebhookEventsIn(tx, integration, std::max(limit, 1), impl_->channel_);
      if (jobs.empty()) return std::nullopt;
      return jobs.front();
    });
  };
  // As enqueue(): a concurrent producer that inserted the same new mergeable job first wins the
  // merge index; run again, the events merge into its job.
  auto result = once();
  for (int retry = 0; retry < 3 && !result && result.error().code == Error::Code::Conflict; ++retry) {
    result = once();
  }
  return result;
}

Result<CancelOutcome> JobQueue::cancel(JobId id) {
  return impl_->inTransaction([&](pqxx::work& tx) {
    tx.exec_prepared("cancel_dequeue", id);
    const auto rows = tx.exec_prepared("cancel", id);
    if (rows.empty()) return CancelOutcome::NotFound;
    switch (stateOf(rows[0][0])) {
      case JobState::Queued: return CancelOutcome::Cancelled;
      case JobState::Running: return CancelOutcome::Requested;
      default: return CancelOutcome::AlreadyFinished;
    }
  });
}

Result<std::optional<Job>> JobQueue::find(JobId id) {
  auto rows = impl_->run("find", id);
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<Job>{};
  return std::optional<Job>{toJob((*rows)[0])};
}

Result<std::vector<Job>> JobQueue::list(const JobFilter& filter) {
  const auto state = filter.state ? std::optional<std::string>(std::string(toString(*filter.state))) : std::nullopt;
  const auto kind = filter.kind ? std::optional<std::string>(std::string(toString(*filter.kind))) : std::nullopt;
  auto rows = impl_->run("list", filter.integration_id, state, kind,
                         filter.before.value_or(std::numeric_limits<JobId>::max()), filter.limit);
  if (!rows) return rows.error();
  std::vector<Job> jobs;
  for (const auto& row : *rows) jobs.push_back(toJob(row));
  return jobs;
}

Result<std::vector<JobAttempt>> JobQueue::attempts(JobId id) {
  auto rows = impl_->run("attempts", id);
  if (!rows) return rows.error();
  std::vector<JobAttempt> attempts;
  for (const auto& row : *rows) {
    JobAttempt attempt;
    attempt.attempt = row[0].as<int>();
    attempt.worker_id = optionalText(row[1]);
    attempt.started_at = optionalTime(row[2]);
    attempt.finished_at = pg::fromEpochMicros(row[3].as<long long>());
    attempt.outcome = row[4].as<std::string>();
    attempt.error = optionalText(row[5]);
    attempts.push_back(std::move(attempt));
  }
  return attempts;
}

Result<std::optional<JobProgress>> JobQueue::progress(JobId id) {
  auto rows = impl_->run("progress", id);
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<JobProgress>{};
  const auto& row = (*rows)[0];
  return std::optional<JobProgress>{JobProgress{row[0].as<long long>(), row[1].as<long long>(),
                                                row[2].as<long long>(), row[3].as<long long>(),
                                                pg::fromEpochMicros(row[4].as<long long>())}};
}

Result<std::vector<JobEvent>> JobQueue::events(JobId id, JobEventId after, int limit) {
  auto rows = impl_->run("events", id, after, limit);
  if (!rows) return rows.error();
  std::vector<JobEvent> events;
  events.reserve(rows->size());
  for (const auto& row : *rows) events.push_back(job_events::fromRow(row));
  return events;
}

const std::vector<double>& attemptDurationBounds() {
  static const std::vector<double> bounds = {0.5, 1,    5,    10,   30,   60,    120,   300,
                                             600, 1200, 1800, 3600, 7200, 14400, 21600, 28800};
  return bounds;
}

Result<std::vector<WorkerRecord>> JobQueue::listWorkers(const WorkerFilter& filter) {
  std::optional<std::string> state;
  if (filter.state) state = std::string(toString(*filter.state));
  std::optional<long long> after_micros;
  std::optional<std::string> after_id;
  if (filter.after) {
    after_micros = pg::toEpochMicros(filter.after->started_at);
    after_id = filter.after->id;
  }
  auto rows = impl_->run("list_workers", state, after_micros, after_id, filter.limit);
  if (!rows) return rows.error();
  std::vector<WorkerRecord> workers;
  for (const auto& row : *rows) workers.push_back(toWorker(row));
  return workers;
}

Result<std::optional<WorkerDetails>> JobQueue::findWorker(const WorkerId& id) {
  return impl_->inTransaction([&](pqxx::work& tx) -> std::optional<WorkerDetails> {
    const auto rows = tx.exec_prepared("find_worker", id);
    if (rows.empty()) return std::nullopt;
    WorkerDetails details;
    details.worker = toWorker(rows[0]);
    for (const auto& row : tx.exec_prepared("worker_transitions", id)) {
      details.transitions.push_back({row[0].as<std::string>(""),
                                     pg::fromEpochMicros(row[1].as<long long>(0)),
                                     optionalText(row[2])});
    }
    for (const auto& row : tx.exec_prepared("worker_jobs", id)) {
      details.running_job_ids.push_back(row[0].as<JobId>());
    }
    return details;
  });
}

Result<QueueMetrics> JobQueue::metrics(bool whole_tables) {
  return impl_->inTransaction([&](pqxx::work& tx) {
    // One snapshot: the counts, the durations and the scaling row agree with each other.
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    // Compiling the scans would take longer than running them.
    tx.exec("SET LOCAL jit = off");
    QueueMetrics metrics;
    const auto counts = tx.exec1(kMetricsCounts);
    metrics.jobs = {{JobState::Queued, counts[0].as<long long>()},
                    {JobState::Running, counts[1].as<long long>()},
                    {JobState::Succeeded, 0},
                    {JobState::Failed, 0},
                    {JobState::Cancelled, 0}};
    metrics.oldest_due_job_age_seconds = counts[2].as<double>();
    int column = 3;
    for (const auto state : kAllWorkerStates) {
      metrics.workers[state] = counts[column++].as<long long>();
    }
    metrics.scaling = toScaling(tx.exec1(kReadScaling));
    if (!whole_tables) return metrics;
    for (const auto& row : tx.exec(kFinishedJobs)) {
      if (const auto state = parseJobState(row[0].c_str())) {
        metrics.jobs[*state] = row[1].as<long long>();
      }
    }

    const auto buckets = attemptDurationBounds().size();
    for (const auto& outcome : kAttemptOutcomes) {
      metrics.attempt_durations[outcome].cumulative.assign(buckets, 0);
    }
    for (const auto& row : tx.exec(kAttemptDurations)) {
      auto& histogram = metrics.attempt_durations[row[0].as<std::string>()];
      histogram.cumulative.resize(buckets);
      const auto bucket = row[1].as<std::size_t>();
      const auto count = row[2].as<long long>();
      histogram.count += count;
      histogram.sum_seconds += row[3].as<double>();
      // Each bucket counts the attempts at or below its bound: this one and every one above.
      for (auto i = bucket; i < buckets; ++i) histogram.cumulative[i] += count;
    }
    return metrics;
  });
}

Result<WorkerId> JobQueue::registerWorker(const WorkerInfo& info) {
  if (info.capacity < 1) return invalid("worker capacity must be at least 1");
  auto rows = impl_->run("register_worker", info.capacity, info.version, info.host, info.pid);
  if (!rows) return rows.error();
  return (*rows)[0][0].as<std::string>();
}

Result<Done> JobQueue::setWorkerState(const WorkerId& worker, WorkerState state) {
  auto rows = impl_->run("set_worker_state", worker, std::string(toString(state)));
  if (!rows) return rows.error();
  // TERMINATED is final, also when cleanup declared the worker gone while it was cut off.
  if (rows->affected_rows() == 0) return invalid("unknown or TERMINATED worker " + worker);
  return Done{};
}

Result<std::vector<Job>> JobQueue::claim(const WorkerId& worker, int limit) {
  if (limit < 1) return std::vector<Job>{};
  auto rows = impl_->run("claim_alone", worker, limit);
  if (!rows) return rows.error();
  return claimedJobs(*rows);
}

Result<HeartbeatResult> JobQueue::heartbeat(const WorkerId& worker) {
  auto rows = impl_->run("heartbeat", worker);
  if (!rows) return rows.error();
  HeartbeatResult result;
  result.known = !rows->empty();
  for (const auto& row : *rows) {
    if (row[0].is_null()) continue;  // a known worker without jobs
    const auto id = row[0].as<JobId>();
    result.held.push_back({id, row[1].as<int>()});
    if (row[2].as<bool>()) result.cancel_requested.push_back(id);
  }
  return result;
}

Result<std::vector<CompletionResult>> JobQueue::complete(
    const WorkerId& worker, const std::vector<Completion>& completions) {
  if (completions.empty()) return std::vector<CompletionResult>{};
  auto input = completionInput(completions);
  if (!input) return input.error();
  auto rows = impl_->run("complete", worker, *input, impl_->backoffBase(), impl_->backoffMax(),
                         impl_->backoffJitter(), impl_->channel_);
  if (!rows) return rows.error();
  return completionResults(completions, *rows);
}

Result<CompleteAndClaimResult> JobQueue::completeAndClaim(
    const WorkerId& worker, const std::vector<Completion>& completions, int limit) {
  if (completions.empty()) {
    // Nothing to make durable: the faster claim of an idle worker.
    auto claimed = claim(worker, limit);
    if (!claimed) return claimed.error();
    return CompleteAndClaimResult{{}, std::move(*claimed)};
  }
  auto input = completionInput(completions);
  if (!input) return input.error();
  return impl_->inTransaction([&](pqxx::work& tx) {
    CompleteAndClaimResult result;
    if (!completions.empty()) {
      result.completed = completionResults(
          completions, tx.exec_prepared("complete", worker, *input, impl_->backoffBase(),
                                        impl_->backoffMax(), impl_->backoffJitter(),
                                        impl_->channel_));
    }
    if (limit > 0) result.claimed = claimedJobs(tx.exec_prepared("claim", worker, limit));
    return result;
  });
}

Result<CompletionResult> JobQueue::complete(const WorkerId& worker, const Completion& completion) {
  auto results = complete(worker, std::vector<Completion>{completion});
  if (!results) return results.error();
  return results->front();
}

Result<RescueResult> JobQueue::rescue() {
  auto rows = impl_->run("rescue", double(impl_->options_.rescue_lease.count()), impl_->channel_,
                         impl_->backoffBase(), impl_->backoffMax(), impl_->backoffJitter());
  if (!rows) return rows.error();
  return rescueResult(*rows);
}

Result<RescueResult> JobQueue::rescue(const LeaseToken& fence) {
  return impl_->fenced(fence, [&](pqxx::work& tx) {
    return rescueResult(tx.exec_prepared("rescue", double(impl_->options_.rescue_lease.count()),
                                         impl_->channel_, impl_->backoffBase(),
                                         impl_->backoffMax(), impl_->backoffJitter()));
  });
}

Result<ScalingInputs> JobQueue::scalingInputs(std::chrono::milliseconds alive_within) {
  try {
    pqxx::nontransaction tx(*impl_->connection_);
    const auto row = tx.exec_params1(kScalingInputs, double(alive_within.count()) / 1000.0);
    ScalingInputs inputs;
    inputs.ongoing_jobs = row[0].as<int>();
    inputs.runs_in_retired_workers = row[1].as<int>();
    inputs.retired_workers = row[2].as<int>();
    inputs.active_workers = row[3].as<int>();
    inputs.queued_jobs = row[4].as<int>();
    return inputs;
  } catch (const std::exception& error) {
    return pg::toError(error);
  }
}

Result<Done> JobQueue::storeScaling(const LeaseToken& fence, const ScalingRecord& record) {
  return impl_->fenced(fence, [&](pqxx::work& tx) {
    const auto& in = record.inputs;
    const auto rows = tx.exec_params(
        kStoreScaling, record.count, in.ongoing_jobs, in.runs_in_retired_workers,
        in.retired_workers, in.queued_jobs, in.active_workers,
        std::string(toString(record.settings.policy)), record.settings.worker_capacity,
        record.settings.minimum_active_workers, fence.holder, fence.term);
    if (rows.affected_rows() != 1) {
      throw std::runtime_error("desired_pod_count does not have its one row");
    }
    return Done{};
  });
}

Result<ScalingRecord> JobQueue::readScaling() {
  try {
    pqxx::nontransaction tx(*impl_->connection_);
    return toScaling(tx.exec1(kReadScaling));
  } catch (const std::exception& error) {
    return pg::toError(error);
  }
}

Result<std::vector<ScheduledIntegration>> JobQueue::scheduledIntegrations() {
  try {
    pqxx::nontransaction tx(*impl_->connection_);
    std::vector<ScheduledIntegration> integrations;
    for (const auto& row : tx.exec(kScheduledIntegrations)) {
      ScheduledIntegration integration;
      integration.id = row[0].as<IntegrationId>();
      integration.name = row[1].as<std::string>();
      integration.config_json = row[2].as<std::string>();
      integration.updated_at = pg::fromEpochMicros(row[3].as<long long>());
      integration.last_cron_fire = optionalTime(row[4]);
      integrations.push_back(std::move(integration));
    }
    return integrations;
  } catch (const std::exception& error) {
    return pg::toError(error);
  }
}

Result<std::map<std::string, std::string>> JobQueue::sourceCursors(IntegrationId integration) {
  try {
    pqxx::nontransaction tx(*impl_->connection_);
    std::map<std::string, std::string> cursors;
    for (const auto& row : tx.exec_params(
             "SELECT stream, cursor FROM sync_cursors WHERE integration_id = $1 AND side = 'source'",
             integration)) {
      cursors.emplace(row[0].as<std::string>(), row[1].as<std::string>());
    }
    return cursors;
  } catch (const std::exception& error) {
    return pg::toError(error);
  }
}

Result<CronFireResult> JobQueue::fireCron(const LeaseToken& fence, IntegrationId integration,
                                          TimePoint fire_time) {
  EnqueueRequest request;
  request.integration_id = integration;
  request.kind = JobKind::Full;
  const std::vector<EnqueueRequest> requests{request};
  const auto plan = planEnqueue(requests);
  const std::string input = pg::jsonText(plan.rows);
  const auto micros = pg::toEpochMicros(fire_time);
  return impl_->fencedWithRetry(fence, [&](pqxx::work& tx) -> CronFireResult {
    if (tx.exec_params(kRecordCronFire, integration, micros, fence.term).empty()) return {};
    auto results = enqueueResults(requests, plan, tx.exec_prepared("enqueue", input, impl_->channel_));
    if (!results) throw std::runtime_error(results.error().message);
    const auto& job = results->front();
    tx.exec_params(kCronFireJob, integration, micros, job.id);
    return CronFireResult{true, job.id, job.merged};
  });
}

Result<std::vector<EnqueueResult>> JobQueue::enqueue(const LeaseToken& fence,
                                                     const std::vector<EnqueueRequest>& requests) {
  if (requests.empty()) return std::vector<EnqueueResult>{};
  if (auto problem = validateAll(requests)) return *problem;
  const auto plan = planEnqueue(requests);
  const std::string input = pg::jsonText(plan.rows);
  auto results = impl_->fencedWithRetry(fence, [&](pqxx::work& tx) {
    return enqueueResults(requests, plan, tx.exec_prepared("enqueue", input, impl_->channel_));
  });
  if (!results) return results.error();
  return std::move(results).value();
}

Result<std::vector<WebhookJob>> JobQueue::enqueueWebhookEvents(const LeaseToken& fence, int limit) {
  return impl_->fencedWithRetry(fence, [&](pqxx::work& tx) {
    return enqueueWebhookEventsIn(tx, std::nullopt, std::max(limit, 1), impl_->channel_);
  });
}

Result<CleanupResult> JobQueue::cleanup(const LeaseToken& fence, const CleanupOptions& options) {
  const double stale_s = double(options.stale_after.count()) / 1000.0;
  const double retention_s = double(options.retention.count()) / 1000.0;
  const int batch = std::max(options.batch_size, 1);
  CleanupResult result;
  auto gone = impl_->fenced(fence, [&](pqxx::work& tx) {
    return static_cast<int>(tx.exec_params(kMarkWorkersGone, stale_s).size());
  });
  if (!gone) return gone.error();
  result.workers_gone = *gone;
  // Each batch commits on its own: a long cleanup never holds many row locks at once.
  const auto deleteInBatches = [&](const std::string& sql, int& counter) -> std::optional<Error> {
    for (int i = 0; i < options.max_batches; ++i) {
      if (std::chrono::steady_clock::now() >= options.stop_by) {
        result.stopped_early = true;
        return std::nullopt;
      }
      auto deleted = impl_->fenced(fence, [&](pqxx::work& tx) {
        return static_cast<int>(tx.exec_params(sql, retention_s, batch).size());
      });
      if (!deleted) return deleted.error();
      counter += *deleted;
      if (*deleted < batch) break;
    }
    return std::nullopt;
  };
  if (auto error = deleteInBatches(kDeleteOldJobs, result.jobs_deleted)) return *error;
  if (auto error = deleteInBatches(kDeleteOldWorkers, result.workers_deleted)) return *error;
  if (auto error = deleteInBatches(kDeleteOldCronFires, result.cron_fires_deleted)) return *error;
  if (auto error = deleteInBatches(kDeleteOldWebhookEvents, result.webhook_events_deleted)) return *error;
  return result;
}

}  // namespace syncpod::core
