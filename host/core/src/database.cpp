#include "syncpod/core/database.hpp"

#include <regex>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {

std::string DatabaseTarget::redactedUrl() const {
  // URI userinfo (scheme://user:secret@host), query (?password=secret) and keyword/value
  // (password=secret) forms.
  static const std::regex kUserInfo(R"(^([a-z]+://[^/:@]*):[^@/]*@)", std::regex::icase);
  static const std::regex kKeyword(R"((password\s*=\s*)('[^']*'|[^\s&]+))", std::regex::icase);
  std::string redacted = std::regex_replace(url, kUserInfo, "$1:***@");
  return std::regex_replace(redacted, kKeyword, "$1***");
}

void DatabaseTarget::validate() const {
  if (url.empty()) {
    throw ConfigError(
        "no database URL: set --database-url, SYNCPOD_DATABASE_URL or database_url in the "
        "config file (e.g. postgresql://user@127.0.0.1:5432/syncpod)");
  }
  static const std::regex kIdentifier("[a-z_][a-z0-9_]{0,62}");
  if (!std::regex_match(schema, kIdentifier)) {
    throw ConfigError("invalid schema name '" + schema +
                      "': use lower-case letters, digits and '_' (at most 63), not starting "
                      "with a digit");
  }
}

void checkDatabaseReachable(const DatabaseTarget& target) {
  auto connection = pg::connect(target);
  try {
    pqxx::nontransaction tx(*connection);
    tx.exec("SELECT 1");
  } catch (const std::exception& error) {
    throw DatabaseUnavailable("PostgreSQL at " + target.redactedUrl() +
                              " does not answer: " + pg::oneLine(error.what()));
  }
}

}  // namespace syncpod::core
