#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "plugin_loading.hpp"
#include "syncpod/core/plugins.hpp"

namespace syncpod::app {
namespace {

using Json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 64;

/// Text from a plugin, safe to print: control characters (escape sequences, newlines) would
/// let a manifest rewrite the terminal or forge output lines.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string joined(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : separator) + item;
  return text;
}

/// Rows printed as left-aligned columns, two spaces apart; the last column is not padded.
void printColumns(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                  const std::string& indent = "") {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

std::string abiOf(const core::Plugin& plugin) {
  return std::to_string(plugin.abiMajor()) + "." + std::to_string(plugin.abiMinor());
}

std::string typeOf(const Json& schema) {
  const auto type = schema.find("type");
  if (type == schema.end()) return "any";
  if (type->is_string()) return type->get<std::string>();
  std::vector<std::string> names;
  for (const auto& name : *type)
    names.push_back(name.is_string() ? name.get<std::string>() : name.dump());
  return joined(names, "|");
}

/// One row per property of a config schema, nested objects as dotted names.
void configRows(const Json& schema, const std::string& prefix,
                std::vector<std::vector<std::string>>& rows) {
  const auto properties = schema.find("properties");
  if (properties == schema.end() || !properties->is_object()) return;
  std::set<std::string> required;
  if (const auto r = schema.find("required"); r != schema.end() && r->is_array()) {
    for (const auto& name : *r) {
      if (name.is_string()) required.insert(name.get<std::string>());
    }
  }
  for (const auto& [name, property] : properties->items()) {
    if (!property.is_object()) continue;
    std::vector<std::string> flags;
    if (required.count(name) != 0) flags.emplace_back("required");
    if (property.value("writeOnly", false)) flags.emplace_back("secret");
    std::string about = property.value("description", "");
    if (const auto e = property.find("enum"); e != property.end()) {
      about += (about.empty() ? "" : "; ") + std::string("one of ") + e->dump();
    }
    if (const auto d = property.find("default"); d != property.end()) {
      about += (about.empty() ? "" : "; ") + std::string("default ") + d->dump();
    }
    rows.push_back({printable(prefix + name), printable(typeOf(property)), joined(flags, ", "),
                    printable(about)});
    configRows(property, prefix + name + ".", rows);
  }
}

void printManifest(const core::Plugin& plugin) {
  const auto& manifest = plugin.manifest();
  auto& out = std::cout;
  printColumns(out, {{"id:", printable(manifest.id)},
                     {"version:", printable(manifest.version)},
                     {"ABI:", abiOf(plugin)},
                     {"path:", printable(plugin.path())},
                     {"description:", printable(manifest.description)}});

  out << "\nstreams:\n";
  if (manifest.streams.empty()) {
    out << "  (none listed)\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& stream : manifest.streams) {
      rows.push_back({printable(stream.name), "key " + printable(joined(stream.key_fields, ", ")),
                      printable(stream.description)});
    }
    printColumns(out, rows, "  ");
  }

  const auto& capabilities = manifest.capabilities;
  std::vector<std::string> modes;
  for (const auto mode : capabilities.fetch_modes) modes.emplace_back(toString(mode));
  std::vector<std::string> ops;
  for (const auto op : capabilities.apply_ops) ops.emplace_back(toString(op));
  out << "\ncapabilities:\n";
  printColumns(out,
               {{"fetch", joined(modes, ", ")},
                {"apply", ops.empty() ? "none (read-only)" : joined(ops, ", ")},
                {"incremental cursor", capabilities.incremental_cursor_field
                                           ? printable(*capabilities.incremental_cursor_field)
                                           : "none"},
                {"deletion detection", capabilities.deletion_detection ? "yes" : "no"},
                {"configurable streams", capabilities.configurable_streams ? "yes" : "no"},
                {"diff", plugin.hasCustomDiff() ? "its own" : "the host's (exact JSON values)"}},
               "  ");

  out << "\nconfig (secrets are never shown back; --json prints the whole schema):\n";
  std::vector<std::vector<std::string>> rows;
  configRows(manifest.config_schema, "", rows);
  if (rows.empty()) {
    out << "  (no settings)\n";
  } else {
    printColumns(out, rows, "  ");
  }
}

/// `syncpod plugins list|inspect`: what the plugin path holds, and what one plugin declares.
class PluginsCommand final : public Command {
 public:
  std::string_view name() const override { return "plugins"; }
  std::string_view summary() const override {
    return "list the connector plugins on the plugin path, or describe one (list | inspect)";
  }
  std::string_view usage() const override {
    return "list [--json] | inspect <path|id> [--json]  [--option=value ...]";
  }
  std::string_view details() const override {
    return "sub-commands:\n"
           "  list              one line per plugin (id, version, ABI, path); every file that\n"
           "                    cannot be loaded gets one line on stderr saying why\n"
           "  inspect <path>    load that file and describe its manifest (streams, capabilities,\n"
           "                    config settings, secrets marked)\n"
           "  inspect <id>      the same for the plugin with that id on the plugin path\n"
           "\n"
           "exit codes: 0 every file loaded (list) or the plugin was found (inspect);\n"
           "            1 a file was refused, or no plugin has that id; 64 usage error;\n"
           "            78 configuration error\n";
  }
  std::vector<std::string> settingKeys() const override { return {"plugin_path"}; }
  std::vector<CommandSwitch> switches() const override {
    return {{"json", "print JSON instead of text"}};
  }
  void enableSwitch(const std::string& name, const std::string&) override {
    if (name == "json") json_ = true;
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    if (!args.empty() && args[0] == "list" && args.size() == 1) return list(settings);
    if (!args.empty() && args[0] == "inspect" && args.size() == 2)
      return inspect(settings, args[1]);
    std::cerr << "syncpod plugins: expected `list` or `inspect <path|id>`"
              << (args.empty() ? std::string() : ", not `" + joined(args, " ") + "`")
              << "; see `syncpod plugins --help`\n";
    return kExitUsage;
  }

