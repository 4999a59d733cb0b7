#include "syncpod/simulator/simulation.hpp"

#include <algorithm>
#include <map>

#include <gtest/gtest.h>

#include "syncpod/simulator/report.hpp"

namespace syncpod::simulator {
namespace {

using namespace std::chrono_literals;

/// The defaults of the real settings: scale_interval 5 s, KEDA every 15 s, pods up in 20 s.
SimulationOptions options(core::ScalingPolicy policy = core::ScalingPolicy::Seed) {
  SimulationOptions result;
  result.scaling.policy = policy;
  result.scaling.worker_capacity = 1;
  result.scaling.minimum_active_workers = 2;
  result.scaled_job.polling_interval = 15s;
  result.scaled_job.min_replicas = 0;
  result.scaled_job.max_replicas = 10;
  return result;
}

Workload jobs(std::vector<SimJob> list) {
  return Workload{std::move(list), "test"};
}

Workload fieldDay(std::uint64_t seed, int burst, int daytime) {
  GeneratorOptions generator;
  generator.burst_jobs = burst;
  generator.daytime_jobs = daytime;
  generator.night_jobs = 20;
  generator.integrations = 200;
  generator.duration_median = 2min;
  generator.seed = seed;
  return generateWorkload(generator);
}

/// Worked by hand, with no idle headroom beyond the formula's +1 (minimum_active_workers 0):
///   0 s   singleton: max(0 / 1 + 1, 0) = 1; KEDA: q = 1, unfinished 0, starts pod 0
///  20 s   pod 0 registers, ACTIVE
///  31 s   A and B arrive; pod 0 claims A, B queues
///  35 s   singleton: 1 running job, (1 / 1) + 1 = 2
///  45 s   KEDA: q = 2, unfinished 1, starts pod 1
///  65 s   pod 1 registers and claims B: B waited 34 s
TEST(Simulation, MatchesAHandComputedCase) {
  auto settings = options();
  settings.scaling.minimum_active_workers = 0;
  settings.horizon = 10min;
  const auto workload = jobs({{31s, 10min, 1, false}, {31s, 10min, 2, false}});
  const auto result = simulate(workload, settings);
  ASSERT_TRUE(result.complete);
  ASSERT_GE(result.pods.size(), 2u);
  EXPECT_EQ(result.pods[0].created, 0s);
  EXPECT_EQ(result.pods[0].ready, 20s);
  EXPECT_EQ(result.pods[1].created, 45s);
  EXPECT_EQ(result.pods[1].ready, 65s);
  EXPECT_EQ(result.jobs[0].started, 31s);
  EXPECT_EQ(result.jobs[0].pod, 0);
  EXPECT_EQ(result.jobs[1].started, 65s);
  EXPECT_EQ(result.jobs[1].pod, 1);
  EXPECT_EQ(result.jobs[1].ended, 65s + 10min);
  EXPECT_EQ(result.end, 65s + 10min);  // past the horizon, until the last job ended

  // queue-aware asks for B's worker at once (3 = (1 + 1) / 1 + 1), but it cannot start sooner.
  auto aware = settings;
  aware.scaling.policy = core::ScalingPolicy::QueueAware;
  const auto with_queue = simulate(workload, aware);
  EXPECT_EQ(with_queue.jobs[1].started, 65s);
  EXPECT_EQ(with_queue.pods[1].created, 45s);
  EXPECT_EQ(with_queue.pods[2].created, 45s);
}

/// An idle worker's life, by hand: registers at 20 s, retires at 20 s + 1 min with nothing to
/// finish, so goes TERMINATING at once and exits 25 s later, at 105 s. The singleton stops
/// counting it at 80 s, but KEDA counts it until it exits: its replacement starts at 105 s.
TEST(Simulation, AWorkerLivesAsItsLifecycleSays) {
  auto settings = options();
  settings.scaling.minimum_active_workers = 0;
  settings.active_period = 1min;
  settings.sample_interval = 10s;
  settings.horizon = 120s;
  const auto result = simulate(jobs({}), settings);
  ASSERT_EQ(result.pods.size(), 2u);
  EXPECT_EQ(result.pods[0].retired, 80s);
  EXPECT_EQ(result.pods[0].terminating, 80s);
  EXPECT_EQ(result.pods[0].exited, 105s);
  EXPECT_EQ(result.pods[1].created, 105s);
  EXPECT_FALSE(result.pods[1].ready);  // 125 s, after the end
  EXPECT_EQ(result.end, 120s);
  ASSERT_EQ(result.samples.size(), 13u);
  EXPECT_EQ(result.samples[9].time, 90s);
  EXPECT_EQ(result.samples[9].pods, 1);
  EXPECT_EQ(result.samples[9].terminating, 1);
  EXPECT_EQ(result.samples[9].desired_pod_count, 1);
  const auto summary = summarize(jobs({}), result);
  EXPECT_DOUBLE_EQ(summary.pod_seconds, 105 + 15);
  EXPECT_EQ(summary.pods_started, 2);
}

TEST(Simulation, ARetiredWorkerFinishesItsJobThenTerminates) {
  auto settings = options();
  settings.active_period = 1min;
  settings.horizon = 3h;
  // Claimed at 20 s, runs past the retirement at 80 s.
  const auto result = simulate(jobs({{0s, 2h, 1, false}}), settings);
  const auto& pod = result.pods[static_cast<std::size_t>(result.jobs[0].pod)];
  EXPECT_EQ(result.jobs[0].started, 20s);
  EXPECT_EQ(pod.retired, 80s);
  EXPECT_EQ(pod.terminating, 20s + 2h);
  EXPECT_EQ(pod.exited, 20s + 2h + 25s);
}

/// A job ending at the very instant another worker's active period ends must not go to that
/// worker: the real one retires before it claims. Worked by hand (active_period 60 s):
///   0 s   X (integration 1, 90 s) arrives; KEDA starts pod 0
///  20 s   pod 0 registers and claims X (X ends at 110 s); the singleton asks for 2
///  21 s   Y (integration 1, 60 s) arrives and queues behind X
///  30 s   KEDA starts pod 1; it registers at 50 s and retires at 110 s
/// 110 s   pod 1 retires with nothing to do, then X ends and Y could start: no ACTIVE worker
/// 135 s   both pods have exited; KEDA starts pod 2, which registers at 155 s and claims Y
TEST(Simulation, AWorkerRetiresBeforeItClaimsAtTheSameInstant) {
  auto settings = options();
  settings.scaling.minimum_active_workers = 0;
  settings.active_period = 1min;
  settings.horizon = 10min;
  const auto result = simulate(jobs({{0s, 90s, 1, false}, {21s, 60s, 1, false}}), settings);
  ASSERT_TRUE(result.complete);
  ASSERT_GE(result.pods.size(), 3u);
  EXPECT_EQ(result.pods[1].ready, 50s);
  EXPECT_EQ(result.pods[1].retired, 110s);
  EXPECT_EQ(result.pods[1].terminating, 110s);
  EXPECT_EQ(result.pods[1].jobs_run, 0);
  EXPECT_EQ(result.jobs[0].ended, 110s);
  EXPECT_EQ(result.pods[2].created, 135s);
  EXPECT_EQ(result.jobs[1].started, 155s);
  EXPECT_EQ(result.jobs[1].pod, 2);
}

/// Whole seconds everywhere, and jobs as long as the active period or a multiple of half of it,
/// so that job ends, arrivals and retirements keep falling on the same instants.
TEST(Simulation, NoJobStartsOnAWorkerThatRetiresAtThatInstant) {
  for (int step = 1; step <= 12; ++step) {
    std::vector<SimJob> list;
    for (int i = 0; i < 300; ++i) {
      const auto arrival = SimTime(5000 * ((i * step * 7) % 1440));
      list.push_back({arrival, 30s * (1 + (i * step) % 4), 1 + (i * 13) % (3 + step), false});
    }
    std::stable_sort(list.begin(), list.end(),
                     [](const SimJob& a, const SimJob& b) { return a.arrival < b.arrival; });
    const auto workload = jobs(list);
    for (const auto policy : {core::ScalingPolicy::Seed, core::ScalingPolicy::QueueAware}) {
      auto settings = options(policy);
      settings.active_period = 1min;
      settings.horizon = 2h;
      const auto result = simulate(workload, settings);
      ASSERT_TRUE(result.complete);
      for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
        const auto& outcome = result.jobs[i];
        const auto& pod = result.pods[static_cast<std::size_t>(outcome.pod)];
        ASSERT_LT(*outcome.started, pod.retired.value_or(result.end + 1ms))
            << "step " << step << ", job " << i << " on pod " << outcome.pod << " at "
            << formatTimeOfDay(*outcome.started);
      }
    }
  }
}

TEST(Simulation, EveryJobRunsOnceAndNoWaitIsNegative) {
  const auto workload = fieldDay(3, 150, 1500);
  for (const auto policy : {core::ScalingPolicy::Seed, core::ScalingPolicy::QueueAware}) {
    const auto result = simulate(workload, options(policy));
    ASSERT_TRUE(result.complete);
    for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
      const auto& outcome = result.jobs[i];
      ASSERT_TRUE(outcome.started && outcome.ended) << "job " << i;
      EXPECT_GE(*outcome.started, workload.jobs[i].arrival) << "job " << i;
      EXPECT_EQ(*outcome.ended - *outcome.started, workload.jobs[i].duration) << "job " << i;
      // Claimed only while its worker was ACTIVE.
      const auto& pod = result.pods[static_cast<std::size_t>(outcome.pod)];
      EXPECT_GE(*outcome.started, *pod.ready);
      EXPECT_LT(*outcome.started, pod.retired.value_or(result.end + 1ms));
    }
    int jobs_run = 0;
    for (const auto& pod : result.pods) jobs_run += pod.jobs_run;
    EXPECT_EQ(jobs_run, static_cast<int>(workload.jobs.size()));
  }
}

