// Worker benchmark: cold start (exec of `syncpod serve --role=worker` → its first claim) and the
// resident memory of an idle worker, for both isolation modes. See docs/performance.md.
//
//   syncpod_worker_bench --database-url=URL [--runs=10] [--schema=bench_worker]
//
// Each run enqueues one job, starts a worker and takes the time from just before exec to the
// job's claimed_at (same host clock), waits for the job to succeed, then reads the worker's
// VmRSS while it waits for work, and stops it with SIGTERM. The schema is dropped and
// recreated first.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "bench_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"

extern char** environ;

namespace {

using namespace syncpod::core;
using namespace syncpod::bench;

struct Options {
  std::string url;
  std::string schema = "bench_worker";
  int runs = 10;
};

Options parse(int argc, char** argv) {
  Options options;
  if (const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL")) options.url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    const auto equals = argument.find('=');
    const auto name = argument.substr(0, equals);
    const auto value = equals == std::string::npos ? "" : argument.substr(equals + 1);
    if (name == "--database-url") {
      options.url = value;
    } else if (name == "--schema") {
      options.schema = value;
    } else if (name == "--runs") {
      options.runs = std::max(1, std::atoi(value.c_str()));
    } else {
      std::cerr << "unknown option " << argument << "\n";
      std::exit(64);
    }
  }
  if (options.url.empty()) {
    std::cerr << "give --database-url=URL (or SYNCPOD_TEST_DATABASE_URL)\n";
    std::exit(64);
  }
  return options;
}

/// Polls until `sql` returns a non-empty value (at most 30 s).
std::string awaitValue(pqxx::connection& connection, const std::string& sql) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < end) {
    if (auto value = scalar(connection, sql); !value.empty()) return value;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::cerr << "timed out waiting for: " << sql << "\n";
  std::exit(1);
}

long residentKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

pid_t startWorker(const Options& options, const std::string& isolation) {
  const std::vector<std::string> arguments = {
      SYNCPOD_BINARY, "serve", "--role=worker", "--database-url=" + options.url,
      "--schema=" + options.schema, "--isolation=" + isolation,
      "--plugin-path=" SYNCPOD_TEST_PLUGIN_DIR "/libworkload.so", "--log-level=warn",
      "--terminating-grace=200ms", "--scale-interval=100ms", "--keda-polling-interval=100ms"};
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, SYNCPOD_BINARY, nullptr, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::exit(1);
  }
  return pid;
}

struct RunFigures {
  double cold_start_ms = 0;
  long idle_rss_kib = 0;
};

RunFigures runOnce(const Options& options, const DatabaseTarget& target, IntegrationId integration,
                   pqxx::connection& connection, const std::string& isolation) {
  JobQueue queue(target);
  EnqueueRequest request;
  request.integration_id = integration;
  request.merge = false;
  const auto job = orDie(queue.enqueue(request), "enqueue").id;
  const auto id = std::to_string(job);

  const auto exec_at = std::chrono::system_clock::now();
  const pid_t pid = startWorker(options, isolation);
  const auto claimed_us = std::stoll(awaitValue(
      connection, "SELECT (extract(epoch FROM claimed_at) * 1000000)::bigint FROM " +
                      options.schema + ".jobs WHERE id = " + id + " AND claimed_at IS NOT NULL"));
  const auto exec_us =
      std::chrono::duration_cast<std::chrono::microseconds>(exec_at.time_since_epoch()).count();
  awaitValue(connection, "SELECT 1 FROM " + options.schema + ".jobs WHERE id = " + id +
                             " AND state = 'succeeded'");
  // Idle: its job reported, nothing queued; it waits on LISTEN.
  awaitValue(connection, "SELECT 1 FROM " + options.schema +
                             ".worker_lifecycle WHERE running_jobs = 0 AND pid = " + std::to_string(pid) +
                             " AND last_heartbeat_at > (SELECT finished_at FROM " + options.schema +
                             ".jobs WHERE id = " + id + ")");
  RunFigures figures;
  figures.cold_start_ms = static_cast<double>(claimed_us - exec_us) / 1000.0;
  figures.idle_rss_kib = residentKiB(pid);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "worker " << pid << " did not exit 0 after SIGTERM\n";
    std::exit(1);
  }
  return figures;
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse(argc, argv);
  const DatabaseTarget target{options.url, options.schema};
  {
    pqxx::connection connection(options.url);
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA IF EXISTS " + connection.quote_name(options.schema) + " CASCADE");
  }
  Migrator(target, embeddedMigrations()).apply();
  pqxx::connection connection(options.url);
  const std::string config = R"({"source": {"plugin": "workload", "config": {"records": 1}},
    "target": {"plugin": "workload", "config": {"records": 0}}, "deletion_policy": "additive",
    "streams": [{"name": "items", "source_stream": "items", "target_stream": "items",
                 "key": ["id"], "fields": {"id": "id"}}]})";
  const auto integration = std::stoll(scalar(
      connection, "INSERT INTO " + options.schema + ".integrations (name, config) VALUES ('bench', " +
                      connection.quote(config) + "::jsonb) RETURNING id"));

  std::printf("worker cold start (exec → first claim) and idle RSS, %d runs each\n", options.runs);
  std::printf("%-10s %12s %12s %14s\n", "isolation", "start p50", "start max", "idle RSS max");
  for (const std::string isolation : {"process", "thread"}) {
    std::vector<double> starts;
    long rss = 0;
    for (int run = 0; run < options.runs; ++run) {
      const auto figures = runOnce(options, target, integration, connection, isolation);
      starts.push_back(figures.cold_start_ms);
      rss = std::max(rss, figures.idle_rss_kib);
    }
    std::printf("%-10s %9.1f ms %9.1f ms %11.1f MB\n", isolation.c_str(), percentile(starts, 0.5),
                percentile(starts, 1.0), static_cast<double>(rss) / 1024.0);
  }
  pqxx::nontransaction tx(connection);
  tx.exec("DROP SCHEMA " + connection.quote_name(options.schema) + " CASCADE");
  return 0;
}
