#include "syncpod/core/scaled_job.hpp"

#include <gtest/gtest.h>

namespace syncpod::core {
namespace {

ScaledJobSettings chartLike() {
  ScaledJobSettings settings;
  settings.min_replicas = 0;
  settings.max_replicas = 5;
  settings.target_query_value = 1;
  return settings;
}

TEST(ScaledJob, WithoutAValueStartsNothingEvenBelowTheMinimum) {
  auto settings = chartLike();
  settings.min_replicas = 2;
  const auto decision = decideScaledJob(std::nullopt, 0, settings);
  EXPECT_FALSE(decision.have_value);
  EXPECT_EQ(decision.start, 0);
}

TEST(ScaledJob, StartsWhatTheValueAsksMinusTheUnfinished) {
  const auto settings = chartLike();
  EXPECT_EQ(decideScaledJob(2.0, 0, settings).start, 2);
  EXPECT_EQ(decideScaledJob(2.0, 1, settings).start, 1);
  EXPECT_EQ(decideScaledJob(2.0, 2, settings).start, 0);
  // Unfinished workers above the value are never stopped, and nothing more starts.
  EXPECT_EQ(decideScaledJob(2.0, 4, settings).start, 0);
}

TEST(ScaledJob, NeverGoesAboveMaxReplicas) {
  const auto settings = chartLike();
  const auto burst = decideScaledJob(31.0, 2, settings);
  EXPECT_TRUE(burst.active);
  EXPECT_EQ(burst.max_scale, 5);
  EXPECT_EQ(burst.scale_to, 31);
  EXPECT_EQ(burst.start, 3);
  EXPECT_EQ(decideScaledJob(31.0, 5, settings).start, 0);
  EXPECT_EQ(decideScaledJob(31.0, 7, settings).start, 0);
}

TEST(ScaledJob, TheMinimumRunsWhateverTheValue) {
  auto settings = chartLike();
  settings.min_replicas = 2;
  EXPECT_EQ(decideScaledJob(0.0, 0, settings).start, 2);
  EXPECT_EQ(decideScaledJob(0.0, 1, settings).start, 1);
  EXPECT_EQ(decideScaledJob(0.0, 2, settings).start, 0);
  // maxScale leaves room for the minimum: ceil(min(q / target, max - min)) = 3.
  const auto burst = decideScaledJob(10.0, 2, settings);
  EXPECT_EQ(burst.max_scale, 3);
  EXPECT_EQ(burst.start, 1);
}

TEST(ScaledJob, ActivationAndTargetShapeTheScale) {
  auto settings = chartLike();
  settings.activation_target_query_value = 1;
  EXPECT_FALSE(decideScaledJob(1.0, 0, settings).active);
  EXPECT_EQ(decideScaledJob(1.0, 0, settings).start, 0);
  EXPECT_EQ(decideScaledJob(1.5, 0, settings).start, 2);  // ceil

  settings = chartLike();
  settings.target_query_value = 2;
  const auto decision = decideScaledJob(7.0, 0, settings);
  EXPECT_EQ(decision.max_scale, 4);  // ceil(3.5)
  EXPECT_EQ(decision.start, 4);
}

TEST(ScaledJob, ANegativeValueCountsAsZero) {
  const auto decision = decideScaledJob(-3.0, 0, chartLike());
  EXPECT_TRUE(decision.have_value);
  EXPECT_EQ(decision.value, 0);
  EXPECT_FALSE(decision.active);
  EXPECT_EQ(decision.start, 0);
}

TEST(ScaledJob, DefaultQueryQuotesTheSchema) {
  EXPECT_EQ(ScaledJobTrigger::defaultQuery("syncpod"), "SELECT count FROM \"syncpod\".desired_pod_count");
  EXPECT_EQ(ScaledJobTrigger::defaultQuery("a\"b"), "SELECT count FROM \"a\"\"b\".desired_pod_count");
}

}  // namespace
}  // namespace syncpod::core
