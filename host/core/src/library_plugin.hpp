// A plugin loaded from a shared library: its table, manifest and the library handle that keeps
// its code mapped. Private to host/core (plugin_registry.cpp loads it, endpoint.cpp calls it).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <syncpod/abi.h>

#include "plugin_call.hpp"
#include "syncpod/core/plugins.hpp"

namespace syncpod::core::detail {

/// Bytes of the ABI 1.0 plugin table: a plugin table smaller than this lacks required members.
/// Written out (not sizeof) so that members a later minor appends do not change it.
inline constexpr std::size_t kPluginTableV1Size = offsetof(syncpod_plugin, apply) + sizeof(void*);

class LibraryPlugin final : public Plugin, public std::enable_shared_from_this<LibraryPlugin> {
 public:
  /// `library` keeps the shared library loaded; `table` is the plugin's table, already checked
  /// (versions, size, required functions); `manifest_json` passed manifestProblems.
  LibraryPlugin(std::shared_ptr<const void> library, const syncpod_plugin& table, std::string path,
                Json manifest_json, Manifest manifest);

  const Manifest& manifest() const override { return manifest_; }
  const Json& manifestJson() const override { return manifest_json_; }
  const std::string& path() const override { return path_; }
  std::uint32_t abiMajor() const override { return table_.abi_major; }
  std::uint32_t abiMinor() const override { return table_.abi_minor; }
  bool hasCustomDiff() const override { return table_.diff != nullptr; }
  Result<EndpointPtr> open(const Json& config, const CallHooks& hooks) const override;

  const std::string& id() const { return manifest_.id; }
  /// The ABI 1.0 members of the plugin's table (copied at load).
  const syncpod_plugin& table() const { return table_; }
  /// A redactor that knows the secrets (writeOnly properties) of `config`.
  Redactor redactorFor(const Json& config) const;

 private:
  // Declared first so it is destroyed last: everything below may point into the library.
  std::shared_ptr<const void> library_;
  syncpod_plugin table_{};
  std::string path_;
  Json manifest_json_;
  Manifest manifest_;
};

}  // namespace syncpod::core::detail
