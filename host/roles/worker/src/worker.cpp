#include "syncpod/worker/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "job_run.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/job_waiter.hpp"

namespace syncpod::worker {
namespace {

using Clock = std::chrono::steady_clock;
using core::WorkerState;
using std::chrono::milliseconds;

/// Retries of a failed queue call (database down) start here and double up to the heartbeat.
constexpr milliseconds kFirstRetryDelay{100};

std::string hostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string describe(const core::Job& job) {
  return "job " + std::to_string(job.id) + " (integration " + std::to_string(job.integration_id) +
         ", " + std::string(core::toString(job.kind)) + ", attempt " + std::to_string(job.attempt) + ")";
}

long long msOf(milliseconds duration) { return static_cast<long long>(duration.count()); }

}  // namespace

class Worker::Impl {
 public:
  Impl(core::DatabaseTarget target, WorkerOptions options, const core::PluginRegistry* plugins)
      : target_(std::move(target)), options_(std::move(options)), plugins_(plugins) {
    if (options_.isolation == Isolation::Thread && plugins_ == nullptr) {
      throw core::ConfigError("a worker with thread isolation needs the plugins loaded");
    }
    core::JobQueueOptions queue_options;
    queue_options.rescue_lease = std::chrono::duration_cast<std::chrono::seconds>(options_.lease);
    auto own = target_;
    own.client = "worker";
    // The two connections open side by side: each takes a few round trips, and start-up time
    // is what a burst waits for. LISTEN is in place before the first claim, so no notification
    // falls between the two.
    auto waiter = std::async(std::launch::async, [&own] { return std::make_unique<core::JobWaiter>(own); });
    try {
      queue_ = std::make_unique<core::JobQueue>(own, queue_options);
    } catch (...) {
      waiter.wait();
      throw;
    }
    waiter_ = waiter.get();
    target_.client = "job";
  }

  int run() {
    auto registered = queue_->registerWorker(
        {options_.capacity, options_.version, hostName(), static_cast<int>(::getpid())});
    if (!registered) {
      spdlog::error("worker: cannot register: {}", registered.error().message);
      return 1;
    }
    id_ = *registered;
    state_ = WorkerState::Inactive;
    last_heartbeat_ok_ = Clock::now();
    next_heartbeat_ = Clock::now() + options_.heartbeat_interval;
    spdlog::info("worker {} registered: capacity {}, {} isolation, active for {} ms", id_,
                 options_.capacity,
                 options_.isolation == Isolation::Process ? "process" : "thread",
                 msOf(options_.active_period));

    enter(WorkerState::Active);
    active_until_ = Clock::now() + options_.active_period;
    claim_wanted_ = true;

    while (state_ != WorkerState::Terminated) {
      step();
      if (state_ == WorkerState::Terminated) break;
      if (row_gone_ && runs_.empty()) {
        spdlog::error("worker {}: its worker_lifecycle row is gone or TERMINATED (declared dead by cleanup); "
                      "exiting without recording TERMINATED", id_);
        return 1;
      }
      wait();
    }
    spdlog::info("worker {} terminated", id_);
    return 0;
  }

  void retire() {
    // Called from the signal thread: it touches only atomics and the waiter.
    if (++retire_requests_ > 1) {
      spdlog::info("worker: asked again to stop; running jobs still get their drain deadline, "
                   "the terminating grace is cut short");
    }
    waiter_->wake();
  }

  bool abandonedJobs() const { return abandoned_; }

