#include "job_output.hpp"

#include <chrono>
#include <iostream>
#include <sstream>
#include <thread>

#include <Poco/URI.h>

#include "api_client.hpp"

namespace syncpod::app {
namespace {

std::string text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string progressLine(const nlohmann::json& job) {
  std::ostringstream line;
  line << "job " << job["id"] << ": " << text(job["state"]) << " (attempt " << job["attempt"] << "/"
       << job["max_attempts"] << ")";
  const auto& progress = job["progress"];
  if (progress.is_object()) {
    line << "  fetched " << progress["fetched"] << ", diffed " << progress["diffed"] << ", applied "
         << progress["applied"] << ", failed " << progress["failed"];
  }
  return line.str();
}

bool finished(const nlohmann::json& job) {
  const auto state = text(job["state"]);
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

}  // namespace

std::string describeJob(const nlohmann::json& job) {
  std::ostringstream out;
  out << "job " << job["id"] << "  " << text(job["kind"]) << "  " << text(job["state"]) << "  integration "
      << job["integration_id"] << "\n";
  out << "  attempt " << job["attempt"] << "/" << job["max_attempts"] << ", created " << text(job["created_at"]);
  if (!job["finished_at"].is_null()) out << ", finished " << text(job["finished_at"]);
  out << "\n";
  if (job["payload"].is_object() && job["payload"].value("plan", false)) out << "  plan only: nothing written\n";
  const auto& progress = job["progress"];
  if (progress.is_object()) {
    out << "  progress: fetched " << progress["fetched"] << ", diffed " << progress["diffed"] << ", applied "
        << progress["applied"] << ", failed " << progress["failed"] << "\n";
  }
  const auto& result = job["result"];
  if (result.is_object() && result.contains("streams") && result["streams"].is_array()) {
    for (const auto& stream : result["streams"]) {
      for (const char* side : {"target", "source"}) {
        if (!stream.contains(side) || !stream[side].is_object()) continue;
        const auto& counts = stream[side];
        const auto changed = counts.value("create", 0) + counts.value("update", 0) + counts.value("delete", 0);
        if (changed == 0 && std::string(side) == "source") continue;
        out << "  " << text(stream["stream"]) << " → " << side << ": " << counts.value("create", 0)
            << " created, " << counts.value("update", 0) << " updated, " << counts.value("delete", 0)
            << " deleted";
        if (counts.value("rejected", 0) + counts.value("conflict", 0) + counts.value("retryable", 0) > 0) {
          out << " (" << counts.value("rejected", 0) << " rejected, " << counts.value("conflict", 0)
              << " conflicts, " << counts.value("retryable", 0) << " to retry)";
        }
        out << "\n";
      }
    }
  }
  if (job["attempts"].is_array()) {
    for (const auto& attempt : job["attempts"]) {
      out << "  attempt " << attempt["attempt"] << ": " << text(attempt["outcome"]);
      if (!attempt["error"].is_null()) out << ": " << text(attempt["error"]);
      out << "\n";
    }
  }
  if (!job["last_error"].is_null()) out << "  last error: " << text(job["last_error"]) << "\n";
  return out.str();
}

int watchJob(const ApiClient& client, const std::string& path, bool json) {
  std::string last;
  for (;;) {
    const auto reply = client.call("GET", path);
    if (reply.status != 200) return refused(reply);
    const auto line = progressLine(reply.body);
    if (line != last && !json) std::cout << line << std::endl;
    last = line;
    if (finished(reply.body)) {
      std::cout << (json ? reply.body.dump(2) + "\n" : describeJob(reply.body));
      return reply.body["state"] == "succeeded" ? 0 : 1;
    }
    // The interval of a progress display: what changes in between is shown at the next look.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int refused(const ApiReply& reply) {
  std::cerr << "syncpod: the service answered " << reply.status << ": " << reply.errorMessage() << "\n";
  return 1;
}

std::string escapeSegment(const std::string& value) {
  std::string escaped;
  Poco::URI::encode(value, "/?#&=+ %", escaped);
  return escaped;
}

}  // namespace syncpod::app
