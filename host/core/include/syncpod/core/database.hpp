#pragma once

#include <string>

namespace syncpod::core {

/// Where an installation keeps its state: a libpq URL and the schema all tables live in.
/// Cheap to copy; opening connections is the job of the classes that take it.
struct DatabaseTarget {
  std::string url;                 ///< libpq URL or keyword/value string; may hold a password
  std::string schema = "syncpod";  ///< one schema per installation
  /// Who connects (worker, job, singleton…): pg_stat_activity shows each connection's
  /// application_name as syncpod:<schema>, or syncpod:<schema>:<client> when set.
  std::string client;

  /// The URL with any password replaced by "***", for messages and logs.
  std::string redactedUrl() const;

  /// Throws ConfigError when the URL is empty or the schema is not a plain identifier
  /// ([a-z_][a-z0-9_]*, at most 63 bytes).
  void validate() const;
};

/// Opens a connection and runs `SELECT 1`; throws DatabaseUnavailable with a one-line message.
void checkDatabaseReachable(const DatabaseTarget& target);

}  // namespace syncpod::core