 private:
  int list(const core::Settings& settings) const {
    const auto paths = pluginPath(settings);
    const auto registry = core::PluginRegistry::load(paths);
    const auto plugins = registry.plugins();
    const int code = registry.errors().empty() ? kExitOk : kExitRefused;
    if (json_) {
      Json document = {
          {"plugin_path", paths}, {"plugins", Json::array()}, {"errors", Json::array()}};
      for (const auto& plugin : plugins) {
        auto shown = core::pluginJson(*plugin);
        shown["path"] = plugin->path();
        document["plugins"].push_back(std::move(shown));
      }
      for (const auto& error : registry.errors()) {
        document["errors"].push_back({{"path", error.path}, {"message", error.message}});
      }
      std::cout << document.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
      return code;
    }
    if (plugins.empty() && registry.errors().empty()) {
      std::cerr << "no plugins on the plugin path ("
                << (paths.empty() ? settings.get("plugin_path") : joined(paths, ":")) << ", from "
                << settings.sourceOf("plugin_path") << ")\n";
      return code;
    }
    if (!plugins.empty()) {
      std::vector<std::vector<std::string>> rows = {{"ID", "VERSION", "ABI", "PATH"}};
      for (const auto& plugin : plugins) {
        rows.push_back({printable(plugin->manifest().id), printable(plugin->manifest().version),
                        abiOf(*plugin), printable(plugin->path())});
      }
      printColumns(std::cout, rows);
    }
    std::cout.flush();
    for (const auto& error : registry.errors()) std::cerr << printable(error.message) << '\n';
    return code;
  }

  int inspect(const core::Settings& settings, const std::string& target) const {
    core::PluginPtr plugin;
    // Ids have neither '/' nor '.', file names do.
    if (target.find('/') != std::string::npos || target.find('.') != std::string::npos) {
      auto loaded = core::PluginRegistry::loadFile(target);
      if (!loaded) {
        std::cerr << printable(loaded.error().message) << '\n';
        return kExitRefused;
      }
      plugin = *loaded;
    } else {
      const auto paths = pluginPath(settings);
      const auto registry = core::PluginRegistry::load(paths);
      plugin = registry.find(target);
      if (plugin == nullptr) {
        std::cerr << "syncpod plugins: no plugin with id '" << printable(target)
                  << "' on the plugin path (" << joined(paths, ":") << ", from "
                  << settings.sourceOf("plugin_path") << ")\n";
        for (const auto& error : registry.errors()) std::cerr << printable(error.message) << '\n';
        return kExitRefused;
      }
    }
    if (json_) {
      std::cout << plugin->manifestJson().dump(2, ' ', false, Json::error_handler_t::replace)
                << '\n';
    } else {
      printManifest(*plugin);
    }
    return kExitOk;
  }

  bool json_ = false;
};

}  // namespace

CommandPtr makePluginsCommand() {
  return std::make_unique<PluginsCommand>();
}

}  // namespace syncpod::app
