#include "job_run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "completion_wire.hpp"
#include "syncpod/core/child_environment.hpp"
#include "syncpod/core/sync/sync_job_runner.hpp"

namespace syncpod::worker {

using core::Completion;
using Outcome = core::Completion::Outcome;

JobRun::JobRun(core::Job job, std::function<void()> on_finished)
    : job_(std::move(job)),
      deadline_(std::chrono::steady_clock::now() + job_.max_runtime),
      on_finished_(std::move(on_finished)) {}

JobRun::~JobRun() {
  if (!thread_.joinable()) return;
  if (finished_) {
    thread_.join();
  } else {
    thread_.detach();  // abandon(): the process is about to exit under it
  }
}

void JobRun::start() {
  thread_ = std::thread([this] {
    Completion completion;
    try {
      completion = execute();
    } catch (const std::exception& error) {
      completion.outcome = Outcome::Retry;
      completion.error = std::string("the worker could not run the job: ") + error.what();
    }
    {
      std::lock_guard lock(mutex_);
      completion_ = std::move(completion);
    }
    finished_ = true;
    on_finished_();
  });
}

void JobRun::stop(StopReason reason) {
  auto expected = StopReason::None;
  if (!stop_reason_.compare_exchange_strong(expected, reason)) return;
  std::lock_guard lock(mutex_);
  stopped_at_ = std::chrono::steady_clock::now();
}

std::optional<std::chrono::steady_clock::time_point> JobRun::stoppedAt() const {
  std::lock_guard lock(mutex_);
  return stopped_at_;
}

Completion JobRun::completion() const {
  Completion completion;
  {
    std::lock_guard lock(mutex_);
    completion = completion_;
  }
  completion.id = job_.id;
  completion.attempt = job_.attempt;
  // A job the worker stopped for its own reasons goes back to the queue without counting as a
  // failed attempt; its last committed cursor stays, so the next attempt resumes from there.
  const auto reason = stop_reason_.load();
  if (completion.outcome != Outcome::Cancelled) return completion;
  switch (reason) {
    case StopReason::HandBack:
      completion.outcome = Outcome::Released;
      completion.error = "handed back: the worker was draining and its drain deadline passed";
      break;
    case StopReason::LeaseLost:
      completion.outcome = Outcome::Released;
      completion.error = "handed back: the worker lost its lease on the queue";
      break;
    case StopReason::NotHeld:  // the fence refuses it: the queue gave the job to another attempt
      completion.outcome = Outcome::Released;
      completion.error = "stopped: the queue no longer holds the job under this worker";
      break;
    case StopReason::Deadline:  // a failed attempt, as the queue's rescue would record it
      completion.outcome = Outcome::Retry;
      completion.error = "the attempt reached its deadline of " + std::to_string(job_.max_runtime.count()) + " s";
      break;
    case StopReason::None:
    case StopReason::Cancelled:
      break;
  }
  return completion;
}

void JobRun::abandon() {
  if (thread_.joinable() && !finished_) thread_.detach();
}

// --- thread isolation ----------------------------------------------------------------------

namespace {

class ThreadJobRun final : public JobRun {
 public:
  ThreadJobRun(core::Job job, std::function<void()> on_finished, core::DatabaseTarget target,
               const core::PluginRegistry& plugins, const core::JobEventOptions& events)
      : JobRun(std::move(job), std::move(on_finished)),
        target_(std::move(target)),
        plugins_(plugins),
        events_(events) {}

 private:
  Completion execute() override {
    core::SyncJobRunner runner(target_, plugins_, events_);
    return runner.run(job(), [this] { return stopRequested(); });
  }

  core::DatabaseTarget target_;
  const core::PluginRegistry& plugins_;
  core::JobEventOptions events_;
};

// --- process isolation ---------------------------------------------------------------------

/// The child's file descriptor for its result (see `syncpod run-job`).
constexpr int kResultFd = 3;

std::string signalText(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  const char* description = strsignal(signal);
  std::string text = "signal " + std::to_string(signal);
  if (abbreviation != nullptr) text += std::string(" (SIG") + abbreviation;
  if (description != nullptr) text += std::string(abbreviation != nullptr ? ": " : " (") + description;
  if (abbreviation != nullptr || description != nullptr) text += ")";
  return text;
}

class ProcessJobRun final : public JobRun {
 public:
  ProcessJobRun(core::Job job, std::function<void()> on_finished, ChildCommand command)
      : JobRun(std::move(job), std::move(on_finished)), command_(std::move(command)) {}

