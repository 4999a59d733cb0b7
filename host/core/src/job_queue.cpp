#include "syncpod/core/job_queue.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

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
// max_runtime_s, mergeable, payload), $2: NOTIFY channel. A mergeable request meets a
// queued mergeable job of the same integration and kind through the partial unique index:
// full jobs are deduplicated, partial jobs take the union of keys, sorted byte-wise as the
// client sorts them, whatever the database's collation. The scalar subquery
// runs once, so workers get one NOTIFY per statement.
const std::string kEnqueue = R"SQL(
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
    ord int, integration_id bigint, kind text, priority smallint, delay_s double precision,
    max_attempts int, max_runtime_s int, mergeable boolean, payload jsonb)
), written AS (
  INSERT INTO jobs AS j (integration_id, kind, priority, run_at, max_attempts, max_runtime_s,
                         mergeable, payload)
  SELECT integration_id, kind, priority, now() + make_interval(secs => delay_s), max_attempts,
         max_runtime_s, mergeable, payload
  FROM input ORDER BY ord
  ON CONFLICT (integration_id, kind) WHERE state = 'queued' AND mergeable
  DO UPDATE SET
    priority = least(j.priority, excluded.priority),
    run_at = least(j.run_at, excluded.run_at),
    payload = CASE WHEN j.kind = 'partial' THEN jsonb_build_object(
        'keys', (SELECT coalesce(jsonb_agg(k ORDER BY k COLLATE "C"), '[]'::jsonb)
                 FROM (SELECT DISTINCT k FROM jsonb_array_elements_text(
                         coalesce(j.payload -> 'keys', '[]'::jsonb) ||
                         coalesce(excluded.payload -> 'keys', '[]'::jsonb)) AS k) AS keys),
        'incremental', coalesce((j.payload ->> 'incremental')::boolean, false) OR
                       coalesce((excluded.payload ->> 'incremental')::boolean, false))
      ELSE j.payload END
  RETURNING j.id, (j.xmax = 0) AS inserted
)
SELECT id, inserted, (SELECT count(*) FROM (SELECT pg_notify($2, '')) AS n) FROM written
)SQL";

// $1: worker id, $2: how many. Candidates are due queued jobs whose integration looks idle,
// read without locks; one head job per integration is kept, and the lane rows of those
// integrations are locked with SKIP LOCKED: the lane, not the job row, is the mutex. A lane
// taken by a claimer that committed meanwhile is re-checked on its new version
// (running_job_id no longer NULL) and skipped, which keeps one running job per integration.
// The job update re-checks state and run_at on the latest row (a job that ran since the
// candidates were read, and finished or went back to the queue with a backoff, is skipped),
// and only lanes of jobs actually claimed are set.
const std::string kClaim = R"SQL(
WITH candidates AS MATERIALIZED (
  SELECT j.id, j.integration_id, j.priority, j.run_at
  FROM jobs j
  WHERE j.state = 'queued' AND j.run_at <= now()
    AND NOT EXISTS (SELECT 1 FROM job_lanes l
                    WHERE l.integration_id = j.integration_id AND l.running_job_id IS NOT NULL)
  ORDER BY j.priority, j.run_at, j.id
  LIMIT $2::int * 2 + 16
), picked AS MATERIALIZED (
  SELECT h.id, h.integration_id
  FROM job_lanes l
  JOIN (SELECT DISTINCT ON (integration_id) id, integration_id, priority, run_at
        FROM candidates
        ORDER BY integration_id, priority, run_at, id) AS h ON h.integration_id = l.integration_id
  WHERE l.running_job_id IS NULL
  ORDER BY h.priority, h.run_at, h.id
  LIMIT $2::int
  FOR UPDATE OF l SKIP LOCKED
), claimed AS (
  UPDATE jobs j SET
    state = 'running', worker_id = $1::uuid, attempt = j.attempt + 1, claimed_at = now(),
    deadline_at = now() + make_interval(secs => j.max_runtime_s), finished_at = NULL
  FROM picked p
  WHERE j.id = p.id AND j.state = 'queued' AND j.run_at <= now()
  RETURNING j.*
), lanes AS (
  UPDATE job_lanes l SET running_job_id = c.id
  FROM claimed c WHERE l.integration_id = c.integration_id
)
SELECT )SQL" + kJobColumns + " FROM claimed j";

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
    "(j.mergeable AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.integration_id = j.integration_id"
    " AND o.kind = j.kind AND o.state = 'queued' AND o.mergeable AND o.id <> j.id))";

