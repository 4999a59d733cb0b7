#include "syncpod/core/sync/integration_spec.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <syncpod/sdk/json_schema.hpp>


namespace syncpod::core {
namespace {

using json_schema::escapePointer;

/// Collects problems while reading the config, each at a JSON Pointer.
class Reader {
 public:
  explicit Reader(std::vector<SpecProblem>& problems) : problems_(problems) {}

  void problem(const std::string& path, const std::string& message) {
    problems_.push_back({path, message});
  }

  const Json* member(const Json& object, const std::string& path, const char* name, bool required) {
    const auto found = object.find(name);
    if (found == object.end()) {
      if (required) problem(path + "/" + name, "is required");
      return nullptr;
    }
    return &*found;
  }

  std::optional<std::string> text(const Json& object, const std::string& path, const char* name,
                                  bool required) {
    const Json* value = member(object, path, name, required);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string() || value->get<std::string>().empty()) {
      problem(path + "/" + name, "must be a non-empty string");
      return std::nullopt;
    }
    return value->get<std::string>();
  }

  std::optional<Side> side(const Json& value, const std::string& path) {
    if (value == "source") return Side::Source;
    if (value == "target") return Side::Target;
    problem(path, "must be source or target");
    return std::nullopt;
  }

  void unknownMembers(const Json& object, const std::string& path, const std::set<std::string>& known) {
    for (const auto& [name, value] : object.items()) {
      if (!known.count(name)) problem(path + "/" + escapePointer(name), "is not a known setting");
    }
  }

 private:
  std::vector<SpecProblem>& problems_;
};

std::optional<EndpointSpec> readEndpoint(Reader& reader, const Json& config, const char* name) {
  const std::string path = std::string("/") + name;
  const Json* endpoint = reader.member(config, "", name, true);
  if (endpoint == nullptr) return std::nullopt;
  if (!endpoint->is_object()) {
    reader.problem(path, "must be an object with \"plugin\" and \"config\"");
    return std::nullopt;
  }
  reader.unknownMembers(*endpoint, path, {"plugin", "config"});
  EndpointSpec spec;
  const auto plugin = reader.text(*endpoint, path, "plugin", true);
  if (const Json* plugin_config = reader.member(*endpoint, path, "config", false)) {
    if (!plugin_config->is_object()) {
      reader.problem(path + "/config", "must be an object");
    } else {
      spec.config = *plugin_config;
    }
  }
  if (!plugin) return std::nullopt;
  spec.plugin = *plugin;
  return spec;
}

std::optional<StreamMapping> readStream(Reader& reader, const Json& stream, const std::string& path,
                                        std::set<std::string>& names) {
  if (!stream.is_object()) {
    reader.problem(path, "must be an object");
    return std::nullopt;
  }
  reader.unknownMembers(stream, path, {"name", "source_stream", "target_stream", "key", "fields", "owner"});
  StreamMapping mapping;
  const auto name = reader.text(stream, path, "name", true);
  if (name) {
    if (name->find('/') != std::string::npos) reader.problem(path + "/name", "must not contain '/'");
    if (!names.insert(*name).second) reader.problem(path + "/name", "\"" + *name + "\" is used by another stream");
    mapping.name = *name;
  }
  mapping.source_stream = reader.text(stream, path, "source_stream", false).value_or(mapping.name);
  mapping.target_stream = reader.text(stream, path, "target_stream", false).value_or(mapping.name);
  if (const Json* owner = reader.member(stream, path, "owner", false)) {
    mapping.record_owner = reader.side(*owner, path + "/owner").value_or(Side::Source);
  }

  std::vector<FieldMapping> fields;
  if (const Json* map = reader.member(stream, path, "fields", true)) {
    if (!map->is_object() || map->empty()) {
      reader.problem(path + "/fields", "must be an object mapping source field names to target field names");
    } else {
      std::set<std::string> targets;
      for (const auto& [source, target] : map->items()) {
        const std::string at = path + "/fields/" + escapePointer(source);
        FieldMapping field{source, {}, mapping.record_owner};
        if (target.is_string() && !target.get<std::string>().empty()) {
          field.target = target.get<std::string>();
        } else if (target.is_object()) {
          reader.unknownMembers(target, at, {"target", "owner"});
          field.target = reader.text(target, at, "target", false).value_or(source);
          if (const Json* owner = reader.member(target, at, "owner", false)) {
            field.owner = reader.side(*owner, at + "/owner").value_or(mapping.record_owner);
          }
        } else {
          reader.problem(at, "must be the target field name, or an object with \"target\" and \"owner\"");
          continue;
        }
        if (!targets.insert(field.target).second) {
          reader.problem(at, "maps to target field \"" + field.target + "\", which another field maps to");
        }
        fields.push_back(std::move(field));
      }
    }
  }

  std::vector<std::string> key;
  if (const Json* key_json = reader.member(stream, path, "key", true)) {
    const bool strings = key_json->is_array() && !key_json->empty() &&
                         std::all_of(key_json->begin(), key_json->end(), [](const Json& k) {
                           return k.is_string() && !k.get<std::string>().empty();
                         });
    if (!strings) {
      reader.problem(path + "/key", "must be a non-empty array of source field names");
    } else {
      key = key_json->get<std::vector<std::string>>();
    }
  }
  // Key fields first, in key order; they identify a record on both sides, so nobody owns them.
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto found = std::find_if(fields.begin(), fields.end(),
                                    [&](const FieldMapping& f) { return f.source == key[i]; });
    if (found == fields.end()) {
      reader.problem(path + "/key/" + std::to_string(i), "\"" + key[i] + "\" is not one of the mapped fields");
      continue;
    }
    FieldMapping field = *found;
    field.owner = mapping.record_owner;
    fields.erase(found);
    mapping.fields.push_back(std::move(field));
  }
  mapping.key_count = mapping.fields.size();
  for (auto& field : fields) mapping.fields.push_back(std::move(field));
  if (!name || mapping.key_count != key.size() || key.empty()) return std::nullopt;
  return mapping;
}

