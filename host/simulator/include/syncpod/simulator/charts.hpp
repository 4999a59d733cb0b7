#pragma once
// The time series of a run: as CSV, and as an SVG chart of the workers and the queue.

#include <iosfwd>
#include <optional>
#include <string>

#include "syncpod/simulator/simulation.hpp"

namespace syncpod::simulator {

/// Header `t_s,time,desired_pod_count,keda_max_scale,pods,starting,active,retired,terminating,
/// queued_jobs,runnable_jobs,running_jobs`, then one line per sample.
void writeTimeSeriesCsv(std::ostream& out, const SimulationResult& result);

struct ChartOptions {
  std::string title;
  std::string subtitle;  ///< lines separated by '\n'
  /// The part of the run to draw; the whole run by default.
  std::optional<SimTime> from;
  std::optional<SimTime> to;
};

/// A self-contained SVG (no scripts, no fonts to fetch): above, the worker pods stacked by state
/// with the count KEDA aims at, the maxScale of its last poll; below, the queued and the running
/// jobs. The time axis is labelled with the time of day.
void writeSvgChart(std::ostream& out, const SimulationResult& result, const ChartOptions& options);

}  // namespace syncpod::simulator
