#include "syncpod/simulator/workload.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <istream>
#include <numbers>
#include <ostream>
#include <random>
#include <sstream>

namespace syncpod::simulator {
namespace {

constexpr SimTime kDay = std::chrono::hours(24);

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (true) {
    const auto comma = line.find(',');
    fields.push_back(trim(line.substr(0, comma)));
    if (comma == std::string_view::npos) return fields;
    line.remove_prefix(comma + 1);
  }
}

bool isBurst(SimTime arrival, std::optional<SimTime> burst_at) {
  if (!burst_at) return false;
  const auto of_day = arrival % kDay;
  return of_day >= *burst_at && of_day < *burst_at + std::chrono::minutes(1);
}

/// Random numbers from the raw 64-bit stream, so a seed gives the same workload with any
/// standard library (the std distributions are implementation-defined).
class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}

  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform in [0, n).
  std::int64_t below(std::int64_t n) {
    return std::min(static_cast<std::int64_t>(uniform() * static_cast<double>(n)), n - 1);
  }
  /// Standard normal (Box-Muller; the second value is dropped to keep the stream simple).
  double normal() {
    const double u = 1.0 - uniform();  // (0, 1]: log(u) is finite
    const double v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
  }

 private:
  std::mt19937_64 engine_;
};

std::string formatDurationSetting(SimTime time) {
  const auto ms = time.count();
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace

std::optional<SimTime> parseTimeOfDay(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || text.size() - colon != 3)
    return std::nullopt;
  int hours = 0;
  int minutes = 0;
  const auto* hours_end = text.data() + colon;
  if (std::from_chars(text.data(), hours_end, hours).ptr != hours_end || hours < 0 ||
      hours > 9999) {
    return std::nullopt;
  }
  const auto* minutes_end = text.data() + text.size();
  if (std::from_chars(hours_end + 1, minutes_end, minutes).ptr != minutes_end || minutes < 0 ||
      minutes > 59) {
    return std::nullopt;
  }
  return std::chrono::hours(hours) + std::chrono::minutes(minutes);
}

std::string formatTimeOfDay(SimTime time) {
  const auto total = std::chrono::duration_cast<std::chrono::seconds>(time).count();
  const auto days = total / 86400;
  const auto of_day = total % 86400;
  char text[32];
  std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld", static_cast<long long>(of_day / 3600),
                static_cast<long long>(of_day / 60 % 60), static_cast<long long>(of_day % 60));
  return days > 0 ? std::to_string(days) + "d " + text : std::string(text);
}

Workload parseTrace(std::istream& in, const std::string& name, std::optional<SimTime> burst_at) {
  Workload workload;
  std::string line;
  int line_number = 0;
  bool have_header = false;
  bool with_integration = false;
  std::int64_t next_own_integration = 1;
  const auto fail = [&](const std::string& what) {
    throw TraceError(name + ":" + std::to_string(line_number) + ": " + what);
  };
  const auto number = [&](std::string_view field, const char* column) {
    double value = 0;
    const auto* end = field.data() + field.size();
    const auto parsed = std::from_chars(field.data(), end, value);
    if (field.empty() || parsed.ec != std::errc() || parsed.ptr != end || !std::isfinite(value)) {
      fail(std::string(column) + " '" + std::string(field.substr(0, 40)) + "' is not a number");
    }
    return value;
  };
  while (std::getline(in, line)) {
    ++line_number;
    // Spreadsheets save CSV as UTF-8 with a byte order mark, which would otherwise show as an
    // invisible character in front of the header.
    constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
    if (line_number == 1 && line.starts_with(kByteOrderMark)) line.erase(0, kByteOrderMark.size());
    const auto text = trim(line);
    if (text.empty() || text.front() == '#') continue;
    const auto fields = splitFields(text);
    if (!have_header) {
      const bool two = fields.size() == 2 && fields[0] == "arrival_s" && fields[1] == "duration_s";
      const bool three = fields.size() == 3 && fields[0] == "arrival_s" &&
                         fields[1] == "duration_s" && fields[2] == "integration";
      if (!two && !three) {
        fail("expected the header 'arrival_s,duration_s' or "
             "'arrival_s,duration_s,integration', not '" + std::string(text.substr(0, 80)) + "'");
      }
      have_header = true;
      with_integration = three;
      continue;
    }
    const std::size_t expected = with_integration ? 3 : 2;
    if (fields.size() != expected) {
      fail("expected " + std::to_string(expected) + " fields as in the header, found " +
           std::to_string(fields.size()));
    }
    const double arrival = number(fields[0], "arrival_s");
    const double duration = number(fields[1], "duration_s");
    if (arrival < 0) fail("arrival_s must not be negative");
    if (arrival > 1e9) fail("arrival_s is beyond 31 years");
    if (duration * 1000 < 1) fail("duration_s must be at least 0.001");
    if (duration > 1e8) fail("duration_s is beyond 3 years");
    SimJob job;
    job.arrival = SimTime(std::llround(arrival * 1000));
    job.duration = SimTime(std::llround(duration * 1000));
    if (with_integration) {
      const auto field = fields[2];
      const auto* end = field.data() + field.size();
      const auto parsed = std::from_chars(field.data(), end, job.integration);
      if (field.empty() || parsed.ec != std::errc() || parsed.ptr != end || job.integration < 1) {
        fail("integration '" + std::string(field.substr(0, 40)) + "' is not a positive integer");
      }
    } else {
      job.integration = next_own_integration++;
    }
    job.burst = isBurst(job.arrival, burst_at);
    workload.jobs.push_back(job);
  }
  if (!have_header) {
    line_number = std::max(line_number, 1);
    fail("empty trace: expected the header 'arrival_s,duration_s[,integration]'");
  }
  if (workload.jobs.empty()) throw TraceError("the trace " + name + " has no jobs");
  std::stable_sort(workload.jobs.begin(), workload.jobs.end(),
                   [](const SimJob& a, const SimJob& b) { return a.arrival < b.arrival; });
  workload.description = name + " (" + std::to_string(workload.jobs.size()) + " jobs)";
  return workload;
}