TEST(Simulation, NeverMoreWorkersThanMaxReplicas) {
  const auto workload = fieldDay(4, 300, 1000);
  for (const int max_replicas : {3, 10, 25}) {
    for (const auto policy : {core::ScalingPolicy::Seed, core::ScalingPolicy::QueueAware}) {
      auto settings = options(policy);
      settings.scaled_job.max_replicas = max_replicas;
      const auto result = simulate(workload, settings);
      EXPECT_LE(result.peak_pods, max_replicas);
      EXPECT_EQ(result.peak_pods, max_replicas) << "a 300-job burst needs them all";
      for (const auto& sample : result.samples) ASSERT_LE(sample.pods, max_replicas);
      // Replay the pods' lives: never more unfinished at once than the maximum.
      std::map<SimTime, int> changes;
      for (const auto& pod : result.pods) {
        ++changes[pod.created];
        if (pod.exited) --changes[*pod.exited];
      }
      int unfinished = 0;
      for (const auto& [time, change] : changes) {
        unfinished += change;
        ASSERT_LE(unfinished, max_replicas) << "at " << formatTimeOfDay(time);
      }
    }
  }
}

/// Checks that intervals grouped by `key` never overlap more than `limit` at once.
template <typename Key>
void expectAtMostAtOnce(const Workload& workload, const SimulationResult& result, int limit,
                        Key key) {
  std::map<std::int64_t, std::map<SimTime, int>> changes;
  for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
    auto& of = changes[key(i)];
    ++of[*result.jobs[i].started];
    --of[*result.jobs[i].ended];
  }
  for (const auto& [group, timeline] : changes) {
    int running = 0;
    // At one instant an end counts before a start: std::map orders by time only, and the
    // net change is what matters there.
    for (const auto& [time, change] : timeline) {
      running += change;
      ASSERT_LE(running, limit) << "group " << group << " at " << formatTimeOfDay(time);
    }
  }
}

