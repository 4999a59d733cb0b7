#include "syncpod/core/scaling.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "syncpod/core/leader_lease.hpp"

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

std::string scalingFormula(const ScalingRecord& record) {
  if (record.policy_name == "initial") return "";
  const auto& in = record.inputs;
  const bool queue_aware = record.settings.policy == ScalingPolicy::QueueAware;
  const int demand =
      in.ongoing_jobs - in.runs_in_retired_workers + (queue_aware ? in.queued_jobs : 0);
  const int capacity = std::max(record.settings.worker_capacity, 1);
  return "max(" + std::to_string(demand) + " / " + std::to_string(capacity) + " + 1, " +
         std::to_string(record.settings.minimum_active_workers) + ") + " +
         std::to_string(in.retired_workers) + " = " + std::to_string(record.count);
}

nlohmann::json scalingJson(const ScalingRecord& record, const LeaseState& lease) {
  const auto& in = record.inputs;
  const auto formula = scalingFormula(record);
  const auto time = [](TimePoint at) { return nlohmann::json(isoTime(at)); };
  // A lease never taken expires at -infinity: it has no time to show.
  const bool ever_held = lease.acquired_at.has_value();
  return {{"count", record.count},
          {"policy", record.policy_name},
          {"computed_at", isoTime(record.computed_at)},
          {"computed_by", record.leader},
          {"term", record.term},
          {"formula", formula.empty() ? nlohmann::json(nullptr) : nlohmann::json(formula)},
          {"inputs",
           {{"ongoing_jobs", in.ongoing_jobs},
            {"runs_in_retired_workers", in.runs_in_retired_workers},
            {"retired_workers", in.retired_workers},
            {"active_workers", in.active_workers},
            {"queued_jobs", in.queued_jobs},
            {"worker_capacity", record.settings.worker_capacity},
            {"minimum_active_workers", record.settings.minimum_active_workers}}},
          {"lease",
           {{"holder", lease.holder},
            {"term", lease.term},
            {"valid", lease.valid},
            {"acquired_at", ever_held ? time(*lease.acquired_at) : nlohmann::json(nullptr)},
            {"expires_at", ever_held ? time(lease.expires_at) : nlohmann::json(nullptr)}}}};
}

}  // namespace syncpod::core
