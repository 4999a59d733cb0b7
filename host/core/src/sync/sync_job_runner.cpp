#include "syncpod/core/sync/sync_job_runner.hpp"

#include <unistd.h>

#include <mutex>

#include <spdlog/spdlog.h>

#include "job_event_store.hpp"
#include "pg.hpp"
#include "syncpod/core/logging.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/integration_spec.hpp"
#include "syncpod/core/sync/sync_engine.hpp"

namespace syncpod::core {
namespace {

// ---------------------------------------------------------------------------------------
// The statements of the sync state. Key lists travel as JSON arrays of strings.
// ---------------------------------------------------------------------------------------

const char* const kLoadIntegration = "SELECT enabled, config::text FROM integrations WHERE id = $1";

const char* const kCursor =
    "SELECT cursor FROM sync_cursors WHERE integration_id = $1 AND stream = $2 AND side = $3";

// Fenced like a completion: only while the job still runs as this attempt. An attempt the
// queue took back (rescued) and gave to another must not move the cursor under the new one.
// FOR SHARE waits for a rescue in progress and checks the job row as it leaves it. The
// created-records writes need no fence: what a stale attempt created in a system it did create.
// $5: job id, $6: attempt.
const char* const kSaveCursor = R"SQL(
INSERT INTO sync_cursors (integration_id, stream, side, cursor)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $5 AND attempt = $6 AND state = 'running' FOR SHARE)
ON CONFLICT (integration_id, stream, side) DO UPDATE SET cursor = excluded.cursor, updated_at = now()
RETURNING 1
)SQL";

const char* const kCreatedAmong = R"SQL(
SELECT record_key FROM sync_created_records
WHERE integration_id = $1 AND stream = $2 AND side = $3
  AND record_key IN (SELECT jsonb_array_elements_text($4::jsonb))
)SQL";

const char* const kRecordCreated = R"SQL(
INSERT INTO sync_created_records (integration_id, stream, side, record_key)
SELECT $1, $2, $3, k FROM jsonb_array_elements_text($4::jsonb) AS k
ON CONFLICT DO NOTHING
)SQL";

const char* const kRecordDeleted = R"SQL(
DELETE FROM sync_created_records
WHERE integration_id = $1 AND stream = $2 AND side = $3
  AND record_key IN (SELECT jsonb_array_elements_text($4::jsonb))
)SQL";

std::string keysJson(const std::vector<std::string>& keys) {
  return pg::jsonText(Json(keys));
}

/// The sync state of one integration, in PostgreSQL, on a connection shared with the job's
/// event writer (hence the mutex).
class PgSyncState : public SyncState {
 public:
  PgSyncState(pqxx::connection& connection, std::mutex& mutex, const Job& job)
      : connection_(connection), mutex_(mutex), integration_(job.integration_id), job_(job.id),
        attempt_(job.attempt) {}

  Result<std::optional<std::string>> cursor(const std::string& stream, Side side) override {
    auto rows = run(kCursor, integration_, stream, std::string(toString(side)));
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<std::string>{};
    return std::optional<std::string>{(*rows)[0][0].as<std::string>()};
  }

  Result<Done> saveCursor(const std::string& stream, Side side, const std::string& value) override {
    auto rows = run(kSaveCursor, integration_, stream, std::string(toString(side)), value, job_, attempt_);
    if (!rows) return rows.error();
    if (rows->empty()) {
      return Error{Error::Code::Fenced, "the cursor was not saved: job " + std::to_string(job_) +
                                               " no longer runs as attempt " + std::to_string(attempt_) +
                                               " (the queue took it back)"};
    }
    return Done{};
  }

  Result<std::vector<std::string>> createdAmong(const std::string& stream, Side side,
                                                const std::vector<std::string>& keys) override {
    auto rows = run(kCreatedAmong, integration_, stream, std::string(toString(side)), keysJson(keys));
    if (!rows) return rows.error();
    std::vector<std::string> found;
    for (const auto& row : *rows) found.push_back(row[0].as<std::string>());
    return found;
  }

