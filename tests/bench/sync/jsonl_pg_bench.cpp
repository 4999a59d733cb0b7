// Sync benchmark through the real connectors: a full sync of N records × 10 fields from a JSON
// Lines file (the jsonl plugin) to a PostgreSQL table (the postgres plugin), run as a job the
// way a worker runs it: enqueued, claimed, run by SyncJobRunner, completed. Two syncs:
//
//   1. initial: the table is empty, every record is created;
//   2. again, after 10 % of the file's records changed in one field: those are updated.
//
// Prints records/s (wall time and this process's CPU time: the plugins run in it, the
// PostgreSQL server does not) and the peak RSS of each sync. Writing the file is not timed.
//
//   syncpod_sync_pg_bench --database-url=URL [--records=100000] [--batch=1000]
//                         [--schema=bench_sync] [--plugin-dir=DIR] [--directory=DIR]
//
// The URL may come from SYNCPOD_TEST_DATABASE_URL instead. It drops and recreates the schemas
// `bench_sync` (syncpod's tables) and `bench_sync_crm` (the target table) in that database,
// and drops them again at the end.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "bench_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/sync_job_runner.hpp"

namespace {

namespace fs = std::filesystem;
using namespace syncpod;
using namespace syncpod::core;
using namespace syncpod::bench;

struct Options {
  std::string url;
  long long records = 100000;
  long long batch = 1000;
  std::string schema = "bench_sync";
  std::string plugin_dir = SYNCPOD_PLUGIN_DIR;
  std::string directory;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << problem << "\n"
            << "usage: syncpod_sync_pg_bench --database-url=URL [--records=100000] [--batch=1000]\n"
            << "                             [--schema=bench_sync] [--plugin-dir=DIR] "
               "[--directory=DIR]\n";
  std::exit(64);
}

Options parse(int argc, char** argv) {
  Options options;
  if (const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL")) options.url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const std::string value = equals == std::string::npos ? "" : arg.substr(equals + 1);
    try {
      if (name == "--database-url")
        options.url = value;
      else if (name == "--records")
        options.records = std::stoll(value);
      else if (name == "--batch")
        options.batch = std::stoll(value);
      else if (name == "--schema")
        options.schema = value;
      else if (name == "--plugin-dir")
        options.plugin_dir = value;
      else if (name == "--directory")
        options.directory = value;
      else
        usage("unknown option " + arg);
    } catch (const std::logic_error&) {
      usage("not a number: " + arg);
    }
  }
  if (options.url.empty()) {
    usage(
        "no database: give --database-url=URL or set SYNCPOD_TEST_DATABASE_URL "
        "(for a private server: export SYNCPOD_TEST_DATABASE_URL=$(scripts/pg start | tail -n 1))");
  }
  if (options.records < 10) usage("--records must be at least 10");
  if (options.batch < 1 || options.batch > 100000) usage("--batch must be 1–100000");
  return options;
}

/// The process's peak RSS in MB since start or since the last resetPeakRss().
double peakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

/// Starts a new peak RSS measurement (Linux: clear_refs 5); false where that is not possible.
bool resetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

void exec(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  tx.exec(sql);
}

IntegrationId createIntegration(const std::string& url, const std::string& schema,
                                const Json& config) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  return tx
      .exec_params("INSERT INTO " + schema +
                       ".integrations (name, config) VALUES ('bench', $1::jsonb) RETURNING id",
                   config.dump())[0][0]
      .as<IntegrationId>();
}

/// Record i of the file; `changed` records have another city.
Json record(long long i, bool changed) {
  return {{"id", i},
          {"name", "name " + std::to_string(i)},
          {"email", "user" + std::to_string(i) + "@example.com"},
          {"city", changed ? "Lyon" : "Paris"},
          {"age", 20 + i % 50},
          {"score", static_cast<double>(i % 1000) / 10.0},
          {"active", i % 3 != 0},
          {"team", "team " + std::to_string(i % 97)},
          {"phone", "+33 1 " + std::to_string(10000000 + i)},
          {"note", "record number " + std::to_string(i)}};
}

/// Whether record i is among the 10 % the second sync changes.
bool changedLater(long long i) {
  return i % 10 == 1;
}

void writeFile(const fs::path& file, long long records, bool with_changes) {
  std::ofstream out(file, std::ios::trunc);
  for (long long i = 0; i < records; ++i)
    out << record(i, with_changes && changedLater(i)).dump() << '\n';
  if (!out) {
    std::cerr << "cannot write " << file << "\n";
    std::exit(1);
  }
}

struct SyncFigures {
  double wall_s = 0;
  double cpu_s = 0;
  double peak_rss_mb = 0;
  Json report;
};

/// Runs one full sync job of `integration` the way a worker does.
SyncFigures runFullSync(const DatabaseTarget& target, const PluginRegistry& plugins,
                        IntegrationId integration) {
  JobQueue queue(target);
  EnqueueRequest request;
  request.integration_id = integration;
  request.kind = JobKind::Full;
  request.merge = false;
  orDie(queue.enqueue(request), "enqueue");
  const auto worker =
      orDie(queue.registerWorker({1, "bench", "localhost", getpid()}), "register worker");
  const auto jobs = orDie(queue.claim(worker, 1), "claim");
  if (jobs.size() != 1) {
    std::cerr << "no job was claimed\n";
    std::exit(1);
  }
  SyncJobRunner runner(target, plugins);
  const bool reset = resetPeakRss();
  const auto start = std::chrono::steady_clock::now();
  const double start_cpu = ownCpuSeconds();
  const Completion completion = runner.run(jobs[0], [] { return false; });
  SyncFigures figures;
  figures.cpu_s = ownCpuSeconds() - start_cpu;
  figures.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  figures.peak_rss_mb = reset ? peakRssMb() : -1;
  orDie(queue.complete(worker, completion), "complete");
  if (completion.outcome != Completion::Outcome::Succeeded) {
    std::cerr << "the sync did not succeed: " << completion.error << "\n"
              << completion.result_json << "\n";
    std::exit(1);
  }
  figures.report = Json::parse(completion.result_json);
  return figures;
}

