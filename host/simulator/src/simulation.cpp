#include "syncpod/simulator/simulation.hpp"

#include <algorithm>
#include <deque>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "syncpod/simulator/event_queue.hpp"

namespace syncpod::simulator {
namespace {

enum class Kind { PodReady, JobEnd, Retire, Exit, SingletonTick, KedaPoll, Arrival, Sample };

/// What runs first at one instant (see simulate()). Retiring comes before the other workers'
/// events: a job ending at a worker's retirement must not be handed to that worker, since the
/// real worker checks its active period before it claims.
int rankOf(Kind kind) {
  switch (kind) {
    case Kind::Retire: return 0;
    case Kind::PodReady:
    case Kind::JobEnd:
    case Kind::Exit: return 1;
    case Kind::SingletonTick: return 2;
    case Kind::KedaPoll: return 3;
    case Kind::Arrival: return 4;
    case Kind::Sample: return 5;
  }
  return 5;
}

struct Event {
  Kind kind = Kind::Sample;
  std::size_t index = 0;  ///< the pod or the job
};

struct Pod {
  PodState state = PodState::Starting;
  int running = 0;
};

/// One integration's queued jobs (oldest first) and whether one of its jobs runs.
struct Lane {
  std::deque<std::size_t> queued;
  bool busy = false;
};

class Model {
 public:
  Model(const Workload& workload, const SimulationOptions& options)
      : workload_(workload),
        options_(options),
        capacity_(std::max(options.scaling.worker_capacity, 1)) {
    if (options.scale_interval <= SimTime(0) || options.scaled_job.polling_interval <= SimTime(0) ||
        options.sample_interval <= SimTime(0)) {
      throw std::invalid_argument("simulate: intervals must be above 0");
    }
    if (options.active_period <= SimTime(0) || options.terminating_grace < SimTime(0) ||
        options.pod_start < SimTime(0)) {
      throw std::invalid_argument(
          "simulate: active_period must be above 0, terminating_grace and pod start not below 0");
    }
    if (options.max_samples < 2) throw std::invalid_argument("simulate: max_samples must be 2 or more");
    result_.options = options;
    result_.horizon = horizonOf(workload, options);
    result_.sample_interval = options.sample_interval;
    result_.jobs.resize(workload.jobs.size());
  }

  SimulationResult run() {
    for (std::size_t i = 0; i < workload_.jobs.size(); ++i) {
      schedule(workload_.jobs[i].arrival, Kind::Arrival, i);
    }
    schedule(SimTime(0), Kind::SingletonTick);
    schedule(SimTime(0), Kind::KedaPoll);
    schedule(SimTime(0), Kind::Sample);

    const SimTime give_up = result_.horizon + options_.give_up_after;
    while (!events_.empty()) {
      const SimTime next = events_.top().time;
      if (finished_ == workload_.jobs.size()) {
        result_.end = std::max(result_.horizon, last_end_);
        if (next > result_.end) break;
      } else if (next > give_up) {
        result_.end = give_up;
        break;
      }
      const auto entry = events_.pop();
      now_ = entry.time;
      handle(entry.event);
    }
    result_.complete = finished_ == workload_.jobs.size();
    return std::move(result_);
  }

 private:
  void schedule(SimTime time, Kind kind, std::size_t index = 0) {
    events_.schedule(time, rankOf(kind), Event{kind, index});
  }

  void handle(const Event& event) {
    switch (event.kind) {
      case Kind::Arrival: arrive(event.index); break;
      case Kind::PodReady: ready(event.index); break;
      case Kind::JobEnd: endJob(event.index); break;
      case Kind::Retire: retire(event.index); break;
      case Kind::Exit: exit(event.index); break;
      case Kind::SingletonTick: singletonTick(); break;
      case Kind::KedaPoll: kedaPoll(); break;
      case Kind::Sample: sample(); break;
    }
  }

