// What the postgres connector's database tests share: the test database's URL, a libpq
// connection to set up and inspect data without the plugin, and schema names unique per test.
// Tests only.
#pragma once

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <libpq-fe.h>

namespace syncpod::plugins::postgres::pgtest {

/// SYNCPOD_TEST_DATABASE_URL; throws std::runtime_error when it is unset, so that a database
/// test fails (never skips) without a database.
inline std::string testDatabaseUrl() {
  const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    throw std::runtime_error(
        "SYNCPOD_TEST_DATABASE_URL is not set: run the tests through scripts/test, or export the "
        "URL printed by `scripts/pg start`");
  }
  return url;
}

/// A libpq connection for setting up and inspecting test data. SQL that fails is a test
/// failure (ADD_FAILURE), not an exception.
class Sql {
 public:
  explicit Sql(const std::string& url) : connection_(PQconnectdb(url.c_str())) {
    if (PQstatus(connection_) != CONNECTION_OK) {
      ADD_FAILURE() << "cannot connect to the test database: " << PQerrorMessage(connection_);
    }
    PQsetNoticeProcessor(
        connection_, [](void*, const char*) {}, nullptr);  // DROP … CASCADE
  }
  ~Sql() { PQfinish(connection_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  /// Runs SQL (several statements allowed); returns the rows as "a|b" lines joined by '\n'.
  std::string operator()(const std::string& sql) {
    PGresult* result = PQexec(connection_, sql.c_str());
    std::string text;
    const auto status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      ADD_FAILURE() << "SQL failed: " << PQerrorMessage(connection_) << "\n" << sql;
    } else {
      for (int row = 0; row < PQntuples(result); ++row) {
        if (row > 0) text += '\n';
        for (int column = 0; column < PQnfields(result); ++column) {
          if (column > 0) text += '|';
          text += PQgetisnull(result, row, column) ? "NULL" : PQgetvalue(result, row, column);
        }
      }
    }
    PQclear(result);
    return text;
  }

 private:
  PGconn* connection_;
};

/// A schema name no other test uses, even in parallel: "pgc_<test name>_<pid>_<n>".
inline std::string uniqueSchema() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "pgc_";
  for (const char c : std::string(info != nullptr ? info->name() : "test")) {
    if (name.size() >= 36) break;
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c))
                                                               : '_');
  }
  return name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

}  // namespace syncpod::plugins::postgres::pgtest
