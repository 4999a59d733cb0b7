// One call into a plugin, seen from the host: the syncpod_host table the plugin receives, the
// C callbacks behind it, and how the call's outcome becomes a Result. Private to host/core.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncpod/abi.h>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core::detail {

/// Replaces known secret values in messages by "***".
class Redactor {
 public:
  void add(std::string_view secret);
  std::string apply(std::string_view message) const;

 private:
  std::vector<std::string> secrets_;
};

/// The host side of one plugin call. Build it, then call the plugin function inside run(),
/// passing it host(). Lives on the caller's stack for exactly one call; not shareable between
/// threads.
class PluginCall {
 public:
  /// Answers one document the plugin emitted; anything but SYNCPOD_OK tells it to stop.
  /// A handler that finds the document unusable calls outputError() first.
  using EmitHandler = std::function<syncpod_status(std::string_view document)>;

  /// `operation` names the call in messages ("fetch"); `redactor` is the endpoint's (its config
  /// secrets); secrets handed out during the call are added to a copy of it.
  PluginCall(std::string_view plugin_id, std::string_view operation, const CallHooks& hooks,
             const Redactor& redactor);
  ~PluginCall();
  PluginCall(const PluginCall&) = delete;
  PluginCall& operator=(const PluginCall&) = delete;

  /// The table to pass to the plugin; valid while this object lives.
  const syncpod_host* host() const { return &host_; }

  void setEmitHandler(EmitHandler handler) { emit_ = std::move(handler); }

  /// The plugin's output cannot be used; this outranks whatever status the plugin returns.
  void outputError(std::string message);
  /// The host wants the call to stop (cancelled() answers true from now on); the call ends as
  /// Cancelled whatever the plugin returns.
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  /// Runs `body` (which calls the plugin and returns its status), catching what a plugin lets
  /// escape, and turns the result into an Error, or nullopt on success.
  std::optional<Error> run(const std::function<syncpod_status()>& body);

  /// An Internal error naming the plugin and operation, for checks made after the call.
  Error internal(std::string_view what) const;

  /// The message prefixed with the plugin id, secrets removed.
  std::string message(std::string_view text) const;

 private:
  static void logThunk(void* context, syncpod_log_level level, syncpod_bytes message) noexcept;
  static void progressThunk(void* context, syncpod_bytes counter, std::int64_t delta) noexcept;
  static int cancelledThunk(void* context) noexcept;
  static syncpod_status secretThunk(void* context, syncpod_bytes name,
                                    syncpod_bytes* value) noexcept;
  static syncpod_status emitThunk(void* context, syncpod_bytes document) noexcept;
  static void failThunk(void* context, syncpod_bytes message) noexcept;

  std::optional<Error> outcome(syncpod_status status) const;

  std::string plugin_id_;
  std::string operation_;
  const CallHooks& hooks_;
  Redactor redactor_;
  syncpod_host host_{};
  EmitHandler emit_;
  std::optional<std::string> failure_;
  std::optional<std::string> output_error_;
  std::optional<std::string> hook_error_;
  /// Secret values handed to the plugin: stable addresses, valid until the call returns.
  std::deque<std::string> secrets_;
  bool stopped_ = false;
};

/// The text of a borrowed byte range; empty for a NULL range.
std::string_view view(syncpod_bytes bytes);

}  // namespace syncpod::core::detail