TEST(Simulation, AnIntegrationNeverRunsTwoJobsAtOnce) {
  // Many jobs on few integrations, so lanes are busy most of the time.
  std::vector<SimJob> list;
  for (int i = 0; i < 400; ++i) {
    list.push_back({SimTime(i * 7000), SimTime(30000 + (i * 7919) % 300000), 1 + i % 5, false});
  }
  const auto workload = jobs(list);
  for (const int capacity : {1, 3}) {
    auto settings = options(core::ScalingPolicy::QueueAware);
    settings.scaling.worker_capacity = capacity;
    const auto result = simulate(workload, settings);
    ASSERT_TRUE(result.complete);
    expectAtMostAtOnce(workload, result, 1,
                       [&](std::size_t i) { return workload.jobs[i].integration; });
    expectAtMostAtOnce(workload, result, capacity,
                       [&](std::size_t i) { return std::int64_t{result.jobs[i].pod}; });
    // Within one integration, first come first served, each job runnable once the one before
    // it ended (or when it arrived, if later).
    std::map<std::int64_t, SimTime> last_start;
    std::map<std::int64_t, SimTime> last_end;
    for (std::size_t i = 0; i < workload.jobs.size(); ++i) {
      const auto integration = workload.jobs[i].integration;
      const auto& outcome = result.jobs[i];
      EXPECT_GE(*outcome.started, last_start[integration]);
      EXPECT_EQ(*outcome.runnable, std::max(workload.jobs[i].arrival, last_end[integration]))
          << "job " << i;
      EXPECT_GE(*outcome.started, *outcome.runnable);
      last_start[integration] = *outcome.started;
      last_end[integration] = *outcome.ended;
    }
  }
}

