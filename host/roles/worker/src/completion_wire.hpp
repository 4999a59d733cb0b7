#pragma once
// Private to the worker role: how a child process hands its job's Completion to the worker.

#include <optional>
#include <string>

#include "syncpod/core/job.hpp"

namespace syncpod::worker {

/// One JSON object: {"outcome": "succeeded", "result": "<json text>", "error": "…"}.
std::string toWire(const core::Completion& completion);

/// Reads what toWire() wrote into `completion` (outcome, result, error; not id and attempt).
/// Returns an error message when `text` is not such an object.
std::optional<std::string> fromWire(const std::string& text, core::Completion& completion);

}  // namespace syncpod::worker
