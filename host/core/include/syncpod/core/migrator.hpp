#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "syncpod/core/database.hpp"

namespace syncpod::core {

/// One forward-only schema change: migrations/NNNN_verb_noun.sql.
struct Migration {
  int version = 0;       ///< NNNN
  std::string name;      ///< file name, e.g. "0001_create_queue.sql"
  std::string sql;
  std::string checksum;  ///< SHA-256 of the SQL text, hex
};

/// The migrations compiled into this binary, in version order.
std::vector<Migration> embeddedMigrations();

/// Reads NNNN_*.sql files from a directory, in version order. Throws MigrationError on a
/// malformed file name or a duplicate version.
std::vector<Migration> migrationsFromDirectory(const std::filesystem::path& directory);

/// What `migrate` did or would do.
struct MigrationReport {
  std::vector<int> applied_before;  ///< versions already recorded in schema_migrations
  std::vector<int> applied_now;     ///< versions this run applied
};

/// Applies and checks migrations for one installation schema.
class Migrator {
 public:
  Migrator(DatabaseTarget target, std::vector<Migration> migrations);

  /// Creates the schema if needed and applies every pending migration in order, each in its
  /// own transaction, holding an advisory lock so concurrent migrators run one after the
  /// other. Throws MigrationError when an applied migration's checksum differs from the file,
  /// or the database knows versions this binary does not; DatabaseUnavailable when it cannot
  /// connect.
  MigrationReport apply();

  /// Throws MigrationError naming the missing versions when the schema is behind, or a
  /// checksum differs; serve calls this before starting any role.
  void requireCurrent();

  /// Versions known to this binary and not yet applied.
  std::vector<int> pending();

 private:
  DatabaseTarget target_;
  std::vector<Migration> migrations_;
};

}  // namespace syncpod::core
