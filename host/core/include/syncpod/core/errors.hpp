#pragma once

#include <stdexcept>
#include <string>

namespace syncpod::core {

/// Start-up and configuration failures: thrown, caught in main, printed as one line.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A setting is missing or malformed; the message names the setting and where it came from.
class ConfigError : public StartupError {
 public:
  using StartupError::StartupError;
};

/// The database cannot be reached or refused us; the message is one line, without secrets.
class DatabaseUnavailable : public StartupError {
 public:
  using StartupError::StartupError;
};

/// Migrations are inconsistent: a changed applied file, or a schema that is behind.
class MigrationError : public StartupError {
 public:
  using StartupError::StartupError;
};

}  // namespace syncpod::core
