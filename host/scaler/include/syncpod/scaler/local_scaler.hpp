#pragma once
// `syncpod scaler`: KEDA's ScaledJob on one machine. Every polling interval it reads the
// trigger's value and starts worker processes as KEDA would start worker Jobs; it never stops
// one, except a worker past activeDeadlineSeconds. docs/autoscaling.md.

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"
#include "syncpod/core/scaled_job.hpp"

namespace syncpod::scaler {

/// How one worker is started: `executable` with `arguments` (argv[1..]), in the scaler's
/// environment with `environment` added or replaced (settings and secrets travel there, never
/// on the command line).
struct WorkerCommand {
  std::string executable;
  std::vector<std::string> arguments;
  std::map<std::string, std::string> environment;
};

struct ScalerOptions {
  core::ScaledJobSettings scaled_job;
  /// After SIGTERM, how long a worker stopped for its deadline (or by stop()) has before
  /// SIGKILL: the pod's terminationGracePeriodSeconds.
  std::chrono::milliseconds termination_grace{std::chrono::seconds(30)};
};

/// A worker that ended, as a finished Job in the ScaledJob's history.
struct WorkerExit {
  pid_t pid = 0;
  core::TimePoint started;
  core::TimePoint ended;
  bool succeeded = false;  ///< exited 0
  std::string how;         ///< "exited 0", "exited 3", "killed by SIGKILL", "DeadlineExceeded: …"
};

/// What one tick did; also logged as one line.
struct TickReport {
  core::ScaledJobDecision decision;
  int unfinished = 0;  ///< before starting
  int started = 0;
  std::string error;   ///< why there was no value, or why a start failed
};

/// Not thread-safe: one thread calls tick() and reap().
class LocalScaler {
 public:
  /// Reads the trigger: the first column of the first row, nullopt for NULL or no row.
  using ValueSource = std::function<core::Result<std::optional<double>>()>;

  LocalScaler(ScalerOptions options, WorkerCommand command, ValueSource value);
  /// Stops what still runs (stop()).
  ~LocalScaler();
  LocalScaler(const LocalScaler&) = delete;
  LocalScaler& operator=(const LocalScaler&) = delete;

  /// One polling interval: reap, stop workers past the deadline, read the value, start workers.
  TickReport tick();

  /// Collects ended workers into the history and sends SIGKILL where a SIGTERM's grace ran
  /// out. Cheap; call it often between ticks.
  void reap();

  /// SIGTERM to every unfinished worker, SIGKILL to those still there after the grace; returns
  /// once all have ended.
  void stop();

  /// Workers started and not ended, whatever their state.
  int unfinished() const { return static_cast<int>(running_.size()); }
  /// The last exits per outcome, at most the history limits, oldest first.
  const std::deque<WorkerExit>& succeeded() const { return succeeded_; }
  const std::deque<WorkerExit>& failed() const { return failed_; }

 private:
  struct Running {
    pid_t pid = 0;
    core::TimePoint started;
    std::optional<core::TimePoint> kill_at;  ///< set once SIGTERM was sent
    bool killed = false;                     ///< SIGKILL sent
    std::string stop_reason;                 ///< why it was stopped, "" when it ended by itself
  };

  pid_t spawn(std::string& error) const;
  void terminate(Running& worker, std::string reason);
  void record(const Running& worker, int status);

  ScalerOptions options_;
  WorkerCommand command_;
  ValueSource value_;
  std::vector<Running> running_;
  std::deque<WorkerExit> succeeded_;
  std::deque<WorkerExit> failed_;
};

}  // namespace syncpod::scaler
