#pragma once
// Private to the service role: /metrics in the Prometheus text format (version 0.0.4).

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::service {

/// HTTP requests this process answered, by route pattern, method and status. Thread-safe.
class HttpMetrics {
 public:
  /// The route label of a request that matched no route.
  static constexpr std::string_view kUnmatched = "unmatched";

  /// Counts one answered request. `route` is a pattern ("/api/v1/jobs/{id}") or kUnmatched;
  /// a method other than the standard ones counts as "other", so that clients cannot add
  /// label values.
  void count(std::string_view route, std::string_view method, int status);

  struct Sample {
    std::string route;
    std::string method;
    int status = 0;
    std::uint64_t requests = 0;
  };
  /// Every counter, ordered by route, method and status.
  std::vector<Sample> samples() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> counts_;
};

/// Keeps what /metrics reads from whole tables (finished jobs per state, attempt durations)
/// for `max_age`, so that however often scrapers come (/metrics needs no token), each service
/// process reads those tables at most once per max_age. Thread-safe.
class WholeTableMetricsCache {
 public:
  explicit WholeTableMetricsCache(std::chrono::milliseconds max_age) : max_age_(max_age) {}

  /// The queue's metrics: the small tables read now, the whole-table figures from the cache
  /// or, when they are older than max_age, read now with the rest. While another scrape reads
  /// them, this one takes the previous figures rather than waiting for it.
  core::Result<core::QueueMetrics> read(core::JobQueue& queue);

 private:
  struct Figures {
    std::map<core::JobState, long long> finished_jobs;
    std::map<std::string, core::DurationHistogram> attempt_durations;
    std::chrono::steady_clock::time_point read_at;
  };

  const std::chrono::milliseconds max_age_;
  std::mutex refreshing_;  ///< held by the one scrape that reads the whole tables
  mutable std::mutex mutex_;
  std::optional<Figures> figures_;
};

/// Content type of renderMetrics()' document.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// The /metrics document: the HTTP counters, syncpod_database_up, and the metrics read from
/// the database when `queue` holds them (when it holds an error they are left out and
/// syncpod_database_up is 0). docs/operations.md#metrics lists them.
std::string renderMetrics(const HttpMetrics& http, const core::Result<core::QueueMetrics>& queue);

}  // namespace syncpod::service
