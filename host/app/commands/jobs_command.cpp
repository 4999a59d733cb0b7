#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "api_client.hpp"
#include "command.hpp"
#include "job_output.hpp"

namespace syncpod::app {
namespace {

constexpr int kExitUsage = 64;

/// `syncpod jobs list|show|cancel|watch`: the REST API's jobs from a terminal.
class JobsCommand final : public Command {
 public:
  std::string_view name() const override { return "jobs"; }
  std::string_view summary() const override {
    return "list, show, cancel or watch jobs through the REST API (list | show | cancel | watch)";
  }
  std::string_view usage() const override {
    return "list [--integration=ID] [--state=S] [--kind=K] [--limit=N] | show <id> | cancel <id> | "
           "watch <id>  [--json]";
  }
  std::string_view details() const override {
    return "Talks to the service at --url (SYNCPOD_API_URL) with the token in SYNCPOD_API_TOKEN.\n"
           "  list     newest first; filter by integration, state (queued, running, succeeded,\n"
           "           failed, cancelled) or kind (full, partial)\n"
           "  show     one job: state, attempts, progress, result, last error\n"
           "  cancel   cancels a queued job, or asks a running job's worker to stop it\n"
           "  watch    follows the job until it ends: its attempts, progress and log lines as\n"
           "           they happen (its events, from the first on)\n"
           "\n"
           "exit codes: 0 done (watch: the job succeeded); 1 the API refused, or the watched job\n"
           "            failed or was cancelled; 64 usage error; 78 configuration error or the\n"
           "            service cannot be reached\n";
  }
  std::vector<std::string> settingKeys() const override { return {"url", "token"}; }
  std::vector<CommandSwitch> switches() const override {
    return {{"integration", "list: only this integration's jobs", "id"},
            {"state", "list: only jobs in this state", "state"},
            {"kind", "list: only jobs of this kind", "kind"},
            {"limit", "list: at most this many (default 20)", "n"},
            {"json", "print the API's JSON", ""}};
  }
  void enableSwitch(const std::string& name, const std::string& value) override {
    if (name == "json") json_ = true;
    if (name == "integration" || name == "state" || name == "kind" || name == "limit") filters_[name] = value;
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    const std::string action = args.empty() ? "" : args[0];
    const bool one_job = action == "show" || action == "cancel" || action == "watch";
    if (!((action == "list" && args.size() == 1) || (one_job && args.size() == 2))) {
      std::cerr << "syncpod jobs: expected `list`, `show <id>`, `cancel <id>` or `watch <id>`; see "
                   "`syncpod jobs --help`\n";
      return kExitUsage;
    }
    const ApiClient client(settings);
    if (action == "list") return list(client);
    const std::string path = "/api/v1/jobs/" + escapeSegment(args[1]);
    if (action == "show") return show(client, path);
    if (action == "cancel") return cancel(client, path);
    return watchJob(client, path, json_);
  }

 private:
  int list(const ApiClient& client) const {
    std::string query = "?limit=" + (filters_.count("limit") ? filters_.at("limit") : std::string("20"));
    if (filters_.count("integration")) query += "&integration_id=" + escapeSegment(filters_.at("integration"));
    if (filters_.count("state")) query += "&state=" + escapeSegment(filters_.at("state"));
    if (filters_.count("kind")) query += "&kind=" + escapeSegment(filters_.at("kind"));
    const auto reply = client.call("GET", "/api/v1/jobs" + query);
    if (reply.status != 200) return refused(reply);
    if (json_) {
      std::cout << reply.body.dump(2) << "\n";
      return 0;
    }
    std::printf("%-8s %-11s %-8s %-10s %-7s %s\n", "ID", "INTEGRATION", "KIND", "STATE", "ATTEMPT", "CREATED");
    for (const auto& job : reply.body["items"]) {
      std::printf("%-8lld %-11lld %-8s %-10s %-7d %s\n", job["id"].get<long long>(),
                  job["integration_id"].get<long long>(), job["kind"].get<std::string>().c_str(),
                  job["state"].get<std::string>().c_str(), job["attempt"].get<int>(),
                  job["created_at"].get<std::string>().c_str());
    }
    return 0;
  }

  int show(const ApiClient& client, const std::string& path) const {
    const auto reply = client.call("GET", path);
    if (reply.status != 200) return refused(reply);
    std::cout << (json_ ? reply.body.dump(2) + "\n" : describeJob(reply.body));
    return 0;
  }

  static int cancel(const ApiClient& client, const std::string& path) {
    const auto reply = client.call("POST", path + "/cancel");
    if (reply.status != 202) return refused(reply);
    const bool running = reply.body["state"] == "running";
    std::cout << "job " << reply.body["id"] << (running ? ": cancellation requested; its worker stops it at its next heartbeat\n"
                                                        : ": cancelled\n");
    return 0;
  }

  bool json_ = false;
  std::map<std::string, std::string> filters_;
};

}  // namespace

CommandPtr makeJobsCommand() { return std::make_unique<JobsCommand>(); }

}  // namespace syncpod::app
