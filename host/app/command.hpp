#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "syncpod/core/settings.hpp"

namespace syncpod::app {

/// One `syncpod <name>` subcommand.
class Command {
 public:
  virtual ~Command() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  /// Setting keys this command reads besides the common ones (shown in its --help).
  virtual std::vector<std::string> settingKeys() const { return {}; }
  /// Runs with resolved settings and positional arguments; returns the exit code. Startup
  /// errors are thrown as core::StartupError and printed by the application as one line.
  virtual int run(const core::Settings& settings, const std::vector<std::string>& args) = 0;
};

using CommandPtr = std::unique_ptr<Command>;

CommandPtr makeMigrateCommand();
CommandPtr makeServeCommand();

}  // namespace syncpod::app
