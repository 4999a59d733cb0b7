// The field scenario end to end, as a user runs it without Kubernetes: the singleton computes
// desired_pod_count, `syncpod scaler` starts workers from it as KEDA would, the workers claim
// jobs of the `workload` test plugin (each takes a second) and retire by themselves. A burst of
// 30 queued jobs, as the 05:00 cron burst, scales the workers up to maxReplicaCount and back
// down. Every 100 ms the test samples the system; it writes the series to
// burst_timeseries.csv and asserts on it.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "pg_test_support.hpp"
#include "process.hpp"
#include "workload_integration.hpp"
#include "syncpod/core/job_queue.hpp"

namespace syncpod::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kBinary = SYNCPOD_BINARY;
constexpr int kMaxReplicas = 5;
constexpr int kMinimumActive = 2;  // the singleton's minimum_active_workers default
constexpr int kBurst = 30;

/// Child processes of `parent` (zombies included: not yet reaped, still unfinished).
int childrenOf(pid_t parent) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto after_name = line.rfind(')');
    if (after_name == std::string::npos) continue;
    std::istringstream fields(line.substr(after_name + 2));
    std::string state;
    long long ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) ++count;
  }
  return count;
}

struct Sample {
  double t_s = 0;
  int desired = 0;
  int processes = 0;  ///< worker processes the scaler started that have not ended
  int inactive = 0, active = 0, retired = 0, terminating = 0;
  int queued = 0, running = 0, succeeded = 0;
};

class BurstTest : public PgTest {
 protected:
  void TearDown() override {
    stopSampling();
    PgTest::TearDown();
  }

  core::IntegrationId integration(int n) {
    const auto id = createIntegration("burst-" + std::to_string(n));
    const Json config = workloadIntegrationConfig({{"records", 3}, {"fetch_ms", 1000}});
    execute(target_, "UPDATE integrations SET config = '" + config.dump() +
                         "'::jsonb WHERE id = " + std::to_string(id));
    return id;
  }

  void startSampling(pid_t scaler) {
    sampler_ = std::thread([this, scaler] {
      pqxx::connection connection(target_.url);
      const auto s = connection.quote_name(target_.schema);
      const std::string query =
          "SELECT (SELECT count FROM " + s + ".desired_pod_count), "
          "count(*) FILTER (WHERE state = 'INACTIVE'), count(*) FILTER (WHERE state = 'ACTIVE'), "
          "count(*) FILTER (WHERE state = 'RETIRED'), count(*) FILTER (WHERE state = 'TERMINATING'), "
          "(SELECT count(*) FROM " + s + ".jobs WHERE state = 'queued'), "
          "(SELECT count(*) FROM " + s + ".jobs WHERE state = 'running'), "
          "(SELECT count(*) FROM " + s + ".jobs WHERE state = 'succeeded') "
          "FROM " + s + ".worker_lifecycle";
      const auto start = std::chrono::steady_clock::now();
      while (!stop_sampling_) {
        Sample sample;
        sample.t_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        sample.processes = childrenOf(scaler);
        pqxx::nontransaction tx(connection);
        const auto row = tx.exec(query)[0];
        sample.desired = row[0].as<int>();
        sample.inactive = row[1].as<int>();
        sample.active = row[2].as<int>();
        sample.retired = row[3].as<int>();
        sample.terminating = row[4].as<int>();
        sample.queued = row[5].as<int>();
        sample.running = row[6].as<int>();
        sample.succeeded = row[7].as<int>();
        {
          std::lock_guard lock(mutex_);
          samples_.push_back(sample);
        }
        std::this_thread::sleep_for(100ms);  // the sampling period, not a synchronization
      }
    });
  }

  void stopSampling() {
    stop_sampling_ = true;
    if (sampler_.joinable()) sampler_.join();
  }

  Sample latest() {
    std::lock_guard lock(mutex_);
    return samples_.empty() ? Sample{} : samples_.back();
  }

