// GET /metrics: in-process HTTP counters and what the database says, as Prometheus text.

#include "metrics.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend.hpp"
#include "handlers.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

constexpr std::array<std::string_view, 7> kMethods = {"GET",    "HEAD",  "POST",   "PUT",
                                                      "DELETE", "PATCH", "OPTIONS"};

/// A label value with the three characters the format escapes escaped.
std::string escaped(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

/// The shortest text that reads back as the same double; "+Inf" for infinity.
std::string number(double value) {
  if (value == std::numeric_limits<double>::infinity()) return "+Inf";
  std::array<char, 32> text{};
  const auto [end, error] = std::to_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() ? std::string(text.data(), end) : "NaN";
}

using Labels = std::vector<std::pair<std::string_view, std::string>>;

/// Writes metric families: each one's HELP and TYPE, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(std::string_view name, const Labels& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += escaped(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  void sample(std::string_view name, const Labels& labels, long long value) {
    sample(name, labels, std::to_string(value));
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void renderQueue(Exposition& out, const core::QueueMetrics& queue) {
  out.family("syncpod_jobs", "gauge",
             "Jobs in the database by state; finished ones until cleanup deletes them after the "
             "retention.");
  for (const auto& [state, count] : queue.jobs) {
    out.sample("syncpod_jobs", {{"state", std::string(core::toString(state))}}, count);
  }

  out.family(
      "syncpod_queue_oldest_due_job_age_seconds", "gauge",
      "Seconds the longest-waiting queued job that could start now (due, its integration not "
      "running another job) has waited since it became due; 0 when there is none.");
  out.sample("syncpod_queue_oldest_due_job_age_seconds", {},
             number(queue.oldest_due_job_age_seconds));

  out.family("syncpod_workers", "gauge",
             "Worker lifecycle rows by state; TERMINATED ones until cleanup deletes them after the "
             "retention.");
  for (const auto& [state, count] : queue.workers) {
    out.sample("syncpod_workers", {{"state", std::string(core::toString(state))}}, count);
  }

  out.family("syncpod_desired_pod_count", "gauge",
             "The worker pod count KEDA reads (desired_pod_count.count), as the singleton last "
             "computed it.");
  out.sample("syncpod_desired_pod_count", {}, queue.scaling.count);
  out.family(
      "syncpod_desired_pod_count_computed_timestamp_seconds", "gauge",
      "When the singleton last computed desired_pod_count, in seconds since the Unix epoch.");
  const std::chrono::duration<double> computed = queue.scaling.computed_at.time_since_epoch();
  out.sample("syncpod_desired_pod_count_computed_timestamp_seconds", {}, number(computed.count()));

  constexpr std::string_view kDuration = "syncpod_job_attempt_duration_seconds";
  out.family(
      kDuration, "histogram",
      "Durations of the finished job attempts the database holds (those of jobs not yet deleted "
      "by cleanup), by outcome; a snapshot that drops when cleanup deletes old jobs, not a "
      "counter.");
  const auto& bounds = core::attemptDurationBounds();
  for (const auto& [outcome, histogram] : queue.attempt_durations) {
    for (std::size_t i = 0; i < bounds.size() && i < histogram.cumulative.size(); ++i) {
      out.sample(std::string(kDuration) + "_bucket",
                 {{"outcome", outcome}, {"le", number(bounds[i])}}, histogram.cumulative[i]);
    }
    out.sample(std::string(kDuration) + "_bucket",
               {{"outcome", outcome}, {"le", number(std::numeric_limits<double>::infinity())}},
               histogram.count);
    out.sample(std::string(kDuration) + "_sum", {{"outcome", outcome}},
               number(histogram.sum_seconds));
    out.sample(std::string(kDuration) + "_count", {{"outcome", outcome}}, histogram.count);
  }
}

}  // namespace

void HttpMetrics::count(std::string_view route, std::string_view method, int status) {
  std::string_view known = "other";
  for (const auto candidate : kMethods) {
    if (candidate == method) known = candidate;
  }
  std::lock_guard lock(mutex_);
  ++counts_[{std::string(route), std::string(known), status}];
}

std::vector<HttpMetrics::Sample> HttpMetrics::samples() const {
  std::vector<Sample> samples;
  std::lock_guard lock(mutex_);
  samples.reserve(counts_.size());
  for (const auto& [key, requests] : counts_) {
    samples.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), requests});
  }
  return samples;
}

std::string renderMetrics(const HttpMetrics& http, const core::Result<core::QueueMetrics>& queue) {
  Exposition out;
  out.family("syncpod_http_requests_total", "counter",
             "HTTP requests this service process answered, by route pattern, method and status.");
  for (const auto& sample : http.samples()) {
    out.sample("syncpod_http_requests_total",
               {{"route", sample.route},
                {"method", sample.method},
                {"status", std::to_string(sample.status)}},
               std::to_string(sample.requests));
  }
  out.family("syncpod_database_up", "gauge",
             "1 when this scrape read the database; 0 when it could not, and the metrics from the "
             "database are left out.");
  out.sample("syncpod_database_up", {}, queue ? 1 : 0);
  if (queue) renderQueue(out, *queue);
  return out.take();
}

core::Result<core::QueueMetrics> WholeTableMetricsCache::read(core::JobQueue& queue) {
  const auto figures_state = [&] {
    std::lock_guard lock(mutex_);
    const bool have = figures_.has_value();
    return std::pair{have, have && std::chrono::steady_clock::now() - figures_->read_at < max_age_};
  };
  // Old figures are read again by one scrape at a time; the others meanwhile show the old
  // ones, and wait for that scrape only when there are none at all yet.
  std::unique_lock refreshing(refreshing_, std::try_to_lock);
  if (!refreshing.owns_lock() && !figures_state().first) refreshing.lock();
  const bool read_whole_tables = refreshing.owns_lock() && !figures_state().second;
  if (!read_whole_tables && refreshing.owns_lock()) refreshing.unlock();
  auto metrics = queue.metrics(read_whole_tables);
  if (!metrics) return metrics;
  std::lock_guard lock(mutex_);
  if (read_whole_tables) {
    Figures figures;
    for (const auto& [state, count] : metrics->jobs) {
      if (state != core::JobState::Queued && state != core::JobState::Running) {
        figures.finished_jobs[state] = count;
      }
    }
    figures.attempt_durations = metrics->attempt_durations;
    figures.read_at = std::chrono::steady_clock::now();
    figures_ = std::move(figures);
  } else if (figures_) {
    for (const auto& [state, count] : figures_->finished_jobs) metrics->jobs[state] = count;
    metrics->attempt_durations = figures_->attempt_durations;
  }
  return metrics;
}

void addMetricsRoute(Router& router, const RouteContext& context) {
  const auto& http = context.http;
  // No token: scrapers get one. Query parameters are ignored, since scrape configs may add
  // some. A database that cannot be read still gets an answer, with the HTTP counters and
  // syncpod_database_up 0, so that the outage shows in Prometheus instead of a failed scrape.
  auto cache = std::make_shared<WholeTableMetricsCache>(context.options.metrics_scan_interval);
  router.add("GET", "/metrics", std::nullopt, [&http, cache](ApiRequest&, Backend& backend) {
    auto queue = cache->read(backend.queue());
    if (!queue) spdlog::warn("/metrics: cannot read the database: {}", queue.error().message);
    ApiResponse response;
    response.headers["Content-Type"] = kMetricsContentType;
    response.text = renderMetrics(http, queue);
    return response;
  });
}

}  // namespace syncpod::service