TEST(Simulation, TheSameInputsGiveTheSameRun) {
  const auto workload = fieldDay(5, 200, 2000);
  const auto a = simulate(workload, options(core::ScalingPolicy::QueueAware));
  const auto b = simulate(fieldDay(5, 200, 2000), options(core::ScalingPolicy::QueueAware));
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (std::size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].started, b.jobs[i].started);
    EXPECT_EQ(a.jobs[i].pod, b.jobs[i].pod);
  }
  ASSERT_EQ(a.pods.size(), b.pods.size());
  for (std::size_t i = 0; i < a.pods.size(); ++i) EXPECT_EQ(a.pods[i].exited, b.pods[i].exited);
  EXPECT_EQ(a.end, b.end);
  EXPECT_EQ(a.samples.size(), b.samples.size());
}

TEST(Simulation, QueueAwareStartsABurstNoLaterThanSeed) {
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    const auto workload = fieldDay(seed, 100, 0);
    const auto seeded = summarize(workload, simulate(workload, options(core::ScalingPolicy::Seed)));
    const auto aware =
        summarize(workload, simulate(workload, options(core::ScalingPolicy::QueueAware)));
    ASSERT_TRUE(seeded.burst_started_after_s && aware.burst_started_after_s);
    EXPECT_LE(*aware.burst_started_after_s, *seeded.burst_started_after_s) << "seed " << seed;
    EXPECT_LE(aware.wait_p50_s, seeded.wait_p50_s) << "seed " << seed;
    // It asks for the burst's workers at once, seed one more per tick.
    EXPECT_GT(aware.peak_desired_pod_count, 100);
    EXPECT_LT(seeded.peak_desired_pod_count, 20);
    EXPECT_EQ(seeded.burst_jobs, 100);
  }
}

TEST(Simulation, KedaStartsNothingBeyondMinReplicasWhileInactive) {
  auto settings = options();
  settings.scaled_job.min_replicas = 1;
  settings.scaled_job.activation_target_query_value = 1000;  // the trigger never activates
  settings.horizon = 1h;
  const auto result = simulate(jobs({{10min, 1min, 1, false}, {10min, 1min, 2, false}}), settings);
  ASSERT_TRUE(result.complete);
  EXPECT_EQ(result.peak_pods, 1);
  EXPECT_EQ(result.jobs[1].started, 11min);  // after the one worker finished the first
}

TEST(Simulation, GivesUpWhenNoWorkerEverStarts) {
  auto settings = options();
  settings.scaled_job.activation_target_query_value = 1000;
  settings.horizon = 1h;
  settings.give_up_after = 1h;
  const auto result = simulate(jobs({{10min, 1min, 1, false}}), settings);
  EXPECT_FALSE(result.complete);
  EXPECT_EQ(result.end, 2h);
  EXPECT_TRUE(result.pods.empty());
  const auto summary = summarize(jobs({{10min, 1min, 1, false}}), result);
  EXPECT_EQ(summary.finished, 0);
  // The job waited from its arrival until the run gave up, at least.
  EXPECT_EQ(summary.never_started, 1);
  EXPECT_EQ(summary.wait_p50_s, 110 * 60);
  EXPECT_EQ(summary.wait_max_s, 110 * 60);
  EXPECT_EQ(summary.worker_wait_max_s, 110 * 60);
}

