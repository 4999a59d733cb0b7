// Loading plugins: find the files, load each with Boost.DLL, check the entry point, the table
// and the manifest, and keep what passes. Every refusal is one line naming the file.

#include <algorithm>
#include <cstring>
#include <dlfcn.h>
#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include <boost/dll/shared_library.hpp>
#include <syncpod/sdk/manifest_check.hpp>

#include "library_plugin.hpp"
#include "syncpod/core/plugins.hpp"

namespace fs = std::filesystem;

namespace syncpod::core {
namespace {

/// Why a file was refused: the text after "plugin <path>: ".
class Refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string versionText(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string oneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string text;
  for (const auto& part : parts) text += (text.empty() ? "" : "; ") + part;
  return text;
}

/// dlopen's reason, without the path it repeats at its start (Boost.DLL puts "./" before a
/// bare file name, so that the loader does not search the system's directories).
std::string loaderError(const std::string& path) {
  const char* reason = ::dlerror();
  std::string text = reason != nullptr ? reason : "unknown loader error";
  for (const auto& prefix : {path + ": ", "./" + path + ": "}) {
    if (text.rfind(prefix, 0) == 0) {
      text.erase(0, prefix.size());
      break;
    }
  }
  return oneLine(text);
}

std::shared_ptr<const detail::LibraryPlugin> loadLibrary(const std::string& path) {
  auto library = std::make_shared<boost::dll::shared_library>();
  std::error_code error;
  library->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, error);
  if (error || !library->is_loaded()) {
    throw Refused("not a loadable shared library (" + loaderError(path) + ")");
  }
  if (!library->has(SYNCPOD_PLUGIN_ENTRY_NAME)) {
    throw Refused("no entry point " SYNCPOD_PLUGIN_ENTRY_NAME " (not a syncpod plugin?)");
  }
  const auto entry =
      library->get<const syncpod_plugin*(std::uint32_t, std::uint32_t)>(SYNCPOD_PLUGIN_ENTRY_NAME);

  const syncpod_plugin* raw = nullptr;
  try {
    raw = entry(SYNCPOD_ABI_MAJOR, SYNCPOD_ABI_MINOR);
  } catch (...) {
    throw Refused(SYNCPOD_PLUGIN_ENTRY_NAME " threw an exception");
  }
  if (raw == nullptr) throw Refused(SYNCPOD_PLUGIN_ENTRY_NAME " returned no plugin table");

  // The three version members are at the start of every version's table; read them first,
  // and the rest only once they say the table has the ABI 1.0 layout.
  const std::string host_version = versionText(SYNCPOD_ABI_MAJOR, SYNCPOD_ABI_MINOR);
  const std::string version = versionText(raw->abi_major, raw->abi_minor);
  if (raw->abi_major != SYNCPOD_ABI_MAJOR) {
    throw Refused("built for plugin ABI " + version + "; this host supports " + host_version);
  }
  if (raw->abi_minor > SYNCPOD_ABI_MINOR) {
    throw Refused("built for plugin ABI " + version + ", newer than this host's " + host_version +
                  "; upgrade syncpod or build the plugin with an older SDK");
  }
  if (raw->struct_size < detail::kPluginTableV1Size) {
    throw Refused("plugin table is " + std::to_string(raw->struct_size) +
                  " bytes, smaller than the " + std::to_string(detail::kPluginTableV1Size) +
                  " bytes of ABI 1.0 (a corrupt or mis-built plugin)");
  }
  syncpod_plugin table{};
  std::memcpy(&table, raw, detail::kPluginTableV1Size);

  std::vector<std::string> missing;
  if (table.open == nullptr) missing.emplace_back("open");
  if (table.close == nullptr) missing.emplace_back("close");
  if (table.check == nullptr) missing.emplace_back("check");
  if (table.fetch == nullptr) missing.emplace_back("fetch");
  if (table.apply == nullptr) missing.emplace_back("apply");
  if (!missing.empty()) {
    std::string names;
    for (const auto& name : missing) names += (names.empty() ? "" : ", ") + name;
    throw Refused("plugin table lacks required function(s): " + names);
  }

  const std::string_view manifest_text = detail::view(table.manifest);
  if (manifest_text.empty()) throw Refused("invalid manifest: it is empty");
  Json manifest_json = Json::parse(manifest_text.begin(), manifest_text.end(), nullptr, false);
  if (manifest_json.is_discarded()) throw Refused("invalid manifest: not valid JSON");
  if (const auto problems = manifestProblems(manifest_json); !problems.empty()) {
    throw Refused("invalid manifest: " + oneLine(joined(problems)));
  }
  Manifest manifest = manifestFromJson(manifest_json);