/// Fails the run unless `actual` is `expected`.
void expect(const char* what, long long actual, long long expected) {
  if (actual != expected) {
    std::cerr << "wrong result: " << what << " is " << actual << ", expected " << expected << "\n";
    std::exit(1);
  }
}

void print(const char* label, const Options& options, const SyncFigures& figures) {
  const auto records = static_cast<double>(options.records);
  std::printf("%s\n", label);
  std::printf("  wall time (s)                      %12.3f\n", figures.wall_s);
  std::printf("  records/s (wall)                   %12.0f\n", records / figures.wall_s);
  std::printf("  CPU time of this process (s)       %12.3f\n", figures.cpu_s);
  if (figures.peak_rss_mb >= 0) {
    std::printf("  peak RSS during the sync (MB)      %12.1f\n", figures.peak_rss_mb);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  spdlog::set_level(spdlog::level::warn);

  const DatabaseTarget target{options.url, options.schema};
  const std::string crm = options.schema + "_crm";
  const fs::path directory =
      options.directory.empty()
          ? fs::temp_directory_path() / ("syncpod-sync-bench-" + std::to_string(getpid()))
          : fs::path(options.directory);
  fs::create_directories(directory);

  // Fresh schemas: syncpod's tables, and the target table.
  exec(options.url, "DROP SCHEMA IF EXISTS " + options.schema + " CASCADE; DROP SCHEMA IF EXISTS " +
                        crm + " CASCADE");
  Migrator(target, embeddedMigrations()).apply();
  exec(options.url, "CREATE SCHEMA " + crm + "; CREATE TABLE " + crm +
                        ".people (id integer PRIMARY KEY, " +
                        "name text, email text, city text, age integer, score double precision, "
                        "active boolean, " +
                        "team text, phone text, note text)");

  const auto plugins = PluginRegistry::load({options.plugin_dir});
  for (const auto& error : plugins.errors()) std::cerr << error.message << "\n";
  if (!plugins.find("jsonl") || !plugins.find("postgres")) {
    std::cerr << "the jsonl and postgres plugins are not in " << options.plugin_dir
              << " (build them, or give --plugin-dir)\n";
    return 1;
  }

  const Json fields = {{"id", "id"},         {"name", "name"}, {"email", "email"},
                       {"city", "city"},     {"age", "age"},   {"score", "score"},
                       {"active", "active"}, {"team", "team"}, {"phone", "phone"},
                       {"note", "note"}};
  const Json config = {{"source",
                        {{"plugin", "jsonl"},
                         {"config",
                          {{"directory", directory.string()},
                           {"streams", {{"users", {{"file", "users.jsonl"}}}}}}}}},
                       {"target",
                        {{"plugin", "postgres"},
                         {"config",
                          {{"url", options.url},
                           {"schema", crm},
                           {"batch_size", options.batch},
                           {"streams", {{"people", {{"table", "people"}}}}}}}}},
                       {"batch_size", options.batch},
                       {"streams",
                        {{{"name", "people"},
                          {"source_stream", "users"},
                          {"target_stream", "people"},
                          {"key", {"id"}},
                          {"fields", fields}}}}};
  const auto integration = createIntegration(options.url, options.schema, config);

  const auto write_start = std::chrono::steady_clock::now();
  writeFile(directory / "users.jsonl", options.records, false);
  const double write_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();

  const auto initial = runFullSync(target, plugins, integration);
  const auto& initial_counts = initial.report["streams"][0];
  expect("creates of the initial sync", initial_counts["target"]["create"].get<long long>(),
         options.records);
  expect("applied changes of the initial sync",
         initial_counts["target"]["applied"].get<long long>(), options.records);
  expect("rows after the initial sync",
         std::stoll(scalar(target, "SELECT count(*) FROM " + crm + ".people")),
         options.records);

  writeFile(directory / "users.jsonl", options.records, true);
  const auto again = runFullSync(target, plugins, integration);
  const auto& again_counts = again.report["streams"][0];
  long long changed = 0;
  for (long long i = 0; i < options.records; ++i) changed += changedLater(i) ? 1 : 0;
  expect("updates of the second sync", again_counts["target"]["update"].get<long long>(), changed);
  expect("creates of the second sync", again_counts["target"]["create"].get<long long>(), 0);
  expect("unchanged records of the second sync", again_counts["unchanged"].get<long long>(),
         options.records - changed);
  expect("rows with the changed value",
         std::stoll(
             scalar(target, "SELECT count(*) FROM " + crm + ".people WHERE city = 'Lyon'")),
         changed);

  std::printf("records                              %12lld\n", options.records);
  std::printf("fields per record                    %12d\n", 10);
  std::printf("batch                                %12lld\n", options.batch);
  std::printf("writing the file (s, not counted)    %12.3f\n", write_s);
  print("initial full sync (every record created)", options, initial);
  print("second full sync (10 % changed in one field)", options, again);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak RSS of the process (MB)         %12.1f\n",
              static_cast<double>(usage.ru_maxrss) / 1024.0);

  exec(options.url, "DROP SCHEMA IF EXISTS " + options.schema + " CASCADE; DROP SCHEMA IF EXISTS " +
                        crm + " CASCADE");
  if (options.directory.empty()) fs::remove_all(directory);
  return 0;
}