/// Reads "schedule" into `spec` and checks it, each problem at its field.
void readSchedule(Reader& reader, const Json& value, std::optional<ScheduleSpec>& spec) {
  if (!value.is_object()) {
    reader.problem("/schedule", "must be an object with \"cron\" and, optionally, \"time_zone\"");
    return;
  }
  reader.unknownMembers(value, "/schedule", {"cron", "time_zone"});
  ScheduleSpec schedule;
  const auto cron = reader.text(value, "/schedule", "cron", true);
  bool valid = cron.has_value();
  if (const auto zone = reader.text(value, "/schedule", "time_zone", false)) {
    schedule.time_zone = *zone;
    if (auto loaded = TimeZone::load(*zone); !loaded) {
      reader.problem("/schedule/time_zone", loaded.error().message);
      valid = false;
    }
  } else if (value.contains("time_zone")) {
    valid = false;
  }
  if (cron) {
    schedule.cron = *cron;
    if (auto parsed = CronSchedule::parse(*cron); !parsed) {
      reader.problem("/schedule/cron", parsed.error().message);
      valid = false;
    }
  }
  if (valid) spec = std::move(schedule);
}

}  // namespace

const char* toString(Side side) { return side == Side::Source ? "source" : "target"; }

Side other(Side side) { return side == Side::Source ? Side::Target : Side::Source; }

const char* toString(DeletionPolicy policy) {
  switch (policy) {
    case DeletionPolicy::Additive: return "additive";
    case DeletionPolicy::Conservative: return "conservative";
    case DeletionPolicy::Overwrite: return "overwrite";
  }
  return "additive";
}

std::vector<std::string> StreamMapping::keyFields(Side side) const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < key_count; ++i) {
    names.push_back(side == Side::Source ? fields[i].source : fields[i].target);
  }
  return names;
}

std::vector<std::string> StreamMapping::fieldNames(Side side) const {
  std::vector<std::string> names;
  for (const auto& field : fields) names.push_back(side == Side::Source ? field.source : field.target);
  return names;
}

const StreamMapping* IntegrationSpec::stream(const std::string& name) const {
  const auto found = std::find_if(streams.begin(), streams.end(),
                                  [&](const StreamMapping& s) { return s.name == name; });
  return found == streams.end() ? nullptr : &*found;
}

std::string SpecProblem::text() const { return (path.empty() ? std::string("(config)") : path) + ": " + message; }

