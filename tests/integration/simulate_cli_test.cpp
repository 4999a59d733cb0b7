// `syncpod simulate` as a user runs it: no database, files written beside each other per
// policy, settings taken from the environment like every command's, errors on one line.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <gtest/gtest.h>

#include "process.hpp"

namespace syncpod::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBinary = SYNCPOD_BINARY;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The figures of one row of the printed table, separated by one space.
std::string figures(const std::string& table, const std::string& label) {
  const auto start = table.find(label + "  ");
  if (start == std::string::npos) return "no row " + label;
  std::istringstream row(
      table.substr(start + label.size(), table.find('\n', start) - start - label.size()));
  std::string result;
  for (std::string word; row >> word;) result += (result.empty() ? "" : " ") + word;
  return result;
}

class SimulateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SYNCPOD_CONFIG");
    directory_ = fs::temp_directory_path() / ("syncpod-simulate-" + std::to_string(::getpid()));
    fs::create_directories(directory_);
  }
  void TearDown() override { fs::remove_all(directory_); }

  static SplitRunResult simulate(std::vector<std::string> args,
                                 const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), {kBinary, "simulate"});
    return runSplit(args, env);
  }

  fs::path directory_;
};

TEST_F(SimulateCli, ComparesBothPoliciesAndWritesTheirSeries) {
  const auto csv = (directory_ / "burst.csv").string();
  const auto svg = (directory_ / "burst.svg").string();
  const auto result = simulate({"--burst=60", "--duration-median=2m", "--policy=both",
                                "--csv=" + csv, "--svg=" + svg, "--chart-window=04:30-07:00"},
                               {{"SYNCPOD_SCALER_MAX_REPLICAS", "6"}});
  ASSERT_EQ(result.exit_code, 0) << result.output << result.errors;
  EXPECT_TRUE(contains(result.output, "jobs:     60 jobs at 05:00")) << result.output;
  EXPECT_TRUE(contains(result.output, "replicas 0..6")) << result.output;
  EXPECT_TRUE(contains(result.output, "seed  queue-aware")) << result.output;
  EXPECT_TRUE(contains(result.output, "burst fully started after")) << result.output;
  EXPECT_EQ(figures(result.output, "peak workers (unfinished pods)"), "6 6") << result.output;
  for (const auto* policy : {"seed", "queue-aware"}) {
    const auto series = slurp(directory_ / ("burst-" + std::string(policy) + ".csv"));
    EXPECT_EQ(series.rfind("t_s,time,desired_pod_count,", 0), 0u) << policy;
    const auto chart = slurp(directory_ / ("burst-" + std::string(policy) + ".svg"));
    EXPECT_TRUE(contains(chart, "syncpod simulate: policy " + std::string(policy))) << policy;
    EXPECT_TRUE(
        contains(result.output,
                 "wrote " + (directory_ / ("burst-" + std::string(policy) + ".svg")).string()));
  }
}

TEST_F(SimulateCli, RunsATraceAndWritesTheGeneratedOne) {
  const auto written = (directory_ / "day.csv").string();
  auto result = simulate({"--daytime-jobs=200", "--duration-median=1m", "--write-trace=" + written,
                          "--policy=queue-aware"});
  ASSERT_EQ(result.exit_code, 0) << result.errors;
  const auto first = result.output.substr(result.output.find("queue wait p50"));

  // The same jobs from the file give the same figures.
  result = simulate({"--trace=" + written, "--policy=queue-aware"});
  ASSERT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_TRUE(contains(result.output, "jobs:     " + written + " (200 jobs)")) << result.output;
  const auto second = result.output.substr(result.output.find("queue wait p50"));
  EXPECT_EQ(first.substr(0, first.find("wall time")), second.substr(0, second.find("wall time")));
}

TEST_F(SimulateCli, ErrorsSayWhatWasWrong) {
  auto result = simulate({});
  EXPECT_EQ(result.exit_code, 64);
  EXPECT_TRUE(contains(result.errors, "nothing to simulate")) << result.errors;

  const auto trace = directory_ / "bad.csv";
  std::ofstream(trace) << "arrival_s,duration_s\n0,60\n10,soon\n";
  result = simulate({"--trace=" + trace.string()});
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.errors, "bad.csv:3: duration_s 'soon' is not a number"))
      << result.errors;

  result = simulate({"--burst=10", "--policy=fastest"});
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.errors, "--policy: expected seed, queue-aware or both"))
      << result.errors;

  result = simulate({"--burst=10"}, {{"SYNCPOD_WORKER_CAPACITY", "0"}});
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.errors, "worker_capacity (from SYNCPOD_WORKER_CAPACITY)"))
      << result.errors;
}