 private:
  /// One pass: react to time, signals, finished jobs and the queue; never blocks for long.
  void step() {
    const auto now = Clock::now();

    if (retire_requests_ > 0 && !draining_ &&
        (state_ == WorkerState::Active || state_ == WorkerState::Retired)) {
      draining_ = true;
      drain_until_ = now + options_.drain_deadline;
      spdlog::info("worker {}: retiring on request; {} running job(s) get until the drain "
                   "deadline ({} ms) to finish", id_, runs_.size(), msOf(options_.drain_deadline));
      if (state_ == WorkerState::Active) enter(WorkerState::Retired);
    }
    if (state_ == WorkerState::Active && now >= active_until_) {
      spdlog::info("worker {}: active period over, retiring; {} running job(s) will finish", id_,
                   runs_.size());
      enter(WorkerState::Retired);
    }

    if (now >= next_heartbeat_) heartbeat(now);
    stopAtDeadlines();

    if (draining_ && now >= drain_until_ && !handed_back_) {
      handed_back_ = true;
      for (auto& run : runs_) {
        if (!run->finished()) {
          spdlog::warn("worker {}: drain deadline passed; handing back {}", id_, describe(run->job()));
          run->stop(StopReason::HandBack);
        }
      }
    }

    collectFinished();
    talkToQueue(now);

    if (state_ == WorkerState::Retired && runs_.empty() && pending_.empty()) {
      enter(WorkerState::Terminating);
      terminating_until_ = Clock::now() + options_.terminating_grace;
      spdlog::info("worker {}: no jobs left; terminating in {} ms", id_,
                   msOf(options_.terminating_grace));
    }
    if (state_ == WorkerState::Terminating) {
      const bool cut_short =
          retire_requests_ > 1 || (retire_requests_ > 0 && !options_.grace_after_signal);
      if (cut_short || Clock::now() >= terminating_until_) enter(WorkerState::Terminated);
    }
    if (abandonIfOverdue()) {
      // Thread isolation only: the plugin ignores cancellation. The worker records its end and
      // exits under it; the jobs are rescued or were handed back.
      while (state_ != WorkerState::Terminated) enter(nextState(state_));
    }
  }

  static WorkerState nextState(WorkerState state) {
    switch (state) {
      case WorkerState::Inactive: return WorkerState::Active;
      case WorkerState::Active: return WorkerState::Retired;
      case WorkerState::Retired: return WorkerState::Terminating;
      default: return WorkerState::Terminated;
    }
  }

  /// Records a transition. The worker moves on even when the database is down; the record is
  /// retried with the next heartbeat, so the row catches up in order.
  void enter(WorkerState state) {
    state_ = state;
    unrecorded_.push_back(state);
    recordTransitions();
    if (state == WorkerState::Terminated && !unrecorded_.empty()) {
      // The last chance: keep trying for a while, then exit anyway (rescue looks after jobs).
      auto delay = kFirstRetryDelay;
      const auto give_up = Clock::now() + std::max(options_.lease, milliseconds(1000));
      while (!unrecorded_.empty() && Clock::now() < give_up) {
        waiter_->wait(delay);
        delay = std::min(delay * 2, options_.heartbeat_interval);
        recordTransitions();
      }
    }
  }

  void recordTransitions() {
    while (!unrecorded_.empty()) {
      auto recorded = queue_->setWorkerState(id_, unrecorded_.front());
      if (!recorded && recorded.error().code == core::Error::Code::Invalid &&
          unrecorded_.front() == WorkerState::Terminated) {
        // Recorded already: a retry after an answer lost on the way back.
        unrecorded_.clear();
        return;
      }
      if (!recorded && recorded.error().code == core::Error::Code::Invalid && !row_gone_) {
        // Declared gone by cleanup while cut off: its jobs were rescued, its row is final.
        row_gone_ = true;
        unrecorded_.clear();
        for (auto& run : runs_) run->stop(StopReason::LeaseLost);
        return;
      }
      if (!recorded) {
        spdlog::warn("worker {}: cannot record state {} yet: {}", id_,
                     core::toString(unrecorded_.front()), recorded.error().message);
        return;
      }
      spdlog::info("worker {}: {}", id_, core::toString(unrecorded_.front()));
      unrecorded_.erase(unrecorded_.begin());
    }
  }

