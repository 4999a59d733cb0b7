#pragma once
// KEDA's ScaledJob, reduced to the decision it makes every polling interval: how many worker
// Jobs to start. `syncpod scaler` runs it against the database with worker processes, and
// `syncpod simulate` runs the same code on simulated time (docs/autoscaling.md).

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "syncpod/core/database.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// The ScaledJob fields that shape scaling, with KEDA's defaults (the Helm chart sets its own).
struct ScaledJobSettings {
  std::chrono::milliseconds polling_interval{30000};  ///< pollingInterval
  int min_replicas = 0;                               ///< minReplicaCount
  int max_replicas = 100;                             ///< maxReplicaCount
  double target_query_value = 1;                      ///< the postgresql trigger's targetQueryValue
  double activation_target_query_value = 0;           ///< activationTargetQueryValue
  /// jobTargetRef.activeDeadlineSeconds: a worker running longer is stopped and counts as
  /// failed. Zero: no deadline.
  std::chrono::seconds active_deadline{0};
  int successful_history_limit = 100;  ///< successfulJobsHistoryLimit
  int failed_history_limit = 100;      ///< failedJobsHistoryLimit
};

/// What one polling interval decided.
struct ScaledJobDecision {
  bool have_value = false;  ///< false: the query gave NULL, no row or an error; nothing started
  double value = 0;         ///< q, negative values read as 0
  bool active = false;      ///< q > activationTargetQueryValue
  long long max_scale = 0;  ///< ceil(min(q / target, maxReplicas - minReplicas))
  long long scale_to = 0;   ///< ceil(q)
  int start = 0;            ///< workers to start now
};

/// The `default` scaling strategy. `value` is the first column of the first row of the query
/// (nullopt when there was none); `unfinished` counts the workers started that have not ended,
/// whatever their state. Below minReplicas the missing ones start; otherwise, when active,
/// max(0, min(scaleTo, maxScale - unfinished)). Nothing is ever stopped here.
ScaledJobDecision decideScaledJob(std::optional<double> value, int unfinished,
                                  const ScaledJobSettings& settings);

/// The trigger's query: `SELECT count FROM <schema>.desired_pod_count` unless given. Keeps one
/// connection and reconnects after an error.
class ScaledJobTrigger {
 public:
  ScaledJobTrigger(DatabaseTarget target, std::string query);
  ~ScaledJobTrigger();
  ScaledJobTrigger(const ScaledJobTrigger&) = delete;
  ScaledJobTrigger& operator=(const ScaledJobTrigger&) = delete;

  /// The query KEDA runs for an installation in `schema`.
  static std::string defaultQuery(const std::string& schema);

  /// The first column of the first row as a number; nullopt for NULL or no row; an error when
  /// the query failed or its value is not a number.
  Result<std::optional<double>> read();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
