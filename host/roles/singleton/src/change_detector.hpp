#pragma once

#include <functional>
#include <map>
#include <string>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/result.hpp"
#include "syncpod/core/sync/integration_spec.hpp"

namespace syncpod::singleton {

/// Asks an integration's source plugin whether anything changed since the cursors stored for
/// its streams: an incremental fetch per stream, stopped at the first record. A stream without
/// a stored cursor counts as changed (its first incremental job sets the cursor).
/// Invalid when the source plugin is missing or cannot fetch incrementally. `cancelled` is the
/// plugin's cancellation flag: once it returns true, a well-behaved plugin stops its fetch.
core::Result<bool> sourceChanged(const core::IntegrationSpec& spec,
                                 const std::map<std::string, std::string>& cursors,
                                 const core::PluginRegistry& plugins,
                                 const std::function<bool()>& cancelled);

}  // namespace syncpod::singleton
