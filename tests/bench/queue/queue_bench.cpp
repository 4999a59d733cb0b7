// Queue benchmark: enqueue rate, drain rate with K claimers, and pickup latency, through the
// same JobQueue / JobWaiter code the workers use. Prints a table; see docs/performance.md.
//
//   syncpod_queue_bench --database-url=URL [--jobs=200000] [--integrations=1000]
//                       [--claimers=4] [--batch=250] [--enqueue-batch=5000] [--samples=1000]
//                       [--checkpoint=run|drain|none]
//
// It drops and recreates the schema `bench_queue` (or --schema) in that database.

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "bench_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/job_waiter.hpp"
#include "syncpod/core/migrator.hpp"

namespace {

using namespace syncpod::core;
using namespace syncpod::bench;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string url;
  std::string schema = "bench_queue";
  int jobs = 200000;
  int integrations = 1000;
  int claimers = 4;
  int batch = 250;
  int enqueue_batch = 5000;
  int samples = 1000;
  // When to force a CHECKPOINT: before the run (default), right before the drain, or never.
  std::string checkpoint = "run";
};

Options parse(int argc, char** argv) {
  Options options;
  if (const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL")) options.url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const std::string value = equals == std::string::npos ? "" : arg.substr(equals + 1);
    if (name == "--database-url") options.url = value;
    else if (name == "--schema") options.schema = value;
    else if (name == "--jobs") options.jobs = std::stoi(value);
    else if (name == "--integrations") options.integrations = std::stoi(value);
    else if (name == "--claimers") options.claimers = std::stoi(value);
    else if (name == "--batch") options.batch = std::stoi(value);
    else if (name == "--enqueue-batch") options.enqueue_batch = std::stoi(value);
    else if (name == "--samples") options.samples = std::stoi(value);
    else if (name == "--checkpoint" && (value == "run" || value == "drain" || value == "none")) {
      options.checkpoint = value;
    } else {
      std::cerr << "unknown option " << arg << "\n";
      std::exit(64);
    }
  }
  if (options.url.empty()) {
    std::cerr << "give --database-url=URL (or SYNCPOD_TEST_DATABASE_URL)\n";
    std::exit(64);
  }
  return options;
}

double seconds(SteadyClock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}


std::vector<IntegrationId> freshSchema(const DatabaseTarget& target, int integrations) {
  {
    pqxx::connection connection(target.url);
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA IF EXISTS " + connection.quote_name(target.schema) + " CASCADE");
  }
  Migrator(target, embeddedMigrations()).apply();
  pqxx::connection connection(target.url);
  connection.set_variable("search_path", connection.quote_name(target.schema));
  pqxx::nontransaction tx(connection);
  std::vector<IntegrationId> ids;
  for (const auto& row : tx.exec_params(
           "INSERT INTO integrations (name) SELECT 'bench-' || i FROM generate_series(1, $1) i "
           "RETURNING id",
           integrations)) {
    ids.push_back(row[0].as<IntegrationId>());
  }
  return ids;
}

/// Enqueues `jobs` no-op jobs round-robin over the integrations; returns jobs/s.
double benchEnqueue(const DatabaseTarget& target, const std::vector<IntegrationId>& integrations,
                    const Options& options) {
  JobQueue queue(target);
  std::vector<EnqueueRequest> batch;
  const auto start = SteadyClock::now();
  for (int i = 0; i < options.jobs; ++i) {
    EnqueueRequest request;
    request.integration_id = integrations[static_cast<std::size_t>(i) % integrations.size()];
    request.merge = false;  // distinct jobs: coalescing would fold them into one per integration
    batch.push_back(request);
    if (static_cast<int>(batch.size()) == options.enqueue_batch || i + 1 == options.jobs) {
      orDie(queue.enqueue(batch), "enqueue");
      batch.clear();
    }
  }
  return options.jobs / seconds(SteadyClock::now() - start);
}

struct DrainFigures {
  double jobs_per_second = 0;
  double server_cpu_us_per_job = 0;
  double client_cpu_us_per_job = 0;
  long long claims = 0;
  long long empty_claims = 0;
  double wal_bytes_per_job = 0;
  long long checkpoints = 0;  // started while the drain ran
  long long autovacuums = 0;  // of the benchmark's tables, finished while the drain ran
  long long autoanalyzes = 0;
};

// Autovacuum and autoanalyze runs finished so far on the benchmark schema's tables (scalar()
// runs in that schema).
std::pair<long long, long long> autovacuumRuns(const DatabaseTarget& target) {
  std::istringstream runs(scalar(target, "SELECT sum(autovacuum_count) || ' ' || sum(autoanalyze_count) "
                                         "FROM pg_stat_user_tables WHERE schemaname = current_schema()"));
  std::pair<long long, long long> counts;
  runs >> counts.first >> counts.second;
  return counts;
}

