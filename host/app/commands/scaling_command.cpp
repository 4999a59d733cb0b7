#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"
#include "syncpod/core/scaling.hpp"

namespace syncpod::app {
namespace {

/// `syncpod scaling explain`: the desired_pod_count row, its inputs and who computed it.
class ScalingCommand final : public Command {
 public:
  std::string_view name() const override { return "scaling"; }
  std::string_view summary() const override {
    return "explain: print desired_pod_count, the inputs it was computed from and the leader";
  }
  std::string_view usage() const override { return "explain [--json] [--option=value ...]"; }
  std::string_view details() const override {
    return "Reads the desired_pod_count row the leading singleton writes every scale_interval\n"
           "and the leader lease. Exit codes: 0 printed, 64 usage error, 78 configuration error.\n";
  }
  std::vector<CommandSwitch> switches() const override {
    return {{"json", "print one JSON object instead of text"}};
  }
  void enableSwitch(const std::string& name, const std::string&) override { json_ = json_ || name == "json"; }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    if (args.size() != 1 || args[0] != "explain") {
      std::cerr << "syncpod scaling: expected `syncpod scaling explain`\n";
      return 64;
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    target.client = "scaling";
    core::JobQueue queue(target);
    auto record = queue.readScaling();
    if (!record) throw core::StartupError("cannot read desired_pod_count: " + record.error().message);
    core::LeaderLease lease(target, core::kSingletonLease, "", std::chrono::seconds(1));
    auto state = lease.read();
    if (!state) throw core::StartupError("cannot read the leader lease: " + state.error().message);

    if (json_) {
      std::cout << core::scalingJson(*record, *state).dump(2) << "\n";
      return 0;
    }
    const auto& in = record->inputs;
    const bool queue_aware = record->settings.policy == core::ScalingPolicy::QueueAware;
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(core::Clock::now() - record->computed_at);
    std::cout << "desired_pod_count: " << record->count << "\n";
    if (record->policy_name == "initial") {
      std::cout << "  not computed yet: no singleton has led since the schema was created\n";
    } else {
      std::cout << "  policy:                  " << record->policy_name << "\n"
                << "  computed at:             " << core::isoTime(record->computed_at) << " (" << age.count()
                << " s ago) by " << record->leader << ", term " << record->term << "\n"
                << "  ongoing jobs:            " << in.ongoing_jobs << "\n"
                << "  runs in retired workers: " << in.runs_in_retired_workers << "\n"
                << "  retired workers:         " << in.retired_workers << "\n"
                << "  active workers:          " << in.active_workers << "\n"
                << "  queued jobs (runnable):  " << in.queued_jobs << (queue_aware ? "" : " (not counted by seed)") << "\n"
                << "  worker capacity:         " << record->settings.worker_capacity << "\n"
                << "  minimum active workers:  " << record->settings.minimum_active_workers << "\n"
                << "  formula:                 " << core::scalingFormula(*record) << "\n";
    }
    if (state->valid) {
      std::cout << "leader: " << state->holder << ", term " << state->term << ", lease until "
                << core::isoTime(state->expires_at) << "\n";
    } else {
      std::cout << "leader: none (the lease is free or expired" << (state->holder.empty() ? "" : "; last held by " + state->holder) << ")\n";
    }
    return 0;
  }

 private:
  bool json_ = false;
};

}  // namespace

CommandPtr makeScalingCommand() { return std::make_unique<ScalingCommand>(); }

}  // namespace syncpod::app
