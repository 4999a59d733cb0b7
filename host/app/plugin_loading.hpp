#pragma once

#include <string>
#include <vector>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/settings.hpp"

namespace syncpod::app {

/// The plugin path from the settings. The default directory counts only if it exists (an
/// installation may have no plugins yet), while a path someone set must exist.
std::vector<std::string> pluginPath(const core::Settings& settings);

/// Loads every plugin on the plugin path and logs one warning per plugin that was refused;
/// the others load regardless.
core::PluginRegistry loadPlugins(const core::Settings& settings);

}  // namespace syncpod::app
