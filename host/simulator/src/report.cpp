#include "syncpod/simulator/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <ostream>

namespace syncpod::simulator {
namespace {

double seconds(SimTime time) {
  return static_cast<double>(time.count()) / 1000.0;
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

/// How much of [from, to) lies in [window_from, window_to), in seconds.
double secondsWithin(SimTime from, SimTime to, SimTime window_from, SimTime window_to) {
  return seconds(std::max(std::min(to, window_to) - std::max(from, window_from), SimTime(0)));
}

/// Three decimals, 3.6 pod-seconds, so that short runs show too.
std::string podHours(double pod_seconds) {
  return fixed(pod_seconds / 3600, 3);
}

/// A burst figure: "-" without a burst, "never" when a burst job never started.
std::string burstFigure(const Summary& summary, const std::optional<double>& figure) {
  if (summary.burst_jobs == 0) return "-";
  return figure ? formatSeconds(*figure) : "never";
}

}  // namespace

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string formatSeconds(double value) {
  if (value < 0.05) return "0 s";
  if (value < 9.95) return fixed(value, 1) + " s";
  const auto whole = static_cast<long long>(std::llround(value));
  char text[64];
  if (whole < 60) {
    std::snprintf(text, sizeof text, "%lld s", whole);
  } else if (whole < 3600) {
    std::snprintf(text, sizeof text, "%lldm %02llds", whole / 60, whole % 60);
  } else {
    std::snprintf(text, sizeof text, "%lldh %02lldm", whole / 3600, whole / 60 % 60);
  }
  return text;
}

Summary summarize(const Workload& workload, const SimulationResult& result) {
  Summary summary;
  summary.policy = std::string(core::toString(result.options.scaling.policy));
  summary.jobs = static_cast<int>(workload.jobs.size());
  std::vector<double> waits;
  std::vector<double> worker_waits;
  waits.reserve(workload.jobs.size());
  worker_waits.reserve(workload.jobs.size());
  // Per day: the burst's first arrival and last start, or unset when one never started.
  std::map<std::int64_t, std::pair<SimTime, std::optional<SimTime>>> bursts;
  bool burst_unstarted = false;
  double burst_worker_wait_max = 0;
  for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
    const auto& job = workload.jobs[i];
    const auto& outcome = result.jobs[i];
    if (outcome.ended) ++summary.finished;
    if (!outcome.started) ++summary.never_started;
    // A job never claimed waited until the end of the run at least; leaving it out would make
    // a run that started fewer jobs look faster.
    const SimTime claimed = outcome.started.value_or(result.end);
    const double worker_wait = outcome.runnable ? seconds(claimed - *outcome.runnable) : 0;
    waits.push_back(seconds(claimed - job.arrival));
    worker_waits.push_back(worker_wait);
    if (outcome.started) {
      summary.busy_slot_seconds += secondsWithin(
          *outcome.started, outcome.ended.value_or(result.end), SimTime(0), result.horizon);
    }
    if (!job.burst) continue;
    ++summary.burst_jobs;
    if (!outcome.started) {
      burst_unstarted = true;
      continue;
    }
    burst_worker_wait_max = std::max(burst_worker_wait_max, worker_wait);
    const auto day = job.arrival / std::chrono::hours(24);
    auto [entry, fresh] = bursts.try_emplace(day, job.arrival, outcome.started);
    if (!fresh) {
      entry->second.first = std::min(entry->second.first, job.arrival);
      entry->second.second = std::max(*entry->second.second, *outcome.started);
    }
  }
  std::sort(waits.begin(), waits.end());
  summary.wait_p50_s = percentile(waits, 0.50);
  summary.wait_p95_s = percentile(waits, 0.95);
  summary.wait_max_s = waits.empty() ? 0 : waits.back();
  std::sort(worker_waits.begin(), worker_waits.end());
  summary.worker_wait_p50_s = percentile(worker_waits, 0.50);
  summary.worker_wait_p95_s = percentile(worker_waits, 0.95);
  summary.worker_wait_max_s = worker_waits.empty() ? 0 : worker_waits.back();
  if (!waits.empty()) {
    double total = 0;
    for (const double wait : waits) total += wait;
    summary.wait_mean_s = total / static_cast<double>(waits.size());
  }
  if (!bursts.empty() && !burst_unstarted) {
    double slowest = 0;
    for (const auto& [day, span] : bursts)
      slowest = std::max(slowest, seconds(*span.second - span.first));
    summary.burst_started_after_s = slowest;
    summary.burst_worker_wait_max_s = burst_worker_wait_max;
  }
  summary.peak_pods = result.peak_pods;
  summary.peak_desired_pod_count = result.peak_desired_pod_count;
  summary.peak_running_jobs = result.peak_running_jobs;
  summary.pods_started = static_cast<int>(result.pods.size());
  // Pods still alive when the run stopped count until then. Runs of different policies stop at
  // different times when jobs outlast the horizon, so the figure that compares them stops at
  // the horizon.
  for (const auto& pod : result.pods) {
    const SimTime exited = pod.exited.value_or(result.end);
    summary.pod_seconds += secondsWithin(pod.created, exited, SimTime(0), result.horizon);
    summary.pod_seconds_after_horizon +=
        secondsWithin(pod.created, exited, result.horizon, SimTime::max());
  }
  const double slot_seconds =
      summary.pod_seconds * std::max(result.options.scaling.worker_capacity, 1);
  summary.utilisation = slot_seconds > 0 ? summary.busy_slot_seconds / slot_seconds : 0;
  summary.horizon_s = seconds(result.horizon);
  summary.span_s = seconds(result.end);
  return summary;
}

void printSummaries(std::ostream& out, const std::vector<Summary>& summaries) {
  using Figure = std::function<std::string(const Summary&)>;
  struct Row {
    std::string label;
    Figure figure;
    bool shown = true;  ///< false for a row that would say nothing about these runs
  };
  const auto any = [&summaries](const std::function<bool(const Summary&)>& test) {
    return std::any_of(summaries.begin(), summaries.end(), test);
  };
  const bool some_never_started = any([](const Summary& s) { return s.never_started > 0; });
  const bool some_past_horizon = any([](const Summary& s) { return s.span_s > s.horizon_s; });
  const std::vector<Row> all_rows = {
      {"policy", [](const Summary& s) { return s.policy; }},
      {"jobs (finished)",
       [](const Summary& s) {
         return std::to_string(s.jobs) +
                (s.finished == s.jobs ? "" : " (" + std::to_string(s.finished) + ")");
       }},
      {"jobs never started", [](const Summary& s) { return std::to_string(s.never_started); },
       some_never_started},
      {"queue wait p50", [](const Summary& s) { return formatSeconds(s.wait_p50_s); }},
      {"queue wait p95", [](const Summary& s) { return formatSeconds(s.wait_p95_s); }},
      {"queue wait max", [](const Summary& s) { return formatSeconds(s.wait_max_s); }},
      {"queue wait mean", [](const Summary& s) { return formatSeconds(s.wait_mean_s); }},
      {"wait for a worker p50",
       [](const Summary& s) { return formatSeconds(s.worker_wait_p50_s); }},
      {"wait for a worker p95",
       [](const Summary& s) { return formatSeconds(s.worker_wait_p95_s); }},
      {"wait for a worker max",
       [](const Summary& s) { return formatSeconds(s.worker_wait_max_s); }},
      {"burst fully started after",
       [](const Summary& s) { return burstFigure(s, s.burst_started_after_s); }},
      {"burst wait for a worker max",
       [](const Summary& s) { return burstFigure(s, s.burst_worker_wait_max_s); }},
      {"peak workers (unfinished pods)",
       [](const Summary& s) { return std::to_string(s.peak_pods); }},
      {"peak desired_pod_count",
       [](const Summary& s) { return std::to_string(s.peak_desired_pod_count); }},
      {"peak running jobs", [](const Summary& s) { return std::to_string(s.peak_running_jobs); }},
      {"pods started", [](const Summary& s) { return std::to_string(s.pods_started); }},
      {"pod-hours to the horizon", [](const Summary& s) { return podHours(s.pod_seconds); }},
      {"pod-hours after the horizon",
       [](const Summary& s) { return podHours(s.pod_seconds_after_horizon); }, some_past_horizon},
      {"utilisation to the horizon",
       [](const Summary& s) { return fixed(100 * s.utilisation, 1) + " %"; }},
      {"simulated span", [](const Summary& s) { return formatSeconds(s.span_s); }},
      {"wall time", [](const Summary& s) { return fixed(s.wall_s * 1000, 0) + " ms"; }},
  };
  std::vector<Row> rows;
  std::copy_if(all_rows.begin(), all_rows.end(), std::back_inserter(rows),
               [](const Row& row) { return row.shown; });
  std::size_t label_width = 0;
  for (const auto& row : rows) label_width = std::max(label_width, row.label.size());
  std::vector<std::size_t> widths;
  for (const auto& summary : summaries) {
    std::size_t width = 0;
    for (const auto& row : rows) width = std::max(width, row.figure(summary).size());
    widths.push_back(width);
  }
  for (const auto& row : rows) {
    out << row.label << std::string(label_width - row.label.size(), ' ');
    for (std::size_t i = 0; i < summaries.size(); ++i) {
      const auto text = row.figure(summaries[i]);
      out << "  " << std::string(widths[i] - text.size(), ' ') << text;
    }
    out << '\n';
  }
  for (const auto& s : summaries) {
    if (s.finished == s.jobs) continue;
    const auto gave_up = formatTimeOfDay(SimTime(std::llround(s.span_s * 1000)));
    out << s.policy << ": " << s.jobs - s.finished << " job(s) never finished";
    if (s.never_started > 0) out << ", " << s.never_started << " of them never started,";
    out << " when the run gave up at " << gave_up;
    if (s.never_started > 0) {
      out << "; the queue waits count those as waiting until then, so they are lower bounds";
    }
    out << '\n';
  }
}

}  // namespace syncpod::simulator
