#include "pg_test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include <pqxx/pqxx>

#include "syncpod/core/migrator.hpp"

namespace syncpod::testing {
namespace {

std::string uniqueSchemaName() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "t_";
  for (char c : std::string(info != nullptr ? info->name() : "test")) {
    if (name.size() >= 40) break;
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_');
  }
  return name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

}  // namespace

std::string testDatabaseUrl() {
  const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "SYNCPOD_TEST_DATABASE_URL is not set: run the tests through scripts/test, "
                     "or export the URL printed by `scripts/pg start`";
    return "postgresql://unset.invalid/none";
  }
  return url;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::string queryScalar(const core::DatabaseTarget& target, const std::string& sql) {
  pqxx::connection connection(target.url);
  connection.set_variable("search_path", connection.quote_name(target.schema));
  pqxx::nontransaction tx(connection);
  const auto result = tx.exec(sql);
  if (result.empty() || result[0][0].is_null()) return "";
  return result[0][0].as<std::string>();
}

void execute(const core::DatabaseTarget& target, const std::string& sql) {
  pqxx::connection connection(target.url);
  connection.set_variable("search_path", connection.quote_name(target.schema));
  pqxx::nontransaction tx(connection);
  tx.exec(sql);
}

void PgTest::SetUp() {
  target_.url = testDatabaseUrl();
  target_.schema = uniqueSchemaName();
  if (migrate_) core::Migrator(target_, core::embeddedMigrations()).apply();
}

void PgTest::TearDown() {
  if (target_.url.empty()) return;
  try {
    pqxx::connection connection(target_.url);
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA IF EXISTS " + connection.quote_name(target_.schema) + " CASCADE");
  } catch (const std::exception&) {
    // The database may be the thing a test broke; the schema name is unique anyway.
  }
}

std::int64_t PgTest::createIntegration(const std::string& name) {
  return std::stoll(queryScalar(
      target_, "INSERT INTO integrations (name) VALUES ('" + name + "') RETURNING id"));
}

}  // namespace syncpod::testing
