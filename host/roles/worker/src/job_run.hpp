#pragma once
// Private to the worker role: one claimed job running in a thread or a child process.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/job_events.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::worker {

/// Why the worker asked a running job to stop. The first reason given wins.
enum class StopReason {
  None = 0,
  Cancelled,  ///< cancellation was requested through the queue
  HandBack,   ///< the worker is draining and the drain deadline passed
  LeaseLost,  ///< the worker could not heartbeat for (almost) its lease
  NotHeld,    ///< the queue no longer holds the job under this worker (rescued)
  Deadline,   ///< the attempt reached its deadline (the job's max_runtime)
};

/// One job between its claim and its completion. The job runs on a thread of its own; the
/// worker's loop asks it to stop and collects its Completion once finished() is true.
/// Every method may be called from the worker's loop while the job runs.
class JobRun {
 public:
  virtual ~JobRun();
  JobRun(const JobRun&) = delete;
  JobRun& operator=(const JobRun&) = delete;

  const core::Job& job() const { return job_; }
  /// When the attempt reaches its deadline (the job's max_runtime from its claim), on this
  /// machine's steady clock: the worker and the database need not agree on the time of day.
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }

  /// Asks the job to stop; it notices at its plugin's next cancellation check.
  void stop(StopReason reason);
  StopReason stopReason() const { return stop_reason_.load(); }
  /// When stop() was first called (steady clock), if it was.
  std::optional<std::chrono::steady_clock::time_point> stoppedAt() const;

  bool finished() const { return finished_.load(); }
  /// The Completion to report, its outcome adjusted to why the job was stopped (a job stopped
  /// for the drain deadline is handed back, not cancelled). Only once finished().
  core::Completion completion() const;

  /// Lets the worker exit while this job still runs (thread isolation, a plugin that ignores
  /// cancellation): the thread is detached instead of joined.
  void abandon();

  /// Starts execute() on the job's thread; the factories below call it once constructed.
  void start();

 protected:
  /// `on_finished` is called from the job's thread when it ends (it wakes the worker's loop).
  JobRun(core::Job job, std::function<void()> on_finished);
  /// Runs the job to its end; `stopRequested()` says when to stop early.
  virtual core::Completion execute() = 0;
  bool stopRequested() const { return stop_reason_.load() != StopReason::None; }

 private:
  core::Job job_;
  std::chrono::steady_clock::time_point deadline_;
  std::function<void()> on_finished_;
  std::atomic<StopReason> stop_reason_{StopReason::None};
  std::atomic<bool> finished_{false};
  mutable std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> stopped_at_;
  core::Completion completion_;
  std::thread thread_;
};

using JobRunPtr = std::unique_ptr<JobRun>;

/// Runs the job in this process with the sync job runner.
JobRunPtr startThreadJobRun(core::Job job, std::function<void()> on_finished,
                            const core::DatabaseTarget& target, const core::PluginRegistry& plugins,
                            const core::JobEventOptions& events);

/// How a child process runs a job: `<executable> run-job <job id> <attempt> <worker id>
/// <worker pid>` with `environment` added to the worker's own.
struct ChildCommand {
  std::string executable;
  std::map<std::string, std::string> environment;
  std::string worker_id;
  /// After the child was asked to stop (SIGTERM), how long before it is killed (SIGKILL).
  std::chrono::milliseconds stop_grace{std::chrono::seconds(10)};
};

/// Runs the job in a child process. A child that crashes, is killed or exits without a result
/// yields a Retry completion whose error names the signal or the exit status.
JobRunPtr startProcessJobRun(core::Job job, std::function<void()> on_finished,
                             const ChildCommand& command);

}  // namespace syncpod::worker
