#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "syncpod/core/settings.hpp"

namespace syncpod::app {

/// An option one command accepts besides the settings: a flag (`--json`), or with `argument`
/// set, an option with a value (`--scope=write`).
struct CommandSwitch {
  std::string name;  ///< without the dashes
  std::string help;
  std::string argument;  ///< the value's name in --help; empty for a flag
};

/// One `syncpod <name>` subcommand.
class Command {
 public:
  virtual ~Command() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  /// What follows `syncpod <name>` in the usage line of --help.
  virtual std::string_view usage() const { return "[--option=value ...]"; }
  /// More --help text, printed as written after the options (sub-commands, exit codes).
  virtual std::string_view details() const { return {}; }
  /// Setting keys this command reads besides the common ones (shown in its --help).
  virtual std::vector<std::string> settingKeys() const { return {}; }
  /// Switches this command accepts; each one given is passed to enableSwitch() before run().
  virtual std::vector<CommandSwitch> switches() const { return {}; }
  virtual void enableSwitch(const std::string& name, const std::string& value) {
    (void)name;
    (void)value;
  }
  /// Runs with resolved settings and positional arguments; returns the exit code. Startup
  /// errors are thrown as core::StartupError and printed by the application as one line.
  virtual int run(const core::Settings& settings, const std::vector<std::string>& args) = 0;
};

using CommandPtr = std::unique_ptr<Command>;

CommandPtr makeMigrateCommand();
CommandPtr makePluginsCommand();
CommandPtr makeServeCommand();
CommandPtr makeRunJobCommand();
CommandPtr makeTokensCommand();
CommandPtr makeJobsCommand();
CommandPtr makeSyncCommand();
CommandPtr makeScalingCommand();
CommandPtr makeScalerCommand();
CommandPtr makeSimulateCommand();

}  // namespace syncpod::app
