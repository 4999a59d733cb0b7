#include "scaling_settings.hpp"

#include <cmath>
#include <cstdlib>

#include "syncpod/core/errors.hpp"

namespace syncpod::app {
namespace {

double number(const core::Settings& settings, const std::string& key) {
  const auto text = settings.get(key);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value < 0) {
    throw core::ConfigError(key + " (from " + settings.sourceOf(key) +
                            ") must be a number of 0 or more, not '" + text + "'");
  }
  return value;
}

}  // namespace

core::ScalingSettings scalingSettings(const core::Settings& settings) {
  core::ScalingSettings scaling;
  const auto policy = core::parseScalingPolicy(settings.get("scaling_policy"));
  if (!policy) {
    throw core::ConfigError("invalid scaling_policy '" + settings.get("scaling_policy") +
                            "' (from " + settings.sourceOf("scaling_policy") +
                            "): use seed or queue-aware");
  }
  scaling.policy = *policy;
  scaling.worker_capacity = static_cast<int>(settings.integer("worker_capacity", 1, 1000));
  scaling.minimum_active_workers =
      static_cast<int>(settings.integer("minimum_active_workers", 0, 10000));
  return scaling;
}

core::ScaledJobSettings scaledJobSettings(const core::Settings& settings) {
  core::ScaledJobSettings job;
  job.polling_interval = settings.duration("keda_polling_interval");
  job.min_replicas = static_cast<int>(settings.integer("scaler_min_replicas", 0, 10000));
  job.max_replicas = static_cast<int>(settings.integer("scaler_max_replicas", 1, 10000));
  if (job.min_replicas > job.max_replicas) {
    throw core::ConfigError("scaler_min_replicas (from " +
                            settings.sourceOf("scaler_min_replicas") +
                            ") must not exceed scaler_max_replicas (from " +
                            settings.sourceOf("scaler_max_replicas") + ")");
  }
  job.target_query_value = number(settings, "scaler_target_query_value");
  if (job.target_query_value <= 0) {
    throw core::ConfigError("scaler_target_query_value (from " +
                            settings.sourceOf("scaler_target_query_value") + ") must be above 0");
  }
  job.activation_target_query_value = number(settings, "scaler_activation_target_query_value");
  if (!settings.get("scaler_active_deadline").empty()) {
    job.active_deadline = std::chrono::duration_cast<std::chrono::seconds>(
        settings.duration("scaler_active_deadline"));
  }
  job.successful_history_limit =
      static_cast<int>(settings.integer("scaler_successful_history", 0, 100000));
  job.failed_history_limit = static_cast<int>(settings.integer("scaler_failed_history", 0, 100000));
  return job;
}

std::optional<std::string> terminatingGraceTooShort(const core::Settings& settings) {
  // The grace exists so that the singleton lowers desired_pod_count before KEDA's next poll
  // sees the worker gone; shorter, KEDA would start a replacement for a worker it still counts.
  const auto grace = settings.duration("terminating_grace");
  const auto needed =
      settings.duration("scale_interval") + settings.duration("keda_polling_interval");
  if (grace >= needed) return std::nullopt;
  return "terminating_grace " + std::to_string(grace.count()) + " ms (from " +
         settings.sourceOf("terminating_grace") + ") must be at least scale_interval + " +
         "keda_polling_interval = " + std::to_string(needed.count()) +
         " ms, so desired_pod_count drops before KEDA sees the worker end";
}

}  // namespace syncpod::app
