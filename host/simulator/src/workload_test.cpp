#include "syncpod/simulator/workload.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace syncpod::simulator {
namespace {

using namespace std::chrono_literals;

Workload parse(const std::string& text, std::optional<SimTime> burst_at = std::nullopt) {
  std::istringstream in(text);
  return parseTrace(in, "trace.csv", burst_at);
}

/// The message of the TraceError parsing `text` throws.
std::string traceError(const std::string& text) {
  try {
    (void)parse(text);
  } catch (const TraceError& error) {
    return error.what();
  }
  return "no error";
}

TEST(Trace, ReadsJobsWithTheirIntegrationsInOrderOfArrival) {
  const auto workload = parse(
      "arrival_s,duration_s,integration\n"
      "# the 05:00 wave\n"
      "18000,60,7\r\n"
      "\n"
      "10.5, 0.25 ,3\n");
  ASSERT_EQ(workload.jobs.size(), 2u);
  EXPECT_EQ(workload.jobs[0].arrival, 10500ms);
  EXPECT_EQ(workload.jobs[0].duration, 250ms);
  EXPECT_EQ(workload.jobs[0].integration, 3);
  EXPECT_EQ(workload.jobs[1].arrival, 5h);
  EXPECT_EQ(workload.jobs[1].integration, 7);
  EXPECT_FALSE(workload.jobs[1].burst);
  EXPECT_EQ(workload.description, "trace.csv (2 jobs)");
}

TEST(Trace, SkipsAByteOrderMark) {
  const auto workload = parse(
      "\xEF\xBB\xBF"
      "arrival_s,duration_s\n0,5\n");
  ASSERT_EQ(workload.jobs.size(), 1u);
  EXPECT_EQ(workload.jobs[0].duration, 5s);
  // Only in front of the header: anywhere else it is not part of a number.
  const auto message = traceError(
      "arrival_s,duration_s\n\xEF\xBB\xBF"
      "0,5\n");
  EXPECT_NE(message.find("trace.csv:2: arrival_s"), std::string::npos) << message;
}

TEST(Trace, WithoutAnIntegrationColumnEveryJobHasItsOwn) {
  const auto workload = parse("arrival_s,duration_s\n0,5\n0,5\n0,5\n");
  std::set<std::int64_t> integrations;
  for (const auto& job : workload.jobs) integrations.insert(job.integration);
  EXPECT_EQ(integrations.size(), 3u);
}

TEST(Trace, MarksTheBurstMinuteOfEveryDay) {
  const auto workload =
      parse("arrival_s,duration_s\n17999,5\n18000,5\n18059,5\n18060,5\n104430,5\n", 5h);
  ASSERT_EQ(workload.jobs.size(), 5u);
  EXPECT_FALSE(workload.jobs[0].burst);
  EXPECT_TRUE(workload.jobs[1].burst);
  EXPECT_TRUE(workload.jobs[2].burst);
  EXPECT_FALSE(workload.jobs[3].burst);
  EXPECT_TRUE(workload.jobs[4].burst);  // 05:00:30 of the second day
}

TEST(Trace, ErrorsNameTheFileAndLine) {
  auto message = traceError("arrival_s,duration_s\n1,5\n\n2,soon\n");
  EXPECT_NE(message.find("trace.csv:4:"), std::string::npos) << message;
  EXPECT_NE(message.find("duration_s 'soon' is not a number"), std::string::npos) << message;

  message = traceError("arrival,duration\n1,5\n");
  EXPECT_NE(message.find("trace.csv:1: expected the header"), std::string::npos) << message;

  message = traceError("arrival_s,duration_s,integration\n1,5,2\n2,5\n");
  EXPECT_NE(message.find("trace.csv:3: expected 3 fields"), std::string::npos) << message;

  message = traceError("arrival_s,duration_s,integration\n1,5,x\n");
  EXPECT_NE(message.find("trace.csv:2: integration 'x'"), std::string::npos) << message;

  message = traceError("arrival_s,duration_s\n-1,5\n");
  EXPECT_NE(message.find("trace.csv:2: arrival_s must not be negative"), std::string::npos)
      << message;

  message = traceError("arrival_s,duration_s\n1,0\n");
  EXPECT_NE(message.find("trace.csv:2: duration_s must be at least"), std::string::npos) << message;

  message = traceError("");
  EXPECT_NE(message.find("trace.csv:1: empty trace"), std::string::npos) << message;
}

TEST(Trace, AMissingFileIsAnError) {
  EXPECT_THROW((void)readTrace("/nonexistent/trace.csv"), TraceError);
}

TEST(TimeOfDay, ParsesAndFormats) {
  EXPECT_EQ(parseTimeOfDay("05:00"), 5h);
  EXPECT_EQ(parseTimeOfDay("5:30"), 5h + 30min);
  EXPECT_EQ(parseTimeOfDay("29:00"), 29h);
  EXPECT_EQ(parseTimeOfDay("5"), std::nullopt);
  EXPECT_EQ(parseTimeOfDay("05:60"), std::nullopt);
  EXPECT_EQ(parseTimeOfDay("05:0"), std::nullopt);
  EXPECT_EQ(formatTimeOfDay(5h + 3min + 7s), "05:03:07");
  EXPECT_EQ(formatTimeOfDay(29h), "1d 05:00:00");
}

GeneratorOptions fieldDay() {
  GeneratorOptions options;
  options.burst_jobs = 300;
  options.daytime_jobs = 2000;
  options.night_jobs = 100;
  options.seed = 7;
  return options;
}

TEST(Generator, TheSameSeedGivesTheSameWorkload) {
  const auto a = generateWorkload(fieldDay());
  const auto b = generateWorkload(fieldDay());
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (std::size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].arrival, b.jobs[i].arrival);
    EXPECT_EQ(a.jobs[i].duration, b.jobs[i].duration);
    EXPECT_EQ(a.jobs[i].integration, b.jobs[i].integration);
  }
  auto other = fieldDay();
  other.seed = 8;
  const auto c = generateWorkload(other);
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.jobs.size(); ++i)
    same += a.jobs[i].duration == c.jobs[i].duration ? 1u : 0u;
  EXPECT_LT(same, a.jobs.size() / 10);
}

