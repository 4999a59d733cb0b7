#include "syncpod/simulator/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
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
  for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
    const auto& job = workload.jobs[i];
    const auto& outcome = result.jobs[i];
    if (outcome.ended) ++summary.finished;
    if (outcome.started) {
      waits.push_back(seconds(*outcome.started - job.arrival));
      worker_waits.push_back(seconds(*outcome.started - outcome.runnable.value_or(job.arrival)));
      summary.busy_slot_seconds += seconds(outcome.ended.value_or(result.end) - *outcome.started);
    }
    if (!job.burst) continue;
    ++summary.burst_jobs;
    if (!outcome.started) {
      burst_unstarted = true;
      continue;
    }
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
  }
  summary.peak_pods = result.peak_pods;
  summary.peak_desired_pod_count = result.peak_desired_pod_count;
  summary.peak_running_jobs = result.peak_running_jobs;
  summary.pods_started = static_cast<int>(result.pods.size());
  for (const auto& pod : result.pods)
    summary.pod_seconds += seconds(pod.exited.value_or(result.end) - pod.created);
  const double slot_seconds =
      summary.pod_seconds * std::max(result.options.scaling.worker_capacity, 1);
  summary.utilisation = slot_seconds > 0 ? summary.busy_slot_seconds / slot_seconds : 0;
  summary.span_s = seconds(result.end);
  return summary;
}

void printSummaries(std::ostream& out, const std::vector<Summary>& summaries) {
  using Figure = std::function<std::string(const Summary&)>;
  const std::vector<std::pair<std::string, Figure>> rows = {
      {"policy", [](const Summary& s) { return s.policy; }},
      {"jobs (finished)",
       [](const Summary& s) {
         return std::to_string(s.jobs) +
                (s.finished == s.jobs ? "" : " (" + std::to_string(s.finished) + ")");
       }},
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
       [](const Summary& s) {
         if (s.burst_jobs == 0) return std::string("-");
         return s.burst_started_after_s ? formatSeconds(*s.burst_started_after_s)
                                        : std::string("never");
       }},
      {"peak workers (unfinished pods)",
       [](const Summary& s) { return std::to_string(s.peak_pods); }},
      {"peak desired_pod_count",
       [](const Summary& s) { return std::to_string(s.peak_desired_pod_count); }},
      {"peak running jobs", [](const Summary& s) { return std::to_string(s.peak_running_jobs); }},
      {"pods started", [](const Summary& s) { return std::to_string(s.pods_started); }},
      {"pod-hours", [](const Summary& s) { return fixed(s.pod_seconds / 3600, 1); }},
      {"utilisation", [](const Summary& s) { return fixed(100 * s.utilisation, 1) + " %"; }},
      {"simulated span", [](const Summary& s) { return formatSeconds(s.span_s); }},
      {"wall time", [](const Summary& s) { return fixed(s.wall_s * 1000, 0) + " ms"; }},
  };
  std::size_t label_width = 0;
  for (const auto& row : rows) label_width = std::max(label_width, row.first.size());
  std::vector<std::size_t> widths;
  for (const auto& summary : summaries) {
    std::size_t width = 0;
    for (const auto& row : rows) width = std::max(width, row.second(summary).size());
    widths.push_back(width);
  }
  for (const auto& [label, figure] : rows) {
    out << label << std::string(label_width - label.size(), ' ');
    for (std::size_t i = 0; i < summaries.size(); ++i) {
      const auto text = figure(summaries[i]);
      out << "  " << std::string(widths[i] - text.size(), ' ') << text;
    }
    out << '\n';
  }
}

}  // namespace syncpod::simulator
