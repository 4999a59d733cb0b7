// syncpod: one binary, every role and tool. This is the only place that sees them all.

#include <iostream>
#include <string>
#include <vector>

#include <Poco/Exception.h>

#include "application.hpp"
#include "command.hpp"
#include "signals.hpp"

int main(int argc, char** argv) {
  using namespace syncpod::app;
  // Before any thread exists, so only the waiting thread ever receives SIGTERM/SIGINT.
  blockTerminationSignals();

  std::vector<CommandPtr> commands;
  commands.push_back(makeMigrateCommand());
  commands.push_back(makePluginsCommand());
  commands.push_back(makeServeCommand());
  commands.push_back(makeTokensCommand());
  commands.push_back(makeJobsCommand());
  commands.push_back(makeSyncCommand());
  commands.push_back(makeScalingCommand());
  commands.push_back(makeScalerCommand());
  commands.push_back(makeSimulateCommand());
  commands.push_back(makeRunJobCommand());

  const std::string first = argc > 1 ? argv[1] : "";
  if (first.empty() || first == "--help" || first == "-h" || first == "help") {
    printOverview(commands);
    return first.empty() ? 64 : 0;
  }
  if (first == "--version" || first == "version") {
    std::cout << "syncpod " SYNCPOD_VERSION "\n";
    return 0;
  }

  for (auto& command : commands) {
    if (command->name() != first) continue;
    // The command's own arguments, with argv[0] kept for Poco's application path.
    std::vector<char*> rest{argv[0]};
    for (int i = 2; i < argc; ++i) rest.push_back(argv[i]);
    SyncpodApplication application(*command);
    try {
      application.init(static_cast<int>(rest.size()), rest.data());
    } catch (const Poco::Exception& error) {
      std::cerr << "syncpod " << first << ": " << error.displayText() << "; see `syncpod " << first
                << " --help`\n";
      return 64;
    }
    return application.run();
  }
  std::cerr << "syncpod: unknown command '" << first << "'; see `syncpod --help`\n";
  return 64;
}
