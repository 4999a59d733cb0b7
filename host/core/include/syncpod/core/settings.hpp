#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncpod::core {

/// One setting every command understands, with its flag, environment variable and default.
struct SettingSpec {
  std::string key;           ///< config-file key and flag name with '_' → '-' (database_url)
  std::string env;           ///< environment variable (SYNCPOD_DATABASE_URL)
  std::string default_value; ///< empty: no default
  std::string help;
  bool secret = false;       ///< never echoed (the database URL may carry a password)
};

/// The settings syncpod knows; anything else in a config file is an error.
const std::vector<SettingSpec>& settingSpecs();

/// Where plugins are looked for when plugin_path is not set: `lib/syncpod/plugins` beside the
/// running executable's `bin/` (<exe dir>/../lib/syncpod/plugins), the layout of both the build
/// tree and an installation. Empty if the executable's location cannot be read.
std::string defaultPluginDirectory();

/// Parses a duration such as "250ms", "30s", "5m", "2h", "14d" or plain seconds ("45"); nullopt
/// when it is not one. Zero is a duration here; Settings::duration() also refuses it.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

/// Resolved configuration: flags > environment > config file > default. Remembers where each
/// value came from, so errors can say which source to fix. plugin_path defaults to
/// defaultPluginDirectory().
class Settings {
 public:
  using Environment = std::map<std::string, std::string>;

  /// `flags` are keys from settingSpecs() given on the command line. `config_file` may be
  /// empty; otherwise it is read as Java-style properties (.properties), INI (.ini) or JSON
  /// (.json). Throws ConfigError on an unreadable file or an unknown key in it.
  static Settings resolve(const std::map<std::string, std::string>& flags,
                          const Environment& environment, const std::string& config_file);

  /// The process environment, for resolve().
  static Environment processEnvironment();

  /// The value or "" when unset.
  std::string get(std::string_view key) const;
  /// Where get(key) came from: "--database-url", "SYNCPOD_DATABASE_URL", "config file
  /// /etc/syncpod.properties", "default" or "unset".
  std::string sourceOf(std::string_view key) const;

  /// Parses a positive duration such as "30s", "5m", "250ms", "2h" or plain seconds; throws
  /// ConfigError naming the setting and its source.
  std::chrono::milliseconds duration(std::string_view key) const;
  /// Parses a size such as "512MiB", "2GiB", "1GB" or a plain number of bytes; nullopt when
  /// unset. Throws ConfigError naming the setting and its source.
  std::optional<unsigned long long> byteSize(std::string_view key) const;
  /// Parses an integer in [min, max]; throws ConfigError naming the setting and its source.
  long long integer(std::string_view key, long long min, long long max) const;

 private:
  struct Value {
    std::string value;
    std::string source;
  };
  std::map<std::string, Value, std::less<>> values_;
};

}  // namespace syncpod::core