  Result<Done> recordCreated(const std::string& stream, Side side, const std::vector<std::string>& keys) override {
    return done(run(kRecordCreated, integration_, stream, std::string(toString(side)), keysJson(keys)));
  }

  Result<Done> recordDeleted(const std::string& stream, Side side, const std::vector<std::string>& keys) override {
    return done(run(kRecordDeleted, integration_, stream, std::string(toString(side)), keysJson(keys)));
  }

 private:
  template <class... Args>
  Result<pqxx::result> run(const char* sql, Args&&... args) {
    try {
      std::lock_guard lock(mutex_);
      pqxx::nontransaction tx(connection_);
      return tx.exec_params(sql, std::forward<Args>(args)...);
    } catch (const std::exception& error) {
      return pg::toError(error);
    }
  }

  static Result<Done> done(const Result<pqxx::result>& result) {
    if (!result) return result.error();
    return Done{};
  }

  pqxx::connection& connection_;
  std::mutex& mutex_;
  IntegrationId integration_;
  JobId job_;
  int attempt_;
};

Completion ended(const Job& job, Completion::Outcome outcome, std::string error, std::string result = {}) {
  return {job.id, job.attempt, outcome, std::move(result), std::move(error)};
}

/// How a failed sync ends the job: retry what may pass later, fail what cannot.
Completion::Outcome outcomeOf(const Error& error) {
  switch (error.code) {
    case Error::Code::Invalid:
    case Error::Code::Unauthorized: return Completion::Outcome::Failed;
    case Error::Code::Cancelled: return Completion::Outcome::Cancelled;
    case Error::Code::Unavailable:
    case Error::Code::Conflict:
    case Error::Code::Fenced:
    case Error::Code::Internal: return Completion::Outcome::Retry;
  }
  return Completion::Outcome::Retry;
}

void logPluginLine(syncpod_log_level level, std::string_view message) {
  switch (level) {
    case SYNCPOD_LOG_DEBUG: spdlog::debug("{}", message); break;
    case SYNCPOD_LOG_INFO: spdlog::info("{}", message); break;
    case SYNCPOD_LOG_WARN: spdlog::warn("{}", message); break;
    default: spdlog::error("{}", message); break;
  }
}

/// Appends `more` (a report of the same integration) to `report`.
void merge(SyncReport& report, SyncReport&& more) {
  for (auto& stream : more.streams) report.streams.push_back(std::move(stream));
  for (auto& change : more.failures) report.failures.push_back(std::move(change));
  for (auto& change : more.planned) report.planned.push_back(std::move(change));
  report.failures_not_listed += more.failures_not_listed;
  report.planned_not_listed += more.planned_not_listed;
}

}  // namespace

struct SyncJobRunner::State {
  DatabaseTarget target;
  const PluginRegistry& plugins;
  JobEventOptions events;
};

SyncJobRunner::SyncJobRunner(DatabaseTarget target, const PluginRegistry& plugins,
                             JobEventOptions events)
    : state_(std::make_unique<State>(State{std::move(target), plugins, events})) {}

SyncJobRunner::~SyncJobRunner() = default;

