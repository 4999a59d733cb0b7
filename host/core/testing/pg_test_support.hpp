#pragma once
// Test support for *_pgtest.cpp: a private, migrated schema per test on the PostgreSQL
// cluster named by SYNCPOD_TEST_DATABASE_URL (scripts/test starts one and sets it).

#include <chrono>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "syncpod/core/database.hpp"

namespace syncpod::testing {

/// The test cluster's URL; fails the calling test when SYNCPOD_TEST_DATABASE_URL is unset, so
/// a run without a database cannot pass silently.
std::string testDatabaseUrl();

/// Runs SQL on the test database outside any fixture schema (setup, inspection). Returns the
/// first column of the first row as text ("" when there is none or it is NULL).
std::string queryScalar(const core::DatabaseTarget& target, const std::string& sql);

/// Runs SQL (may be several statements) with search_path set to the target's schema.
void execute(const core::DatabaseTarget& target, const std::string& sql);

/// Checks `condition` every 20 ms until it holds or `timeout` passes; whether it held. For
/// states of the database or of other processes, which nothing announces to the test.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

/// Creates a fresh schema named after the test, migrated with the embedded migrations, and
/// drops it afterwards.
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// Inserts an integration and returns its id.
  std::int64_t createIntegration(const std::string& name);

  core::DatabaseTarget target_;

  /// Set to false in a subclass to get an empty (not migrated) schema name.
  bool migrate_ = true;
};

}  // namespace syncpod::testing
