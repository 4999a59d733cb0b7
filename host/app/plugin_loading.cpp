#include "plugin_loading.hpp"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace syncpod::app {

std::vector<std::string> pluginPath(const core::Settings& settings) {
  auto paths = core::PluginRegistry::splitPath(settings.get("plugin_path"));
  if (settings.sourceOf("plugin_path") == "default") {
    std::error_code error;
    paths.erase(std::remove_if(paths.begin(), paths.end(),
                               [&](const std::string& path) {
                                 return !std::filesystem::exists(path, error);
                               }),
                paths.end());
  }
  return paths;
}

core::PluginRegistry loadPlugins(const core::Settings& settings) {
  auto registry = core::PluginRegistry::load(pluginPath(settings));
  for (const auto& error : registry.errors()) spdlog::warn("plugin refused: {}", error.message);
  return registry;
}

}  // namespace syncpod::app