Completion SyncJobRunner::run(const Job& job, const std::function<bool()>& cancelled) {
  const auto scope = jobLogScope(job.id, job.integration_id);
  std::unique_ptr<pqxx::connection> connection;
  try {
    connection = pg::connect(state_->target);
  } catch (const std::exception& error) {
    return ended(job, Completion::Outcome::Retry,
                 "cannot read the integration: " + pg::oneLine(error.what()));
  }
  // The job's statements and its event writer share the connection; the writer is destroyed
  // (its last events written) before the connection, and before the caller reports the end.
  std::mutex connection_mutex;
  job_events::Writer events(*connection, connection_mutex, job, state_->events);
  const Json started = {{"worker_id", job.worker_id ? Json(*job.worker_id) : Json(nullptr)},
                        {"pid", ::getpid()}};
  events.record("state", "info",
                "attempt " + std::to_string(job.attempt) + " of " +
                    std::to_string(job.max_attempts) + " started" +
                    (job.worker_id ? " on worker " + *job.worker_id : std::string()),
                started.dump());
  const auto log = [&events](syncpod_log_level level, std::string_view message) {
    logPluginLine(level, message);
    events.log(level, message);
  };

  Json config;
  try {
    std::lock_guard lock(connection_mutex);
    pqxx::nontransaction tx(*connection);
    const auto rows = tx.exec_params(kLoadIntegration, job.integration_id);
    if (rows.empty()) {
      return ended(job, Completion::Outcome::Failed, "integration " + std::to_string(job.integration_id) + " no longer exists");
    }
    if (!rows[0][0].as<bool>()) {
      return ended(job, Completion::Outcome::Failed, "integration " + std::to_string(job.integration_id) + " is disabled");
    }
    config = Json::parse(rows[0][1].as<std::string>());
  } catch (const std::exception& error) {
    return ended(job, Completion::Outcome::Retry, "cannot read the integration: " + pg::oneLine(error.what()));
  }

  const auto spec = parseIntegrationSpec(config);
  if (!spec) return ended(job, Completion::Outcome::Failed, spec.error().message);
  if (const auto problems = checkAgainstPlugins(*spec, state_->plugins); !problems.empty()) {
    std::string message = "the integration does not fit its plugins: ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i].text();
    return ended(job, Completion::Outcome::Failed, message);
  }

  CallHooks hooks;
  hooks.log = log;
  hooks.cancelled = cancelled;
  EndpointPtr endpoints[2];
  for (const Side side : {Side::Source, Side::Target}) {
    const auto& endpoint = spec->endpoint(side);
    auto opened = state_->plugins.find(endpoint.plugin)->open(endpoint.config, hooks);
    if (!opened) {
      return ended(job, outcomeOf(opened.error()),
                   std::string(toString(side)) + " endpoint: " + opened.error().message);
    }
    endpoints[side == Side::Source ? 0 : 1] = std::move(*opened);
  }

  const Json payload = Json::parse(job.payload_json.empty() ? "{}" : job.payload_json, nullptr, false);
  const bool plan = payload.is_object() && payload.value("plan", false);
  std::vector<SyncRequest> requests;
  if (job.kind == JobKind::Full) {
    requests.push_back({SyncRequest::Scope::Full, {}, ApplyMode::Commit});
  } else if (payload.is_object()) {
    if (const auto keys = payload.find("keys"); keys != payload.end() && keys->is_array() && !keys->empty()) {
      SyncRequest request{SyncRequest::Scope::Keys, {}, ApplyMode::Commit};
      for (const auto& key : *keys) {
        if (key.is_string()) request.keys.push_back(key.get<std::string>());
      }
      requests.push_back(std::move(request));
    }
    if (payload.value("incremental", false)) requests.push_back({SyncRequest::Scope::Incremental, {}, ApplyMode::Commit});
  }
  if (requests.empty()) {
    return ended(job, Completion::Outcome::Failed, "the partial job names no keys and is not incremental");
  }

  PgSyncState sync_state(*connection, connection_mutex, job);
  SyncHooks sync_hooks;
  sync_hooks.cancelled = cancelled;
  sync_hooks.log = log;
  sync_hooks.progress = [&events](const SyncProgress& totals) { events.progress(totals); };
  SyncEngine engine(*spec, *endpoints[0], *endpoints[1], sync_state, sync_hooks);
  // The totals start from zero: an attempt after a retry does not show the last one's.
  events.progress(SyncProgress{});

  SyncReport report;
  for (auto& request : requests) {
    if (plan) request.mode = ApplyMode::Plan;
    auto result = engine.run(request);
    if (!result) {
      spdlog::warn("sync failed: {}", result.error().message);
      return ended(job, outcomeOf(result.error()), result.error().message, report.toJson().dump(-1, ' ', false, Json::error_handler_t::replace));
    }
    merge(report, std::move(*result));
  }
  Json result = report.toJson();
  result["mode"] = plan ? "plan" : "commit";
  if (report.worthRetrying()) {
    spdlog::warn("sync finished with changes to retry");
    return ended(job, Completion::Outcome::Retry, "some changes were answered retryable or conflict", result.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  spdlog::info("sync finished");
  return ended(job, Completion::Outcome::Succeeded, {}, result.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace syncpod::core
