#pragma once
// The figures of one simulated run, and the table `syncpod simulate` prints.

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/simulator/simulation.hpp"
#include "syncpod/simulator/workload.hpp"

namespace syncpod::simulator {

/// One run in figures; times in seconds.
struct Summary {
  std::string policy;
  int jobs = 0;
  int finished = 0;
  /// Jobs no worker claimed before the run gave up. The waits count them as waiting until the
  /// end of the run, so with any, the wait figures are lower bounds.
  int never_started = 0;
  double wait_p50_s = 0;  ///< queue wait: from arrival to claim, nearest-rank percentiles
  double wait_p95_s = 0;
  double wait_max_s = 0;
  double wait_mean_s = 0;
  /// The part of the wait the autoscaler answers for: from the moment nothing of its
  /// integration ran any more (or arrival) until claimed; 0 for a job that never got there.
  double worker_wait_p50_s = 0;
  double worker_wait_p95_s = 0;
  double worker_wait_max_s = 0;
  int burst_jobs = 0;
  /// The slowest day's burst: from its first job's arrival until its last job started; unset
  /// without a burst or when a burst job never started.
  std::optional<double> burst_started_after_s;
  /// The longest a burst job waited for a worker, which leaves out time spent behind a job of
  /// its own integration; unset as burst_started_after_s is.
  std::optional<double> burst_worker_wait_max_s;
  int peak_pods = 0;  ///< most unfinished worker pods at once
  int peak_desired_pod_count = 0;
  int peak_running_jobs = 0;
  int pods_started = 0;
  /// Pod lifetimes, creation to exit (or the end of the run), up to the horizon: the same window
  /// for every policy.
  double pod_seconds = 0;
  /// The rest of those lifetimes, from the horizon to the end of the run, which differs by
  /// policy when jobs run past the horizon.
  double pod_seconds_after_horizon = 0;
  double busy_slot_seconds = 0;  ///< job run times up to the horizon
  double utilisation = 0;        ///< busy slot-seconds / (pod-seconds × capacity)
  double horizon_s = 0;          ///< SimulationResult::horizon
  double span_s = 0;             ///< simulated time: to the end of the run
  double wall_s = 0;             ///< real time the run took; set by the caller
};

Summary summarize(const Workload& workload, const SimulationResult& result);

/// The p-quantile (0 < p ≤ 1) by nearest rank of sorted values; 0 for none.
double percentile(const std::vector<double>& sorted, double p);

/// "0 s", "8.2 s", "4m 12s", "2h 05m".
std::string formatSeconds(double seconds);

/// One column per summary, one row per figure; below, a line for each run that gave up, with
/// how many of its jobs never finished and never started.
void printSummaries(std::ostream& out, const std::vector<Summary>& summaries);

}  // namespace syncpod::simulator
