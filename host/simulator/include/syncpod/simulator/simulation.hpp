#pragma once
// `syncpod simulate`: the singleton, KEDA and the workers as a discrete-event simulation. The
// singleton's count is core::desiredPodCount and KEDA's decision core::decideScaledJob, the
// functions the real singleton and `syncpod scaler` call. docs/autoscaling.md.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/scaled_job.hpp"
#include "syncpod/core/scaling.hpp"
#include "syncpod/simulator/workload.hpp"

namespace syncpod::simulator {

/// The settings of the system being simulated; the names are those of the real settings.
struct SimulationOptions {
  /// scaling_policy, worker_capacity (also the workers' capacity), minimum_active_workers.
  core::ScalingSettings scaling;
  /// keda_polling_interval and the scaler_* settings: minReplicaCount, maxReplicaCount, ...
  core::ScaledJobSettings scaled_job{std::chrono::seconds(15), 0, 10};
  std::chrono::milliseconds scale_interval{std::chrono::seconds(5)};
  std::chrono::milliseconds active_period{std::chrono::minutes(30)};
  std::chrono::milliseconds terminating_grace{std::chrono::seconds(25)};
  /// From KEDA creating a worker's Job to the worker registering (scheduling, image, start).
  std::chrono::milliseconds pod_start{std::chrono::seconds(20)};
  /// Time-series resolution.
  std::chrono::milliseconds sample_interval{std::chrono::seconds(60)};
  /// At most this many samples: a run that goes on past them (one that does not drain, say)
  /// keeps every other sample and samples half as often from then on, as often as needed.
  std::size_t max_samples = 1000000;
  /// Simulate at least until then (or the last arrival, if later: horizonOf()), and on until
  /// every job has finished.
  SimTime horizon{std::chrono::hours(24)};
  /// Stop this long after the horizon even with jobs left (settings that never start a worker).
  std::chrono::milliseconds give_up_after{std::chrono::hours(24 * 7)};
};

/// Where a worker pod is. A pod counts for KEDA from creation to exit; the singleton counts it
/// (as INACTIVE/ACTIVE or RETIRED) only from registering until it goes TERMINATING.
enum class PodState {
  Starting = 1,  ///< created by KEDA, not registered yet
  Active,        ///< claims jobs (INACTIVE lasts no time here)
  Retired,       ///< claims nothing, finishes its jobs
  Terminating,   ///< waits terminating_grace
  Exited,        ///< TERMINATED, the Job complete
};

/// One worker pod's life; a time is unset when the pod had not got there when the run ended.
struct PodLife {
  SimTime created{0};
  std::optional<SimTime> ready;  ///< registered and ACTIVE
  std::optional<SimTime> retired;
  std::optional<SimTime> terminating;
  std::optional<SimTime> exited;
  int jobs_run = 0;
};

/// What became of one job of the workload.
struct JobOutcome {
  /// When it could first start: arrived, and nothing of its integration running. From then on
  /// it waits for a worker only.
  std::optional<SimTime> runnable;
  std::optional<SimTime> started;
  std::optional<SimTime> ended;
  int pod = -1;  ///< index into SimulationResult::pods
};

/// The state at one instant, after everything that happened at it.
struct Sample {
  SimTime time{0};
  int desired_pod_count = 0;  ///< as last computed by the singleton
  /// KEDA's maxScale at its last poll: the unfinished pods it starts new ones up to (while its
  /// trigger is active), as decideScaledJob computed it.
  int keda_max_scale = 0;
  int pods = 0;  ///< unfinished pods (what KEDA counts)
  int starting = 0;
  int active = 0;
  int retired = 0;
  int terminating = 0;
  int queued_jobs = 0;    ///< every queued job
  int runnable_jobs = 0;  ///< queued jobs that could start now: the singleton's queued_jobs
  int running_jobs = 0;
};

struct SimulationResult {
  SimulationOptions options;
  std::vector<JobOutcome> jobs;  ///< in the workload's order
  std::vector<PodLife> pods;     ///< in order of creation
  std::vector<Sample> samples;   ///< every `sample_interval` from 0 up to `end`
  /// options.sample_interval, or a power-of-two multiple of it when max_samples thinned them.
  std::chrono::milliseconds sample_interval{0};
  /// horizonOf() the workload: the same for every policy, so figures cut there compare.
  SimTime horizon{0};
  /// Where the run stopped: the horizon, or the end of the last job if later.
  SimTime end{0};
  bool complete = false;  ///< every job finished (false only when it gave up)
  int peak_pods = 0;      ///< most unfinished pods at once
  int peak_desired_pod_count = 0;
  int peak_running_jobs = 0;
  std::int64_t singleton_ticks = 0;
  std::int64_t keda_polls = 0;
};

/// Runs `workload` on simulated time. Deterministic: the same inputs give the same result.
///
/// At one instant, events run in this order: workers whose active period ends retire (the real
/// worker checks its period before it claims), then workers' other events (a pod registers, a
/// job ends, a worker exits), the singleton's tick, KEDA's poll, job arrivals, the sample. So the
/// singleton and KEDA see a job arriving at their instant only at their next one, as the
/// singleton's cron jobs, enqueued after the count is written, are seen at its next tick.
/// Whenever a job arrives or a slot or lane frees, ACTIVE workers claim queued jobs at once
/// (the real workers wake on NOTIFY): oldest worker first, jobs first come first served, at
/// most one running job per integration. Throws std::invalid_argument for an interval or period
/// that is not above 0 (pod start and grace may be 0), or max_samples below 2.
SimulationResult simulate(const Workload& workload, const SimulationOptions& options);

/// Where a run of `workload` simulates at least until: options.horizon, or the last arrival if
/// later, so that no job arrives after the run gave up.
SimTime horizonOf(const Workload& workload, const SimulationOptions& options);

}  // namespace syncpod::simulator
