#include "syncpod/worker/isolated_job.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <spdlog/spdlog.h>

#include "completion_wire.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/sync/sync_job_runner.hpp"

namespace syncpod::worker {
namespace {

constexpr int kResultFd = 3;

// Exit codes the worker reports in the job's error (sysexits.h values).
constexpr int kExitUsage = 64;
constexpr int kExitNotOurs = 65;
constexpr int kExitUnavailable = 69;
constexpr int kExitIo = 74;

bool writeAll(int fd, const std::string& text) {
  std::size_t written = 0;
  while (written < text.size()) {
    const auto count = ::write(fd, text.data() + written, text.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return false;
    written += static_cast<std::size_t>(count);
  }
  return true;
}

}  // namespace

int runIsolatedJob(const core::DatabaseTarget& target, const core::PluginRegistry& plugins,
                   const IsolatedJob& isolated, const std::function<bool()>& cancelled,
                   const core::JobEventOptions& events) {
  if (::fcntl(kResultFd, F_GETFD) < 0) {
    spdlog::error("run-job is started by a worker with --isolation=process, which reads the "
                  "result on file descriptor {}; it is not open",
                  kResultFd);
    return kExitUsage;
  }
  // Programs a plugin starts must not hold the worker's end of the result open.
  ::fcntl(kResultFd, F_SETFD, FD_CLOEXEC);
  // A worker killed outright takes its jobs' processes with it: the queue rescues the jobs,
  // and nobody is left to read their results.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != isolated.worker_pid) {
    spdlog::error("job {}: worker process {} is gone", isolated.id, isolated.worker_pid);
    return kExitUnavailable;
  }

  core::Job job;
  {
    core::JobQueue queue(target);
    auto found = queue.find(isolated.id);
    if (!found) {
      spdlog::error("job {}: cannot read it: {}", isolated.id, found.error().message);
      return kExitUnavailable;
    }
    if (!*found || (*found)->state != core::JobState::Running ||
        (*found)->worker_id != isolated.worker || (*found)->attempt != isolated.attempt) {
      spdlog::error("job {} is no longer running as attempt {} of worker {}; not running it",
                    isolated.id, isolated.attempt, isolated.worker);
      return kExitNotOurs;
    }
    job = std::move(**found);
  }

  core::SyncJobRunner runner(target, plugins, events);
  const auto completion = runner.run(job, cancelled);
  if (!writeAll(kResultFd, toWire(completion))) {
    spdlog::error("job {}: cannot hand the result to the worker: {}", job.id, std::strerror(errno));
    return kExitIo;
  }
  ::close(kResultFd);
  return 0;
}

}  // namespace syncpod::worker