namespace {

Result<IntegrationSpec> parse(const Json& config, std::vector<SpecProblem>& problems) {
  Reader reader(problems);
  IntegrationSpec spec;
  if (!config.is_object()) {
    reader.problem("", "an integration config must be a JSON object");
    return Error{Error::Code::Invalid, problems.front().text()};
  }
  reader.unknownMembers(config, "", {"source", "target", "streams", "deletion_policy", "batch_size",
                                    "schedule", "detect_changes"});
  if (const Json* schedule = reader.member(config, "", "schedule", false)) {
    readSchedule(reader, *schedule, spec.schedule);
  }
  if (const Json* detect = reader.member(config, "", "detect_changes", false)) {
    if (!detect->is_boolean()) reader.problem("/detect_changes", "must be true or false");
    else spec.detect_changes = detect->get<bool>();
  }
  auto source = readEndpoint(reader, config, "source");
  auto target = readEndpoint(reader, config, "target");
  if (const Json* policy = reader.member(config, "", "deletion_policy", false)) {
    if (*policy == "additive") spec.deletion_policy = DeletionPolicy::Additive;
    else if (*policy == "conservative") spec.deletion_policy = DeletionPolicy::Conservative;
    else if (*policy == "overwrite") spec.deletion_policy = DeletionPolicy::Overwrite;
    else reader.problem("/deletion_policy", "must be additive, conservative or overwrite");
  }
  if (const Json* batch = reader.member(config, "", "batch_size", false)) {
    if (!batch->is_number_integer() || batch->get<long long>() < 1 || batch->get<long long>() > 100000) {
      reader.problem("/batch_size", "must be an integer from 1 to 100000");
    } else {
      spec.batch_size = batch->get<std::size_t>();
    }
  }
  if (const Json* streams = reader.member(config, "", "streams", true)) {
    if (!streams->is_array() || streams->empty()) {
      reader.problem("/streams", "must be a non-empty array of stream mappings");
    } else {
      std::set<std::string> names;
      // With overwrite, a mapping deletes from the stream on its owner's other side whatever
      // its owner lacks; two mappings into one stream there would delete each other's records.
      std::map<std::pair<Side, std::string>, std::string> deleting_into;
      for (std::size_t i = 0; i < streams->size(); ++i) {
        const std::string path = "/streams/" + std::to_string(i);
        auto mapping = readStream(reader, (*streams)[i], path, names);
        if (!mapping) continue;
        if (spec.deletion_policy == DeletionPolicy::Overwrite) {
          const Side side = other(mapping->record_owner);
          const auto& stream = side == Side::Target ? mapping->target_stream : mapping->source_stream;
          const auto [earlier, first] = deleting_into.emplace(std::pair(side, stream), mapping->name);
          if (!first) {
            reader.problem(path, "with deletion_policy overwrite, it and \"" + earlier->second +
                                     "\" would delete each other's records in " + toString(side) +
                                     " stream \"" + stream +
                                     "\"; use conservative, or map them to different streams");
          }
        }
        spec.streams.push_back(std::move(*mapping));
      }
    }
  }
  if (!problems.empty()) {
    std::string message = "invalid integration config: ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i].text();
    return Error{Error::Code::Invalid, message};
  }
  spec.source = std::move(*source);
  spec.target = std::move(*target);
  return spec;
}

}  // namespace

Result<IntegrationSpec> parseIntegrationSpec(const Json& config) {
  std::vector<SpecProblem> problems;
  return parse(config, problems);
}

Result<std::optional<CronSchedule>> parseSchedule(const Json& config) {
  const auto found = config.is_object() ? config.find("schedule") : config.end();
  if (!config.is_object() || found == config.end()) return std::optional<CronSchedule>{};
  std::vector<SpecProblem> problems;
  Reader reader(problems);
  std::optional<ScheduleSpec> spec;
  readSchedule(reader, *found, spec);
  if (!problems.empty() || !spec) {
    std::string message;
    for (const auto& problem : problems) message += (message.empty() ? "" : "; ") + problem.text();
    return Error{Error::Code::Invalid, message};
  }
  auto schedule = CronSchedule::parse(spec->cron, spec->time_zone);
  if (!schedule) return Error{Error::Code::Invalid, "/schedule: " + schedule.error().message};
  return std::optional<CronSchedule>{std::move(schedule).value()};
}

std::vector<SpecProblem> integrationSpecProblems(const Json& config) {
  std::vector<SpecProblem> problems;
  (void)parse(config, problems);
  return problems;
}

}  // namespace syncpod::core