 private:
  Completion execute() override {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return retry(std::string("cannot create a pipe: ") + std::strerror(errno));
    const int read_fd = fds[0];
    int write_fd = fds[1];
    if (write_fd == kResultFd) {  // dup2 onto itself would keep close-on-exec set
      write_fd = ::fcntl(fds[1], F_DUPFD_CLOEXEC, kResultFd + 1);
      ::close(fds[1]);
    }
    const pid_t pid = spawn(write_fd);
    ::close(write_fd);
    if (pid < 0) {
      ::close(read_fd);
      return retry(std::string("cannot start the job's process: ") + std::strerror(errno));
    }
    spdlog::debug("job {} runs in process {}", job().id, pid);

    std::string output;
    bool terminated = false;
    bool killed = false;
    std::chrono::steady_clock::time_point terminated_at;
    // Until the child exits, not only until its result's end: a child that closed its result
    // may still hang on its way out, and a process the plugin started may hold the pipe open
    // after the child is gone. Stop requests go to the child's process group (it leads one),
    // which takes such processes along. The child's exit wakes the wait through a pidfd.
    bool end_of_result = false;
    std::chrono::steady_clock::time_point result_ended_at;
    // Through syscall(): glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
    // -1 on kernels before 5.3: the wait then polls.
    const int exit_fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    for (;;) {
      // A child that still runs a stop grace after closing its result hangs on its way out.
      const bool hanging = end_of_result && std::chrono::steady_clock::now() - result_ended_at >= command_.stop_grace;
      if ((stopRequested() || hanging) && !terminated) {
        ::kill(-pid, SIGTERM);
        terminated = true;
        terminated_at = std::chrono::steady_clock::now();
      } else if (terminated && !killed &&
                 std::chrono::steady_clock::now() - terminated_at >= command_.stop_grace) {
        spdlog::warn("job {}: its process {} did not stop within {} ms of being asked; killing it",
                     job().id, pid, command_.stop_grace.count());
        ::kill(-pid, SIGKILL);
        killed = true;
      }
      // Exited, not yet reaped: the zombie keeps the process group's id from being reused.
      siginfo_t exit{};
      const int waited = ::waitid(P_PID, static_cast<id_t>(pid), &exit, WEXITED | WNOHANG | WNOWAIT);
      if ((waited == 0 && exit.si_pid == pid) || (waited < 0 && errno != EINTR)) break;
      pollfd waits[2] = {{end_of_result ? -1 : read_fd, POLLIN, 0}, {exit_fd, POLLIN, 0}};
      const int timeout_ms = end_of_result && exit_fd < 0 ? 10 : 100;
      if (::poll(waits, 2, timeout_ms) > 0 && (waits[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
          !readReady(read_fd, output)) {
        end_of_result = true;
        result_ended_at = std::chrono::steady_clock::now();
      }
    }
    // What the child wrote before it ended, without waiting for others holding the pipe.
    while (!end_of_result && readReady(read_fd, output)) {
    }
    ::close(read_fd);
    if (exit_fd >= 0) ::close(exit_fd);
    // Programs the plugin started end with the job.
    ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    Completion reported;
    if (!output.empty() && !fromWire(output, reported)) {
      // A whole result counts, however the process ended after writing it (a plugin that
      // crashes while unloading, say): the job itself is done.
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        spdlog::warn("job {}: its process {} after reporting its result", job().id,
                     WIFSIGNALED(status) ? "was killed by " + signalText(WTERMSIG(status))
                                         : "exited with status " + std::to_string(WEXITSTATUS(status)));
      }
      return reported;
    }
    if (WIFSIGNALED(status)) {
      const int signal = WTERMSIG(status);
      if (killed || (terminated && signal == SIGTERM)) {
        // Ended by the stop the worker asked for: what it was asked to do, not a crash.
        Completion completion;
        completion.outcome = Outcome::Cancelled;
        completion.error = killed ? "stopped: the job's process did not stop within " +
                                        std::to_string(command_.stop_grace.count()) + " ms and was killed"
                                  : "stopped: the job's process ended on the stop request";
        return completion;
      }
      return retry("the job's process was killed by " + signalText(signal));
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0) {
      return retry("the job's process exited with status " + std::to_string(code) +
                   " before reporting a result (its log says why)");
    }
    if (auto problem = fromWire(output, reported)) {
      return retry("the job's process reported an unreadable result: " + *problem);
    }
    return reported;
  }

  /// Reads what `fd` has ready onto `output`, without waiting; false when nothing more is
  /// ready, at the end of the input, or on an error.
  static bool readReady(int fd, std::string& output) {
    pollfd entry{fd, POLLIN, 0};
    const int ready = ::poll(&entry, 1, 0);
    if (ready < 0) return errno == EINTR;
    if (ready == 0) return false;
    char buffer[4096];
    const auto count = ::read(fd, buffer, sizeof buffer);
    if (count < 0) return errno == EINTR;
    if (count == 0) return false;
    output.append(buffer, static_cast<std::size_t>(count));
    return true;
  }

  /// posix_spawn: no fork of a multi-threaded process, and nothing runs between fork and exec.
  pid_t spawn(int write_fd) {
    const std::vector<std::string> arguments = {
        command_.executable, "run-job", std::to_string(job().id), std::to_string(job().attempt),
        command_.worker_id, std::to_string(::getpid())};
    const auto environment = core::environmentWith(command_.environment);
    std::vector<char*> argv;
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, write_fd, kResultFd);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // Its own process group: a Ctrl-C at the terminal reaches the worker, which decides what
    // happens to its jobs, and not the jobs directly.
    posix_spawnattr_setpgroup(&attributes, 0);
    // Born with SIGTERM and SIGINT blocked (as its main() keeps them): a stop request that
    // arrives while the process is still starting stays pending until it watches for it,
    // instead of killing it.
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    posix_spawnattr_setsigmask(&attributes, &blocked);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes,
                             POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int error = ::posix_spawn(&pid, command_.executable.c_str(), &actions, &attributes,
                                    argv.data(), envp.data());
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
      errno = error;
      return -1;
    }
    return pid;
  }

  static Completion retry(std::string error) {
    Completion completion;
    completion.outcome = Outcome::Retry;
    completion.error = std::move(error);
    return completion;
  }

  ChildCommand command_;
};

}  // namespace

JobRunPtr startThreadJobRun(core::Job job, std::function<void()> on_finished,
                            const core::DatabaseTarget& target, const core::PluginRegistry& plugins,
                            const core::JobEventOptions& events) {
  auto run = std::make_unique<ThreadJobRun>(std::move(job), std::move(on_finished), target,
                                            plugins, events);
  run->start();
  return run;
}

JobRunPtr startProcessJobRun(core::Job job, std::function<void()> on_finished,
                             const ChildCommand& command) {
  auto run = std::make_unique<ProcessJobRun>(std::move(job), std::move(on_finished), command);
  run->start();
  return run;
}

}  // namespace syncpod::worker
