#include "job_output.hpp"

#include <algorithm>
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

std::string stateLine(const nlohmann::json& job) {
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

/// "<time>  <kind or level>  <message>": log lines by their level, the others by their kind.
std::string eventLine(const nlohmann::json& event) {
  const auto kind = text(event["kind"]);
  std::string tag = kind == "log" ? text(event["level"]) : kind;
  tag.resize(std::max<std::size_t>(tag.size(), 8), ' ');
  return text(event["at"]) + "  " + tag + "  " + text(event["message"]);
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
  const auto first = client.call("GET", path);
  if (first.status != 200) return refused(first);
  if (!json) std::cout << stateLine(first.body) << std::endl;
  // The events from the first on, until the API says no more will come (the job ended).
  constexpr int kPage = 500;
  std::string cursor = "0";
  for (;;) {
    const auto page =
        client.call("GET", path + "/events?limit=" + std::to_string(kPage) + "&after=" + cursor);
    if (page.status != 200) return refused(page);
    const auto& items = page.body["items"];
    if (!json) {
      for (const auto& event : items) std::cout << eventLine(event) << std::endl;
    }
    const auto& next = page.body["next_cursor"];
    if (!next.is_string()) break;
    cursor = next.get<std::string>();
    // A full page: more are there already. Otherwise the interval of a live display: what
    // happens in between is shown at the next look.
    if (static_cast<int>(items.size()) < kPage) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  const auto reply = client.call("GET", path);
  if (reply.status != 200) return refused(reply);
  std::cout << (json ? reply.body.dump(2) + "\n" : describeJob(reply.body));
  return reply.body["state"] == "succeeded" ? 0 : 1;
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