  // The library lives as long as the last Plugin or Endpoint that points into it.
  return std::make_shared<detail::LibraryPlugin>(std::shared_ptr<const void>(std::move(library)),
                                                 table, path, std::move(manifest_json),
                                                 std::move(manifest));
}

std::string refusal(const std::string& path, const std::string& why) {
  return "plugin " + path + ": " + why;
}

/// Loads one file; the error is the one line load() reports.
Result<PluginPtr> tryLoad(const std::string& path) {
  try {
    return PluginPtr(loadLibrary(path));
  } catch (const Refused& error) {
    return Error{Error::Code::Invalid, refusal(path, error.what())};
  } catch (const std::exception& error) {
    return Error{Error::Code::Invalid,
                 refusal(path, oneLine(std::string("cannot be loaded: ") + error.what()))};
  }
}

}  // namespace

struct PluginRegistry::State {
  std::map<std::string, PluginPtr, std::less<>> plugins;
  std::vector<PluginLoadError> errors;
  std::set<fs::path> seen;

  void addFile(const std::string& path) {
    std::error_code error;
    auto canonical = fs::canonical(path, error);
    if (!error && !seen.insert(canonical).second) return;
    auto loaded = tryLoad(path);
    if (!loaded) {
      errors.push_back({path, loaded.error().message});
      return;
    }
    const auto& plugin = *loaded;
    const auto [at, inserted] = plugins.emplace(plugin->manifest().id, plugin);
    if (!inserted) {
      errors.push_back({path, refusal(path, "has id " + plugin->manifest().id +
                                                ", already provided by " + at->second->path())});
    }
  }

  void addDirectory(const std::string& directory) {
    std::error_code error;
    std::vector<std::string> files;
    for (fs::directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
      const auto& entry = *it;
      std::error_code status_error;
      if (entry.path().extension() == ".so" && entry.is_regular_file(status_error)) {
        files.push_back((fs::path(directory) / entry.path().filename()).string());
      }
    }
    if (error) {
      errors.push_back({directory, "plugin directory " + directory + ": cannot be read (" +
                                       error.message() + ")"});
      return;
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) addFile(file);
  }
};

PluginRegistry::PluginRegistry() : state_(std::make_unique<State>()) {}
PluginRegistry::PluginRegistry(PluginRegistry&&) noexcept = default;
PluginRegistry& PluginRegistry::operator=(PluginRegistry&&) noexcept = default;
PluginRegistry::~PluginRegistry() = default;

Json pluginJson(const Plugin& plugin) {
  auto json = toJson(plugin.manifest());
  // toJson names the ABI this host was built with; the plugin's own may be an older minor.
  json["abi"] = std::to_string(plugin.abiMajor()) + "." + std::to_string(plugin.abiMinor());
  json["custom_diff"] = plugin.hasCustomDiff();
  return json;
}

PluginRegistry PluginRegistry::load(const std::vector<std::string>& paths) {
  PluginRegistry registry;
  auto& state = *registry.state_;
  for (const auto& path : paths) {
    std::error_code error;
    const auto status = fs::status(path, error);
    if (fs::is_directory(status)) {
      state.addDirectory(path);
    } else if (fs::is_regular_file(status)) {
      state.addFile(path);
    } else if (!fs::exists(status)) {
      state.errors.push_back({path, "plugin path " + path + ": no such file or directory"});
    } else {
      state.errors.push_back({path, "plugin path " + path + ": not a file or directory"});
    }
  }
  return registry;
}

std::vector<std::string> PluginRegistry::splitPath(std::string_view list) {
  std::vector<std::string> paths;
  while (!list.empty()) {
    const auto colon = list.find(':');
    const auto part = list.substr(0, colon);
    if (!part.empty()) paths.emplace_back(part);
    if (colon == std::string_view::npos) break;
    list.remove_prefix(colon + 1);
  }
  return paths;
}

PluginPtr PluginRegistry::find(std::string_view id) const {
  const auto found = state_->plugins.find(id);
  return found == state_->plugins.end() ? nullptr : found->second;
}

std::vector<PluginPtr> PluginRegistry::plugins() const {
  std::vector<PluginPtr> list;
  list.reserve(state_->plugins.size());
  for (const auto& [id, plugin] : state_->plugins) list.push_back(plugin);
  return list;
}

const std::vector<PluginLoadError>& PluginRegistry::errors() const {
  return state_->errors;
}

Result<PluginPtr> PluginRegistry::loadFile(const std::string& path) {
  std::error_code error;
  if (!fs::exists(path, error)) {
    return Error{Error::Code::Invalid, "plugin " + path + ": no such file"};
  }
  return tryLoad(path);
}

}  // namespace syncpod::core
