#include <atomic>
#include <csignal>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "command.hpp"
#include "signals.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"

namespace syncpod::app {
namespace {

const std::set<std::string> kRoles = {"service", "singleton", "worker", "all"};

/// `syncpod serve --role=…`: runs one role (or all of them) until SIGTERM or SIGINT.
class ServeCommand final : public Command {
 public:
  std::string_view name() const override { return "serve"; }
  std::string_view summary() const override {
    return "run a role: service, singleton, worker, or all of them in one process";
  }
  std::vector<std::string> settingKeys() const override {
    return {"role", "rescue_interval", "rescue_lease"};
  }

  int run(const core::Settings& settings, const std::vector<std::string>&) override {
    const std::string role = settings.get("role");
    if (kRoles.count(role) == 0) {
      throw core::ConfigError("invalid role '" + role + "' (from " + settings.sourceOf("role") +
                              "): use service, singleton, worker or all");
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    const auto rescue_interval = settings.duration("rescue_interval");
    core::JobQueueOptions queue_options;
    queue_options.rescue_lease =
        std::chrono::duration_cast<std::chrono::seconds>(settings.duration("rescue_lease"));
    if (queue_options.rescue_lease < std::chrono::seconds(1)) {
      throw core::ConfigError("rescue_lease (from " + settings.sourceOf("rescue_lease") +
                              ") must be at least 1s: workers heartbeat every few seconds");
    }

    // Refuse to run against a schema this binary does not match.
    core::Migrator(target, core::embeddedMigrations()).requireCurrent();

    std::atomic<bool> stopping{false};
    std::thread maintenance;
    if (role == "singleton" || role == "all") {
      auto queue = std::make_shared<core::JobQueue>(target, queue_options);
      maintenance = std::thread([queue, rescue_interval, &stopping] {
        runMaintenance(*queue, rescue_interval, stopping);
      });
    }
    spdlog::info("syncpod {} ready: role {}, schema {}, database {}", SYNCPOD_VERSION, role,
                 target.schema, target.redactedUrl());

    std::optional<int> signal;
    while (!(signal = waitForTermination(std::chrono::seconds(1)))) {
    }
    spdlog::info("received {}, stopping", *signal == SIGTERM ? "SIGTERM" : "SIGINT");
    stopping = true;
    if (maintenance.joinable()) maintenance.join();
    spdlog::info("stopped");
    return 0;
  }

 private:
  /// Rescues jobs of workers that stopped heartbeating. Safe with several instances: rescue
  /// skips rows another instance holds.
  static void runMaintenance(core::JobQueue& queue, std::chrono::milliseconds interval,
                             const std::atomic<bool>& stopping) {
    auto next = std::chrono::steady_clock::now();
    while (!stopping) {
      if (std::chrono::steady_clock::now() >= next) {
        next += interval;
        auto rescued = queue.rescue();
        if (!rescued) {
          spdlog::warn("rescue failed: {}", rescued.error().message);
        } else if (rescued->requeued + rescued->failed + rescued->cancelled > 0) {
          spdlog::info("rescued orphaned jobs: {} re-queued, {} failed, {} cancelled",
                       rescued->requeued, rescued->failed, rescued->cancelled);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
};

}  // namespace

CommandPtr makeServeCommand() { return std::make_unique<ServeCommand>(); }

}  // namespace syncpod::app
