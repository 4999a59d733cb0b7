#include "syncpod/core/scaling.hpp"

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "syncpod/core/leader_lease.hpp"

namespace syncpod::core {
namespace {

struct FormulaCase {
  const char* name;
  ScalingInputs inputs;
  ScalingSettings settings;
  int expected;
};

ScalingInputs inputs(int ongoing, int in_retired, int retired, int queued = 0) {
  ScalingInputs in;
  in.ongoing_jobs = ongoing;
  in.runs_in_retired_workers = in_retired;
  in.retired_workers = retired;
  in.queued_jobs = queued;
  return in;
}

ScalingSettings settings(ScalingPolicy policy, int capacity, int minimum = 2) {
  return {policy, capacity, minimum};
}

TEST(ScalingFormula, SeedAndQueueAwareTable) {
  const auto seed = ScalingPolicy::Seed;
  const auto queue_aware = ScalingPolicy::QueueAware;
  const FormulaCase cases[] = {
      {"idle: the minimum", inputs(0, 0, 0), settings(seed, 1), 2},
      {"one running job: still the minimum", inputs(1, 0, 0), settings(seed, 1), 2},
      {"two running: one more for headroom", inputs(2, 0, 0), settings(seed, 1), 3},
      // The field example: 10 jobs on capacity 1 ask for 11 pods; KEDA's maxReplicaCount 10
      // caps what it starts (see KedaCapsTheFieldExample).
      {"field example", inputs(10, 0, 0), settings(seed, 1), 11},
      {"retired workers are added", inputs(5, 2, 2), settings(seed, 1), 6},  // (5-2)/1+1=4, +2
      {"capacity 2: integer division", inputs(5, 0, 0), settings(seed, 2), 3},  // 5/2+1=3
      {"capacity 2, even", inputs(4, 0, 0), settings(seed, 2), 3},
      {"capacity 2 with retired", inputs(7, 3, 1), settings(seed, 2), 4},  // (7-3)/2+1=3, +1
      {"minimum 0 keeps the headroom", inputs(0, 0, 0), settings(seed, 1, 0), 1},
      {"seed ignores a queued burst", inputs(0, 0, 0, 50), settings(seed, 1), 2},
      {"queue-aware scales a burst at once", inputs(0, 0, 0, 50), settings(queue_aware, 1), 51},
      {"queue-aware with capacity 4", inputs(2, 0, 0, 10), settings(queue_aware, 4), 4},  // 12/4+1
      {"queue-aware idle equals seed", inputs(0, 0, 0, 0), settings(queue_aware, 1), 2},
      {"queue-aware adds retired too", inputs(3, 3, 3, 0), settings(queue_aware, 1), 5},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(desiredPodCount(c.inputs, c.settings), c.expected) << c.name;
  }
}

/// KEDA's ScaledJob (default strategy) starts min(count, maxReplicaCount) - unfinished jobs.
int kedaStarts(int count, int max_replicas, int unfinished) {
  return std::max(std::min(count, max_replicas) - unfinished, 0);
}

TEST(ScalingFormula, KedaCapsTheFieldExample) {
  const int count = desiredPodCount(inputs(10, 0, 0), settings(ScalingPolicy::Seed, 1));
  EXPECT_EQ(count, 11);
  EXPECT_EQ(kedaStarts(count, 10, 10), 0);  // all ten pods already run: none more
  EXPECT_EQ(kedaStarts(count, 10, 8), 2);
}

TEST(ScalingFormula, PolicyNames) {
  EXPECT_EQ(parseScalingPolicy("seed"), ScalingPolicy::Seed);
  EXPECT_EQ(parseScalingPolicy("queue-aware"), ScalingPolicy::QueueAware);
  EXPECT_FALSE(parseScalingPolicy("Seed"));
  EXPECT_EQ(toString(ScalingPolicy::QueueAware), "queue-aware");
}

TEST(ScalingExplain, FormulaAndDocument) {
  ScalingRecord record;
  record.policy_name = "initial";
  EXPECT_EQ(scalingFormula(record), "");
  EXPECT_TRUE(scalingJson(record, LeaseState{})["formula"].is_null());

  record.policy_name = "seed";
  record.settings = settings(ScalingPolicy::Seed, 2);
  record.inputs = inputs(5, 1, 1, 7);
  record.count = desiredPodCount(record.inputs, record.settings);
  // seed leaves the queued jobs out.
  EXPECT_EQ(scalingFormula(record), "max(4 / 2 + 1, 2) + 1 = 4");
  record.policy_name = "queue-aware";
  record.settings.policy = ScalingPolicy::QueueAware;
  record.count = desiredPodCount(record.inputs, record.settings);
  EXPECT_EQ(scalingFormula(record), "max(11 / 2 + 1, 2) + 1 = 7");

  LeaseState lease;
  lease.holder = "vm:1:ab";
  lease.term = 3;
  lease.valid = true;
  lease.acquired_at = TimePoint(std::chrono::seconds(1764133200));
  lease.expires_at = TimePoint(std::chrono::seconds(1764133215));
  const auto json = scalingJson(record, lease);
  EXPECT_EQ(json["count"], 7);
  EXPECT_EQ(json["formula"], "max(11 / 2 + 1, 2) + 1 = 7");
  EXPECT_EQ(json["inputs"]["queued_jobs"], 7);
  EXPECT_EQ(json["lease"]["expires_at"], "2025-11-26T05:00:15.000Z");
  EXPECT_TRUE(scalingJson(record, LeaseState{})["lease"]["expires_at"].is_null()) << "never held";
}

}  // namespace
}  // namespace syncpod::core