  void heartbeat(Clock::time_point now) {
    recordTransitions();
    auto beat = queue_->heartbeat(id_);
    if (!beat) {
      retry_delay_ = retry_delay_ == milliseconds(0)
                         ? kFirstRetryDelay
                         : std::min(retry_delay_ * 2, options_.heartbeat_interval);
      next_heartbeat_ = now + retry_delay_;
      spdlog::warn("worker {}: heartbeat failed ({}); retrying in {} ms", id_,
                   beat.error().message, msOf(retry_delay_));
      if (now - last_heartbeat_ok_ > leaseLostAfter() && !lease_lost_) {
        lease_lost_ = true;
        spdlog::error("worker {}: no heartbeat for {} ms; stopping its {} job(s) before the "
                      "lease ({} ms) runs out and the queue gives them to other workers", id_,
                      msOf(leaseLostAfter()), runs_.size(), msOf(options_.lease));
        for (auto& run : runs_) run->stop(StopReason::LeaseLost);
      }
      return;
    }
    if (retry_delay_ > milliseconds(0) || lease_lost_) spdlog::info("worker {}: database reachable again", id_);
    retry_delay_ = milliseconds(0);
    lease_lost_ = false;
    last_heartbeat_ok_ = now;
    next_heartbeat_ = now + options_.heartbeat_interval;
    if (!beat->known) {
      row_gone_ = true;
      for (auto& run : runs_) run->stop(StopReason::LeaseLost);
      return;
    }
    for (const auto id : beat->cancel_requested) {
      for (auto& run : runs_) {
        if (run->job().id == id && run->stopReason() == StopReason::None) {
          spdlog::info("worker {}: cancelling {} as requested", id_, describe(run->job()));
          run->stop(StopReason::Cancelled);
        }
      }
    }
    reconcile(beat->held);
  }

  /// Brings what the worker runs in line with what the queue holds under it. A job it runs
  /// that the queue no longer holds was rescued (given to another attempt): it stops, so that
  /// two attempts never write at once for long. A job the queue holds that the worker neither
  /// runs nor has finished was claimed by a call whose answer never arrived (the connection
  /// broke after the commit): it is handed back, or it would wait for its deadline.
  void reconcile(const std::vector<core::HeartbeatResult::Held>& held) {
    const auto holds = [&](core::JobId id, int attempt) {
      return std::any_of(held.begin(), held.end(),
                         [&](const auto& job) { return job.id == id && job.attempt == attempt; });
    };
    for (auto& run : runs_) {
      if (run->finished() || run->stopReason() != StopReason::None) continue;
      if (holds(run->job().id, run->job().attempt)) continue;
      spdlog::warn("worker {}: the queue no longer holds {} under this worker (rescued); "
                   "stopping it", id_, describe(run->job()));
      run->stop(StopReason::NotHeld);
    }
    for (const auto& job : held) {
      const auto known = [&](core::JobId id, int attempt) { return id == job.id && attempt == job.attempt; };
      if (std::any_of(runs_.begin(), runs_.end(), [&](const auto& run) { return known(run->job().id, run->job().attempt); }) ||
          std::any_of(pending_.begin(), pending_.end(), [&](const auto& done) { return known(done.id, done.attempt); })) {
        continue;
      }
      spdlog::warn("worker {}: the queue holds job {} attempt {} under this worker, which never "
                   "learned of it (a claim's answer was lost); handing it back", id_, job.id, job.attempt);
      core::Completion release;
      release.id = job.id;
      release.attempt = job.attempt;
      release.outcome = core::Completion::Outcome::Released;
      release.error = "handed back: the worker never learned of its claim (the answer was lost)";
      pending_.push_back(std::move(release));
    }
  }

  /// Stops the jobs whose attempt reached its deadline (the job's max_runtime); the queue
  /// rescues a job only a lease later, by which time its worker has reported it.
  void stopAtDeadlines() {
    const auto now = Clock::now();
    for (auto& run : runs_) {
      if (now < run->deadline() || run->finished() || run->stopReason() != StopReason::None) continue;
      spdlog::warn("worker {}: {} reached its deadline ({} s); stopping it", id_, describe(run->job()),
                   run->job().max_runtime.count());
      run->stop(StopReason::Deadline);
    }
  }