// $1: worker id, $2: JSON array (ord, id, attempt, outcome, result, error), $3..$5 backoff,
// $6: NOTIFY channel. Fenced: only rows still running under this worker and attempt change.
// The new values are computed in the UPDATE itself: when it waits for a row that a concurrent
// cancel() changed, PostgreSQL re-evaluates them on the latest row, so the request is seen.
// Listening workers are woken when a job went back to the queue, or when a freed lane has
// another job of its integration due (the snapshot still shows this statement's jobs running).
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
  RETURNING u.ord, j.id, j.integration_id, j.state, j.attempt, j.claimed_at, u.outcome, u.error
), lanes AS (
  UPDATE job_lanes l SET running_job_id = NULL
  FROM done d WHERE l.integration_id = d.integration_id AND l.running_job_id = d.id
), history AS (
  INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error)
  SELECT id, attempt, $1::uuid, claimed_at, outcome, error FROM done
)
SELECT ord, state,
       (SELECT count(*) FROM (SELECT pg_notify($6, '')) AS n
        WHERE EXISTS (SELECT 1 FROM done WHERE state = 'queued')
           OR EXISTS (SELECT 1 FROM done d JOIN jobs q ON q.integration_id = d.integration_id
                      WHERE q.state = 'queued' AND q.run_at <= now()))
FROM done
)SQL";

// $1: worker id. Unknown worker → no row.
const std::string kHeartbeat = R"SQL(
WITH w AS (
  UPDATE worker_lifecycle SET
    last_heartbeat_at = now(),
    running_jobs = (SELECT count(*) FROM jobs WHERE worker_id = $1::uuid AND state = 'running')
  WHERE id = $1::uuid
  RETURNING id
)
SELECT j.id FROM w
LEFT JOIN jobs j ON j.worker_id = w.id AND j.state = 'running' AND j.cancel_requested_at IS NOT NULL
)SQL";

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

// $1: lease seconds, $2: NOTIFY channel, $3..$5 backoff. Jobs of missing, silent or
// terminated workers, and jobs past their deadline, are rescued.
const std::string kRescue = R"SQL(
WITH lost AS (
  SELECT j.id, j.worker_id AS old_worker,
         CASE WHEN j.deadline_at < now()
              THEN 'attempt passed its deadline of ' || j.max_runtime_s || ' s'
              WHEN w.id IS NULL THEN 'worker ' || j.worker_id || ' is gone'
              ELSE 'worker ' || j.worker_id || ' stopped heartbeating (lease ' || $1 || ' s)'
         END AS reason
  FROM jobs j LEFT JOIN worker_lifecycle w ON w.id = j.worker_id
  WHERE j.state = 'running'
    AND (w.id IS NULL OR w.state = 'TERMINATED'
         OR w.last_heartbeat_at < now() - make_interval(secs => $1::float8)
         OR j.deadline_at < now())
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
  RETURNING j.id, j.integration_id, j.state, j.attempt, j.claimed_at, l.reason, l.old_worker
), lanes AS (
  UPDATE job_lanes l SET running_job_id = NULL
  FROM done d WHERE l.integration_id = d.integration_id AND l.running_job_id = d.id
), history AS (
  INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome, error)
  SELECT id, attempt, old_worker, claimed_at, 'rescued', reason FROM done
)
SELECT state, count(*),
       (SELECT count(*) FROM (SELECT pg_notify($2, '')) AS n
        WHERE EXISTS (SELECT 1 FROM done WHERE state = 'queued'))
FROM done GROUP BY state
)SQL";

const std::string kRegisterWorker = R"SQL(
INSERT INTO worker_lifecycle (capacity, version, host, pid) VALUES ($1, $2, $3, $4)
RETURNING id::text
)SQL";

const std::string kSetWorkerState = R"SQL(
UPDATE worker_lifecycle SET state = $2, state_changed_at = now() WHERE id = $1::uuid
)SQL";

const std::string kFind = "SELECT " + kJobColumns + " FROM jobs j WHERE j.id = $1";

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

std::string_view outcomeName(Completion::Outcome outcome) {
  switch (outcome) {
    case Completion::Outcome::Succeeded: return "succeeded";
    case Completion::Outcome::Failed: return "failed";
    case Completion::Outcome::Retry: return "retry";
    case Completion::Outcome::Cancelled: return "cancelled";
    case Completion::Outcome::Released: return "released";
  }
  return "failed";
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
    const auto found = request.merge ? mergeable_rows.find(key) : mergeable_rows.end();
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
    const std::size_t index = plan.rows.size();
    plan.rows.push_back({{"ord", index},
                         {"integration_id", request.integration_id},
                         {"kind", toString(request.kind)},
                         {"priority", request.priority},
                         {"delay_s", double(request.delay.count())},
                         {"max_attempts", request.max_attempts},
                         {"max_runtime_s", request.max_runtime.count()},
                         {"mergeable", request.merge},
                         {"payload", std::move(payload)}});
    if (request.merge) mergeable_rows.emplace(key, index);
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

}  // namespace

