#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "command.hpp"
#include "plugin_loading.hpp"
#include "scaling_settings.hpp"
#include "signals.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"
#include "syncpod/service/service.hpp"
#include "syncpod/singleton/singleton.hpp"
#include "syncpod/worker/worker.hpp"

namespace syncpod::app {
namespace {

const std::set<std::string> kRoles = {"service", "singleton", "worker", "all"};

/// The settings that reach a job's child process (process isolation) through its environment.
const std::vector<std::pair<std::string, std::string>> kChildSettings = {
    {"database_url", "SYNCPOD_DATABASE_URL"}, {"schema", "SYNCPOD_SCHEMA"},
    {"plugin_path", "SYNCPOD_PLUGIN_PATH"},    {"log_format", "SYNCPOD_LOG_FORMAT"},
    {"log_level", "SYNCPOD_LOG_LEVEL"},       {"job_memory_limit", "SYNCPOD_JOB_MEMORY_LIMIT"},
    {"job_event_log_lines", "SYNCPOD_JOB_EVENT_LOG_LINES"}};

/// Reads and checks the worker's settings; throws ConfigError naming the setting at fault.
worker::WorkerOptions workerOptions(const core::Settings& settings) {
  worker::WorkerOptions options;
  options.capacity = static_cast<int>(settings.integer("worker_capacity", 1, 1000));
  const auto isolation = settings.get("isolation");
  if (isolation == "process") {
    options.isolation = worker::Isolation::Process;
  } else if (isolation == "thread") {
    options.isolation = worker::Isolation::Thread;
  } else {
    throw core::ConfigError("invalid isolation '" + isolation + "' (from " +
                            settings.sourceOf("isolation") + "): use process or thread");
  }
  options.active_period = settings.duration("active_period");
  options.heartbeat_interval = settings.duration("heartbeat_interval");
  options.poll_interval = settings.duration("poll_interval");
  options.terminating_grace = settings.duration("terminating_grace");
  options.drain_deadline = settings.duration("drain_deadline");
  options.stop_grace = settings.duration("stop_grace");
  options.lease = settings.duration("rescue_lease");
  (void)settings.byteSize("job_memory_limit");  // refused here rather than in every job
  options.events.max_log_lines =
      static_cast<int>(settings.integer("job_event_log_lines", 0, 100000));

  if (const auto problem = terminatingGraceTooShort(settings)) throw core::ConfigError(*problem);
  if (options.lease < 2 * options.heartbeat_interval) {
    throw core::ConfigError("rescue_lease (from " + settings.sourceOf("rescue_lease") +
                            ") must be at least twice heartbeat_interval (from " +
                            settings.sourceOf("heartbeat_interval") +
                            "): one late heartbeat must not get a worker's jobs rescued");
  }
  if (options.isolation == worker::Isolation::Process) {
    std::error_code error;
    options.executable = std::filesystem::read_symlink("/proc/self/exe", error).string();
    if (error) throw core::StartupError("cannot find the syncpod executable for job processes");
    for (const auto& [key, variable] : kChildSettings) {
      if (auto value = settings.get(key); !value.empty()) options.child_environment[variable] = value;
    }
  }
  options.version = SYNCPOD_VERSION;
  return options;
}

service::ServiceOptions serviceOptions(const core::Settings& settings) {
  service::ServiceOptions options;
  options.host = settings.get("http_host");
  options.port = static_cast<int>(settings.integer("http_port", 0, 65535));
  options.threads = static_cast<int>(settings.integer("http_threads", 1, 256));
  options.max_json_depth = static_cast<int>(settings.integer("http_max_json_depth", 1, 1000));
  options.read_timeout = settings.duration("http_read_timeout");
  options.metrics_scan_interval = settings.duration("metrics_scan_interval");
  const auto body = settings.byteSize("http_max_body");
  if (!body || *body > (1ULL << 30)) {
    throw core::ConfigError("http_max_body (from " + settings.sourceOf("http_max_body") +
                            ") must be a size up to 1GiB");
  }
  options.max_body_bytes = static_cast<std::size_t>(*body);
  auto webhook_body = settings.byteSize("webhook_max_body");
  // The default yields to a smaller http_max_body; a value someone set must fit under it.
  if (webhook_body && settings.sourceOf("webhook_max_body") == "default") {
    webhook_body = std::min<unsigned long long>(*webhook_body, options.max_body_bytes);
  }
  if (!webhook_body || *webhook_body == 0 || *webhook_body > options.max_body_bytes) {
    throw core::ConfigError("webhook_max_body (from " + settings.sourceOf("webhook_max_body") +
                            ") must be a size from 1 byte up to http_max_body (" +
                            std::to_string(options.max_body_bytes) + " bytes, from " +
                            settings.sourceOf("http_max_body") + ")");
  }
  options.webhook_max_body_bytes = static_cast<std::size_t>(*webhook_body);
  options.webhook_tolerance =
      std::chrono::duration_cast<std::chrono::seconds>(settings.duration("webhook_tolerance"));
  if (options.webhook_tolerance < std::chrono::seconds(1)) {
    throw core::ConfigError("webhook_tolerance (from " + settings.sourceOf("webhook_tolerance") +
                            ") must be at least 1s: timestamps are whole seconds");
  }
  return options;
}

/// Reads and checks the singleton's settings; throws ConfigError naming the setting at fault.
singleton::SingletonOptions singletonOptions(const core::Settings& settings,
                                             const core::JobQueueOptions& queue_options) {
  singleton::SingletonOptions options;
  options.scale_interval = settings.duration("scale_interval");
  options.lease_ttl = settings.duration("leader_lease_ttl");
  options.renew_interval = settings.duration("leader_renew_interval");
  options.rescue_interval = settings.duration("rescue_interval");
  options.cleanup_interval = settings.duration("cleanup_interval");
  options.change_poll_interval = settings.duration("change_poll_interval");
  options.worker_stale_after = settings.duration("rescue_lease");
  options.queue = queue_options;
  options.scaling = scalingSettings(settings);
  options.cleanup.retention = settings.duration("retention");
  options.cleanup.stale_after = options.worker_stale_after;
  // A bare number is seconds: "14" meant as days would delete every job's history at once,
  // and the webhook replay check needs the events of its tolerance window.
  const auto least_retention = std::max<std::chrono::milliseconds>(
      std::chrono::hours(1), settings.duration("webhook_tolerance"));
  if (options.cleanup.retention < least_retention) {
    throw core::ConfigError("retention (from " + settings.sourceOf("retention") +
                            ") must be at least 1h and at least webhook_tolerance (from " +
                            settings.sourceOf("webhook_tolerance") +
                            "): finished jobs and webhook events are kept that long");
  }
  // Renewed at least three times per TTL, one late renewal never costs the lease.
  if (options.renew_interval * 3 > options.lease_ttl) {
    throw core::ConfigError("leader_renew_interval (from " +
                            settings.sourceOf("leader_renew_interval") +
                            ") must be at most a third of leader_lease_ttl (from " +
                            settings.sourceOf("leader_lease_ttl") +
                            "), so one late renewal does not cost the lease");
  }
  return options;
}

/// `syncpod serve --role=…`: runs one role (or all of them) until SIGTERM or SIGINT.
class ServeCommand final : public Command {
 public:
  std::string_view name() const override { return "serve"; }
  std::string_view summary() const override {
    return "run a role: service, singleton, worker, or all of them in one process";
  }
  std::string_view details() const override {
    return "A worker ends by itself after active_period (exit code 0). SIGTERM or SIGINT retires\n"
           "it at once: it claims nothing more, gives running jobs until drain_deadline, hands\n"
           "back what still runs, waits out terminating_grace and exits 0. A second signal cuts\n"
           "the terminating grace short; it never shortens the drain.\n";
  }
  std::vector<std::string> settingKeys() const override {
    return {"role",           "rescue_interval",    "rescue_lease",      "plugin_path",
            "worker_capacity", "isolation",         "active_period",     "heartbeat_interval",
            "poll_interval",   "terminating_grace", "drain_deadline",    "stop_grace",
            "job_memory_limit", "job_event_log_lines", "scale_interval", "keda_polling_interval",
            "http_host",        "http_port",        "http_threads",      "http_max_body",
            "http_max_json_depth",
            "http_read_timeout", "scaling_policy",  "minimum_active_workers", "leader_lease_ttl",
            "leader_renew_interval", "change_poll_interval", "cleanup_interval", "retention",
            "webhook_tolerance", "webhook_max_body", "metrics_scan_interval"};
  }

