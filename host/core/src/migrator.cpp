#include "syncpod/core/migrator.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>
#include <spdlog/spdlog.h>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {

// Defined in the source generated from migrations/*.sql (cmake/EmbedMigrations.cmake).
std::vector<std::pair<std::string_view, std::string_view>> embeddedMigrationFiles();

namespace {

std::string sha256Hex(const std::string& text) {
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(text);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

Migration makeMigration(std::string name, std::string sql) {
  static const std::regex kName(R"(([0-9]{4})_[a-z0-9_]+\.sql)");
  std::smatch match;
  if (!std::regex_match(name, match, kName)) {
    throw MigrationError("migration file name '" + name +
                         "' does not follow NNNN_verb_noun.sql (four digits, lower-case words)");
  }
  Migration migration;
  migration.version = std::stoi(match[1].str());
  migration.checksum = sha256Hex(sql);
  migration.name = std::move(name);
  migration.sql = std::move(sql);
  return migration;
}

std::vector<Migration> sortedChecked(std::vector<Migration> migrations) {
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version == migrations[i - 1].version) {
      throw MigrationError("two migrations share version " +
                           std::to_string(migrations[i].version) + ": " + migrations[i - 1].name +
                           " and " + migrations[i].name);
    }
  }
  return migrations;
}

std::string joinVersions(const std::vector<int>& versions) {
  std::string text;
  for (int version : versions) {
    if (!text.empty()) text += ", ";
    char buffer[16];
    std::snprintf(buffer, sizeof(buffer), "%04d", version);
    text += buffer;
  }
  return text;
}

struct AppliedMigration {
  std::string name;
  std::string checksum;
};

constexpr const char* kCreateHistory =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/// Reads schema_migrations; an absent table means nothing is applied.
std::map<int, AppliedMigration> readApplied(pqxx::connection& connection,
                                            const std::string& schema) try {
  pqxx::nontransaction tx(connection);
  const auto exists = tx.exec_params(
      "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations'", schema);
  std::map<int, AppliedMigration> applied;
  if (exists.empty()) return applied;
  for (const auto& row : tx.exec("SELECT version, name, checksum FROM schema_migrations")) {
    applied[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
  }
  return applied;
} catch (const pqxx::broken_connection& error) {
  throw DatabaseUnavailable("lost PostgreSQL while reading schema_migrations: " +
                            pg::oneLine(error.what()));
} catch (const pqxx::sql_error& error) {
  throw MigrationError("cannot read schema_migrations of schema '" + schema +
                       "': " + pg::oneLine(error.what()));
}

/// Refuses changed files and versions this binary does not know; returns what is pending.
std::vector<const Migration*> checkHistory(const std::vector<Migration>& migrations,
                                           const std::map<int, AppliedMigration>& applied) {
  std::set<int> known;
  std::vector<const Migration*> pending;
  for (const auto& migration : migrations) {
    known.insert(migration.version);
    const auto found = applied.find(migration.version);
    if (found == applied.end()) {
      pending.push_back(&migration);
    } else if (found->second.checksum != migration.checksum) {
      throw MigrationError("migration " + migration.name +
                           " was changed after it was applied (checksum " +
                           found->second.checksum.substr(0, 12) + "… in the database, " +
                           migration.checksum.substr(0, 12) +
                           "… now); applied migrations are forward-only: restore the file and "
                           "put the change in a new migration");
    }
  }
  std::vector<int> unknown;
  for (const auto& [version, row] : applied) {
    if (known.count(version) == 0) unknown.push_back(version);
  }
  if (!unknown.empty()) {
    throw MigrationError("the database has migrations this binary does not know (" +
                         joinVersions(unknown) + "); it was migrated by a newer syncpod");
  }
  return pending;
}

}  // namespace

std::vector<Migration> embeddedMigrations() {
  std::vector<Migration> migrations;
  for (const auto& [name, sql] : embeddedMigrationFiles()) {
    migrations.push_back(makeMigration(std::string(name), std::string(sql)));
  }
  return sortedChecked(std::move(migrations));
}

std::vector<Migration> migrationsFromDirectory(const std::filesystem::path& directory) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    throw MigrationError("migrations directory " + directory.string() + " does not exist");
  }
  std::vector<Migration> migrations;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
    std::ifstream file(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    if (!file) throw MigrationError("cannot read " + entry.path().string());
    migrations.push_back(makeMigration(entry.path().filename().string(), text.str()));
  }
  return sortedChecked(std::move(migrations));
}

Migrator::Migrator(DatabaseTarget target, std::vector<Migration> migrations)
    : target_(std::move(target)), migrations_(sortedChecked(std::move(migrations))) {}

MigrationReport Migrator::apply() {
  auto connection = pg::connect(target_);
  MigrationReport report;
  try {
    pqxx::nontransaction session(*connection);
    // A session lock per schema: a second migrator waits here, then finds nothing to do.
    session.exec_params("SELECT pg_advisory_lock(hashtextextended('syncpod.migrate:' || $1, 0))",
                        target_.schema);
    session.exec("CREATE SCHEMA IF NOT EXISTS " + connection->quote_name(target_.schema));
    session.exec(kCreateHistory);
    session.commit();
  } catch (const pqxx::broken_connection& error) {
    throw DatabaseUnavailable("lost PostgreSQL at " + target_.redactedUrl() + ": " +
                              pg::oneLine(error.what()));
  } catch (const std::exception& error) {
    throw MigrationError("cannot prepare schema '" + target_.schema +
                         "': " + pg::oneLine(error.what()));
  }

  const auto applied = readApplied(*connection, target_.schema);
  for (const auto& [version, row] : applied) report.applied_before.push_back(version);
  for (const Migration* migration : checkHistory(migrations_, applied)) {
    try {
      pqxx::work tx(*connection);
      tx.exec(migration->sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                     migration->version, migration->name, migration->checksum);
      tx.commit();
    } catch (const std::exception& error) {
      throw MigrationError("migration " + migration->name + " failed and was rolled back: " +
                           pg::oneLine(error.what()));
    }
    spdlog::info("applied migration {}", migration->name);
    report.applied_now.push_back(migration->version);
  }
  // Closing the connection releases the advisory lock.
  return report;
}

std::vector<int> Migrator::pending() {
  auto connection = pg::connect(target_);
  std::vector<int> versions;
  for (const Migration* migration : checkHistory(migrations_, readApplied(*connection, target_.schema))) {
    versions.push_back(migration->version);
  }
  return versions;
}

void Migrator::requireCurrent() {
  const auto missing = pending();
  if (!missing.empty()) {
    throw MigrationError("schema '" + target_.schema + "' is behind: migrations " +
                         joinVersions(missing) + " are not applied; run `syncpod migrate`");
  }
}

}  // namespace syncpod::core
