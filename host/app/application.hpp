#pragma once

#include <map>
#include <string>
#include <vector>

#include <Poco/Util/Application.h>

#include "command.hpp"

namespace syncpod::app {

/// Runs one subcommand: defines its options, resolves settings (flags > environment > config
/// file > default), sets up logging and hands over. Start-up errors end as one stderr line.
class SyncpodApplication final : public Poco::Util::Application {
 public:
  explicit SyncpodApplication(Command& command);

 protected:
  void defineOptions(Poco::Util::OptionSet& options) override;
  void handleOption(const std::string& name, const std::string& value) override;
  int main(const std::vector<std::string>& args) override;

 private:
  std::vector<std::string> settingKeys() const;
  bool isSwitch(const std::string& name) const;
  void printHelp() const;

  Command& command_;
  bool help_requested_ = false;
  std::string config_file_;
  std::map<std::string, std::string> flags_;
};

/// `syncpod --help`: the commands and where to read more.
void printOverview(const std::vector<CommandPtr>& commands);

}  // namespace syncpod::app