  int run(const core::Settings& settings, const std::vector<std::string>&) override {
    const std::string role = settings.get("role");
    if (kRoles.count(role) == 0) {
      throw core::ConfigError("invalid role '" + role + "' (from " + settings.sourceOf("role") +
                              "): use service, singleton, worker or all");
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    core::JobQueueOptions queue_options;
    queue_options.rescue_lease =
        std::chrono::duration_cast<std::chrono::seconds>(settings.duration("rescue_lease"));
    if (queue_options.rescue_lease < std::chrono::seconds(1)) {
      throw core::ConfigError("rescue_lease (from " + settings.sourceOf("rescue_lease") +
                              ") must be at least 1s: workers heartbeat every few seconds");
    }
    const bool runs_worker = role == "worker" || role == "all";
    const bool runs_singleton = role == "singleton" || role == "all";
    std::optional<singleton::SingletonOptions> singleton_options;
    if (runs_singleton) singleton_options = singletonOptions(settings, queue_options);
    std::optional<worker::WorkerOptions> worker_options;
    if (runs_worker) {
      worker_options = workerOptions(settings);
      // In one process with everything else no KEDA counts the worker: stop without the grace.
      worker_options->grace_after_signal = role != "all";
    }

    // Refuse to run against a schema this binary does not match. The check runs beside the
    // roles' own connecting (start-up time is what a burst of new workers waits for); nothing
    // starts before it passed.
    auto schema_check = std::async(std::launch::async, [&target] {
      core::Migrator(target, core::embeddedMigrations()).requireCurrent();
    });
    // A failed check wins over whatever else failed while it ran.
    const auto checked = [&schema_check] {
      if (schema_check.valid()) schema_check.get();
    };

    // The service validates configs against the plugins, the singleton asks sources for
    // changes, and a worker with thread isolation runs them. A worker with process isolation
    // leaves loading to each job's process.
    const bool runs_service = role == "service" || role == "all";
    std::optional<core::PluginRegistry> plugins;
    if (runs_service || runs_singleton ||
        (runs_worker && worker_options->isolation == worker::Isolation::Thread)) {
      plugins = loadPlugins(settings);
    }

    // Connected before any thread starts, so that a database that cannot be reached fails the
    // start with its message.
    std::unique_ptr<worker::Worker> first;
    try {
      if (runs_worker) {
        first = std::make_unique<worker::Worker>(target, *worker_options, plugins ? &*plugins : nullptr);
      }
    } catch (...) {
      checked();
      throw;
    }
    checked();
    std::unique_ptr<service::Service> api;
    if (runs_service) {
      api = std::make_unique<service::Service>(target, serviceOptions(settings), *plugins);
      api->start();
    }
    std::unique_ptr<singleton::Singleton> leader;
    if (runs_singleton) {
      leader = std::make_unique<singleton::Singleton>(target, *singleton_options,
                                                      plugins ? &*plugins : nullptr);
    }

    std::atomic<bool> stopping{false};
    std::thread singleton_thread;
    if (leader) singleton_thread = std::thread([&leader] { leader->run(); });

    // The worker runs on a thread of its own; this one waits for signals and passes them on.
    std::mutex worker_mutex;
    worker::Worker* current_worker = nullptr;
    int signals_received = 0;  // under worker_mutex
    std::atomic<bool> worker_done{false};
    int worker_exit = 0;
    bool abandoned = false;
    std::thread worker_thread;
    if (runs_worker) {
      worker_thread = std::thread([&, first = std::move(first)]() mutable {
        auto next = std::move(first);
        for (;;) {
          {
            std::lock_guard lock(worker_mutex);
            current_worker = next.get();
            // Signals that came while no worker was published (this one starting): a worker
            // counts them, the second one cuts its terminating grace short.
            for (int i = 0; i < signals_received; ++i) next->retire();
          }
          worker_exit = next->run();
          abandoned = next->abandonedJobs();
          {
            std::lock_guard lock(worker_mutex);
            current_worker = nullptr;
          }
          // Alone, a worker that ended ends the process (the scaler starts the next one); in
          // role "all" this process is its own scaler and starts the next worker.
          if (role != "all" || stopping || worker_exit != 0 || abandoned) break;
          try {
            next.reset();
            next = std::make_unique<worker::Worker>(target, *worker_options,
                                                    plugins ? &*plugins : nullptr);
          } catch (const core::StartupError& error) {
            spdlog::error("cannot start the next worker: {}", error.what());
            worker_exit = 1;
            break;
          }
        }
        if (abandoned) static_cast<void>(next.release());  // a job thread still uses it
        worker_done = true;
      });
    }
    spdlog::info("syncpod {} ready: role {}, schema {}, database {}", SYNCPOD_VERSION, role,
                 target.schema, target.redactedUrl());

    for (;;) {
      if (runs_worker && worker_done) break;
      const auto signal = waitForTermination(std::chrono::milliseconds(100));
      if (!signal) continue;
      spdlog::info("received {}{}", *signal == SIGTERM ? "SIGTERM" : "SIGINT",
                   stopping ? " again" : ", stopping");
      stopping = true;
      if (!runs_worker) break;
      std::lock_guard lock(worker_mutex);
      ++signals_received;
      if (current_worker != nullptr) current_worker->retire();
    }
    stopping = true;
    if (api) api->stop();
    if (leader) leader->stop();
    if (worker_thread.joinable()) worker_thread.join();
    if (singleton_thread.joinable()) singleton_thread.join();
    spdlog::info("stopped");
    if (abandoned) {
      // A job's thread still runs plugin code: destructors must not run under it.
      spdlog::shutdown();
      std::_Exit(worker_exit);
    }
    return worker_exit;
  }
};

}  // namespace

CommandPtr makeServeCommand() { return std::make_unique<ServeCommand>(); }

}  // namespace syncpod::app