class JobQueue::Impl {
 public:
  Impl(DatabaseTarget target, JobQueueOptions options)
      : target_(std::move(target)),
        options_(options),
        channel_(wakeChannel(target_.schema)),
        connection_(pg::connect(target_)) {
    connection_->prepare("enqueue", kEnqueue);
    connection_->prepare("claim", kClaim);
    connection_->prepare("complete", kComplete);
    connection_->prepare("heartbeat", kHeartbeat);
    connection_->prepare("cancel", kCancel);
    connection_->prepare("rescue", kRescue);
    connection_->prepare("register_worker", kRegisterWorker);
    connection_->prepare("set_worker_state", kSetWorkerState);
    connection_->prepare("find", kFind);
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
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (auto problem = validate(requests[i])) {
      problem->message = "request " + std::to_string(i) + ": " + problem->message;
      return *problem;
    }
  }
  const auto plan = planEnqueue(requests);
  auto rows = impl_->run("enqueue", plan.rows.dump(), impl_->channel_);
  if (!rows) return rows.error();
  if (rows->size() != plan.rows.size()) {
    return Error{Error::Code::Internal, "enqueue returned " + std::to_string(rows->size()) +
                                           " rows for " + std::to_string(plan.rows.size())};
  }
  std::vector<EnqueueResult> results;
  results.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto row = (*rows)[static_cast<pqxx::result::size_type>(plan.row_of_request[i])];
    results.push_back({row[0].as<JobId>(), plan.merged_in_batch[i] || !row[1].as<bool>()});
  }
  return results;
}

Result<EnqueueResult> JobQueue::enqueue(const EnqueueRequest& request) {
  auto results = enqueue(std::vector<EnqueueRequest>{request});
  if (!results) return results.error();
  return results->front();
}

Result<CancelOutcome> JobQueue::cancel(JobId id) {
  auto rows = impl_->run("cancel", id);
  if (!rows) return rows.error();
  if (rows->empty()) return CancelOutcome::NotFound;
  switch (stateOf((*rows)[0][0])) {
    case JobState::Queued: return CancelOutcome::Cancelled;
    case JobState::Running: return CancelOutcome::Requested;
    default: return CancelOutcome::AlreadyFinished;
  }
}

Result<std::optional<Job>> JobQueue::find(JobId id) {
  auto rows = impl_->run("find", id);
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<Job>{};
  return std::optional<Job>{toJob((*rows)[0])};
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
  if (rows->affected_rows() == 0) return invalid("unknown worker " + worker);
  return Done{};
}

Result<std::vector<Job>> JobQueue::claim(const WorkerId& worker, int limit) {
  if (limit < 1) return std::vector<Job>{};
  auto rows = impl_->run("claim", worker, limit);
  if (!rows) return rows.error();
  std::vector<Job> jobs;
  jobs.reserve(rows->size());
  for (const auto& row : *rows) jobs.push_back(toJob(row));
  // RETURNING follows no order; hand jobs out in the order they were due.
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) {
    return std::tie(a.priority, a.run_at, a.id) < std::tie(b.priority, b.run_at, b.id);
  });
  return jobs;
}

Result<HeartbeatResult> JobQueue::heartbeat(const WorkerId& worker) {
  auto rows = impl_->run("heartbeat", worker);
  if (!rows) return rows.error();
  HeartbeatResult result;
  result.known = !rows->empty();
  for (const auto& row : *rows) {
    if (!row[0].is_null()) result.cancel_requested.push_back(row[0].as<JobId>());
  }
  return result;
}

Result<std::vector<CompletionResult>> JobQueue::complete(
    const WorkerId& worker, const std::vector<Completion>& completions) {
  if (completions.empty()) return std::vector<CompletionResult>{};
  nlohmann::json input = nlohmann::json::array();
  for (std::size_t i = 0; i < completions.size(); ++i) {
    const auto& completion = completions[i];
    nlohmann::json row = {{"ord", i},
                          {"id", completion.id},
                          {"attempt", completion.attempt},
                          {"outcome", outcomeName(completion.outcome)}};
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
  auto rows = impl_->run("complete", worker, input.dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace),
                         impl_->backoffBase(), impl_->backoffMax(), impl_->backoffJitter(),
                         impl_->channel_);
  if (!rows) return rows.error();
  std::vector<CompletionResult> results(completions.size());
  for (std::size_t i = 0; i < completions.size(); ++i) results[i].id = completions[i].id;
  for (const auto& row : *rows) {
    auto& result = results.at(row[0].as<std::size_t>());
    result.accepted = true;
    result.state = stateOf(row[1]);
  }
  return results;
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
  RescueResult result;
  for (const auto& row : *rows) {
    const int count = row[1].as<int>();
    switch (stateOf(row[0])) {
      case JobState::Queued: result.requeued += count; break;
      case JobState::Failed: result.failed += count; break;
      case JobState::Cancelled: result.cancelled += count; break;
      default: break;
    }
  }
  return result;
}

}  // namespace syncpod::core
