#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <tuple>

#include "command.hpp"
#include "scaling_settings.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/simulator/charts.hpp"
#include "syncpod/simulator/report.hpp"
#include "syncpod/simulator/simulation.hpp"
#include "syncpod/simulator/workload.hpp"

namespace syncpod::app {
namespace {

using simulator::SimTime;

/// A switch's value as a whole number in [min, max]; throws ConfigError naming the switch.
long long wholeNumber(const std::string& name, const std::string& text, long long min,
                      long long max) {
  long long value = 0;
  const auto* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, value);
  if (text.empty() || parsed.ec != std::errc() || parsed.ptr != end || value < min || value > max) {
    throw core::ConfigError("--" + name + ": expected a whole number from " + std::to_string(min) +
                            " to " + std::to_string(max) + ", not '" + text + "'");
  }
  return value;
}

double decimal(const std::string& name, const std::string& text, double min, double max) {
  double value = 0;
  const auto* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, value);
  if (text.empty() || parsed.ec != std::errc() || parsed.ptr != end ||
      !(value >= min && value <= max)) {
    throw core::ConfigError("--" + name + ": expected a number from " + std::to_string(min) +
                            " to " + std::to_string(max) + ", not '" + text + "'");
  }
  return value;
}

std::chrono::milliseconds duration(const std::string& name, const std::string& text,
                                   bool zero_allowed) {
  const auto value = core::parseDuration(text);
  if (!value || (value->count() == 0 && !zero_allowed)) {
    throw core::ConfigError("--" + name + ": invalid duration '" + text +
                            "': use e.g. 250ms, 30s, 5m, 2h");
  }
  return *value;
}

SimTime timeOfDay(const std::string& name, const std::string& text) {
  const auto value = simulator::parseTimeOfDay(text);
  if (!value)
    throw core::ConfigError("--" + name + ": expected a time such as 05:00, not '" + text + "'");
  return *value;
}

/// "08:00-18:00" as two times.
std::pair<SimTime, SimTime> window(const std::string& name, const std::string& text) {
  const auto dash = text.find('-');
  if (dash == std::string::npos) {
    throw core::ConfigError("--" + name + ": expected a window such as 08:00-18:00, not '" + text +
                            "'");
  }
  return {timeOfDay(name, text.substr(0, dash)), timeOfDay(name, text.substr(dash + 1))};
}

/// The longest time series a run keeps up to its horizon: each sample is a few dozen bytes in
/// memory and a line of the CSV.
/// The simulator's own cap on the time series.
const long long kMaxSamples = static_cast<long long>(simulator::SimulationOptions{}.max_samples);

/// `run.csv` → `run-seed.csv` when more than one policy writes.
std::string outputPath(const std::string& path, const std::string& policy, bool several) {
  if (!several) return path;
  const std::filesystem::path file(path);
  return (file.parent_path() / (file.stem().string() + "-" + policy + file.extension().string()))
      .string();
}

std::ofstream openOutput(const std::string& path) {
  std::ofstream out(path);
  if (!out) throw core::StartupError("cannot write " + path);
  return out;
}

