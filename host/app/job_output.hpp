#pragma once
// How the CLI shows jobs it reads from the REST API.

#include <string>

#include <nlohmann/json.hpp>

namespace syncpod::app {

class ApiClient;
struct ApiReply;

/// Several lines about one job as GET /api/v1/jobs/{id} returns it.
std::string describeJob(const nlohmann::json& job);

/// Follows the job at `path` through its events: prints its state, then each event as it
/// arrives (the attempts' starts and ends, progress, log lines), polling for new ones, until
/// the job ended; then the job as describeJob shows it. With `json`, only the job's JSON at the
/// end. Returns 0 when it succeeded, 1 otherwise.
int watchJob(const ApiClient& client, const std::string& path, bool json);

/// Prints the API's error message; returns 1.
int refused(const ApiReply& reply);

/// `text` safe as one path segment or query value (percent-encoded).
std::string escapeSegment(const std::string& text);

}  // namespace syncpod::app