  // --- jobs --------------------------------------------------------------------------------

  void arrive(std::size_t job) {
    auto& lane = lanes_[workload_.jobs[job].integration];
    lane.queued.push_back(job);
    ++queued_;
    if (!lane.busy && lane.queued.size() == 1) becomeRunnable(job);
    dispatch();
  }

  void becomeRunnable(std::size_t job) {
    runnable_.insert({job, workload_.jobs[job].integration});
    result_.jobs[job].runnable = now_;
  }

  /// Claims, as the real workers do when NOTIFY wakes them: the oldest ACTIVE worker with a
  /// free slot takes the oldest job whose integration has nothing running.
  void dispatch() {
    while (!free_.empty() && !runnable_.empty()) {
      const std::size_t pod = *free_.begin();
      const auto [job, integration] = *runnable_.begin();
      runnable_.erase(runnable_.begin());
      startJob(job, integration, pod);
    }
  }

  void startJob(std::size_t job, std::int64_t integration, std::size_t pod) {
    auto& lane = lanes_[integration];
    lane.queued.pop_front();  // the lane's head: only heads are runnable
    lane.busy = true;
    --queued_;
    auto& outcome = result_.jobs[job];
    outcome.started = now_;
    outcome.pod = static_cast<int>(pod);
    ++result_.pods[pod].jobs_run;
    if (++pods_[pod].running >= capacity_) free_.erase(pod);
    ++running_;
    result_.peak_running_jobs = std::max(result_.peak_running_jobs, running_);
    schedule(now_ + workload_.jobs[job].duration, Kind::JobEnd, job);
  }

  void endJob(std::size_t job) {
    const auto integration = workload_.jobs[job].integration;
    auto& outcome = result_.jobs[job];
    outcome.ended = now_;
    ++finished_;
    last_end_ = std::max(last_end_, now_);
    --running_;
    auto& lane = lanes_[integration];
    lane.busy = false;
    if (!lane.queued.empty()) becomeRunnable(lane.queued.front());
    const auto pod = static_cast<std::size_t>(outcome.pod);
    --pods_[pod].running;
    if (pods_[pod].state == PodState::Active) {
      free_.insert(pod);
    } else if (pods_[pod].state == PodState::Retired && pods_[pod].running == 0) {
      terminate(pod);
    }
    dispatch();
  }

  // --- workers -----------------------------------------------------------------------------

  void createPod() {
    const std::size_t pod = pods_.size();
    pods_.push_back(Pod{});
    result_.pods.push_back(PodLife{now_});
    live_.push_back(pod);
    schedule(now_ + options_.pod_start, Kind::PodReady, pod);
  }

  void ready(std::size_t pod) {
    pods_[pod].state = PodState::Active;
    result_.pods[pod].ready = now_;
    free_.insert(pod);
    schedule(now_ + options_.active_period, Kind::Retire, pod);
    dispatch();
  }

  void retire(std::size_t pod) {
    pods_[pod].state = PodState::Retired;
    result_.pods[pod].retired = now_;
    free_.erase(pod);
    if (pods_[pod].running == 0) terminate(pod);
  }

  void terminate(std::size_t pod) {
    pods_[pod].state = PodState::Terminating;
    result_.pods[pod].terminating = now_;
    schedule(now_ + options_.terminating_grace, Kind::Exit, pod);
  }

  void exit(std::size_t pod) {
    pods_[pod].state = PodState::Exited;
    result_.pods[pod].exited = now_;
    live_.erase(std::find(live_.begin(), live_.end(), pod));
  }

  // --- the singleton and KEDA --------------------------------------------------------------