std::string setting(std::chrono::milliseconds value) {
  const auto ms = value.count();
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

/// `syncpod simulate`: the singleton, KEDA and the workers on simulated time, with the real
/// scaling code.
class SimulateCommand final : public Command {
 public:
  std::string_view name() const override { return "simulate"; }
  std::string_view summary() const override {
    return "simulate autoscaling (singleton + KEDA + workers) on a job trace; no database";
  }
  std::string_view usage() const override {
    return "(--trace=FILE | --burst=N --daytime-jobs=N --night-jobs=N ...) [--policy=both] "
           "[--svg=FILE] ...";
  }
  std::string_view details() const override {
    return "Runs a day (or --days) of jobs through a discrete-event model of the system:\n"
           "the singleton computes desired_pod_count every scale_interval with the real\n"
           "formula (scaling_policy); KEDA's ScaledJob decision starts pods every\n"
           "keda_polling_interval between scaler_min_replicas and scaler_max_replicas; pods\n"
           "register after --pod-start and live as workers do (worker_capacity, active_period,\n"
           "terminating_grace). Prints queue waits, how long a burst took to start, peak\n"
           "workers and pod-hours; --csv and --svg write the time series. Jobs come from\n"
           "--trace (CSV: arrival_s,duration_s[,integration]) or from the generator: a cron\n"
           "burst of --burst jobs at --burst-at, --daytime-jobs in the --daytime window and\n"
           "--night-jobs outside it, with log-normal durations clamped to 5 s .. 6 h. With\n"
           "--policy=both the same jobs run under seed and queue-aware, and file names get\n"
           "-seed and -queue-aware before their extension. docs/autoscaling.md.\n"
           "Exit codes: 0 simulated, 64 usage error, 78 a bad setting, option or trace.\n";
  }
  std::vector<std::string> settingKeys() const override {
    return {"scale_interval",
            "keda_polling_interval",
            "worker_capacity",
            "active_period",
            "terminating_grace",
            "scaling_policy",
            "minimum_active_workers",
            "scaler_min_replicas",
            "scaler_max_replicas",
            "scaler_target_query_value",
            "scaler_activation_target_query_value"};
  }
  std::vector<CommandSwitch> switches() const override {
    return {
        {"trace", "jobs from this CSV: arrival_s,duration_s[,integration] with that header",
         "file"},
        {"burst", "generate a cron burst of this many jobs, one per integration (default 0)", "n"},
        {"burst-at",
         "time of day of the burst, 00:00 to 23:59 (default 05:00); with --trace, jobs arriving in "
         "that minute are the burst",
         "hh:mm"},
        {"daytime-jobs",
         "generate this many jobs a day, Poisson arrivals in the daytime window (default 0)", "n"},
        {"daytime", "the daytime window (default 08:00-18:00)", "hh:mm-hh:mm"},
        {"night-jobs",
         "generate this many jobs a day, Poisson arrivals outside the daytime window (default 0)",
         "n"},
        {"integrations", "daytime and night jobs pick one of this many integrations (default 1000)",
         "n"},
        {"duration-median", "median job duration (default 10m)", "duration"},
        {"duration-sigma", "sigma of the log-normal durations (default 1.0)", "x"},
        {"days", "days to generate and simulate (default 1)", "n"},
        {"seed", "random seed of the generator (default 1)", "n"},
        {"pod-start", "from KEDA creating a worker's Job to the worker running (default 20s)",
         "duration"},
        {"policy", "seed, queue-aware or both (default: scaling_policy)", "policy"},
        {"csv", "write the time series to this CSV file", "file"},
        {"svg", "write a chart of workers and queue to this SVG file", "file"},
        {"chart-window", "draw only this part of the run, e.g. 04:30-09:00 (default: all of it)",
         "hh:mm-hh:mm"},
        {"sample",
         "time-series resolution (default 60s, raised for runs that would keep more than " +
             std::to_string(kMaxSamples) + " samples)",
         "duration"},
        {"write-trace", "write the jobs simulated as a trace to this file", "file"},
    };
  }
  void enableSwitch(const std::string& name, const std::string& value) override {
    switches_[name] = value;
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    if (!args.empty()) {
      std::cerr << "syncpod simulate: takes no arguments; see `syncpod simulate --help`\n";
      return 64;
    }
    const auto workload = loadWorkload();
    if (workload.jobs.empty()) {
      std::cerr << "syncpod simulate: nothing to simulate: give --trace=FILE, or --burst, "
                   "--daytime-jobs or --night-jobs; see `syncpod simulate --help`\n";
      return 64;
    }
    auto options = simulationOptions(settings);
    const auto sample_note = fitSampleInterval(options, workload);
    std::vector<core::ScalingPolicy> policies = {options.scaling.policy};
    if (const auto policy = given("policy")) {
      if (*policy == "both") {
        policies = {core::ScalingPolicy::Seed, core::ScalingPolicy::QueueAware};
      } else if (const auto one = core::parseScalingPolicy(*policy)) {
        policies = {*one};
      } else {
        throw core::ConfigError("--policy: expected seed, queue-aware or both, not '" + *policy +
                                "'");
      }
    }
    std::optional<std::pair<SimTime, SimTime>> chart_window;
    if (const auto text = given("chart-window")) chart_window = window("chart-window", *text);
    if (const auto path = given("write-trace")) {
      auto out = openOutput(*path);
      simulator::writeTrace(out, workload);
    }

    const auto& job = options.scaled_job;
    const std::string scaling =
        "scale_interval " + setting(options.scale_interval) + ", keda_polling_interval " +
        setting(job.polling_interval) + ", replicas " + std::to_string(job.min_replicas) + ".." +
        std::to_string(job.max_replicas) + ", pod start " + setting(options.pod_start);
    const std::string workers =
        "worker_capacity " + std::to_string(options.scaling.worker_capacity) +
        ", minimum_active_workers " + std::to_string(options.scaling.minimum_active_workers) +
        ", active_period " + setting(options.active_period) + ", terminating_grace " +
        setting(options.terminating_grace);
    std::cout << "jobs:     " << workload.description << "\nsettings: " << scaling << "\n          "
              << workers << "\n";
    if (const auto problem = terminatingGraceTooShort(settings)) {
      std::cout << "note:     " << *problem << "; serve refuses this, simulated anyway\n";
    }
    if (sample_note) std::cout << "note:     " << *sample_note << '\n';
    std::cout << '\n';

    std::vector<simulator::Summary> summaries;
    std::vector<std::string> written;
    std::vector<std::string> thinned;
    for (const auto policy : policies) {
      auto run_options = options;
      run_options.scaling.policy = policy;
      const auto started = std::chrono::steady_clock::now();
      const auto result = simulator::simulate(workload, run_options);
      auto summary = simulator::summarize(workload, result);
      summary.wall_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      summaries.push_back(summary);

      const std::string policy_name(core::toString(policy));
      const bool several = policies.size() > 1;
      if (result.sample_interval != run_options.sample_interval) {
        thinned.push_back("policy " + policy_name + " ran on to " +
                          simulator::formatSeconds(std::chrono::duration<double>(result.end).count()) +
                          ", past the horizon: its time series has one sample every " +
                          setting(result.sample_interval) + ", so that it keeps at most " +
                          std::to_string(kMaxSamples) + " samples");
      }
      if (const auto path = given("csv")) {
        const auto file = outputPath(*path, policy_name, several);
        auto out = openOutput(file);
        simulator::writeTimeSeriesCsv(out, result);
        written.push_back(file);
      }
      if (const auto path = given("svg")) {
        simulator::ChartOptions chart;
        chart.title = "syncpod simulate: policy " + policy_name;
        chart.subtitle = workload.description + "\n" + scaling + "\n" + workers;
        if (chart_window) {
          chart.from = chart_window->first;
          chart.to = chart_window->second;
        }
        const auto file = outputPath(*path, policy_name, several);
        auto out = openOutput(file);
        simulator::writeSvgChart(out, result, chart);
        written.push_back(file);
      }
    }
    simulator::printSummaries(std::cout, summaries);
    for (const auto& note : thinned) std::cout << "note:     " << note << '\n';
    for (const auto& file : written) std::cout << "wrote " << file << '\n';
    return 0;
  }

 private:
  std::optional<std::string> given(const std::string& name) const {
    const auto found = switches_.find(name);
    if (found == switches_.end()) return std::nullopt;
    return found->second;
  }

  /// --burst-at, a time of day whether the burst is generated or found in a trace.
  std::optional<SimTime> burstAt() const {
    const auto text = given("burst-at");
    if (!text) return std::nullopt;
    const auto time = timeOfDay("burst-at", *text);
    if (time >= std::chrono::hours(24)) {
      throw core::ConfigError("--burst-at: expected a time of day from 00:00 to 23:59, not '" +
                              *text + "'");
    }
    return time;
  }

  simulator::Workload loadWorkload() const {
    const auto burst_at = burstAt();
    if (const auto trace = given("trace")) {
      for (const char* generator : {"burst", "daytime-jobs", "night-jobs", "daytime",
                                    "integrations", "duration-median", "duration-sigma", "seed"}) {
        if (given(generator)) {
          throw core::ConfigError(std::string("--") + generator +
                                  " generates jobs; with --trace the jobs are the trace's");
        }
      }
      return simulator::readTrace(*trace, burst_at);
    }
    simulator::GeneratorOptions generator;
    if (burst_at) generator.burst_at = *burst_at;
    if (const auto text = given("burst"))
      generator.burst_jobs = static_cast<int>(wholeNumber("burst", *text, 0, 1000000));
    if (const auto text = given("daytime-jobs")) {
      generator.daytime_jobs = static_cast<int>(wholeNumber("daytime-jobs", *text, 0, 10000000));
    }
    if (const auto text = given("night-jobs")) {
      generator.night_jobs = static_cast<int>(wholeNumber("night-jobs", *text, 0, 10000000));
    }
    if (const auto text = given("daytime")) {
      std::tie(generator.daytime_from, generator.daytime_to) = window("daytime", *text);
    }
    if (const auto text = given("integrations")) {
      generator.integrations = static_cast<int>(wholeNumber("integrations", *text, 1, 100000000));
    }
    if (const auto text = given("duration-median")) {
      generator.duration_median = duration("duration-median", *text, false);
    }
    if (const auto text = given("duration-sigma"))
      generator.duration_sigma = decimal("duration-sigma", *text, 0, 10);
    if (const auto text = given("days"))
      generator.days = static_cast<int>(wholeNumber("days", *text, 1, 366));
    if (const auto text = given("seed")) {
      generator.seed =
          static_cast<std::uint64_t>(wholeNumber("seed", *text, 0, 9007199254740991LL));
    }
    return simulator::generateWorkload(generator);
  }

  simulator::SimulationOptions simulationOptions(const core::Settings& settings) const {
    if (settings.get("scaling_policy") == "both") {
      throw core::ConfigError("scaling_policy 'both' (from " + settings.sourceOf("scaling_policy") +
                              ") is not a policy: use --policy=both to run seed and queue-aware");
    }
    simulator::SimulationOptions options;
    options.scaling = scalingSettings(settings);
    options.scaled_job = scaledJobSettings(settings);
    options.scale_interval = settings.duration("scale_interval");
    options.active_period = settings.duration("active_period");
    options.terminating_grace = settings.duration("terminating_grace");
    if (const auto text = given("pod-start"))
      options.pod_start = duration("pod-start", *text, true);
    if (const auto text = given("sample"))
      options.sample_interval = duration("sample", *text, false);
    int days = 1;
    if (const auto text = given("days"))
      days = static_cast<int>(wholeNumber("days", *text, 1, 366));
    options.horizon = std::chrono::hours(24) * days;
    return options;
  }

  /// Keeps the time series within kMaxSamples up to the horizon: refuses a --sample below that,
  /// and raises the default to whole seconds instead, returning a note that says so.
  std::optional<std::string> fitSampleInterval(simulator::SimulationOptions& options,
                                               const simulator::Workload& workload) const {
    const auto horizon = simulator::horizonOf(workload, options);
    const auto least = std::chrono::milliseconds((horizon.count() + kMaxSamples - 1) / kMaxSamples);
    if (options.sample_interval >= least) return std::nullopt;
    const auto span = simulator::formatSeconds(std::chrono::duration<double>(horizon).count());
    if (const auto text = given("sample")) {
      throw core::ConfigError("--sample: " + *text + " over the " + span +
                              " simulated would keep more than " + std::to_string(kMaxSamples) +
                              " samples; give --sample=" + setting(least) + " or more");
    }
    const auto raised = std::chrono::ceil<std::chrono::seconds>(least);
    const auto note = "sampling every " + setting(raised) + " rather than the default " +
                      setting(options.sample_interval) + ", so that the " + span +
                      " simulated keep at most " + std::to_string(kMaxSamples) + " samples";
    options.sample_interval = raised;
    return note;
  }

  std::map<std::string, std::string> switches_;
};

}  // namespace

CommandPtr makeSimulateCommand() {
  return std::make_unique<SimulateCommand>();
}

}  // namespace syncpod::app
