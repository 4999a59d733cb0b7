#include "syncpod/core/migrator.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "pg_test_support.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

class MigratorTest : public testing::PgTest {
 protected:
  MigratorTest() { migrate_ = false; }

  /// A scratch migrations directory, removed afterwards.
  std::filesystem::path directory(const std::vector<std::pair<std::string, std::string>>& files) {
    auto path = std::filesystem::temp_directory_path() /
                ("syncpod_migrations_" + std::to_string(::getpid()) + "_" + target_.schema);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
    for (const auto& [name, sql] : files) std::ofstream(path / name) << sql;
    directories_.push_back(path);
    return path;
  }

  void TearDown() override {
    for (const auto& path : directories_) std::filesystem::remove_all(path);
    PgTest::TearDown();
  }

  std::vector<std::filesystem::path> directories_;
};

TEST_F(MigratorTest, AppliesEmbeddedMigrationsThenIsANoOp) {
  const auto migrations = embeddedMigrations();
  ASSERT_FALSE(migrations.empty());
  Migrator migrator(target_, migrations);
  EXPECT_EQ(migrator.pending().size(), migrations.size());

  const auto first = migrator.apply();
  EXPECT_TRUE(first.applied_before.empty());
  EXPECT_EQ(first.applied_now.size(), migrations.size());
  EXPECT_TRUE(migrator.pending().empty());
  EXPECT_NO_THROW(migrator.requireCurrent());

  const auto second = migrator.apply();
  EXPECT_TRUE(second.applied_now.empty());
  EXPECT_EQ(second.applied_before.size(), migrations.size());
  EXPECT_EQ(testing::queryScalar(target_, "SELECT count(*) FROM schema_migrations"),
            std::to_string(migrations.size()));
  // The KEDA query answers on a fresh schema.
  EXPECT_EQ(testing::queryScalar(target_, "SELECT count FROM desired_pod_count"), "0");
}

TEST_F(MigratorTest, IntegrationInsertedFromAnotherSearchPathGetsItsLane) {
  Migrator(target_, embeddedMigrations()).apply();
  // An operator's psql session or another tool does not set our search_path.
  pqxx::connection connection(target_.url);
  pqxx::nontransaction tx(connection);
  tx.exec("SET search_path TO public");
  tx.exec("INSERT INTO " + connection.quote_name(target_.schema) + ".integrations (name) VALUES ('x')");
  EXPECT_EQ(testing::queryScalar(target_, "SELECT count(*) FROM job_lanes"), "1");
}

TEST_F(MigratorTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> applied{0};
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        applied += static_cast<int>(Migrator(target_, embeddedMigrations()).apply().applied_now.size());
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(applied.load(), static_cast<int>(embeddedMigrations().size()));
}

TEST_F(MigratorTest, RefusesAChangedAppliedMigration) {
  const auto original = directory({{"0001_create_things.sql", "CREATE TABLE things (id int);"}});
  Migrator(target_, migrationsFromDirectory(original)).apply();

  const auto changed = directory({{"0001_create_things.sql", "CREATE TABLE things (id bigint);"}});
  Migrator migrator(target_, migrationsFromDirectory(changed));
  try {
    migrator.apply();
    FAIL() << "expected MigrationError";
  } catch (const MigrationError& error) {
    EXPECT_NE(std::string(error.what()).find("0001_create_things.sql was changed"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(migrator.requireCurrent(), MigrationError);
}

TEST_F(MigratorTest, RequireCurrentNamesMissingVersions) {
  const auto one = directory({{"0001_create_a.sql", "CREATE TABLE a (id int);"}});
  Migrator(target_, migrationsFromDirectory(one)).apply();
  const auto three = directory({{"0001_create_a.sql", "CREATE TABLE a (id int);"},
                                {"0002_create_b.sql", "CREATE TABLE b (id int);"},
                                {"0003_create_c.sql", "CREATE TABLE c (id int);"}});
  try {
    Migrator(target_, migrationsFromDirectory(three)).requireCurrent();
    FAIL() << "expected MigrationError";
  } catch (const MigrationError& error) {
    EXPECT_NE(std::string(error.what()).find("0002, 0003"), std::string::npos) << error.what();
  }
}

TEST_F(MigratorTest, FailedMigrationRollsBackAndKeepsEarlierOnes) {
  const auto files = directory({{"0001_create_a.sql", "CREATE TABLE a (id int);"},
                                {"0002_break_things.sql",
                                 "CREATE TABLE b (id int); SELECT * FROM no_such_table;"}});
  Migrator migrator(target_, migrationsFromDirectory(files));
  try {
    migrator.apply();
    FAIL() << "expected MigrationError";
  } catch (const MigrationError& error) {
    EXPECT_NE(std::string(error.what()).find("0002_break_things.sql failed"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(testing::queryScalar(target_, "SELECT string_agg(version::text, ',') FROM schema_migrations"),
            "1");
  EXPECT_EQ(testing::queryScalar(target_, "SELECT to_regclass('b') IS NULL"), "t");
}

TEST_F(MigratorTest, RefusesDatabaseMigratedByNewerBinary) {
  const auto two = directory({{"0001_create_a.sql", "CREATE TABLE a (id int);"},
                              {"0002_create_b.sql", "CREATE TABLE b (id int);"}});
  Migrator(target_, migrationsFromDirectory(two)).apply();
  const auto one = directory({{"0001_create_a.sql", "CREATE TABLE a (id int);"}});
  EXPECT_THROW(Migrator(target_, migrationsFromDirectory(one)).requireCurrent(), MigrationError);
}

TEST_F(MigratorTest, RefusesMalformedFileNames) {
  const auto files = directory({{"create_a.sql", "CREATE TABLE a (id int);"}});
  EXPECT_THROW(migrationsFromDirectory(files), MigrationError);
  const auto duplicate = directory({{"0001_create_a.sql", "SELECT 1;"}, {"0001_create_b.sql", "SELECT 1;"}});
  EXPECT_THROW(migrationsFromDirectory(duplicate), MigrationError);
}

}  // namespace
}  // namespace syncpod::core
