#pragma once
// What the benchmarks share: ending on a failed call, reading one value, and the CPU time of
// processes, so that the figures can say where the time went on a machine the benchmark and
// its servers share.

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>

#include <pqxx/pqxx>

#include "syncpod/core/database.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::bench {

/// The value of `result`; ends the benchmark, saying what failed, when it holds an error.
template <class T>
T orDie(core::Result<T> result, const char* what) {
  if (!result) {
    std::cerr << what << " failed: " << result.error().message << "\n";
    std::exit(1);
  }
  return std::move(result).value();
}

/// The first column of the first row of `sql`; "" when it returns no row or NULL.
inline std::string scalar(pqxx::connection& connection, const std::string& sql) {
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec(sql);
  return rows.empty() || rows[0][0].is_null() ? "" : rows[0][0].c_str();
}

/// The same, on a connection of its own in the target's schema.
inline std::string scalar(const core::DatabaseTarget& target, const std::string& sql) {
  pqxx::connection connection(target.url);
  connection.set_variable("search_path", connection.quote_name(target.schema));
  return scalar(connection, sql);
}

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat; 0 when it is gone.
inline double processCpuSeconds(int pid, int* parent = nullptr) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return 0;
  // Fields after the command name, which may hold spaces, start after the last ')'.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string state;
  long long ppid = 0, skip = 0, utime = 0, stime = 0;
  fields >> state >> ppid;
  for (int i = 0; i < 9; ++i) fields >> skip;
  fields >> utime >> stime;
  if (parent) *parent = static_cast<int>(ppid);
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// CPU seconds used so far by the PostgreSQL server behind `target` (its postmaster and every
/// child: backends, WAL writer, checkpointer, autovacuum), when it runs on this machine.
/// Processes that ended in between (autovacuum workers) are missed, so it errs low.
inline double postgresCpuSeconds(const core::DatabaseTarget& target) {
  pqxx::connection connection(target.url);
  pqxx::nontransaction tx(connection);
  const int backend = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
  int postmaster = 0;
  processCpuSeconds(backend, &postmaster);
  double total = processCpuSeconds(postmaster);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    int parent = 0;
    const double used = processCpuSeconds(std::stoi(name), &parent);
    if (parent == postmaster) total += used;
  }
  return total;
}

/// CPU seconds (user + system) this process has used.
inline double ownCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto toSeconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return toSeconds(usage.ru_utime) + toSeconds(usage.ru_stime);
}

}  // namespace syncpod::bench
