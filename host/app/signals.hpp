#pragma once

#include <chrono>
#include <optional>

namespace syncpod::app {

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts afterwards, so
/// they are received only through waitForTermination(). Call first thing in main.
void blockTerminationSignals();

/// Waits up to `timeout` for SIGTERM or SIGINT; returns the signal number or nullopt.
std::optional<int> waitForTermination(std::chrono::milliseconds timeout);

}  // namespace syncpod::app
