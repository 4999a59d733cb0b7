#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job_events.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::worker {

/// Where a job runs.
enum class Isolation {
  Thread = 1,  ///< in the worker process: fastest start, but a crashing plugin ends the worker
  Process,     ///< in a child process of its own: a crash fails only that job
};

struct WorkerOptions {
  /// How long the worker claims jobs before it retires.
  std::chrono::milliseconds active_period{std::chrono::minutes(30)};
  /// How often it tells the queue it is alive and learns which of its jobs were cancelled.
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(5)};
  /// How often an idle ACTIVE worker looks for due jobs without a notification (jobs whose
  /// retry delay passed, notifications lost across a reconnect).
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  /// How long it stays TERMINATING before it exits, so the singleton lowers
  /// desired_pod_count before KEDA sees the worker end.
  std::chrono::milliseconds terminating_grace{std::chrono::seconds(25)};
  /// Whether a worker retired by a signal still waits out terminating_grace. False when no
  /// KEDA counts the worker (`serve --role=all`): nobody needs the grace then.
  bool grace_after_signal = true;
  /// After SIGTERM: how long running jobs may go on before they are handed back.
  std::chrono::milliseconds drain_deadline{std::chrono::seconds(60)};
  /// A job asked to stop (cancelled, handed back) that is still running this much later is
  /// killed (process isolation) or abandoned to the worker's exit (thread isolation).
  std::chrono::milliseconds stop_grace{std::chrono::seconds(10)};
  /// A worker that could not heartbeat for this long stops its jobs itself: the queue's rescue
  /// has given them, or is about to give them, to another worker.
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
  /// Jobs run at once.
  int capacity = 1;
  Isolation isolation = Isolation::Process;
  /// How jobs record their events. Thread isolation only: a job's process reads its own from
  /// the settings in child_environment.
  core::JobEventOptions events;

  // Process isolation only.
  /// The syncpod executable that runs `syncpod run-job` in each child.
  std::string executable;
  /// Settings for the child (SYNCPOD_DATABASE_URL, SYNCPOD_PLUGIN_PATH, …), added to the
  /// worker's own environment. They may hold secrets: they travel in the environment, never on
  /// a command line others can read.
  std::map<std::string, std::string> child_environment;

  // Written into worker_lifecycle.
  std::string version;
};

/// One worker: registers, claims and runs jobs while ACTIVE, then retires, drains, waits out
/// its terminating grace and ends (docs/worker.md):
///
///   INACTIVE → ACTIVE → RETIRED → TERMINATING → TERMINATED
///
/// Every transition is recorded in worker_lifecycle. run() blocks until TERMINATED; retire()
/// may be called from any thread (a signal handler's thread).
class Worker {
 public:
  /// Connects to the queue at once; throws core::DatabaseUnavailable when it cannot, and
  /// core::ConfigError when thread isolation is asked for without `plugins`, which must then
  /// outlive the worker.
  Worker(core::DatabaseTarget target, WorkerOptions options, const core::PluginRegistry* plugins);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Runs the lifecycle to its end. Returns the process exit code: 0 at TERMINATED; 1 when the
  /// worker could not register or its row disappeared.
  int run();

  /// SIGTERM: retire now, stop claiming, hand back jobs still running at the drain deadline.
  /// A second call ends the terminating grace early; it never shortens the drain.
  void retire();

  /// True when run() ended while a job ignored the request to stop (thread isolation): its
  /// thread still runs, so the process must exit at once (std::_Exit), without destructors.
  bool abandonedJobs() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using WorkerPtr = std::unique_ptr<Worker>;

}  // namespace syncpod::worker