/// A run that goes on past the horizon keeps no more than max_samples: every other sample goes
/// and the interval doubles, as often as needed, and the series stays evenly spaced to the end.
TEST(Simulation, ARunThatNeverDrainsKeepsAtMostMaxSamples) {
  auto settings = options();
  settings.scaled_job.activation_target_query_value = 1000;  // no worker ever starts
  settings.horizon = 1h;
  settings.give_up_after = 24h;
  settings.sample_interval = 1min;
  settings.max_samples = 100;
  const auto result = simulate(jobs({{10min, 1min, 1, false}}), settings);
  ASSERT_FALSE(result.complete);
  ASSERT_EQ(result.end, 25h);
  // 1,501 samples at 1 min; 100 at most means one every 16 min: 0, 16, ..., 1488 min.
  EXPECT_EQ(result.sample_interval, 16min);
  ASSERT_EQ(result.samples.size(), 94u);
  for (std::size_t i = 0; i < result.samples.size(); ++i) {
    ASSERT_EQ(result.samples[i].time, result.sample_interval * static_cast<int>(i)) << "sample " << i;
  }
  EXPECT_EQ(result.samples[5].queued_jobs, 1);  // at 80 min, the job still waits

  // Within the cap nothing changes.
  settings.max_samples = 1501;
  const auto whole = simulate(jobs({{10min, 1min, 1, false}}), settings);
  EXPECT_EQ(whole.sample_interval, 1min);
  EXPECT_EQ(whole.samples.size(), 1501u);

  settings.max_samples = 1;
  EXPECT_THROW(simulate(jobs({}), settings), std::invalid_argument);
}

/// The count KEDA aims at is what decideScaledJob says, not a copy of its arithmetic: with a
/// target of 2 per pod and one pod always kept, maxScale is ceil(q / 2), capped at max - min.
TEST(Simulation, SamplesKeepKedasMaxScale) {
  auto settings = options(core::ScalingPolicy::QueueAware);
  settings.scaled_job.target_query_value = 2;
  settings.scaled_job.min_replicas = 1;
  settings.scaled_job.max_replicas = 4;
  settings.sample_interval = 5s;
  settings.horizon = 1h;
  std::vector<SimJob> list;
  for (int i = 0; i < 40; ++i) list.push_back({10min, 10min, 1 + i, false});
  const auto result = simulate(jobs(list), settings);
  ASSERT_TRUE(result.complete);
  int highest = 0;
  for (const auto& sample : result.samples) {
    // KEDA polls every 15 s, the singleton every 5 s: compare at KEDA's instants only.
    if (sample.time % 15s != 0s) continue;
    const auto expected =
        core::decideScaledJob(static_cast<double>(sample.desired_pod_count), 0, settings.scaled_job)
            .max_scale;
    ASSERT_EQ(sample.keda_max_scale, expected) << "at " << formatTimeOfDay(sample.time);
    highest = std::max(highest, sample.keda_max_scale);
  }
  EXPECT_EQ(highest, 3);  // max - min, though desired_pod_count went far above 4
  EXPECT_GT(result.peak_desired_pod_count, 8);
}

/// A trace's late arrivals stretch the horizon: the run does not give up before they come.
TEST(Simulation, TheHorizonCoversTheLastArrival) {
  auto settings = options();
  settings.horizon = 24h;
  settings.give_up_after = 1h;
  const auto workload = jobs({{1h, 1min, 1, false}, {24h * 10, 1min, 2, false}});
  EXPECT_EQ(horizonOf(workload, settings), 24h * 10);
  const auto result = simulate(workload, settings);
  EXPECT_TRUE(result.complete);
  EXPECT_EQ(result.horizon, 24h * 10);
  EXPECT_TRUE(result.jobs[1].ended);
  EXPECT_EQ(horizonOf(jobs({{1h, 1min, 1, false}}), settings), 24h);
}

TEST(Simulation, RunsADayOfTenThousandJobs) {
  GeneratorOptions generator;
  generator.burst_jobs = 300;
  generator.daytime_jobs = 10000;
  generator.duration_median = 30s;
  generator.duration_sigma = 1.2;
  const auto workload = generateWorkload(generator);
  auto settings = options(core::ScalingPolicy::QueueAware);
  settings.scaled_job.max_replicas = 30;
  const auto result = simulate(workload, settings);
  EXPECT_TRUE(result.complete);
  EXPECT_EQ(summarize(workload, result).finished, 10300);
}

}  // namespace
}  // namespace syncpod::simulator
