#pragma once
// What the simulator runs: jobs with an arrival time, a duration and an integration, read from
// a trace or generated. docs/autoscaling.md.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syncpod/core/errors.hpp"

namespace syncpod::simulator {

/// Simulated time: the offset from 00:00 of the first simulated day. No wall clock is involved.
using SimTime = std::chrono::milliseconds;

/// One job to run.
struct SimJob {
  SimTime arrival{0};   ///< when it is enqueued (due at once)
  SimTime duration{0};  ///< how long it runs once claimed; above 0
  /// Jobs of one integration never run at once (the queue's lanes).
  std::int64_t integration = 0;
  bool burst = false;  ///< part of a burst whose start-up the report measures
};

/// Jobs in order of arrival (ties keep their order), and what they are, for titles and reports.
struct Workload {
  std::vector<SimJob> jobs;
  std::string description;
};

/// A trace that cannot be read; the message names the file and line.
class TraceError : public core::StartupError {
 public:
  using core::StartupError::StartupError;
};

/// Reads a trace: CSV with a header `arrival_s,duration_s` or `arrival_s,duration_s,integration`,
/// then one job per line (seconds as decimals, integration a positive integer). A UTF-8 byte
/// order mark, blank lines and lines starting with '#' are skipped. Without an integration column
/// every job has its own. Jobs arriving in [burst_at, burst_at + 1 min) of any day are marked as
/// the burst when `burst_at` is given. `name` is used in messages. Throws TraceError naming `name`
/// and the line.
Workload parseTrace(std::istream& in, const std::string& name,
                    std::optional<SimTime> burst_at = std::nullopt);
/// parseTrace() on a file; TraceError also when it cannot be opened.
Workload readTrace(const std::string& path, std::optional<SimTime> burst_at = std::nullopt);

/// Writes `workload` as a trace parseTrace() reads back (with the integration column).
void writeTrace(std::ostream& out, const Workload& workload);

/// A day as the field report describes it, repeated `days` times.
struct GeneratorOptions {
  int days = 1;
  int burst_jobs = 0;                        ///< a cron wave: all at burst_at, one per integration
  SimTime burst_at = std::chrono::hours(5);  ///< time of day of the wave
  int daytime_jobs = 0;                      ///< per day, a Poisson process in the daytime window
  SimTime daytime_from = std::chrono::hours(8);  ///< time of day
  SimTime daytime_to = std::chrono::hours(18);
  int night_jobs = 0;       ///< per day, a Poisson process outside the daytime window
  int integrations = 1000;  ///< daytime and night jobs pick one of this many integrations
  /// Log-normal durations: median and sigma of the underlying normal, clamped to [min, max].
  SimTime duration_median = std::chrono::minutes(10);
  double duration_sigma = 1.0;
  SimTime duration_min = std::chrono::seconds(5);
  SimTime duration_max = std::chrono::hours(6);
  std::uint64_t seed = 1;  ///< the same seed gives the same workload
};

/// The workload the options describe; deterministic for a seed (std::mt19937_64). A Poisson
/// process with a given number of arrivals places them uniformly at random in its window, so
/// the counts are exact. Throws core::ConfigError for options that make no sense.
Workload generateWorkload(const GeneratorOptions& options);

/// "05:00", "5:30", "29:00" (a later day): the offset from midnight; nullopt when malformed.
std::optional<SimTime> parseTimeOfDay(std::string_view text);
/// "05:00:00", or "1d 05:00:00" past the first day.
std::string formatTimeOfDay(SimTime time);

}  // namespace syncpod::simulator
