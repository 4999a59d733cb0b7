#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "command.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/migrator.hpp"

namespace syncpod::app {
namespace {

std::string versionText(int version) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%04d", version);
  return buffer;
}

/// `syncpod migrate`: brings the installation schema up to this binary's migrations.
class MigrateCommand final : public Command {
 public:
  std::string_view name() const override { return "migrate"; }
  std::string_view summary() const override {
    return "apply pending schema migrations (safe to run concurrently; a no-op when current)";
  }
  std::vector<std::string> settingKeys() const override { return {"migrations_dir"}; }

  int run(const core::Settings& settings, const std::vector<std::string>&) override {
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    const auto directory = settings.get("migrations_dir");
    auto migrations =
        directory.empty() ? core::embeddedMigrations() : core::migrationsFromDirectory(directory);
    const int latest = migrations.empty() ? 0 : migrations.back().version;

    core::Migrator migrator(target, std::move(migrations));
    const auto report = migrator.apply();
    if (report.applied_now.empty()) {
      std::cout << "schema " << target.schema << " is current (version " << versionText(latest)
                << ")\n";
    } else {
      std::cout << "schema " << target.schema << ": applied " << report.applied_now.size()
                << " migration(s), now at version " << versionText(latest) << "\n";
    }
    return 0;
  }
};

}  // namespace

CommandPtr makeMigrateCommand() { return std::make_unique<MigrateCommand>(); }

}  // namespace syncpod::app
