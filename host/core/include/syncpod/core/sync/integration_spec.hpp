#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <syncpod/sdk/model.hpp>

#include "syncpod/core/cron.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

class PluginRegistry;

/// The two ends of an integration. Records flow either way: per stream, one side owns the
/// records (it creates and deletes them) and, per field, one side owns each value.
enum class Side { Source = 1, Target = 2 };

const char* toString(Side side);
Side other(Side side);

/// What happens to a record that only the non-owning side still has.
enum class DeletionPolicy {
  Additive = 1,      ///< never delete
  Conservative = 2,  ///< delete only records this integration created there
  Overwrite = 3,     ///< delete whatever the owning side no longer has
};

const char* toString(DeletionPolicy policy);

/// One side of an integration: a plugin and its config.
struct EndpointSpec {
  std::string plugin;
  Json config = Json::object();
};

/// One mapped field: its name on each side and which side's value wins.
struct FieldMapping {
  std::string source;
  std::string target;
  Side owner = Side::Source;
};

/// How one stream of the source corresponds to one stream of the target.
struct StreamMapping {
  /// The name jobs, keys and reports use for this mapping.
  std::string name;
  std::string source_stream;
  std::string target_stream;
  /// Mapped fields, in the order the integration lists them; key fields come first.
  std::vector<FieldMapping> fields;
  /// How many of `fields` (from the front) make up the key.
  std::size_t key_count = 0;
  /// The side whose records exist: it creates them on the other side, and the deletion policy
  /// decides what happens when it no longer has one.
  Side record_owner = Side::Source;

  std::vector<std::string> keyFields(Side side) const;
  std::vector<std::string> fieldNames(Side side) const;
};

/// When full jobs start by themselves: a cron expression in a time zone (docs/singleton.md).
struct ScheduleSpec {
  std::string cron;
  std::string time_zone = "UTC";
};

/// An integration's configuration (the `config` column of `integrations`), parsed.
struct IntegrationSpec {
  EndpointSpec source;
  EndpointSpec target;
  std::vector<StreamMapping> streams;
  DeletionPolicy deletion_policy = DeletionPolicy::Additive;
  /// Records per fetched batch and changes per applied batch.
  std::size_t batch_size = 500;
  /// "schedule": {"cron": "0 5 * * *", "time_zone": "Europe/Berlin"}; checked when parsed.
  std::optional<ScheduleSpec> schedule;
  /// "detect_changes": true — the singleton polls the source for changes since the cursor and
  /// enqueues partial jobs. The source must be able to fetch incrementally.
  bool detect_changes = false;

  const StreamMapping* stream(const std::string& name) const;
  const EndpointSpec& endpoint(Side side) const { return side == Side::Source ? source : target; }
};

/// One problem found in an integration config: where (a JSON Pointer into it) and what.
struct SpecProblem {
  std::string path;
  std::string message;
  std::string text() const;
};

/// Parses an integration config. On failure, Invalid whose message lists every problem, each
/// naming the field (e.g. "/streams/0/fields/email/owner: must be source or target").
Result<IntegrationSpec> parseIntegrationSpec(const Json& config);

/// Every problem in `config` (empty when it parses), for callers that report per field.
std::vector<SpecProblem> integrationSpecProblems(const Json& config);

/// The schedule of an integration config alone, parsed and checked: nullopt when it has
/// none; Invalid naming the field ("/schedule/cron: hour field '25': 25 is out of range 0-23").
/// The singleton reads schedules with it, so a config broken elsewhere still fires.
Result<std::optional<CronSchedule>> parseSchedule(const Json& config);

/// Checks a parsed integration against the plugins it names: both plugins exist, each endpoint
/// config passes its plugin's schema (problems under /source/config or /target/config), the
/// streams exist (unless the plugin names streams by config), and each side can do what the
/// mapping asks of it (fetch by keys, create, update and delete where needed).
std::vector<SpecProblem> checkAgainstPlugins(const IntegrationSpec& spec,
                                             const PluginRegistry& plugins);

}  // namespace syncpod::core