  void singletonTick() {
    ++result_.singleton_ticks;
    // What the singleton's query reads: workers with a row that are not TERMINATING (pods
    // still starting have no row yet), and due queued jobs that could start now.
    core::ScalingInputs inputs;
    for (const auto pod : live_) {
      const auto& state = pods_[pod];
      if (state.state == PodState::Active) {
        ++inputs.active_workers;
        inputs.ongoing_jobs += state.running;
      } else if (state.state == PodState::Retired) {
        ++inputs.retired_workers;
        inputs.ongoing_jobs += state.running;
        inputs.runs_in_retired_workers += state.running;
      }
    }
    inputs.queued_jobs = static_cast<int>(runnable_.size());
    desired_ = core::desiredPodCount(inputs, options_.scaling);
    result_.peak_desired_pod_count = std::max(result_.peak_desired_pod_count, desired_);
    schedule(now_ + options_.scale_interval, Kind::SingletonTick);
  }

  void kedaPoll() {
    ++result_.keda_polls;
    // The trigger's query returns the count the singleton last wrote; every pod not exited
    // is an unfinished Job, whatever its worker's state.
    const auto unfinished = static_cast<int>(live_.size());
    const auto decision =
        core::decideScaledJob(static_cast<double>(desired_), unfinished, options_.scaled_job);
    max_scale_ = static_cast<int>(decision.max_scale);
    for (int i = 0; i < decision.start; ++i) createPod();
    result_.peak_pods = std::max(result_.peak_pods, static_cast<int>(live_.size()));
    schedule(now_ + options_.scaled_job.polling_interval, Kind::KedaPoll);
  }

  void sample() {
    Sample sample;
    sample.time = now_;
    sample.desired_pod_count = desired_;
    sample.keda_max_scale = max_scale_;
    sample.pods = static_cast<int>(live_.size());
    for (const auto pod : live_) {
      switch (pods_[pod].state) {
        case PodState::Starting: ++sample.starting; break;
        case PodState::Active: ++sample.active; break;
        case PodState::Retired: ++sample.retired; break;
        case PodState::Terminating: ++sample.terminating; break;
        case PodState::Exited: break;
      }
    }
    sample.queued_jobs = queued_;
    sample.runnable_jobs = static_cast<int>(runnable_.size());
    sample.running_jobs = running_;
    auto& samples = result_.samples;
    samples.push_back(sample);
    if (samples.size() > options_.max_samples) {
      // Samples are taken at multiples of the interval from 0, so the even ones are the
      // multiples of twice the interval, and sampling goes on from the last of them.
      std::size_t kept = 0;
      for (std::size_t i = 0; i < samples.size(); i += 2) samples[kept++] = samples[i];
      samples.resize(kept);
      result_.sample_interval *= 2;
    }
    schedule(samples.back().time + result_.sample_interval, Kind::Sample);
  }

  const Workload& workload_;
  const SimulationOptions& options_;
  const int capacity_;
  SimulationResult result_;
  EventQueue<Event> events_;
  SimTime now_{0};

  std::vector<Pod> pods_;          ///< beside result_.pods, same index
  std::vector<std::size_t> live_;  ///< pods not exited, oldest first
  std::set<std::size_t> free_;     ///< ACTIVE pods with a free slot, oldest first
  std::unordered_map<std::int64_t, Lane> lanes_;
  /// Lane heads of integrations with nothing running, by arrival (job index): the jobs that
  /// could start now.
  std::set<std::pair<std::size_t, std::int64_t>> runnable_;
  int queued_ = 0;
  int running_ = 0;
  int desired_ = 0;    ///< desired_pod_count starts at 0 until the singleton computes it
  int max_scale_ = 0;  ///< of KEDA's last poll
  std::size_t finished_ = 0;
  SimTime last_end_{0};
};

}  // namespace

SimTime horizonOf(const Workload& workload, const SimulationOptions& options) {
  SimTime horizon = options.horizon;
  for (const auto& job : workload.jobs) horizon = std::max(horizon, job.arrival);
  return horizon;
}

SimulationResult simulate(const Workload& workload, const SimulationOptions& options) {
  return Model(workload, options).run();
}

}  // namespace syncpod::simulator
