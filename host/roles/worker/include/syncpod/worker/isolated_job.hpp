#pragma once

#include <functional>
#include <string>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/job_events.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::worker {

/// What a worker with process isolation tells the child that runs one job.
struct IsolatedJob {
  core::JobId id = 0;
  int attempt = 0;
  core::WorkerId worker;
  int worker_pid = 0;  ///< the child ends when this process does
};

/// The child's side of process isolation (`syncpod run-job`): checks that the job is still
/// running under the worker and attempt, runs it with the sync job runner, and writes its
/// Completion to file descriptor 3, where the worker reads it. `cancelled` turns true when the
/// worker asks the job to stop (SIGTERM); `events` says how it records its events. Returns the
/// exit code: 0 when a result was written.
int runIsolatedJob(const core::DatabaseTarget& target, const core::PluginRegistry& plugins,
                   const IsolatedJob& job, const std::function<bool()>& cancelled,
                   const core::JobEventOptions& events);

}  // namespace syncpod::worker
