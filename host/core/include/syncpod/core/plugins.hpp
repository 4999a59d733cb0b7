#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncpod/sdk/model.hpp>

#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// What a plugin call may use of the host while it runs. Every member may be empty: a missing
/// log writes the plugin's lines to spdlog at their level, prefixed with the plugin id; a
/// missing progress ignores counts, a missing cancelled never cancels, a missing secret knows
/// no secrets. The hooks run on the calling thread, during the call; they must not throw (an
/// exception they throw is caught and the call fails with Internal).
///
/// Messages (log lines and failures) have every secret the host knows of in this call (values
/// of the config's writeOnly properties, values `secret` returned) replaced by "***".
struct CallHooks {
  std::function<void(syncpod_log_level level, std::string_view message)> log;
  std::function<void(std::string_view counter, std::int64_t delta)> progress;
  std::function<bool()> cancelled;
  std::function<std::optional<std::string>(std::string_view name)> secret;
};

/// One batch a fetch emitted: records of one stream, and the cursor reached after them (if the
/// plugin reported one with this batch).
struct RecordBatch {
  std::string stream;
  std::vector<Record> records;
  std::optional<std::string> cursor;
};

/// Receives each batch; returning false stops the fetch, which then ends as Cancelled.
using BatchHandler = std::function<bool(RecordBatch&& batch)>;

/// An open endpoint: one plugin instance with one config. It keeps its plugin's library loaded
/// for as long as it lives. Not thread-safe: use one Endpoint from one thread at a time.
///
/// Every call returns the plugin's failure as an Error: SYNCPOD_INVALID → Invalid,
/// SYNCPOD_RETRYABLE → Unavailable, SYNCPOD_UNAUTHORIZED → Unauthorized, SYNCPOD_CANCELLED →
/// Cancelled, anything else (and output the host cannot read) → Internal; the message is the
/// plugin's, prefixed with the plugin id. No method throws. Destroying the Endpoint closes the
/// plugin instance.
class Endpoint {
 public:
  virtual ~Endpoint() = default;

  virtual const std::string& pluginId() const = 0;

  /// Verifies that the foreign system is reachable and accepts the credentials.
  virtual Result<Done> check(const CallHooks& hooks) = 0;

  /// Streams the records of request.stream to `on_batch`, batch by batch.
  virtual Result<Done> fetch(const FetchRequest& request, const BatchHandler& on_batch,
                             const CallHooks& hooks) = 0;

  /// Whether the plugin compares records itself (its table has a diff function).
  virtual bool hasCustomDiff() const = 0;

  /// For each (current, desired) pair of records of `stream`, the fields of desired that differ.
  /// Uses the plugin's diff when it has one, Connector::defaultDiff otherwise.
  virtual Result<std::vector<std::vector<std::string>>> diff(
      const std::string& stream, const std::vector<std::pair<Json, Json>>& pairs,
      const CallHooks& hooks) = 0;

  /// Applies (or, in ApplyMode::Plan, plans) a changeset; one result per change, in order.
  virtual Result<std::vector<ChangeResult>> apply(const Changeset& changeset, ApplyMode mode,
                                                  const CallHooks& hooks) = 0;
};

using EndpointPtr = std::unique_ptr<Endpoint>;

/// A loaded plugin library and its manifest.
class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual const Manifest& manifest() const = 0;
  /// The manifest exactly as the plugin reported it (JSON object).
  virtual const Json& manifestJson() const = 0;
  /// The shared library it was loaded from.
  virtual const std::string& path() const = 0;
  /// ABI version the plugin was built for.
  virtual std::uint32_t abiMajor() const = 0;
  virtual std::uint32_t abiMinor() const = 0;
  /// Whether the plugin compares records itself (its table has a diff function).
  virtual bool hasCustomDiff() const = 0;

  /// Opens an endpoint with `config` (secrets resolved). Invalid names every config problem;
  /// a plugin that fails otherwise (e.g. its constructor throws) is Internal. May be called from
  /// several threads at once (the ABI lets different instances live on different threads).
  virtual Result<EndpointPtr> open(const Json& config, const CallHooks& hooks) const = 0;
};

using PluginPtr = std::shared_ptr<const Plugin>;

/// The plugin as the REST API and `syncpod plugins list --json` show it: the manifest in the
/// host's form (defaults filled in), "abi" the version the plugin was built for, and
/// "custom_diff" whether it compares records itself. Its path is left out: a caller that
/// shows it adds it.
Json pluginJson(const Plugin& plugin);

/// A plugin file that could not be loaded, and why (one line, naming the file).
struct PluginLoadError {
  std::string path;
  std::string message;
};

/// The plugins of a host: every shared library found on the plugin path, loaded once.
/// A file that fails to load is reported and skipped; the others still load.
///
/// A plugin is refused when its ABI major differs from SYNCPOD_ABI_MAJOR, its minor is newer
/// than SYNCPOD_ABI_MINOR, its table is smaller than the ABI 1.0 table or lacks a required
/// function, its manifest is invalid, or another file already provides its id. Destroying the
/// registry unloads nothing that a Plugin or Endpoint still uses. The registry itself logs
/// nothing: callers report errors() as they see fit.
class PluginRegistry {
 public:
  /// Loads every `*.so` in the given directories (sorted by name, not recursively), and any
  /// file named directly. Paths that do not exist are reported as errors. A file reached twice
  /// (the same directory listed twice, a symlink) is loaded once. Never throws for a bad file.
  static PluginRegistry load(const std::vector<std::string>& paths);

  /// Splits a SYNCPOD_PLUGIN_PATH-style list (':'-separated) into paths; empty entries are
  /// dropped.
  static std::vector<std::string> splitPath(std::string_view list);

  PluginRegistry();
  PluginRegistry(PluginRegistry&&) noexcept;
  PluginRegistry& operator=(PluginRegistry&&) noexcept;
  ~PluginRegistry();

  /// The plugin with this manifest id, or nullptr.
  PluginPtr find(std::string_view id) const;
  /// Every loaded plugin, ordered by id.
  std::vector<PluginPtr> plugins() const;
  /// Files that failed to load, in the order they were tried.
  const std::vector<PluginLoadError>& errors() const;

  /// Loads one file outside any registry (plugins inspect <path>, tests). The error is Invalid,
  /// its message the same one line load() would report.
  static Result<PluginPtr> loadFile(const std::string& path);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace syncpod::core