TEST_F(SimulateCli, ATraceWithOnlyAHeaderHasNoJobs) {
  const auto trace = directory_ / "empty.csv";
  std::ofstream(trace) << "arrival_s,duration_s\n# nothing today\n";
  const auto result = simulate({"--trace=" + trace.string()});
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.errors, "the trace " + trace.string() + " has no jobs"))
      << result.errors;
}

TEST_F(SimulateCli, ReadsATraceSavedWithAByteOrderMark) {
  const auto trace = directory_ / "excel.csv";
  std::ofstream(trace) << "\xEF\xBB\xBF"
                          "arrival_s,duration_s\n18000,60\n";
  const auto result = simulate({"--trace=" + trace.string()});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(figures(result.output, "jobs (finished)"), "1") << result.output;
}

TEST_F(SimulateCli, TheBurstTimeIsATimeOfDayWithOrWithoutATrace) {
  const auto trace = directory_ / "day.csv";
  std::ofstream(trace) << "arrival_s,duration_s\n18000,60\n";
  for (const auto& jobs : {std::string("--burst=10"), "--trace=" + trace.string()}) {
    const auto result = simulate({jobs, "--burst-at=29:00"});
    EXPECT_EQ(result.exit_code, 78) << jobs;
    EXPECT_TRUE(contains(result.errors,
                         "--burst-at: expected a time of day from 00:00 to 23:59, not '29:00'"))
        << jobs << ": " << result.errors;
  }
}

TEST_F(SimulateCli, RefusesASampleIntervalThatWouldKeepTooManySamples) {
  auto result = simulate({"--burst=10", "--sample=10ms"});
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.errors,
                       "--sample: 10ms over the 24h 00m simulated would keep more "
                       "than 1000000 samples; give --sample=87ms or more"))
      << result.errors;

  result = simulate({"--burst=10", "--sample=87ms"});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
}

/// Without --sample, a long trace gets a coarser series rather than an error. Hourly ticks keep
/// 700 simulated days quick.
TEST_F(SimulateCli, RaisesTheDefaultSampleIntervalForALongTraceAndSaysSo) {
  const auto trace = directory_ / "years.csv";
  std::ofstream(trace) << "arrival_s,duration_s\n0,60\n60480000,60\n";
  const auto result =
      simulate({"--trace=" + trace.string()}, {{"SYNCPOD_SCALE_INTERVAL", "1h"},
                                               {"SYNCPOD_KEDA_POLLING_INTERVAL", "1h"},
                                               {"SYNCPOD_TERMINATING_GRACE", "2h"}});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_TRUE(contains(result.output, "note:     sampling every 61s rather than the default 1m"))
      << result.output;
  EXPECT_EQ(figures(result.output, "jobs (finished)"), "2") << result.output;
}

/// A trace longer than --days is simulated to its last arrival, not given up on a week after
/// the last day.
TEST_F(SimulateCli, RunsATraceToItsLastArrival) {
  const auto trace = directory_ / "late.csv";
  std::ofstream(trace) << "arrival_s,duration_s\n0,60\n864000,60\n";  // the second at day 10
  const auto result = simulate({"--trace=" + trace.string()});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(figures(result.output, "jobs (finished)"), "2") << result.output;
  EXPECT_FALSE(contains(result.output, "never")) << result.output;
}

TEST_F(SimulateCli, NotesATerminatingGraceServeWouldRefuse) {
  const auto result = simulate({"--burst=10"}, {{"SYNCPOD_TERMINATING_GRACE", "5s"}});
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_TRUE(contains(result.output,
                       "note:     terminating_grace 5000 ms (from SYNCPOD_TERMINATING_GRACE) must "
                       "be at least scale_interval + keda_polling_interval = 20000 ms"))
      << result.output;
  EXPECT_TRUE(contains(result.output, "serve refuses this, simulated anyway")) << result.output;
}

}  // namespace
}  // namespace syncpod::testing
