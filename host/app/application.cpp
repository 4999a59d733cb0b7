#include "application.hpp"

#include <algorithm>
#include <csignal>
#include <iostream>

#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>

#include "syncpod/core/errors.hpp"
#include "syncpod/core/logging.hpp"

namespace syncpod::app {
namespace {

// Settings every command reads.
const std::vector<std::string> kCommonKeys = {"database_url", "schema", "log_format", "log_level"};

std::string flagOf(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

std::string keyOf(std::string flag) {
  std::replace(flag.begin(), flag.end(), '-', '_');
  return flag;
}

const core::SettingSpec& specOf(const std::string& key) {
  for (const auto& spec : core::settingSpecs()) {
    if (spec.key == key) return spec;
  }
  throw core::StartupError("internal: no setting named " + key);
}

}  // namespace

SyncpodApplication::SyncpodApplication(Command& command) : command_(command) {
  setUnixOptions(true);
  // Poco's Application installs handlers that turn SIGSEGV, SIGBUS, SIGILL and SIGSYS into
  // abort(). A crash must keep its own signal: the worker reports it as the job's error, and a
  // core dump shows where it happened.
  for (const int crash : {SIGSEGV, SIGBUS, SIGILL, SIGSYS}) std::signal(crash, SIG_DFL);
}

std::vector<std::string> SyncpodApplication::settingKeys() const {
  auto keys = kCommonKeys;
  for (const auto& key : command_.settingKeys()) keys.push_back(key);
  return keys;
}

void SyncpodApplication::defineOptions(Poco::Util::OptionSet& options) {
  options.addOption(Poco::Util::Option("help", "h", "show this help and exit"));
  options.addOption(Poco::Util::Option("config", "", "read settings from this file "
                                                     "(.properties, .ini or .json); env SYNCPOD_CONFIG")
                        .argument("file"));
  for (const auto& key : settingKeys()) {
    const auto& spec = specOf(key);
    std::string description = spec.help + "; env " + spec.env;
    if (!spec.default_value.empty()) description += ", default " + spec.default_value;
    options.addOption(Poco::Util::Option(flagOf(key), "", description).argument("value"));
  }
  for (const auto& flag : command_.switches()) {
    Poco::Util::Option option(flag.name, "", flag.help);
    if (!flag.argument.empty()) option.argument(flag.argument);
    options.addOption(option);
  }
}

void SyncpodApplication::handleOption(const std::string& name, const std::string& value) {
  Poco::Util::Application::handleOption(name, value);
  if (name == "help") {
    help_requested_ = true;
    stopOptionsProcessing();
  } else if (name == "config") {
    config_file_ = value;
  } else if (isSwitch(name)) {
    command_.enableSwitch(name, value);
  } else {
    flags_[keyOf(name)] = value;
  }
}

bool SyncpodApplication::isSwitch(const std::string& name) const {
  const auto flags = command_.switches();
  return std::any_of(flags.begin(), flags.end(),
                     [&](const CommandSwitch& flag) { return flag.name == name; });
}

void SyncpodApplication::printHelp() const {
  Poco::Util::HelpFormatter help(options());
  help.setUnixStyle(true);
  help.setWidth(100);
  help.setCommand("syncpod " + std::string(command_.name()));
  help.setUsage(std::string(command_.usage()));
  help.setHeader(std::string(command_.summary()));
  help.setFooter(
      "Settings come from flags, then environment variables, then the config file, then "
      "defaults. Config-file keys are the flag names with '_' for '-' (database_url = ...).");
  help.format(std::cout);
  // Printed as written: the formatter would re-flow its columns.
  if (!command_.details().empty()) std::cout << '\n' << command_.details();
}

int SyncpodApplication::main(const std::vector<std::string>& args) {
  if (help_requested_) {
    printHelp();
    return EXIT_OK;
  }
  try {
    auto environment = core::Settings::processEnvironment();
    std::string config_file = config_file_;
    if (config_file.empty()) {
      if (auto found = environment.find("SYNCPOD_CONFIG"); found != environment.end()) {
        config_file = found->second;
      }
    }
    const auto settings = core::Settings::resolve(flags_, environment, config_file);
    core::initLogging(core::parseLogFormat(settings.get("log_format")), settings.get("log_level"));
    return command_.run(settings, args);
  } catch (const core::StartupError& error) {
    std::cerr << "syncpod " << command_.name() << ": " << error.what() << '\n';
    return EXIT_CONFIG;
  } catch (const std::exception& error) {
    std::cerr << "syncpod " << command_.name() << ": unexpected error: " << error.what() << '\n';
    return EXIT_SOFTWARE;
  }
}

void printOverview(const std::vector<CommandPtr>& commands) {
  std::cout << "syncpod " SYNCPOD_VERSION " — runs synchronizations between systems through "
               "connector plugins.\n\n"
               "usage: syncpod <command> [--option=value ...]\n\ncommands:\n";
  for (const auto& command : commands) {
    std::string name(command->name());
    name.resize(std::max<std::size_t>(name.size(), 10), ' ');
    std::cout << "  " << name << "  " << command->summary() << '\n';
  }
  std::cout << "\n`syncpod <command> --help` lists a command's options. "
               "Documentation: docs/ (start with docs/architecture.md).\n";
}

}  // namespace syncpod::app
