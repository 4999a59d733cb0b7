#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "api_client.hpp"
#include "command.hpp"
#include "job_output.hpp"

namespace syncpod::app {
namespace {

constexpr int kExitUsage = 64;

/// `syncpod sync <integration id>`: starts a sync through the REST API and, unless told not
/// to, watches it to its end.
class SyncCommand final : public Command {
 public:
  std::string_view name() const override { return "sync"; }
  std::string_view summary() const override {
    return "start a sync of an integration through the REST API and watch it";
  }
  std::string_view usage() const override {
    return "<integration id> [--plan] [--keys=k1,k2 | --incremental] [--no-wait] [--json]";
  }
  std::string_view details() const override {
    return "Talks to the service at --url (SYNCPOD_API_URL) with the token in SYNCPOD_API_TOKEN.\n"
           "Without --keys or --incremental the sync is full. --plan computes the changes and\n"
           "writes nothing.\n"
           "\n"
           "exit codes: 0 the job succeeded (or was queued, with --no-wait); 1 the API refused,\n"
           "            or the job failed or was cancelled; 64 usage error; 78 configuration\n"
           "            error or the service cannot be reached\n";
  }
  std::vector<std::string> settingKeys() const override { return {"url", "token"}; }
  std::vector<CommandSwitch> switches() const override {
    return {{"plan", "plan only: compute the changes, write nothing", ""},
            {"keys", "a partial sync of these record keys, comma-separated", "keys"},
            {"incremental", "a partial sync of what the source changed since its cursor", ""},
            {"no-wait", "print the job and return at once", ""},
            {"json", "print the API's JSON", ""}};
  }
  void enableSwitch(const std::string& name, const std::string& value) override {
    if (name == "plan") plan_ = true;
    if (name == "keys") keys_ = value;
    if (name == "incremental") incremental_ = true;
    if (name == "no-wait") wait_ = false;
    if (name == "json") json_ = true;
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    if (args.size() != 1) {
      std::cerr << "syncpod sync: expected one integration id; see `syncpod sync --help`\n";
      return kExitUsage;
    }
    nlohmann::json body = {{"plan", plan_}};
    if (!keys_.empty() || incremental_) {
      body["kind"] = "partial";
      body["incremental"] = incremental_;
      if (!keys_.empty()) {
        body["keys"] = nlohmann::json::array();
        std::istringstream list(keys_);
        std::string key;
        while (std::getline(list, key, ',')) {
          if (!key.empty()) body["keys"].push_back(key);
        }
      }
    }
    const ApiClient client(settings);
    const auto reply = client.call("POST", "/api/v1/integrations/" + escapeSegment(args[0]) + "/syncs", body.dump());
    if (reply.status != 202) return refused(reply);
    const auto id = reply.body["id"].get<long long>();
    if (!wait_) {
      if (json_) {
        std::cout << reply.body.dump(2) << "\n";
      } else {
        std::cout << "job " << id << (reply.body.value("merged", false) ? " (already queued)" : "") << " queued\n";
      }
      return 0;
    }
    if (!json_) std::cout << "job " << id << (reply.body.value("merged", false) ? " (already queued)" : "") << "\n";
    return watchJob(client, "/api/v1/jobs/" + std::to_string(id), json_);
  }

 private:
  bool plan_ = false;
  bool incremental_ = false;
  bool wait_ = true;
  bool json_ = false;
  std::string keys_;
};

}  // namespace

CommandPtr makeSyncCommand() { return std::make_unique<SyncCommand>(); }

}  // namespace syncpod::app