Workload readTrace(const std::string& path, std::optional<SimTime> burst_at) {
  std::ifstream in(path);
  if (!in) throw TraceError("cannot open the trace " + path);
  return parseTrace(in, path, burst_at);
}

void writeTrace(std::ostream& out, const Workload& workload) {
  const auto seconds = [](SimTime time) {
    const auto ms = time.count();
    auto text = std::to_string(ms / 1000);
    if (ms % 1000 != 0) text += "." + std::to_string(1000 + ms % 1000).substr(1);
    return text;
  };
  out << "# " << workload.description << "\narrival_s,duration_s,integration\n";
  for (const auto& job : workload.jobs) {
    out << seconds(job.arrival) << ',' << seconds(job.duration) << ',' << job.integration << '\n';
  }
}

Workload generateWorkload(const GeneratorOptions& options) {
  const auto refuse = [](const std::string& what) { throw core::ConfigError(what); };
  if (options.days < 1 || options.days > 366) refuse("days must be from 1 to 366");
  if (options.burst_jobs < 0 || options.daytime_jobs < 0 || options.night_jobs < 0) {
    refuse("job counts must not be negative");
  }
  if (options.burst_at < SimTime(0) || options.burst_at >= kDay)
    refuse("the burst must be within the day (00:00 to 23:59)");
  if (options.daytime_from < SimTime(0) || options.daytime_to > kDay ||
      options.daytime_from >= options.daytime_to) {
    refuse("the daytime window must be a non-empty span within the day, e.g. 08:00-18:00");
  }
  if (options.night_jobs > 0 && options.daytime_to - options.daytime_from >= kDay) {
    refuse("night jobs need a night: the daytime window takes the whole day");
  }
  if (options.integrations < 1) refuse("integrations must be at least 1");
  if (options.duration_median <= SimTime(0) || options.duration_min <= SimTime(0) ||
      options.duration_min > options.duration_max) {
    refuse("durations must be positive, with the minimum not above the maximum");
  }
  if (!(options.duration_sigma >= 0) || options.duration_sigma > 10) {
    refuse("duration sigma must be from 0 to 10");
  }

  Random random(options.seed);
  const double log_median = std::log(static_cast<double>(options.duration_median.count()));
  const auto duration = [&] {
    const double ms = std::exp(log_median + options.duration_sigma * random.normal());
    const auto rounded = SimTime(static_cast<std::int64_t>(
        std::llround(std::min(ms, static_cast<double>(options.duration_max.count())))));
    return std::clamp(rounded, options.duration_min, options.duration_max);
  };
  const auto daytime = options.daytime_to - options.daytime_from;
  const auto night = kDay - daytime;

  Workload workload;
  for (int day = 0; day < options.days; ++day) {
    const SimTime midnight = kDay * day;
    // The cron wave: one job per integration, all enqueued by the same singleton tick.
    for (int i = 0; i < options.burst_jobs; ++i) {
      workload.jobs.push_back({midnight + options.burst_at, duration(), i + 1, true});
    }
    for (int i = 0; i < options.daytime_jobs; ++i) {
      SimJob job;
      job.arrival = midnight + options.daytime_from + SimTime(random.below(daytime.count()));
      job.integration = 1 + random.below(options.integrations);
      job.duration = duration();
      workload.jobs.push_back(job);
    }
    for (int i = 0; i < options.night_jobs; ++i) {
      SimJob job;
      auto offset = SimTime(random.below(night.count()));
      if (offset >= options.daytime_from) offset += daytime;  // skip over the day
      job.arrival = midnight + offset;
      job.integration = 1 + random.below(options.integrations);
      job.duration = duration();
      workload.jobs.push_back(job);
    }
  }
  std::stable_sort(workload.jobs.begin(), workload.jobs.end(),
                   [](const SimJob& a, const SimJob& b) { return a.arrival < b.arrival; });

  std::ostringstream description;
  const auto clock = [](SimTime time) { return formatTimeOfDay(time).substr(0, 5); };
  std::string parts;
  const auto add = [&](const std::string& part) { parts += (parts.empty() ? "" : ", ") + part; };
  if (options.burst_jobs > 0)
    add(std::to_string(options.burst_jobs) + " jobs at " + clock(options.burst_at));
  if (options.daytime_jobs > 0) {
    add(std::to_string(options.daytime_jobs) + " daytime jobs " + clock(options.daytime_from) +
        "-" + (options.daytime_to == kDay ? std::string("24:00") : clock(options.daytime_to)));
  }
  if (options.night_jobs > 0) add(std::to_string(options.night_jobs) + " night jobs");
  if (parts.empty()) parts = "no jobs";
  description << parts
              << (options.days > 1 ? " a day for " + std::to_string(options.days) + " days" : "")
              << "; durations log-normal, median " << formatDurationSetting(options.duration_median)
              << ", sigma " << options.duration_sigma << "; seed " << options.seed;
  workload.description = description.str();
  return workload;
}

}  // namespace syncpod::simulator
