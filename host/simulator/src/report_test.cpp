#include "syncpod/simulator/report.hpp"

#include <sstream>

#include <gtest/gtest.h>

namespace syncpod::simulator {
namespace {

using namespace std::chrono_literals;

/// The line of the printed table that starts with `label`.
std::string lineOf(const std::string& table, const std::string& label) {
  const auto start = table.find(label + "  ");
  if (start == std::string::npos) return "no row " + label;
  return table.substr(start, table.find('\n', start) - start);
}

TEST(Report, PercentilesByNearestRank) {
  const std::vector<double> values = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(percentile(values, 0.5), 5);
  EXPECT_EQ(percentile(values, 0.95), 10);
  EXPECT_EQ(percentile(values, 0.9), 9);
  EXPECT_EQ(percentile({}, 0.5), 0);
  EXPECT_EQ(percentile({42}, 0.95), 42);
}

TEST(Report, FormatsSeconds) {
  EXPECT_EQ(formatSeconds(0), "0 s");
  EXPECT_EQ(formatSeconds(8.24), "8.2 s");
  EXPECT_EQ(formatSeconds(9.96), "10 s");
  EXPECT_EQ(formatSeconds(34), "34 s");
  EXPECT_EQ(formatSeconds(59.7), "1m 00s");
  EXPECT_EQ(formatSeconds(252), "4m 12s");
  EXPECT_EQ(formatSeconds(7500), "2h 05m");
}

/// Two jobs of a burst and one more, run on two pods, figures worked by hand.
TEST(Report, SummarizesARun) {
  Workload workload{{{5h, 60s, 1, true}, {5h, 120s, 2, true}, {6h, 30s, 3, false}}, "test"};
  SimulationResult result;
  result.options.scaling.worker_capacity = 1;
  result.horizon = 24h;
  result.end = 24h;
  // The third job's integration was busy until 6h + 5s.
  result.jobs = {{.runnable = 5h, .started = 5h, .ended = 5h + 60s, .pod = 0},
                 {.runnable = 5h, .started = 5h + 40s, .ended = 5h + 160s, .pod = 1},
                 {.runnable = 6h + 5s, .started = 6h + 10s, .ended = 6h + 40s, .pod = 0}};
  result.pods = {PodLife{0s, 20s, 1h, 1h, 1h + 25s}, PodLife{5h + 20s, 5h + 40s, {}, {}, {}}};
  result.peak_pods = 2;
  const auto summary = summarize(workload, result);
  EXPECT_EQ(summary.policy, "seed");
  EXPECT_EQ(summary.jobs, 3);
  EXPECT_EQ(summary.finished, 3);
  EXPECT_EQ(summary.wait_p50_s, 10);
  EXPECT_EQ(summary.wait_max_s, 40);
  EXPECT_DOUBLE_EQ(summary.wait_mean_s, 50.0 / 3);
  EXPECT_EQ(summary.worker_wait_p50_s, 5);
  EXPECT_EQ(summary.worker_wait_max_s, 40);
  EXPECT_EQ(summary.burst_jobs, 2);
  EXPECT_EQ(summary.burst_started_after_s, 40);
  EXPECT_EQ(summary.burst_worker_wait_max_s, 40);
  EXPECT_EQ(summary.never_started, 0);
  EXPECT_EQ(summary.pod_seconds, 3625 + (19 * 3600 - 20));
  EXPECT_EQ(summary.pod_seconds_after_horizon, 0);
  EXPECT_EQ(summary.busy_slot_seconds, 210);
  EXPECT_DOUBLE_EQ(summary.utilisation, 210.0 / summary.pod_seconds);
  EXPECT_EQ(summary.span_s, 86400);

  std::ostringstream out;
  printSummaries(out, {summary, summary});
  const auto table = out.str();
  EXPECT_NE(table.find("queue wait p95"), std::string::npos) << table;
  const auto row = table.substr(table.find("burst fully started after"));
  const auto burst_row = row.substr(0, row.find('\n'));
  EXPECT_NE(burst_row.find("40 s"), burst_row.rfind("40 s")) << table;  // one per column
  // Pod-hours to the second; the rows that would say nothing here are left out.
  EXPECT_TRUE(lineOf(table, "pod-hours to the horizon").ends_with(" 20.001")) << table;
  EXPECT_EQ(table.find("after the horizon"), std::string::npos) << table;
  EXPECT_EQ(table.find("never started"), std::string::npos) << table;
}

/// Two runs of one workload that end at different times: pods that outlive the horizon count
/// towards it only up to the horizon, the rest separately, so both policies compare over the
/// same 24 hours.
TEST(Report, PodHoursCompareOverTheSameWindow) {
  Workload workload{{{23h, 2h, 1, false}}, "test"};
  SimulationResult result;
  result.options.scaling.worker_capacity = 1;
  result.horizon = 24h;
  result.end = 25h + 30s;
  result.jobs = {{.runnable = 23h, .started = 23h + 30s, .ended = 25h + 30s, .pod = 0}};
  // One pod that ran the job and still lives at the end, one gone before the horizon.
  result.pods = {PodLife{23h, 23h + 30s, 23h + 30min + 30s, {}, {}},
                 PodLife{1h, 1h + 20s, 1h + 30min, 1h + 30min, 1h + 30min + 25s}};
  const auto summary = summarize(workload, result);
  EXPECT_EQ(summary.pod_seconds, 3600 + (30 * 60 + 25));
  EXPECT_EQ(summary.pod_seconds_after_horizon, 3630);
  EXPECT_EQ(summary.busy_slot_seconds, 3570);
  EXPECT_DOUBLE_EQ(summary.utilisation, 3570.0 / summary.pod_seconds);
  EXPECT_EQ(summary.horizon_s, 86400);
  EXPECT_EQ(summary.span_s, 86400 + 3630);

  std::ostringstream out;
  printSummaries(out, {summary});
  EXPECT_TRUE(lineOf(out.str(), "pod-hours after the horizon").ends_with(" 1.008")) << out.str();
}

/// A run that gave up with jobs never started: they count as waiting until the end, and the
/// report says how many there were.
TEST(Report, JobsNeverStartedWaitUntilTheEnd) {
  Workload workload{{{1h, 60s, 1, false}, {2h, 60s, 2, false}, {2h, 60s, 2, false}}, "test"};
  SimulationResult result;
  result.horizon = 24h;
  result.end = 24h + 168h;
  // The first ran; the second never got a worker; the third waited behind the second.
  result.jobs = {{.runnable = 1h, .started = 1h + 10s, .ended = 1h + 70s, .pod = 0},
                 {.runnable = 2h, .started = {}, .ended = {}, .pod = -1},
                 {.runnable = {}, .started = {}, .ended = {}, .pod = -1}};
  const auto summary = summarize(workload, result);
  EXPECT_EQ(summary.never_started, 2);
  EXPECT_EQ(summary.wait_max_s, 190 * 3600.0);
  EXPECT_EQ(summary.wait_p50_s, 190 * 3600.0);
  EXPECT_DOUBLE_EQ(summary.wait_mean_s, (10 + 2 * 190 * 3600.0) / 3);
  EXPECT_EQ(summary.worker_wait_max_s, 190 * 3600.0);
  EXPECT_EQ(summary.worker_wait_p50_s, 10);  // the third never could start: 0

  std::ostringstream out;
  printSummaries(out, {summary});
  const auto table = out.str();
  EXPECT_TRUE(lineOf(table, "jobs never started").ends_with(" 2")) << table;
  EXPECT_NE(table.find("seed: 2 job(s) never finished, 2 of them never started, when the run "
                       "gave up at 8d 00:00:00; the queue waits count those as waiting until "
                       "then, so they are lower bounds"),
            std::string::npos)
      << table;
}

TEST(Report, ABurstThatNeverStartedSaysSo) {
  Workload workload{{{5h, 60s, 1, true}}, "test"};
  SimulationResult result;
  result.horizon = 24h;
  result.end = 24h;
  result.jobs = {JobOutcome{}};
  const auto summary = summarize(workload, result);
  EXPECT_FALSE(summary.burst_started_after_s);
  EXPECT_EQ(summary.finished, 0);
  std::ostringstream out;
  printSummaries(out, {summary});
  EXPECT_NE(out.str().find("never"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace syncpod::simulator
