#include "job_event_store.hpp"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "syncpod/core/logging.hpp"

namespace syncpod::core::job_events {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// $1 job, $2 attempt, $3 JSON array of events (ord, at_us, kind, level, message, data), $4
// the totals as a JSON object or NULL. One statement per write: the progress row and the
// events travel together. The events go in in their order, so their ids follow it.
constexpr const char* kWrite = R"SQL(
WITH progress AS (
  INSERT INTO job_progress (job_id, fetched, diffed, applied, failed)
  SELECT $1, (p ->> 'fetched')::bigint, (p ->> 'diffed')::bigint, (p ->> 'applied')::bigint,
         (p ->> 'failed')::bigint
  FROM (SELECT $4::jsonb AS p) AS totals WHERE p IS NOT NULL
  ON CONFLICT (job_id) DO UPDATE SET
    fetched = excluded.fetched, diffed = excluded.diffed, applied = excluded.applied,
    failed = excluded.failed, updated_at = now()
)
INSERT INTO job_events (job_id, attempt, at, kind, level, message, data)
SELECT $1, $2, 'epoch'::timestamptz + e.at_us * interval '1 microsecond', e.kind, e.level,
       e.message, e.data
FROM jsonb_to_recordset($3::jsonb) AS e(ord int, at_us bigint, kind text, level text,
                                        message text, data jsonb)
ORDER BY e.ord
)SQL";

/// A longer message is cut: an event is a line for people, not a place for documents.
constexpr std::size_t kMaxMessageBytes = 4096;

/// Progress events are at least this far apart, and at most kMaxProgressSpacing once the
/// attempt is old; in between, a hundredth of the attempt's age.
constexpr std::chrono::seconds kMinProgressSpacing{1};
constexpr std::chrono::seconds kMaxProgressSpacing{60};

bool same(const SyncProgress& a, const SyncProgress& b) {
  return a.fetched == b.fetched && a.diffed == b.diffed && a.applied == b.applied &&
         a.failed == b.failed;
}

Json totalsJson(const SyncProgress& totals) {
  return {{"fetched", totals.fetched},
          {"diffed", totals.diffed},
          {"applied", totals.applied},
          {"failed", totals.failed}};
}

/// The message as it is stored: without NUL characters (which PostgreSQL text cannot hold)
/// and at most kMaxMessageBytes long, cut at a character boundary.
std::string storable(std::string_view message) {
  std::string text;
  text.reserve(std::min(message.size(), kMaxMessageBytes));
  for (const char c : message) {
    if (c != '\0') text.push_back(c);
    if (text.size() > kMaxMessageBytes) break;  // enough to know it is cut
  }
  if (text.size() > kMaxMessageBytes) {
    std::size_t cut = kMaxMessageBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    text += "…";
  }
  return text;
}

const char* levelName(syncpod_log_level level) {
  switch (level) {
    case SYNCPOD_LOG_INFO: return "info";
    case SYNCPOD_LOG_WARN: return "warn";
    default: return "error";
  }
}

}  // namespace

std::string readSql() {
  // An attempt's end is read from its job_attempts row (migration 0008); the message reads
  // like the attempt history: "attempt 2 ended: retry: <error>; job queued". A row without
  // job_state was written by a version before 0008 (also while one still runs beside a
  // migrated schema), which wrote the end as a job_events row itself.
  return "SELECT id, attempt, " + pg::epochMicros("at") + R"SQL(, kind, level, message, data
FROM ((SELECT id, attempt, at, kind, level, message, data::text
       FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3)
      UNION ALL
      SELECT a.event_id, a.attempt, a.finished_at, 'state',
             CASE WHEN a.outcome = 'succeeded' THEN 'info' WHEN a.job_state = 'failed' THEN 'error'
                  ELSE 'warn' END,
             'attempt ' || a.attempt || ' ended: ' || a.outcome || coalesce(': ' || a.error, '') ||
               CASE WHEN a.job_state <> a.outcome THEN '; job ' || a.job_state ELSE '' END,
             jsonb_build_object('outcome', a.outcome, 'state', a.job_state, 'error', a.error)::text
      FROM job_attempts a WHERE a.job_id = $1 AND a.event_id > $2 AND a.job_state IS NOT NULL) AS e
ORDER BY id LIMIT $3
)SQL";
}

JobEvent fromRow(const pqxx::row& row) {
  JobEvent event;
  event.id = row[0].as<JobEventId>();
  event.attempt = row[1].as<int>();
  event.at = pg::fromEpochMicros(row[2].as<long long>());
  event.kind = row[3].as<std::string>();
  event.level = row[4].as<std::string>();
  event.message = row[5].as<std::string>();
  if (!row[6].is_null()) event.data_json = row[6].as<std::string>();
  return event;
}

std::string deleteForJobsSql(std::string_view jobs) {
  return "DELETE FROM job_events WHERE job_id IN (" + std::string(jobs) + ")";
}

// --- Writer ------------------------------------------------------------------------------
// Nothing here may throw into the job: the hooks that call it run inside plugin calls, which an
// exception would fail, and an exception leaving the thread would end the process. A job that
// runs out of memory (job_memory_limit) is where that happens: what cannot be kept is dropped.

