#include "syncpod/core/settings.hpp"

#include <cstdlib>
#include <filesystem>

#include <Poco/AutoPtr.h>
#include <Poco/Exception.h>
#include <Poco/Util/AbstractConfiguration.h>
#include <Poco/Util/IniFileConfiguration.h>
#include <Poco/Util/JSONConfiguration.h>
#include <Poco/Util/PropertyFileConfiguration.h>

#include "syncpod/core/errors.hpp"

extern char** environ;

namespace syncpod::core {
namespace {

const SettingSpec* findSpec(std::string_view key) {
  for (const auto& spec : settingSpecs()) {
    if (spec.key == key) return &spec;
  }
  return nullptr;
}

std::string flagName(const std::string& key) {
  std::string flag = "--" + key;
  for (char& c : flag) {
    if (c == '_') c = '-';
  }
  return flag;
}

/// Flattens a Poco configuration into dotted keys.
void collectKeys(const Poco::Util::AbstractConfiguration& config, const std::string& prefix,
                 std::map<std::string, std::string>& out) {
  Poco::Util::AbstractConfiguration::Keys keys;
  config.keys(prefix, keys);
  if (keys.empty() && !prefix.empty()) {
    out[prefix] = config.getString(prefix);
    return;
  }
  for (const auto& key : keys) collectKeys(config, prefix.empty() ? key : prefix + "." + key, out);
}

std::map<std::string, std::string> readConfigFile(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw ConfigError("config file " + path + " does not exist or is not a file");
  }
  const auto extension = std::filesystem::path(path).extension().string();
  Poco::AutoPtr<Poco::Util::AbstractConfiguration> config;
  try {
    if (extension == ".json") {
      config = new Poco::Util::JSONConfiguration(path);
    } else if (extension == ".ini") {
      config = new Poco::Util::IniFileConfiguration(path);
    } else if (extension == ".properties" || extension == ".conf") {
      config = new Poco::Util::PropertyFileConfiguration(path);
    } else {
      throw ConfigError("config file " + path +
                        ": unknown format; use .properties, .conf, .ini or .json");
    }
  } catch (const Poco::Exception& error) {
    throw ConfigError("config file " + path + " cannot be read: " + error.displayText());
  }
  std::map<std::string, std::string> values;
  collectKeys(*config, "", values);
  return values;
}

}  // namespace