// Checkpoints started so far, timed or requested.
long long checkpointsStarted(const DatabaseTarget& target) {
  return std::stoll(scalar(target, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"));
}

// Forces a checkpoint: the run then starts with no checkpoint pending from earlier runs' WAL.
void checkpoint(const DatabaseTarget& target) {
  try {
    pqxx::connection connection(target.url);
    pqxx::nontransaction tx(connection);
    tx.exec("CHECKPOINT");
  } catch (const std::exception& error) {
    std::cerr << "CHECKPOINT failed (it needs a superuser or the pg_checkpoint role; "
                 "--checkpoint=none skips it): " << error.what() << "\n";
    std::exit(1);
  }
}

/// K claimers, each completing what it holds and claiming up to `batch` more in one transaction.
DrainFigures benchDrain(const DatabaseTarget& target, const Options& options) {
  std::atomic<long long> done{0};
  std::atomic<long long> claims{0};
  std::atomic<long long> empty_claims{0};
  std::vector<std::thread> threads;
  const double client_cpu_before = ownCpuSeconds();
  const auto start = SteadyClock::now();
  // The queues outlive their threads so that their server processes are still there to be
  // counted at the end.
  std::vector<std::unique_ptr<JobQueue>> queues;
  for (int k = 0; k < options.claimers; ++k) queues.push_back(std::make_unique<JobQueue>(target));
  const double server_cpu_before = postgresCpuSeconds(target);
  const auto wal_before = scalar(target, "SELECT pg_current_wal_lsn()");
  const long long checkpoints_before = checkpointsStarted(target);
  const auto autovacuums_before = autovacuumRuns(target);
  for (int k = 0; k < options.claimers; ++k) {
    threads.emplace_back([&, k] {
      JobQueue& queue = *queues[static_cast<std::size_t>(k)];
      const auto worker = orDie(queue.registerWorker({options.batch, "bench", "bench", getpid()}),
                                "register");
      // A worker's cycle: complete what it holds and claim more, in one transaction.
      std::vector<Job> jobs;
      std::vector<Completion> completions;
      while (done.load() < options.jobs) {
        completions.clear();
        for (const auto& job : jobs) {
          completions.push_back({job.id, job.attempt, Completion::Outcome::Succeeded, "", ""});
        }
        auto cycle = orDie(queue.completeAndClaim(worker, completions, options.batch),
                           "completeAndClaim");
        for (const auto& result : cycle.completed) {
          if (!result.accepted) {
            std::cerr << "completion of job " << result.id << " refused\n";
            std::exit(1);
          }
        }
        done += static_cast<long long>(cycle.completed.size());
        jobs = std::move(cycle.claimed);
        ++claims;
        if (jobs.empty()) {
          ++empty_claims;
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  DrainFigures figures;
  figures.jobs_per_second = options.jobs / seconds(SteadyClock::now() - start);
  figures.client_cpu_us_per_job = (ownCpuSeconds() - client_cpu_before) * 1e6 / options.jobs;
  figures.server_cpu_us_per_job = (postgresCpuSeconds(target) - server_cpu_before) * 1e6 / options.jobs;
  figures.claims = claims.load();
  figures.empty_claims = empty_claims.load();
  figures.wal_bytes_per_job =
      std::stod(scalar(target, "SELECT pg_current_wal_lsn() - '" + wal_before + "'::pg_lsn")) /
      options.jobs;
  figures.checkpoints = checkpointsStarted(target) - checkpoints_before;
  const auto autovacuums_after = autovacuumRuns(target);
  figures.autovacuums = autovacuums_after.first - autovacuums_before.first;
  figures.autoanalyzes = autovacuums_after.second - autovacuums_before.second;
  return figures;
}

/// One idle worker waits on LISTEN; a producer enqueues one job at a time and measures the
/// time from the enqueue call to the worker's claim returning it.
std::vector<double> benchPickup(const DatabaseTarget& target, IntegrationId integration,
                                int samples) {
  std::mutex mutex;
  std::condition_variable changed;
  JobId claimed_id = 0;
  SteadyClock::time_point claimed_at;
  std::atomic<bool> stop{false};

  JobWaiter waiter(target);
  std::thread worker([&] {
    JobQueue queue(target);
    const auto id = orDie(queue.registerWorker({1, "bench", "bench", getpid()}), "register");
    while (!stop) {
      auto jobs = orDie(queue.claim(id, 1), "claim");
      if (jobs.empty()) {
        waiter.wait(std::chrono::seconds(1));
        continue;
      }
      const auto now = SteadyClock::now();
      orDie(queue.complete(id, {jobs[0].id, jobs[0].attempt, Completion::Outcome::Succeeded, "", ""}),
            "complete");
      std::lock_guard lock(mutex);
      claimed_id = jobs[0].id;
      claimed_at = now;
      changed.notify_all();
    }
  });

  JobQueue producer(target);
  std::vector<double> latencies_ms;
  for (int i = 0; i < samples + 50; ++i) {
    EnqueueRequest request;
    request.integration_id = integration;
    request.merge = false;
    const auto start = SteadyClock::now();
    const auto job = orDie(producer.enqueue(request), "enqueue");
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return claimed_id == job.id; });
    // The first 50 warm up connections and plans.
    if (i >= 50) latencies_ms.push_back(seconds(claimed_at - start) * 1000.0);
  }
  stop = true;
  waiter.wake();
  worker.join();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  return latencies_ms;
}

double percentile(const std::vector<double>& sorted, double p) {
  const auto index = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const DatabaseTarget target{options.url, options.schema};

  utsname machine{};
  uname(&machine);
  std::printf("machine: %s %s, %u cores; %s\n", machine.sysname, machine.machine,
              std::thread::hardware_concurrency(),
              scalar(target, "SELECT version()").substr(0, 40).c_str());
  std::printf("postgres: fsync=%s synchronous_commit=%s shared_buffers=%s\n",
              scalar(target, "SHOW fsync").c_str(), scalar(target, "SHOW synchronous_commit").c_str(),
              scalar(target, "SHOW shared_buffers").c_str());
  std::printf("jobs=%d integrations=%d claimers=%d claim/complete batch=%d enqueue batch=%d "
              "checkpoint before=%s\n\n",
              options.jobs, options.integrations, options.claimers, options.batch,
              options.enqueue_batch, options.checkpoint.c_str());

  // A checkpoint started by earlier runs' WAL would land in this one, and every page first
  // written after it costs a full-page image in the WAL: forcing one first makes runs comparable.
  // --checkpoint=drain measures the opposite case, a checkpoint just before the drain.
  if (options.checkpoint == "run") checkpoint(target);
  const auto integrations = freshSchema(target, options.integrations);
  // Pickup on an idle queue, then again right after the drain has left hundreds of thousands
  // of dead index entries behind for autovacuum.
  const auto idle_latencies = benchPickup(target, integrations.front(), options.samples);
  const double enqueue_rate = benchEnqueue(target, integrations, options);
  if (options.checkpoint == "drain") checkpoint(target);
  const auto drain = benchDrain(target, options);
  const auto unfinished = scalar(target, "SELECT count(*) FROM jobs WHERE state <> 'succeeded'");
  const auto busy_latencies = benchPickup(target, integrations.front(), options.samples);

  std::printf("%-34s %14s\n", "measure (latencies in ms)", "value");
  std::printf("%-34s %14.0f\n", "enqueue (jobs/s)", enqueue_rate);
  std::printf("%-34s %14.0f\n", "drain (jobs/s)", drain.jobs_per_second);
  std::printf("%-34s %14.1f\n", "  server CPU per job (us)", drain.server_cpu_us_per_job);
  std::printf("%-34s %14.1f\n", "  client CPU per job (us)", drain.client_cpu_us_per_job);
  std::printf("%-34s %14lld\n", "  claim statements", drain.claims);
  std::printf("%-34s %14lld\n", "  of which empty", drain.empty_claims);
  std::printf("%-34s %14.0f\n", "  WAL per job (bytes)", drain.wal_bytes_per_job);
  std::printf("%-34s %14lld\n", "  checkpoints started meanwhile", drain.checkpoints);
  std::printf("%-34s %10lld/%lld\n", "  autovacuums/analyzes meanwhile", drain.autovacuums,
              drain.autoanalyzes);
  std::printf("%-34s %14s\n", "  jobs left unfinished", unfinished.c_str());
  const auto pickup = [](const char* when, const std::vector<double>& latencies) {
    std::printf("pickup, %-26s %14zu\n", (std::string(when) + " (samples)").c_str(),
                latencies.size());
    for (const double p : {50.0, 95.0, 99.0}) {
      std::printf("  p%-31.0f %14.3f\n", p, percentile(latencies, p));
    }
    std::printf("  %-32s %14.3f\n", "max", latencies.back());
  };
  pickup("idle queue", idle_latencies);
  pickup("after the drain", busy_latencies);
  return unfinished == "0" ? 0 : 1;
}
