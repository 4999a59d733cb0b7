#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "syncpod/core/job.hpp"

namespace syncpod::core {

struct LeaseState;

/// How desired_pod_count is computed (docs/singleton.md).
enum class ScalingPolicy {
  Seed = 1,    ///< the field design's formula: running jobs only
  QueueAware,  ///< also the queued jobs that could start now, so a burst scales at once
};

std::string_view toString(ScalingPolicy policy);
std::optional<ScalingPolicy> parseScalingPolicy(std::string_view text);

/// What the database says at one moment. Workers count only while alive: INACTIVE, ACTIVE or
/// RETIRED with a heartbeat fresher than the staleness limit; TERMINATING workers never count.
struct ScalingInputs {
  int ongoing_jobs = 0;             ///< running jobs of alive workers
  int runs_in_retired_workers = 0;  ///< of those, the ones in RETIRED workers
  int retired_workers = 0;          ///< alive RETIRED workers
  int active_workers = 0;           ///< alive INACTIVE or ACTIVE workers (for the log)
  /// Due queued jobs that could start now: at most one per integration, whose lane is free.
  int queued_jobs = 0;
};

/// The settings the formula takes.
struct ScalingSettings {
  ScalingPolicy policy = ScalingPolicy::Seed;
  int worker_capacity = 1;         ///< WORKER_CAPACITY, at least 1
  int minimum_active_workers = 2;  ///< MINIMUM_ACTIVE_WORKERS
};

/// seed:        desired_active = (ongoing - in_retired) / capacity + 1       (integer division)
/// queue-aware: desired_active = (ongoing - in_retired + queued) / capacity + 1
/// both:        count = max(desired_active, minimum_active_workers) + retired_workers
int desiredPodCount(const ScalingInputs& inputs, const ScalingSettings& settings);

/// One computation as the desired_pod_count row keeps it.
struct ScalingRecord {
  int count = 0;
  ScalingInputs inputs;
  ScalingSettings settings;
  std::string policy_name;  ///< as stored ("initial" before any singleton computed it)
  TimePoint computed_at;
  std::string leader;       ///< lease holder that wrote it
  std::int64_t term = 0;
};

/// The formula with the record's numbers, as `syncpod scaling explain` prints it:
/// "max(3 / 1 + 1, 2) + 1 = 5". Empty for the row no singleton computed yet (policy "initial").
std::string scalingFormula(const ScalingRecord& record);

/// The record and the singleton lease as one document: what `syncpod scaling explain --json`
/// prints and GET /api/v1/scaling answers (docs/singleton.md).
nlohmann::json scalingJson(const ScalingRecord& record, const LeaseState& lease);

}  // namespace syncpod::core
