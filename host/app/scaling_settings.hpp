#pragma once
// The autoscaling settings as the singleton, `syncpod scaler` and `syncpod simulate` read them,
// so one configuration means the same to all three.

#include <optional>
#include <string>

#include "syncpod/core/scaled_job.hpp"
#include "syncpod/core/scaling.hpp"
#include "syncpod/core/settings.hpp"

namespace syncpod::app {

/// scaling_policy, worker_capacity and minimum_active_workers; throws ConfigError naming the
/// setting at fault and where it came from.
core::ScalingSettings scalingSettings(const core::Settings& settings);

/// The ScaledJob: keda_polling_interval and the scaler_* settings; throws ConfigError naming
/// the setting at fault and where it came from.
core::ScaledJobSettings scaledJobSettings(const core::Settings& settings);

/// Why terminating_grace is too short, naming the settings and where they came from; nullopt
/// when it is at least scale_interval + keda_polling_interval. Workers refuse to start with it
/// too short; `syncpod simulate` runs it to show what happens.
std::optional<std::string> terminatingGraceTooShort(const core::Settings& settings);

}  // namespace syncpod::app
