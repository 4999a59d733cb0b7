#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "command.hpp"
#include "plugin_loading.hpp"
#include "signals.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/worker/isolated_job.hpp"

namespace syncpod::app {
namespace {

constexpr int kExitUsage = 64;

template <class T>
bool parseNumber(const std::string& text, T& value) {
  const auto end = text.data() + text.size();
  const auto [last, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && last == end;
}

/// `syncpod run-job`: the child process in which a worker with --isolation=process runs one job.
class RunJobCommand final : public Command {
 public:
  std::string_view name() const override { return "run-job"; }
  std::string_view summary() const override {
    return "internal: runs one job in its own process for a worker with --isolation=process";
  }
  std::string_view usage() const override {
    return "<job id> <attempt> <worker id> <worker pid>";
  }
  std::string_view details() const override {
    return "Started by the worker, which passes the settings in the environment and reads the\n"
           "job's result on file descriptor 3. SIGTERM asks the job to stop.\n";
  }
  std::vector<std::string> settingKeys() const override {
    return {"plugin_path", "job_memory_limit", "job_event_log_lines"};
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    worker::IsolatedJob job;
    if (args.size() != 4 || !parseNumber(args[0], job.id) || !parseNumber(args[1], job.attempt) ||
        !parseNumber(args[3], job.worker_pid)) {
      std::cerr << "syncpod run-job: expected " << usage() << "\n";
      return kExitUsage;
    }
    job.worker = args[2];
    if (const auto limit = settings.byteSize("job_memory_limit")) {
      // Allocations past the limit fail inside this process alone; the plugin's call ends with
      // an error (std::bad_alloc) instead of the kernel killing a bigger process.
      const rlimit value{static_cast<rlim_t>(*limit), static_cast<rlim_t>(*limit)};
      if (::setrlimit(RLIMIT_AS, &value) != 0) {
        throw core::ConfigError("cannot apply job_memory_limit " + settings.get("job_memory_limit"));
      }
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema"), "job"};
    target.validate();
    core::JobEventOptions events;
    events.max_log_lines = static_cast<int>(settings.integer("job_event_log_lines", 0, 100000));
    const auto plugins = loadPlugins(settings);

    std::atomic<bool> cancelled{false};
    std::atomic<bool> done{false};
    std::thread signals([&] {
      while (!done) {
        if (waitForTermination(std::chrono::milliseconds(100))) cancelled = true;
      }
    });
    int code = 0;
    try {
      code = worker::runIsolatedJob(target, plugins, job, [&] { return cancelled.load(); }, events);
    } catch (...) {
      done = true;
      signals.join();
      throw;
    }
    done = true;
    signals.join();
    return code;
  }
};

}  // namespace

CommandPtr makeRunJobCommand() { return std::make_unique<RunJobCommand>(); }

}  // namespace syncpod::app
