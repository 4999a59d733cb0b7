#pragma once

#include <functional>
#include <memory>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/job_events.hpp"

namespace syncpod::core {

class PluginRegistry;

/// Runs sync jobs, one at a time per runner: reads the job's integration, checks its config
/// against the plugins, opens both endpoints, runs the sync engine, keeps the integration's
/// sync state (cursors, records it created) and the job's progress in PostgreSQL, and says how
/// the job ended. Workers run one runner per slot.
///
/// Each run records the attempt's events (job_events): its start, the progress totals, and
/// the log lines of the plugins and the engine at info and above, secrets replaced by "***".
/// They are written in the background in batches (JobEventOptions), the last of them before
/// run() returns; failing to write them never fails the job. The attempt's end is recorded
/// by the queue when the caller reports the Completion.
///
/// The job's payload decides what runs: a full job syncs everything; a partial job syncs its
/// "keys", then, if "incremental", what the source changed since its cursor; "plan": true
/// (either kind) plans without writing.
class SyncJobRunner {
 public:
  SyncJobRunner(DatabaseTarget target, const PluginRegistry& plugins, JobEventOptions events = {});
  ~SyncJobRunner();
  SyncJobRunner(const SyncJobRunner&) = delete;
  SyncJobRunner& operator=(const SyncJobRunner&) = delete;

  /// Runs `job` (claimed by the caller) and returns its Completion, never throws:
  /// - Succeeded, with the sync report as the result;
  /// - Retry when something temporary failed (a foreign system or the database unavailable, a
  ///   plugin failing unexpectedly, changes answered retryable or conflict), the report so far
  ///   as the result;
  /// - Failed when retrying cannot help (bad integration config, unknown plugin, refused
  ///   credentials, integration gone or disabled);
  /// - Cancelled when `cancelled` turned true while it ran.
  Completion run(const Job& job, const std::function<bool()>& cancelled);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace syncpod::core