const std::vector<SettingSpec>& settingSpecs() {
  static const std::vector<SettingSpec> kSpecs = {
      {"database_url", "SYNCPOD_DATABASE_URL", "",
       "PostgreSQL URL, e.g. postgresql://user@host:5432/db", true},
      {"schema", "SYNCPOD_SCHEMA", "syncpod", "schema holding this installation's tables", false},
      {"log_format", "SYNCPOD_LOG_FORMAT", "text", "text or json (one object per line)", false},
      {"log_level", "SYNCPOD_LOG_LEVEL", "info", "trace, debug, info, warn, error or off", false},
      {"role", "SYNCPOD_ROLE", "all", "serve: service, singleton, worker or all", false},
      {"rescue_interval", "SYNCPOD_RESCUE_INTERVAL", "10s",
       "serve: how often orphaned jobs and pending webhook events are looked for", false},
      {"rescue_lease", "SYNCPOD_RESCUE_LEASE", "30s",
       "a running job whose worker is silent this long is rescued", false},
      {"worker_capacity", "SYNCPOD_WORKER_CAPACITY", "1",
       "jobs one worker runs at once (the field design's WORKER_CAPACITY)", false},
      {"isolation", "SYNCPOD_ISOLATION", "process",
       "worker: where jobs run: process (a child process each; a crash fails only that job) "
       "or thread",
       false},
      {"active_period", "SYNCPOD_ACTIVE_PERIOD", "30m",
       "worker: how long it claims jobs before it retires", false},
      {"heartbeat_interval", "SYNCPOD_HEARTBEAT_INTERVAL", "5s",
       "worker: how often it reports itself alive and picks up cancellations", false},
      {"poll_interval", "SYNCPOD_POLL_INTERVAL", "1s",
       "worker: how often an idle worker looks for due jobs without a notification", false},
      {"terminating_grace", "SYNCPOD_TERMINATING_GRACE", "25s",
       "worker: time spent TERMINATING before exit; at least scale_interval + "
       "keda_polling_interval",
       false},
      {"drain_deadline", "SYNCPOD_DRAIN_DEADLINE", "60s",
       "worker: after SIGTERM, how long running jobs may go on before they are handed back",
       false},
      {"stop_grace", "SYNCPOD_STOP_GRACE", "10s",
       "worker: how long a job asked to stop may take before its process is killed", false},
      {"job_memory_limit", "SYNCPOD_JOB_MEMORY_LIMIT", "",
       "worker, process isolation: address-space limit of each job's process, e.g. 2GiB "
       "(default: none)",
       false},
      {"job_event_log_lines", "SYNCPOD_JOB_EVENT_LOG_LINES", "1000",
       "worker: log lines stored per job attempt as job events (0-100000); later ones are "
       "only counted",
       false},
      {"scale_interval", "SYNCPOD_SCALE_INTERVAL", "5s",
       "singleton: how often desired_pod_count is computed", false},
      {"keda_polling_interval", "SYNCPOD_KEDA_POLLING_INTERVAL", "15s",
       "the pollingInterval of the KEDA ScaledJob that starts workers", false},
      {"scaler_min_replicas", "SYNCPOD_SCALER_MIN_REPLICAS", "0",
       "scaler: minReplicaCount, workers kept started whatever the query says", false},
      {"scaler_max_replicas", "SYNCPOD_SCALER_MAX_REPLICAS", "10",
       "scaler: maxReplicaCount, the most workers started at once", false},
      {"scaler_target_query_value", "SYNCPOD_SCALER_TARGET_QUERY_VALUE", "1",
       "scaler: targetQueryValue, the query's value one worker stands for", false},
      {"scaler_activation_target_query_value", "SYNCPOD_SCALER_ACTIVATION_TARGET_QUERY_VALUE", "0",
       "scaler: activationTargetQueryValue; at or below it only minReplicaCount runs", false},
      {"scaler_active_deadline", "SYNCPOD_SCALER_ACTIVE_DEADLINE", "",
       "scaler: activeDeadlineSeconds; a worker running longer is stopped and counts as failed "
       "(default: none)",
       false},
      {"scaler_termination_grace", "SYNCPOD_SCALER_TERMINATION_GRACE", "120s",
       "scaler: terminationGracePeriodSeconds, from SIGTERM to SIGKILL when it stops a worker",
       false},
      {"scaler_successful_history", "SYNCPOD_SCALER_SUCCESSFUL_HISTORY", "5",
       "scaler: successfulJobsHistoryLimit, ended workers kept in its history", false},
      {"scaler_failed_history", "SYNCPOD_SCALER_FAILED_HISTORY", "5",
       "scaler: failedJobsHistoryLimit", false},
      {"scaler_query", "SYNCPOD_SCALER_QUERY", "",
       "scaler: the trigger's query (default: SELECT count FROM <schema>.desired_pod_count)",
       false},
      {"http_host", "SYNCPOD_HTTP_HOST", "0.0.0.0", "service: address the REST API listens on",
       false},
      {"http_port", "SYNCPOD_HTTP_PORT", "8080", "service: port the REST API listens on (0: any)",
       false},
      {"http_threads", "SYNCPOD_HTTP_THREADS", "8",
       "service: request threads, and database connections", false},
      {"http_max_body", "SYNCPOD_HTTP_MAX_BODY", "1MiB", "service: largest request body accepted",
       false},
      {"http_max_json_depth", "SYNCPOD_HTTP_MAX_JSON_DEPTH", "32",
       "service: deepest JSON nesting accepted in a request body", false},
      {"http_read_timeout", "SYNCPOD_HTTP_READ_TIMEOUT", "10s",
       "service: how long a client may take to send a request", false},
      {"metrics_scan_interval", "SYNCPOD_METRICS_SCAN_INTERVAL", "30s",
       "service: how often /metrics may read the whole jobs and job_attempts tables (finished "
       "jobs, attempt durations); in between it shows the last figures",
       false},
      {"webhook_tolerance", "SYNCPOD_WEBHOOK_TOLERANCE", "5m",
       "service: how far a webhook's signed timestamp may be from the service's clock", false},
      {"webhook_max_body", "SYNCPOD_WEBHOOK_MAX_BODY", "256KiB",
       "service: largest webhook body accepted (at most http_max_body)", false},
      {"url", "SYNCPOD_API_URL", "http://127.0.0.1:8080",
       "jobs, sync: the REST API of the syncpod service", false},
      {"token", "SYNCPOD_API_TOKEN", "",
       "jobs, sync: the API token (prefer the environment: flags show in ps)", true},
      {"scaling_policy", "SYNCPOD_SCALING_POLICY", "seed",
       "singleton: how desired_pod_count is computed: seed or queue-aware", false},
      {"minimum_active_workers", "SYNCPOD_MINIMUM_ACTIVE_WORKERS", "2",
       "singleton: desired_pod_count never asks for fewer active workers (0-10000)", false},
      {"leader_lease_ttl", "SYNCPOD_LEADER_LEASE_TTL", "15s",
       "singleton: how long the leader's lease lasts without renewal; a standby takes over "
       "after it",
       false},
      {"leader_renew_interval", "SYNCPOD_LEADER_RENEW_INTERVAL", "5s",
       "singleton: how often the leader renews its lease and a standby tries to take it; at "
       "most a third of leader_lease_ttl",
       false},
      {"change_poll_interval", "SYNCPOD_CHANGE_POLL_INTERVAL", "1m",
       "singleton: how often sources of integrations with detect_changes are asked for changes",
       false},
      {"cleanup_interval", "SYNCPOD_CLEANUP_INTERVAL", "1m",
       "singleton: how often old jobs and workers are deleted and silent workers marked gone",
       false},
      {"retention", "SYNCPOD_RETENTION", "14d",
       "singleton: finished jobs, ended workers, cron fires and webhook events that became jobs "
       "older than this are deleted",
       false},
      {"migrations_dir", "SYNCPOD_MIGRATIONS_DIR", "",
       "migrate: read NNNN_*.sql from this directory instead of the built-in set", false},
      // The default depends on where the binary runs from; resolve() fills it in.
      {"plugin_path", "SYNCPOD_PLUGIN_PATH", "",
       "':'-separated directories (and files) to load plugins from (default: the syncpod "
       "binary's directory/../lib/syncpod/plugins)",
       false},
  };
  return kSpecs;
}

