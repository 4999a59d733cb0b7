#include "syncpod/scaler/local_scaler.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "syncpod/core/child_environment.hpp"

namespace syncpod::scaler {
namespace {

std::string exitText(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("killed by ") + (name ? std::string("SIG") + name : "signal " + std::to_string(WTERMSIG(status)));
  }
  return "ended (status " + std::to_string(status) + ")";
}

long long secondsBetween(core::TimePoint from, core::TimePoint to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

}  // namespace

LocalScaler::LocalScaler(ScalerOptions options, WorkerCommand command, ValueSource value)
    : options_(std::move(options)), command_(std::move(command)), value_(std::move(value)) {}

LocalScaler::~LocalScaler() { stop(); }

TickReport LocalScaler::tick() {
  reap();
  const auto now = core::Clock::now();
  const auto deadline = options_.scaled_job.active_deadline;
  if (deadline.count() > 0) {
    for (auto& worker : running_) {
      if (!worker.kill_at && now - worker.started >= deadline) {
        terminate(worker, "DeadlineExceeded: ran longer than activeDeadlineSeconds (" +
                              std::to_string(deadline.count()) + ")");
      }
    }
  }

  TickReport report;
  report.unfinished = unfinished();
  std::optional<double> value;
  if (auto read = value_()) {
    value = *read;
    if (!value) report.error = "the query returned NULL or no row";
  } else {
    report.error = read.error().message;
  }
  report.decision = core::decideScaledJob(value, report.unfinished, options_.scaled_job);
  for (int i = 0; i < report.decision.start; ++i) {
    std::string error;
    const pid_t pid = spawn(error);
    if (pid < 0) {
      report.error = "cannot start a worker: " + error;
      break;
    }
    running_.push_back({pid, core::Clock::now(), std::nullopt, false, ""});
    ++report.started;
  }

  if (report.decision.have_value) {
    spdlog::info("scaler: q={} active={} maxScale={} unfinished={} started={}{}", report.decision.value,
                 report.decision.active, report.decision.max_scale, report.unfinished, report.started,
                 report.error.empty() ? "" : " (" + report.error + ")");
  } else {
    spdlog::warn("scaler: no value this tick ({}); unfinished={} started={}", report.error,
                 report.unfinished, report.started);
  }
  return report;
}

void LocalScaler::reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    int status = 0;
    const pid_t ended = ::waitpid(it->pid, &status, WNOHANG);
    if (ended == it->pid || (ended < 0 && errno == ECHILD)) {
      record(*it, ended == it->pid ? status : -1);
      it = running_.erase(it);
      continue;
    }
    if (it->kill_at && !it->killed && core::Clock::now() >= *it->kill_at) {
      spdlog::warn("scaler: worker {} outlived its grace after SIGTERM; sending SIGKILL", it->pid);
      ::kill(it->pid, SIGKILL);
      it->killed = true;
    }
    ++it;
  }
}

void LocalScaler::stop() {
  for (auto& worker : running_) {
    if (!worker.kill_at) terminate(worker, "stopped with the scaler");
  }
  while (!running_.empty()) {
    reap();
    if (!running_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

pid_t LocalScaler::spawn(std::string& error) const {
  std::vector<std::string> arguments{command_.executable};
  arguments.insert(arguments.end(), command_.arguments.begin(), command_.arguments.end());
  auto environment = core::environmentWith(command_.environment);
  std::vector<char*> argv;
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Its own process group, as a pod is apart from KEDA: a Ctrl-C at the terminal reaches the
  // scaler, which stops its workers in order. Born with no signal blocked or ignored.
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) sigaddset(&defaults, signal);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int result = ::posix_spawn(&pid, command_.executable.c_str(), nullptr, &attributes, argv.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  if (result != 0) {
    error = command_.executable + ": " + std::strerror(result);
    return -1;
  }
  return pid;
}

void LocalScaler::terminate(Running& worker, std::string reason) {
  spdlog::info("scaler: stopping worker {} ({}): SIGTERM, SIGKILL after {} ms", worker.pid, reason,
               options_.termination_grace.count());
  ::kill(worker.pid, SIGTERM);
  worker.kill_at = core::Clock::now() + options_.termination_grace;
  worker.stop_reason = std::move(reason);
}

void LocalScaler::record(const Running& worker, int status) {
  WorkerExit exit;
  exit.pid = worker.pid;
  exit.started = worker.started;
  exit.ended = core::Clock::now();
  exit.how = status < 0 ? "reaped elsewhere" : exitText(status);
  // A worker stopped for its deadline failed, as a Job with DeadlineExceeded does, however it
  // ended; one stopped with the scaler is judged by its exit status.
  const bool deadline = worker.stop_reason.rfind("DeadlineExceeded", 0) == 0;
  exit.succeeded = !deadline && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (deadline) exit.how = worker.stop_reason + ", " + exit.how;
  auto& history = exit.succeeded ? succeeded_ : failed_;
  const int limit = exit.succeeded ? options_.scaled_job.successful_history_limit
                                   : options_.scaled_job.failed_history_limit;
  spdlog::log(exit.succeeded ? spdlog::level::info : spdlog::level::warn,
              "scaler: worker {} {} after {} s ({})", exit.pid, exit.succeeded ? "succeeded" : "failed",
              secondsBetween(exit.started, exit.ended), exit.how);
  history.push_back(std::move(exit));
  while (static_cast<int>(history.size()) > std::max(limit, 0)) history.pop_front();
}

}  // namespace syncpod::scaler
