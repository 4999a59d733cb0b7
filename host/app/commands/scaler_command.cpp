#include <csignal>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>

#include "command.hpp"
#include "scaling_settings.hpp"
#include "signals.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/scaled_job.hpp"
#include "syncpod/scaler/local_scaler.hpp"

namespace syncpod::app {
namespace {

scaler::ScalerOptions scalerOptions(const core::Settings& settings) {
  scaler::ScalerOptions options;
  options.scaled_job = scaledJobSettings(settings);
  options.termination_grace = settings.duration("scaler_termination_grace");
  return options;
}

/// `syncpod scaler`: KEDA's ScaledJob (default strategy, postgresql trigger) with worker
/// processes instead of Jobs, for running the whole system on one machine.
class ScalerCommand final : public Command {
 public:
  std::string_view name() const override { return "scaler"; }
  std::string_view summary() const override {
    return "start worker processes as KEDA's ScaledJob would start worker Jobs (one machine)";
  }
  std::string_view usage() const override { return "[--option=value ...]"; }
  std::string_view details() const override {
    return "Every keda_polling_interval it runs scaler_query (default: SELECT count FROM\n"
           "<schema>.desired_pod_count) and starts `syncpod serve --role=worker` processes the way\n"
           "KEDA's default scaling strategy does, between scaler_min_replicas and\n"
           "scaler_max_replicas. It never stops a worker (workers retire and exit by themselves),\n"
           "except one running longer than scaler_active_deadline. Workers get this command's\n"
           "settings through their environment. On SIGTERM or SIGINT it sends SIGTERM to its\n"
           "workers, waits for them (SIGKILL after scaler_termination_grace) and exits 0.\n"
           "Exit codes: 0 stopped, 78 configuration error.\n";
  }
  std::vector<std::string> settingKeys() const override {
    return {"keda_polling_interval", "scaler_min_replicas", "scaler_max_replicas",
            "scaler_target_query_value", "scaler_activation_target_query_value",
            "scaler_active_deadline", "scaler_termination_grace", "scaler_successful_history",
            "scaler_failed_history", "scaler_query"};
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    if (!args.empty()) {
      std::cerr << "syncpod scaler: takes no arguments\n";
      return 64;
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    target.client = "scaler";
    const auto options = scalerOptions(settings);
    auto query = settings.get("scaler_query");
    if (query.empty()) query = core::ScaledJobTrigger::defaultQuery(target.schema);

    scaler::WorkerCommand command;
    std::error_code error;
    command.executable = std::filesystem::read_symlink("/proc/self/exe", error).string();
    if (error) throw core::StartupError("cannot find the syncpod executable to start workers with");
    command.arguments = {"serve", "--role=worker"};
    // Workers resolve the same settings: whatever came from flags or a config file reaches
    // them through the environment (never the command line, which ps shows).
    for (const auto& spec : core::settingSpecs()) {
      const auto source = settings.sourceOf(spec.key);
      if (source != "default" && source != "unset" && spec.key != "role") {
        command.environment[spec.env] = settings.get(spec.key);
      }
    }

    core::ScaledJobTrigger trigger(target, query);
    scaler::LocalScaler scaler(options, command, [&trigger] { return trigger.read(); });
    spdlog::info("scaler: polling every {} ms, {}..{} workers, targetQueryValue {}, query: {}",
                 options.scaled_job.polling_interval.count(), options.scaled_job.min_replicas,
                 options.scaled_job.max_replicas, options.scaled_job.target_query_value, query);
    auto next_tick = std::chrono::steady_clock::now();
    while (true) {
      if (std::chrono::steady_clock::now() >= next_tick) {
        scaler.tick();
        next_tick += options.scaled_job.polling_interval;
        if (next_tick < std::chrono::steady_clock::now()) next_tick = std::chrono::steady_clock::now();
      }
      const auto signal = waitForTermination(std::chrono::milliseconds(100));
      scaler.reap();
      if (signal) {
        spdlog::info("scaler: received {}; stopping {} worker(s)", *signal == SIGTERM ? "SIGTERM" : "SIGINT",
                     scaler.unfinished());
        scaler.stop();
        spdlog::info("scaler: stopped");
        return 0;
      }
    }
  }
};

}  // namespace

CommandPtr makeScalerCommand() { return std::make_unique<ScalerCommand>(); }

}  // namespace syncpod::app