  /// How long without a heartbeat before the worker stops its jobs itself: early enough that
  /// they have stopped (stop_grace) when the queue's rescue, after the lease, gives them to
  /// other workers; at least half the lease, so a short outage does not stop them.
  milliseconds leaseLostAfter() const {
    return std::max(options_.lease - options_.stop_grace, options_.lease / 2);
  }

  void collectFinished() {
    for (auto it = runs_.begin(); it != runs_.end();) {
      if (!(*it)->finished()) {
        ++it;
        continue;
      }
      auto completion = (*it)->completion();
      spdlog::info("worker {}: {} ended: {}{}{}", id_, describe((*it)->job()),
                   outcomeName(completion.outcome), completion.error.empty() ? "" : ": ",
                   completion.error);
      pending_.push_back(std::move(completion));
      it = runs_.erase(it);
      claim_wanted_ = true;  // a slot freed
    }
  }

  static const char* outcomeName(core::Completion::Outcome outcome) {
    switch (outcome) {
      case core::Completion::Outcome::Succeeded: return "succeeded";
      case core::Completion::Outcome::Failed: return "failed";
      case core::Completion::Outcome::Retry: return "failed, will be retried";
      case core::Completion::Outcome::Cancelled: return "cancelled";
      case core::Completion::Outcome::Released: return "handed back";
    }
    return "ended";
  }

  /// Reports finished jobs and, while ACTIVE with free slots, claims more in the same
  /// transaction.
  void talkToQueue(Clock::time_point now) {
    if (now < queue_retry_at_) return;
    const int free_slots = options_.capacity - static_cast<int>(runs_.size());
    if (state_ == WorkerState::Active && now >= next_poll_) claim_wanted_ = true;
    const bool claim = mayClaim() && claim_wanted_;
    if (!claim && pending_.empty()) return;

    std::vector<core::Job> claimed;
    if (claim) {
      auto result = queue_->completeAndClaim(id_, pending_, free_slots);
      if (!result) return queueFailed(now, result.error());
      report(result->completed);
      claimed = std::move(result->claimed);
      next_poll_ = now + options_.poll_interval;
      // A full claim may have left more due jobs behind: look again at once.
      claim_wanted_ = static_cast<int>(claimed.size()) == free_slots;
    } else {
      auto result = queue_->complete(id_, pending_);
      if (!result) return queueFailed(now, result.error());
      report(*result);
    }
    pending_.clear();
    queue_retry_delay_ = milliseconds(0);
    for (auto& job : claimed) start(std::move(job));
  }

  bool mayClaim() const {
    return state_ == WorkerState::Active && static_cast<int>(runs_.size()) < options_.capacity &&
           !lease_lost_ && !row_gone_;
  }

  void queueFailed(Clock::time_point now, const core::Error& error) {
    queue_retry_delay_ = queue_retry_delay_ == milliseconds(0)
                             ? kFirstRetryDelay
                             : std::min(queue_retry_delay_ * 2, options_.heartbeat_interval);
    queue_retry_at_ = now + queue_retry_delay_;
    spdlog::warn("worker {}: queue unavailable ({}); {} finished job(s) wait to be reported, "
                 "retrying in {} ms", id_, error.message, pending_.size(), msOf(queue_retry_delay_));
  }

  void report(const std::vector<core::CompletionResult>& results) {
    for (std::size_t i = 0; i < results.size() && i < pending_.size(); ++i) {
      if (!results[i].accepted) {
        spdlog::warn("worker {}: the result of job {} attempt {} was not recorded: the job no "
                     "longer runs under this worker (rescued, cancelled or re-claimed)",
                     id_, pending_[i].id, pending_[i].attempt);
      }
    }
  }

  void start(core::Job job) {
    spdlog::info("worker {}: starting {}", id_, describe(job));
    auto wake = [this] { waiter_->wake(); };
    if (options_.isolation == Isolation::Process) {
      ChildCommand command{options_.executable, options_.child_environment, id_, options_.stop_grace};
      runs_.push_back(startProcessJobRun(std::move(job), wake, command));
    } else {
      runs_.push_back(startThreadJobRun(std::move(job), wake, target_, *plugins_, options_.events));
    }
  }