  /// Waits until the latest sample satisfies `condition`.
  bool eventually(const std::function<bool(const Sample&)>& condition, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    std::size_t seen = 0;
    while (std::chrono::steady_clock::now() < end) {
      {
        std::lock_guard lock(mutex_);
        if (samples_.size() > seen) {
          seen = samples_.size();
          if (condition(samples_.back())) return true;
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  std::size_t sampleCount() {
    std::lock_guard lock(mutex_);
    return samples_.size();
  }

  void writeCsv(const std::string& path) {
    std::ofstream out(path);
    out << "t_s,desired_pod_count,worker_processes,inactive,active,retired,terminating,queued,running,succeeded\n";
    std::lock_guard lock(mutex_);
    for (const auto& s : samples_) {
      out << s.t_s << ',' << s.desired << ',' << s.processes << ',' << s.inactive << ',' << s.active << ','
          << s.retired << ',' << s.terminating << ',' << s.queued << ',' << s.running << ',' << s.succeeded
          << '\n';
    }
  }

  std::thread sampler_;
  std::atomic<bool> stop_sampling_{false};
  std::mutex mutex_;
  std::vector<Sample> samples_;
};

TEST_F(BurstTest, ScalesUpToTheMaximumForABurstAndBackToTheMinimum) {
  std::vector<core::IntegrationId> integrations;
  for (int i = 0; i < kBurst; ++i) integrations.push_back(integration(i));

  const std::vector<std::string> common = {"--database-url=" + target_.url, "--schema=" + target_.schema};
  auto singleton_args = std::vector<std::string>{kBinary, "serve", "--role=singleton", "--scale-interval=200ms",
                                                 "--keda-polling-interval=500ms", "--scaling-policy=queue-aware",
                                                 "--rescue-interval=500ms"};
  singleton_args.insert(singleton_args.end(), common.begin(), common.end());
  ChildProcess singleton(singleton_args);

  // What the workers read (the scaler passes its environment on), as a pod's env would be.
  const std::map<std::string, std::string> worker_env = {
      {"SYNCPOD_ACTIVE_PERIOD", "4s"},        {"SYNCPOD_TERMINATING_GRACE", "800ms"},
      {"SYNCPOD_SCALE_INTERVAL", "200ms"},    {"SYNCPOD_HEARTBEAT_INTERVAL", "200ms"},
      {"SYNCPOD_POLL_INTERVAL", "200ms"},     {"SYNCPOD_WORKER_CAPACITY", "1"},
      {"SYNCPOD_PLUGIN_PATH", SYNCPOD_TEST_PLUGIN_DIR "/libworkload.so"}};
  auto scaler_args = std::vector<std::string>{kBinary, "scaler", "--keda-polling-interval=500ms",
                                              "--scaler-max-replicas=" + std::to_string(kMaxReplicas),
                                              "--scaler-termination-grace=5s"};
  scaler_args.insert(scaler_args.end(), common.begin(), common.end());
  ChildProcess scaler(scaler_args, worker_env);
  startSampling(scaler.pid());

  // Idle: the minimum of active workers, and desired_pod_count says so.
  ASSERT_TRUE(eventually([](const Sample& s) { return s.desired == kMinimumActive && s.active == kMinimumActive; },
                         30s))
      << scaler.output();
  // ... and it stays there: two seconds of idle samples.
  const auto idle_start = sampleCount();
  const double idle_from = latest().t_s;
  ASSERT_TRUE(eventually([&](const Sample& s) { return s.t_s >= idle_from + 2; }, 10s));
  const auto idle_end = sampleCount();

  // The burst, enqueued at once.
  {
    core::JobQueue queue(target_);
    std::vector<core::EnqueueRequest> requests;
    for (const auto id : integrations) {
      core::EnqueueRequest request;
      request.integration_id = id;
      request.max_attempts = 1;
      requests.push_back(std::move(request));
    }
    ASSERT_TRUE(queue.enqueue(requests));
  }
  ASSERT_TRUE(eventually([](const Sample& s) { return s.succeeded == kBurst; }, 120s)) << scaler.output();
  const auto burst_end = sampleCount();

  // Back to the minimum once the burst's workers retired and ended.
  ASSERT_TRUE(eventually(
      [](const Sample& s) {
        return s.desired == kMinimumActive && s.active == kMinimumActive && s.processes == kMinimumActive &&
               s.retired == 0 && s.terminating == 0;
      },
      60s))
      << scaler.output();
  const auto scaler_log = scaler.output();

  scaler.signal(SIGTERM);
  EXPECT_EQ(scaler.wait(30s), 0) << scaler.output();
  stopSampling();
  singleton.signal(SIGTERM);
  EXPECT_EQ(singleton.wait(20s), 0);
  writeCsv("burst_timeseries.csv");
  std::cout << "time series: " << std::filesystem::absolute("burst_timeseries.csv").string() << "\n";

  // What the series shows.
  int idle_max_processes = 0, burst_max_processes = 0, max_processes = 0, max_desired = 0;
  for (std::size_t i = 0; i < samples_.size(); ++i) {
    const auto& s = samples_[i];
    if (i >= idle_start && i < idle_end) idle_max_processes = std::max(idle_max_processes, s.processes);
    if (i >= idle_end && i < burst_end) burst_max_processes = std::max(burst_max_processes, s.processes);
    max_processes = std::max(max_processes, s.processes);
    max_desired = std::max(max_desired, s.desired);
  }
  EXPECT_EQ(idle_max_processes, kMinimumActive) << "not the minimum of workers while idle";
  EXPECT_GT(max_desired, kMaxReplicas) << "the burst never showed in desired_pod_count";
  EXPECT_EQ(burst_max_processes, kMaxReplicas) << "the burst did not scale the workers to maxReplicaCount";
  EXPECT_LE(max_processes, kMaxReplicas) << "more workers than maxReplicaCount";

  // Every job ran once and succeeded; no worker was stopped, none failed: workers are never
  // killed while they run a job, they retire and end by themselves.
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) FROM " + target_.schema + ".job_attempts"), std::to_string(kBurst));
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) FROM " + target_.schema +
                                     ".job_attempts WHERE outcome <> 'succeeded'"),
            "0");
  EXPECT_EQ(scaler_log.find("stopping worker"), std::string::npos) << scaler_log;
  EXPECT_EQ(scaler_log.find(" failed after "), std::string::npos) << scaler_log;
  EXPECT_NE(scaler_log.find(" succeeded after "), std::string::npos) << "no worker retired and ended";
}

}  // namespace
}  // namespace syncpod::testing
