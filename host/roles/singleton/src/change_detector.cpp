#include "change_detector.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace syncpod::singleton {

core::Result<bool> sourceChanged(const core::IntegrationSpec& spec,
                                 const std::map<std::string, std::string>& cursors,
                                 const core::PluginRegistry& plugins,
                                 const std::function<bool()>& cancelled) {
  const auto plugin = plugins.find(spec.source.plugin);
  if (!plugin) {
    return core::Error{core::Error::Code::Invalid,
                       "source plugin '" + spec.source.plugin + "' is not loaded"};
  }
  const auto& modes = plugin->manifest().capabilities.fetch_modes;
  if (std::find(modes.begin(), modes.end(), FetchMode::Incremental) == modes.end()) {
    return core::Error{core::Error::Code::Invalid,
                       "source plugin '" + spec.source.plugin + "' cannot fetch incrementally"};
  }
  core::CallHooks hooks;
  hooks.log = [&](syncpod_log_level level, std::string_view message) {
    if (level >= SYNCPOD_LOG_WARN) spdlog::warn("{}: {}", spec.source.plugin, message);
  };
  hooks.cancelled = cancelled;
  auto endpoint = plugin->open(spec.source.config, hooks);
  if (!endpoint) return endpoint.error();
  for (const auto& stream : spec.streams) {
    const auto cursor = cursors.find(stream.name);
    if (cursor == cursors.end()) return true;
    FetchRequest request;
    request.stream = stream.source_stream;
    request.mode = FetchMode::Incremental;
    request.cursor = cursor->second;
    request.key_fields = stream.keyFields(core::Side::Source);
    request.batch_size = 1;
    bool changed = false;
    auto fetched = (*endpoint)->fetch(
        request,
        [&](core::RecordBatch&& batch) {
          changed = changed || !batch.records.empty();
          return !changed;  // the first record is enough
        },
        hooks);
    if (changed) return true;
    if (!fetched) return fetched.error();
  }
  return false;
}

}  // namespace syncpod::singleton