TEST(Generator, PlacesEachKindOfJobInItsWindow) {
  const auto workload = generateWorkload(fieldDay());
  ASSERT_EQ(workload.jobs.size(), 2400u);
  EXPECT_TRUE(
      std::is_sorted(workload.jobs.begin(), workload.jobs.end(),
                     [](const SimJob& a, const SimJob& b) { return a.arrival < b.arrival; }));
  std::set<std::int64_t> burst_integrations;
  int daytime = 0;
  for (const auto& job : workload.jobs) {
    EXPECT_GE(job.duration, 5s);
    EXPECT_LE(job.duration, 6h);
    if (job.burst) {
      EXPECT_EQ(job.arrival, 5h);
      burst_integrations.insert(job.integration);
      continue;
    }
    EXPECT_GE(job.integration, 1);
    EXPECT_LE(job.integration, 1000);
    EXPECT_LT(job.arrival, 24h);
    if (job.arrival >= 8h && job.arrival < 18h) ++daytime;
  }
  // A cron wave is one job per integration.
  EXPECT_EQ(burst_integrations.size(), 300u);
  EXPECT_EQ(daytime, 2000);  // and the 100 night jobs fell outside the day
}

TEST(Generator, DurationsAreLogNormalAroundTheMedian) {
  GeneratorOptions options;
  options.daytime_jobs = 20001;
  options.duration_median = 10min;
  options.duration_sigma = 1.0;
  auto jobs = generateWorkload(options).jobs;
  std::sort(jobs.begin(), jobs.end(),
            [](const SimJob& a, const SimJob& b) { return a.duration < b.duration; });
  const auto median = jobs[jobs.size() / 2].duration;
  EXPECT_GT(median, 9min);
  EXPECT_LT(median, 11min);
  // One sigma: the 84th percentile is near median × e.
  const auto upper = jobs[jobs.size() * 841 / 1000].duration;
  EXPECT_GT(upper, 24min);
  EXPECT_LT(upper, 30min);
}

TEST(Generator, SpansTheDaysAsked) {
  auto options = fieldDay();
  options.days = 3;
  const auto workload = generateWorkload(options);
  EXPECT_EQ(workload.jobs.size(), 3u * 2400u);
  EXPECT_EQ(std::count_if(workload.jobs.begin(), workload.jobs.end(),
                          [](const SimJob& job) { return job.arrival == 53h; }),
            300);
  EXPECT_NE(workload.description.find("for 3 days"), std::string::npos) << workload.description;
}

TEST(Generator, ItsWorkloadReadsBackAsATrace) {
  const auto workload = generateWorkload(fieldDay());
  std::stringstream trace;
  writeTrace(trace, workload);
  const auto back = parseTrace(trace, "written.csv", 5h);
  ASSERT_EQ(back.jobs.size(), workload.jobs.size());
  for (std::size_t i = 0; i < back.jobs.size(); ++i) {
    EXPECT_EQ(back.jobs[i].arrival, workload.jobs[i].arrival);
    EXPECT_EQ(back.jobs[i].duration, workload.jobs[i].duration);
    EXPECT_EQ(back.jobs[i].integration, workload.jobs[i].integration);
    // A night job in the burst's minute would be counted with it; the wave itself always is.
    if (workload.jobs[i].burst) {
      EXPECT_TRUE(back.jobs[i].burst);
    }
  }
}

TEST(Generator, RefusesOptionsThatMakeNoSense) {
  auto options = fieldDay();
  options.daytime_from = 18h;
  options.daytime_to = 8h;
  EXPECT_THROW((void)generateWorkload(options), core::ConfigError);
  options = fieldDay();
  options.integrations = 0;
  EXPECT_THROW((void)generateWorkload(options), core::ConfigError);
  options = fieldDay();
  options.duration_sigma = -1;
  EXPECT_THROW((void)generateWorkload(options), core::ConfigError);
}

}  // namespace
}  // namespace syncpod::simulator
