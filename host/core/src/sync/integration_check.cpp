#include <algorithm>

#include <syncpod/sdk/json_schema.hpp>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/integration_spec.hpp"

namespace syncpod::core {

std::vector<SpecProblem> checkAgainstPlugins(const IntegrationSpec& spec, const PluginRegistry& plugins) {
  std::vector<SpecProblem> problems;
  for (const Side side : {Side::Source, Side::Target}) {
    const auto& endpoint = spec.endpoint(side);
    const std::string at = std::string("/") + toString(side);
    const auto plugin = plugins.find(endpoint.plugin);
    if (!plugin) {
      problems.push_back({at + "/plugin", "no plugin with id \"" + endpoint.plugin + "\" is loaded"});
      continue;
    }
    const auto& manifest = plugin->manifest();
    for (const auto& violation : json_schema::validate(manifest.config_schema, endpoint.config)) {
      problems.push_back({at + "/config" + violation.path, violation.message});
    }
    const auto& capabilities = manifest.capabilities;
    const auto can_fetch = [&](FetchMode mode) {
      return std::find(capabilities.fetch_modes.begin(), capabilities.fetch_modes.end(), mode) !=
             capabilities.fetch_modes.end();
    };
    const auto can_apply = [&](ChangeOp op) {
      return std::find(capabilities.apply_ops.begin(), capabilities.apply_ops.end(), op) !=
             capabilities.apply_ops.end();
    };
    if (!can_fetch(FetchMode::Keys)) {
      problems.push_back({at + "/plugin", "plugin \"" + endpoint.plugin +
                                              "\" cannot fetch by keys, which partial syncs need"});
    }
    for (std::size_t i = 0; i < spec.streams.size(); ++i) {
      const auto& mapping = spec.streams[i];
      const std::string stream_at = "/streams/" + std::to_string(i);
      const auto& stream = side == Side::Source ? mapping.source_stream : mapping.target_stream;
      if (!capabilities.configurable_streams &&
          std::none_of(manifest.streams.begin(), manifest.streams.end(),
                       [&](const StreamInfo& s) { return s.name == stream; })) {
        problems.push_back({stream_at + "/" + toString(side) + "_stream",
                            "plugin \"" + endpoint.plugin + "\" has no stream \"" + stream + "\""});
      }
      // The side that does not own the records receives creates; the deletion policy may
      // delete there; any field the other side owns is updated there.
      const Side receiver = other(mapping.record_owner);
      const bool receives_updates = std::any_of(
          mapping.fields.begin() + static_cast<std::ptrdiff_t>(mapping.key_count), mapping.fields.end(),
          [&](const FieldMapping& f) { return f.owner != side; });
      const auto need = [&](ChangeOp op, const char* why) {
        if (!can_apply(op)) {
          problems.push_back({stream_at, "plugin \"" + endpoint.plugin + "\" (" + toString(side) +
                                             ") cannot " + std::string(syncpod::toString(op)) + " records, " + why});
        }
      };
      if (receiver == side) {
        need(ChangeOp::Create, "which it must as the side that does not own the records");
        if (spec.deletion_policy != DeletionPolicy::Additive) {
          need(ChangeOp::Delete, "which the deletion policy asks of it");
        }
      }
      if (receives_updates) need(ChangeOp::Update, "which it must for the fields the other side owns");
    }
  }
  return problems;
}

}  // namespace syncpod::core