Writer::Writer(pqxx::connection& connection, std::mutex& connection_mutex, const Job& job,
               JobEventOptions options)
    : connection_(connection),
      connection_mutex_(connection_mutex),
      job_(job.id),
      integration_(job.integration_id),
      attempt_(job.attempt),
      options_(options) {
  thread_ = std::thread([this] { loop(); });
}

Writer::~Writer() {
  finish();
}

void Writer::record(std::string_view kind, std::string_view level, std::string_view message,
                    std::string data_json) {
  try {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    pending_.push_back({Clock::now(), std::string(kind), std::string(level), storable(message),
                        std::move(data_json)});
  } catch (...) {
  }
}

void Writer::log(syncpod_log_level level, std::string_view message) {
  if (level < SYNCPOD_LOG_INFO) return;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  if (log_lines_ >= options_.max_log_lines) {
    ++log_lines_dropped_;
    return;
  }
  try {
    pending_.push_back({Clock::now(), "log", levelName(level), storable(message), {}});
    ++log_lines_;
  } catch (...) {
    ++log_lines_dropped_;
  }
}

void Writer::progress(const SyncProgress& totals) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  totals_ = totals;
  last_totals_ = totals;
}

void Writer::finish() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    std::lock_guard lock(mutex_);
    finished_ = true;
    if (!same(last_totals_, evented_totals_)) addProgressEvent(Clock::now());
    if (log_lines_dropped_ > 0) {
      pending_.push_back(
          {Clock::now(), "log", "warn",
           std::to_string(log_lines_dropped_) +
               " more log line(s) of this attempt were not stored: at most " +
               std::to_string(options_.max_log_lines) +
               " are kept per attempt (setting job_event_log_lines)",
           Json{{"dropped", log_lines_dropped_}, {"limit", options_.max_log_lines}}.dump()});
    }
  } catch (...) {
  }
  write(true);
}

void Writer::loop() {
  const auto scope = jobLogScope(job_, integration_);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.flush_interval, [this] { return stopping_; });
    if (stopping_) break;
    // A progress event when the totals moved and the last one is old enough for the attempt's
    // age: a watcher sees them every second at first, a long sync does not fill the table.
    const auto now = SteadyClock::now();
    const SteadyClock::duration spacing = std::min<SteadyClock::duration>(
        std::max<SteadyClock::duration>((now - started_) / 100, kMinProgressSpacing),
        kMaxProgressSpacing);
    if (!same(last_totals_, evented_totals_) &&
        (!last_progress_event_ || now - *last_progress_event_ >= spacing)) {
      try {
        addProgressEvent(Clock::now());
      } catch (...) {
      }
    }
    lock.unlock();
    write(false);
    lock.lock();
  }
}

void Writer::addProgressEvent(TimePoint at) {
  const auto& t = last_totals_;
  pending_.push_back({at, "progress", "info",
                      "fetched " + std::to_string(t.fetched) + ", diffed " +
                          std::to_string(t.diffed) + ", applied " + std::to_string(t.applied) +
                          ", failed " + std::to_string(t.failed),
                      totalsJson(t).dump()});
  evented_totals_ = last_totals_;
  last_progress_event_ = SteadyClock::now();
}

void Writer::write(bool last) {
  std::vector<Event> events;  // swapped, never copied: taking the batch cannot fail
  std::optional<SyncProgress> totals;
  {
    std::lock_guard lock(mutex_);
    events.swap(pending_);
    totals = std::exchange(totals_, std::nullopt);
  }
  if (events.empty() && !totals) return;

  std::optional<Error> failure;
  try {
    Json rows = Json::array();
    int ord = 0;
    for (const auto& event : events) {
      Json row = {{"ord", ord++},
                  {"at_us", pg::toEpochMicros(event.at)},
                  {"kind", event.kind},
                  {"level", event.level},
                  {"message", event.message}};
      if (!event.data_json.empty()) row["data"] = Json::parse(event.data_json, nullptr, false);
      rows.push_back(std::move(row));
    }
    const auto rows_text = pg::jsonText(rows);
    const auto totals_text =
        totals ? std::optional<std::string>(pg::jsonText(totalsJson(*totals))) : std::nullopt;
    std::lock_guard lock(connection_mutex_);
    pqxx::nontransaction tx(connection_);
    tx.exec_params(kWrite, job_, attempt_, rows_text, totals_text);
    return;
  } catch (const std::exception& error) {
    failure = pg::toError(error);
  } catch (...) {
    failure = Error{Error::Code::Internal, "unknown error"};
  }
  try {
    // Unreachable now, perhaps not at the next write: keep the batch for it (the cap on log
    // lines bounds what waits). Anything else would fail again: drop it.
    const bool keep = failure->code == Error::Code::Unavailable && !last;
    std::lock_guard lock(mutex_);
    if (!warned_) {
      warned_ = true;
      spdlog::warn(
          "job {} attempt {}: cannot store its events and progress ({}); the job goes on "
          "without them{}",
          job_, attempt_, failure->message, keep ? ", they are tried again" : "");
    }
    if (keep) {
      events.insert(events.end(), std::make_move_iterator(pending_.begin()),
                    std::make_move_iterator(pending_.end()));
      pending_.swap(events);
      if (!totals_) totals_ = totals;
    }
  } catch (...) {
  }
}

}  // namespace syncpod::core::job_events
