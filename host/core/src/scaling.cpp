#include "syncpod/core/scaling.hpp"

#include <algorithm>

namespace syncpod::core {

std::string_view toString(ScalingPolicy policy) {
  return policy == ScalingPolicy::QueueAware ? "queue-aware" : "seed";
}

std::optional<ScalingPolicy> parseScalingPolicy(std::string_view text) {
  if (text == "seed") return ScalingPolicy::Seed;
  if (text == "queue-aware") return ScalingPolicy::QueueAware;
  return std::nullopt;
}

int desiredPodCount(const ScalingInputs& inputs, const ScalingSettings& settings) {
  const int capacity = std::max(settings.worker_capacity, 1);
  int demand = std::max(inputs.ongoing_jobs - inputs.runs_in_retired_workers, 0);
  if (settings.policy == ScalingPolicy::QueueAware) demand += std::max(inputs.queued_jobs, 0);
  // The +1 is the idle headroom: a job enqueued now starts at once on a worker already up.
  const int desired_active = demand / capacity + 1;
  return std::max(desired_active, settings.minimum_active_workers) +
         std::max(inputs.retired_workers, 0);
}

}  // namespace syncpod::core