  /// Thread isolation: jobs asked to stop that are still running past the stop grace, while
  /// the worker has nothing else to wait for. Returns true when the worker should end now.
  bool abandonIfOverdue() {
    if (options_.isolation != Isolation::Thread || runs_.empty()) return false;
    if (state_ == WorkerState::Active) return false;
    const auto now = Clock::now();
    for (const auto& run : runs_) {
      const auto stopped = run->stoppedAt();
      if (run->finished() || !stopped || now - *stopped < options_.stop_grace) return false;
    }
    for (auto& run : runs_) {
      spdlog::error("worker {}: {} ignored the request to stop for {} ms; exiting under it",
                    id_, describe(run->job()), msOf(options_.stop_grace));
      run->abandon();
      // Its thread still uses the run: it must outlive the worker, which exits next.
      static_cast<void>(run.release());
    }
    runs_.clear();
    abandoned_ = true;
    return true;
  }

  /// Sleeps until the next thing to do: a notification, a finished job, a signal or a timer.
  void wait() {
    const auto now = Clock::now();
    auto until = next_heartbeat_;
    if (state_ == WorkerState::Active) until = std::min(until, active_until_);
    if (mayClaim()) {
      if (claim_wanted_ && now >= queue_retry_at_) return;
      until = std::min(until, std::max(next_poll_, queue_retry_at_));
    }
    if (!pending_.empty()) until = std::min(until, std::max(now, queue_retry_at_));
    if (draining_ && !handed_back_) until = std::min(until, drain_until_);
    if (state_ == WorkerState::Terminating) until = std::min(until, terminating_until_);
    for (const auto& run : runs_) {
      // Past the grace there is nothing more to do for it here: waiting for it again at once
      // would spin (a plugin that ignores cancellation while the worker is ACTIVE).
      if (const auto stopped = run->stoppedAt(); stopped && *stopped + options_.stop_grace > now) {
        until = std::min(until, *stopped + options_.stop_grace);
      }
      if (run->stopReason() == StopReason::None) until = std::min(until, run->deadline());
    }
    if (until <= now) return;
    const auto timeout = std::chrono::duration_cast<milliseconds>(until - now) + milliseconds(1);
    if (waiter_->wait(timeout) == core::JobWaiter::Reason::Notified) claim_wanted_ = true;
  }

  core::DatabaseTarget target_;
  WorkerOptions options_;
  const core::PluginRegistry* plugins_;
  std::unique_ptr<core::JobQueue> queue_;
  std::unique_ptr<core::JobWaiter> waiter_;
  core::WorkerId id_;

  WorkerState state_ = WorkerState::Inactive;
  std::vector<WorkerState> unrecorded_;
  std::atomic<int> retire_requests_{0};
  std::vector<JobRunPtr> runs_;
  std::vector<core::Completion> pending_;  ///< finished, not yet reported

  Clock::time_point active_until_;
  Clock::time_point next_heartbeat_;
  Clock::time_point next_poll_;
  Clock::time_point last_heartbeat_ok_;
  Clock::time_point drain_until_;
  Clock::time_point terminating_until_;
  Clock::time_point queue_retry_at_;
  milliseconds retry_delay_{0};
  milliseconds queue_retry_delay_{0};
  bool claim_wanted_ = false;
  bool draining_ = false;
  bool handed_back_ = false;
  bool lease_lost_ = false;
  bool row_gone_ = false;
  bool abandoned_ = false;
};

Worker::Worker(core::DatabaseTarget target, WorkerOptions options, const core::PluginRegistry* plugins)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(options), plugins)) {}

Worker::~Worker() = default;

int Worker::run() { return impl_->run(); }

void Worker::retire() { impl_->retire(); }

bool Worker::abandonedJobs() const { return impl_->abandonedJobs(); }

}  // namespace syncpod::worker
