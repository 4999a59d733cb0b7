#include "syncpod/simulator/charts.hpp"

#include <sstream>

#include <gtest/gtest.h>

namespace syncpod::simulator {
namespace {

using namespace std::chrono_literals;

SimulationResult burstRun() {
  SimulationOptions options;
  options.horizon = 8h;
  GeneratorOptions generator;
  generator.burst_jobs = 50;
  generator.duration_median = 2min;
  return simulate(generateWorkload(generator), options);
}

TEST(Charts, TheCsvHasOneLinePerSample) {
  const auto result = burstRun();
  std::ostringstream out;
  writeTimeSeriesCsv(out, result);
  std::istringstream lines(out.str());
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line,
            "t_s,time,desired_pod_count,keda_max_scale,pods,starting,active,retired,terminating,"
            "queued_jobs,runnable_jobs,running_jobs");
  std::size_t rows = 0;
  bool saw_burst = false;
  while (std::getline(lines, line)) {
    ++rows;
    // 05:01: the burst is queued behind the workers.
    if (line.rfind("18060,05:01:00,", 0) == 0) saw_burst = true;
  }
  EXPECT_EQ(rows, result.samples.size());
  EXPECT_TRUE(saw_burst);
}

TEST(Charts, TheSvgIsOneDocumentWithBothPanelsAndLegends) {
  const auto result = burstRun();
  std::ostringstream out;
  writeSvgChart(out, result, {"seed & co <burst>", "50 jobs at 05:00", 4h + 30min, 7h});
  const auto svg = out.str();
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_NE(svg.find("seed &amp; co &lt;burst&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">worker pods<"), std::string::npos);
  EXPECT_NE(svg.find(">queued<"), std::string::npos);
  EXPECT_NE(svg.find(">retired<"), std::string::npos);
  // The time axis of the window: 04:30 to 07:00 in half hours.
  EXPECT_NE(svg.find(">04:30<"), std::string::npos);
  EXPECT_NE(svg.find(">07:00<"), std::string::npos);
  EXPECT_EQ(svg.find(">03:00<"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(Charts, AWindowOutsideTheRunDrawsTheWholeRun) {
  const auto result = burstRun();
  std::ostringstream out;
  writeSvgChart(out, result, {"t", "s", 30h, 31h});
  EXPECT_NE(out.str().find(">00:00<"), std::string::npos);
}

/// The dashed line is the maxScale KEDA computed, which with targetQueryValue or
/// minReplicaCount set is not min(desired_pod_count, maxReplicaCount).
TEST(Charts, TheTargetLineIsKedasMaxScale) {
  SimulationResult result;
  result.options.scaled_job.max_replicas = 10;
  result.end = 1h;
  result.samples = {
      {.time = 0s, .desired_pod_count = 12, .keda_max_scale = 3, .pods = 1, .active = 1},
      {.time = 30min, .desired_pod_count = 12, .keda_max_scale = 3, .pods = 3, .active = 3},
      {.time = 1h, .desired_pod_count = 12, .keda_max_scale = 3, .pods = 3, .active = 3}};
  std::ostringstream out;
  writeSvgChart(out, result, {"t", "s", {}, {}});
  const auto svg = out.str();
  // The pods' axis goes up to the target, 3, and not to 10.
  EXPECT_NE(svg.find(">3</text>"), std::string::npos) << svg;
  EXPECT_EQ(svg.find(">10</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find("KEDA's target: maxScale"), std::string::npos);
}

}  // namespace
}  // namespace syncpod::simulator