Settings Settings::resolve(const std::map<std::string, std::string>& flags,
                           const Environment& environment, const std::string& config_file) {
  std::map<std::string, std::string> file_values;
  if (!config_file.empty()) {
    file_values = readConfigFile(config_file);
    for (const auto& [key, value] : file_values) {
      if (findSpec(key) == nullptr) {
        throw ConfigError("config file " + config_file + ": unknown setting '" + key + "'");
      }
    }
  }
  Settings settings;
  for (const auto& spec : settingSpecs()) {
    if (auto flag = flags.find(spec.key); flag != flags.end()) {
      settings.values_[spec.key] = {flag->second, flagName(spec.key)};
    } else if (auto env = environment.find(spec.env); env != environment.end()) {
      settings.values_[spec.key] = {env->second, spec.env};
    } else if (auto file = file_values.find(spec.key); file != file_values.end()) {
      settings.values_[spec.key] = {file->second, "config file " + config_file};
    } else if (!spec.default_value.empty()) {
      settings.values_[spec.key] = {spec.default_value, "default"};
    }
  }
  if (settings.values_.count("plugin_path") == 0) {
    if (auto directory = defaultPluginDirectory(); !directory.empty()) {
      settings.values_["plugin_path"] = {std::move(directory), "default"};
    }
  }
  return settings;
}

std::string defaultPluginDirectory() {
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error || executable.empty()) return {};
  return (executable.parent_path() / ".." / "lib" / "syncpod" / "plugins").lexically_normal().string();
}

Settings::Environment Settings::processEnvironment() {
  Environment environment;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    environment.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return environment;
}

std::string Settings::get(std::string_view key) const {
  const auto found = values_.find(key);
  return found == values_.end() ? std::string() : found->second.value;
}

std::string Settings::sourceOf(std::string_view key) const {
  const auto found = values_.find(key);
  return found == values_.end() ? std::string("unset") : found->second.source;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  const long long amount = std::stoll(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  if (unit == "ms") return std::chrono::milliseconds(amount);
  if (unit.empty() || unit == "s") return std::chrono::seconds(amount);
  if (unit == "m") return std::chrono::minutes(amount);
  if (unit == "h") return std::chrono::hours(amount);
  if (unit == "d" && amount <= 1000000) return std::chrono::hours(24 * amount);
  return std::nullopt;
}

std::chrono::milliseconds Settings::duration(std::string_view key) const {
  const std::string text = get(key);
  const auto value = parseDuration(text);
  if (!value || value->count() <= 0) {
    throw ConfigError("invalid duration '" + text + "' for " + std::string(key) + " (from " +
                      sourceOf(key) + "): use e.g. 250ms, 30s, 5m, 2h, 14d");
  }
  return *value;
}

std::optional<unsigned long long> Settings::byteSize(std::string_view key) const {
  const std::string text = get(key);
  if (text.empty()) return std::nullopt;
  const auto fail = [&]() -> std::optional<unsigned long long> {
    throw ConfigError("invalid size '" + text + "' for " + std::string(key) + " (from " +
                      sourceOf(key) + "): use e.g. 512MiB, 2GiB, 1GB or a number of bytes");
  };
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) return fail();
  const unsigned long long amount = std::stoull(text.substr(0, digits));
  static const std::map<std::string, unsigned long long, std::less<>> kUnits = {
      {"", 1},           {"B", 1},
      {"kB", 1000ULL},   {"KiB", 1ULL << 10},
      {"MB", 1000000ULL}, {"MiB", 1ULL << 20},
      {"GB", 1000000000ULL}, {"GiB", 1ULL << 30},
      {"TB", 1000000000000ULL}, {"TiB", 1ULL << 40}};
  const auto unit = kUnits.find(text.substr(digits));
  if (unit == kUnits.end() || amount == 0) return fail();
  return amount * unit->second;
}

long long Settings::integer(std::string_view key, long long min, long long max) const {
  const std::string text = get(key);
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || value < min || value > max) {
    throw ConfigError("invalid value '" + text + "' for " + std::string(key) + " (from " +
                      sourceOf(key) + "): expected an integer from " + std::to_string(min) +
                      " to " + std::to_string(max));
  }
  return value;
}

}  // namespace syncpod::core
