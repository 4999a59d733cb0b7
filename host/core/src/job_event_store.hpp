#pragma once
// Private to host/core: every statement on job_events (job_event_store.cpp), and the writer a
// job's runner records its events and progress with.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pg.hpp"
#include "syncpod/core/job_events.hpp"
#include "syncpod/core/sync/sync_engine.hpp"

namespace syncpod::core::job_events {

/// $1 job, $2 after (an event id), $3 limit → the job's events in id order: id, attempt, at
/// (epoch microseconds), kind, level, message, data (text or NULL). Prepared by JobQueue. The
/// end of each attempt comes from its job_attempts row, which the queue's completion and
/// rescue statements write with the job's new state: visible together, whatever ended it.
std::string readSql();
JobEvent fromRow(const pqxx::row& row);

/// The body of a CTE that deletes the events of the jobs whose ids `jobs` (a SELECT) yields.
std::string deleteForJobsSql(std::string_view jobs);

/// Records one attempt of a job: its events (job_events) and its progress totals
/// (job_progress), buffered and written by a thread of its own every flush_interval, one
/// statement per write, and once more by finish(). The job never waits for these writes
/// beyond the lock on the connection it shares with them, and never sees them fail: a failed
/// write is logged once per attempt; a batch is kept for the next write while the database is
/// unreachable and dropped when the database refused it.
///
/// Log lines below info are not stored; those past options.max_log_lines are counted and the
/// count is stored by finish(). Progress events follow the totals at most once a second at
/// first, and further apart as the attempt gets older (a hundredth of its age, at most a
/// minute apart), so a six-hour sync stores hundreds of them, not tens of thousands; the
/// job_progress row follows every change at each write.
///
/// Every method may be called from any thread, and none throws: an event that cannot be kept
/// (the job ran out of memory) is dropped.
class Writer {
 public:
  /// `connection` is shared with the job's own statements: every use of it, here and by the
  /// caller, holds `connection_mutex`. Both must outlive the Writer.
  Writer(pqxx::connection& connection, std::mutex& connection_mutex, const Job& job,
         JobEventOptions options);
  ~Writer();  ///< finish()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /// An event of kind `kind` (state, progress or log) at level info, warn or error; `data`
  /// is a JSON object or empty. Not counted against max_log_lines.
  void record(std::string_view kind, std::string_view level, std::string_view message,
              std::string data_json = {});
  /// A log line of a plugin or of the sync engine; debug lines are ignored.
  void log(syncpod_log_level level, std::string_view message);
  /// The sync's totals so far.
  void progress(const SyncProgress& totals);

  /// Stops the thread and writes what is left: the last totals and the count of the log lines
  /// not stored. Later calls do nothing.
  void finish();

 private:
  struct Event {
    TimePoint at;
    std::string kind;
    std::string level;
    std::string message;
    std::string data_json;
  };

  void loop();
  /// Takes what is due under the buffer lock and writes it; `last`: finish()'s write.
  void write(bool last);
  void addProgressEvent(TimePoint at);

  pqxx::connection& connection_;
  std::mutex& connection_mutex_;
  const JobId job_;
  const IntegrationId integration_;
  const int attempt_;
  const JobEventOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex mutex_;  // everything below
  std::condition_variable wake_;
  bool stopping_ = false;
  bool finished_ = false;
  std::vector<Event> pending_;
  int log_lines_ = 0;
  std::int64_t log_lines_dropped_ = 0;
  std::optional<SyncProgress> totals_;  ///< the latest totals not yet in job_progress
  SyncProgress last_totals_;            ///< the latest totals
  SyncProgress evented_totals_;         ///< the totals of the last progress event
  std::optional<std::chrono::steady_clock::time_point> last_progress_event_;
  bool warned_ = false;
  std::thread thread_;
};

}  // namespace syncpod::core::job_events
