// Tests of what is particular to the postgres connector, through its real shared library and
// the C ABI (the SDK test kit's PluginHandle), against the test PostgreSQL named by
// SYNCPOD_TEST_DATABASE_URL (scripts/test starts one and sets it). Each test works in a schema
// of its own and drops it at the end. postgres_conformance_pgtest.cpp runs the SDK's
// conformance suite against the connector.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <syncpod/sdk/json_schema.hpp>
#include <syncpod/sdk/manifest_check.hpp>
#include <syncpod/testkit/plugin_handle.hpp>

#include "postgres_test_support.hpp"

namespace syncpod::plugins::postgres {
namespace {

using pgtest::Sql;
using testkit::ApplyOutcome;
using testkit::Batch;
using testkit::CallOutcome;
using testkit::FetchOutcome;
using testkit::Instance;
using testkit::PluginHandle;

/// Each result's status as its ABI name ("applied", "noop", ...).
std::vector<std::string> statuses(const ApplyOutcome& outcome) {
  std::vector<std::string> names;
  for (const auto& result : outcome.results) names.emplace_back(toString(result.status));
  return names;
}

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      url_ = pgtest::testDatabaseUrl();
    } catch (const std::exception& error) {
      GTEST_FAIL() << error.what();
    }
    schema_ = pgtest::uniqueSchema();
    sql_ = std::make_unique<Sql>(url_);
    (*sql_)("CREATE SCHEMA " + schema_);
  }

  void TearDown() override {
    instance_.close();
    if (sql_) (*sql_)("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  std::string sql(const std::string& statement) {
    return (*sql_)("SET TimeZone = 'UTC'; SET search_path = " + schema_ + "; " + statement);
  }

  Json config(Json streams, int batch_size = 500) const {
    return {{"url", url_},
            {"schema", schema_},
            {"streams", std::move(streams)},
            {"batch_size", batch_size}};
  }

  /// Opens an instance with `cfg`; the one opened before is closed.
  void open(const Json& cfg) {
    auto opened = plugin_.open(cfg);
    ASSERT_TRUE(opened.ok()) << opened.describe();
    instance_ = std::move(opened.instance);
  }

  static FetchRequest request(const std::string& stream, FetchMode mode,
                              std::size_t batch_size = 1000) {
    FetchRequest request;
    request.stream = stream;
    request.mode = mode;
    request.batch_size = batch_size;
    return request;
  }

  FetchOutcome fetch(const FetchRequest& req) {
    auto result = instance_.fetch(req);
    EXPECT_TRUE(result.ok()) << result.describe();
    return result;
  }

  /// A fetch that keeps every batch as the plugin emitted it.
  std::vector<Batch> fetchBatches(const FetchRequest& req) {
    std::vector<Batch> batches;
    const auto result = instance_.fetch(req, [&](Batch&& batch) {
      batches.push_back(std::move(batch));
      return true;
    });
    EXPECT_TRUE(result.ok()) << result.describe();
    return batches;
  }

  /// A changeset written as the JSON document the host sends, applied without checking the
  /// outcome.
  ApplyOutcome applyDocument(const std::string& stream, const std::string& mode, Json changes) {
    const auto [changeset, apply_mode] = changesetFromJson({{"stream", stream},
                                                            {"key_fields", Json::array()},
                                                            {"mode", mode},
                                                            {"changes", std::move(changes)}});
    return instance_.apply(changeset, apply_mode);
  }

  /// applyDocument, expecting the call to succeed.
  ApplyOutcome apply(const std::string& stream, const std::string& mode, Json changes) {
    auto result = applyDocument(stream, mode, std::move(changes));
    EXPECT_TRUE(result.ok()) << result.describe();
    return result;
  }

  /// The message, every log line and every failure message so far: where a leak would show.
  std::string everything(const CallOutcome& outcome) const {
    std::string text = outcome.message;
    for (const auto& line : plugin_.host().logs()) text += "\n" + line.message;
    for (const auto& message : plugin_.host().failMessages()) text += "\n" + message;
    return text;
  }

  /// How many groups of changes ran again one by one, as a statement for a run of them failed.
  int groupsRunAgain() const {
    int lines = 0;
    for (const auto& line : plugin_.host().logs()) lines += line.message.find("one by one") != std::string::npos;
    return lines;
  }

  static std::vector<int> ids(const std::vector<Record>& records, const char* field = "id") {
    std::vector<int> out;
    for (const auto& record : records) out.push_back(record.fields.at(field).get<int>());
    return out;
  }

  std::string url_;
  std::string schema_;
  std::unique_ptr<Sql> sql_;
  PluginHandle plugin_ = PluginHandle::load(SYNCPOD_TESTKIT_PLUGIN_FILE);
  Instance instance_;
};

TEST_F(PostgresTest, ManifestIsValid) {
  const Json manifest = plugin_.manifestJson();
  EXPECT_TRUE(manifestProblems(manifest).empty()) << manifest.dump(2);
  EXPECT_EQ(manifest["id"], "postgres");
  EXPECT_EQ(manifest["capabilities"]["configurable_streams"], true);
  EXPECT_EQ(json_schema::secretPointers(manifest["config_schema"], {{"url", "postgresql://u:p@h/d"}}),
            std::vector<std::string>{"/url"});
}

TEST_F(PostgresTest, BadConfigIsRejectedByTheSchema) {
  const auto expect_invalid = [&](const Json& cfg, const std::string& part) {
    const auto result = plugin_.open(cfg);
    EXPECT_EQ(result.status, SYNCPOD_INVALID) << cfg.dump();
    EXPECT_NE(result.message.find(part), std::string::npos)
        << result.message << " for " << cfg.dump();
  };
  expect_invalid({{"streams", Json::object()}}, "/url: is required");
  expect_invalid({{"url", "mysql://x"}, {"streams", Json::object()}}, "/url: must match");
  expect_invalid(config(Json::object(), 0), "/batch_size: must be at least 1");
  expect_invalid(config({{"users", {{"key_fields", {"id"}}}}}),
                 "/streams/users/table: is required");
  expect_invalid(config({{"users", {{"table", "users"}, {"colour", 1}}}}),
                 "/streams/users/colour: is not a known setting");
  auto huge = config(Json::object());
  huge["batch_size"] = 1e300;  // an integer by JSON Schema's rules, far past the maximum
  expect_invalid(huge, "/batch_size: must be at most 100000");
  huge["batch_size"] = 2.5;
  expect_invalid(huge, "/batch_size: must be integer");
  auto extra = config(Json::object());
  extra["password"] = "x";
  expect_invalid(extra, "/password: is not a known setting");

  // A URL libpq cannot parse is refused at open, without its password.
  const auto result = plugin_.open(
      {{"url", "postgresql://u:Sup3rSecretPw@db/x?bogus_option=1"}, {"streams", Json::object()}});
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_EQ(result.message.find("Sup3rSecretPw"), std::string::npos) << result.message;
  EXPECT_NE(result.message.find("postgresql://u:***@db/x"), std::string::npos) << result.message;
}

TEST_F(PostgresTest, FullFetchPagesThroughTheTableWithNaturalJsonTypes) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, active boolean, score "
      "numeric(6,2), "
      "born date, seen timestamptz, data jsonb, raw json, tags text[], note varchar(20))");
  sql("INSERT INTO users (id, name, active, score, born, seen, data, raw, tags) "
      "SELECT i, 'user ' || i, i % 2 = 0, i * 1.25, date '2000-01-01' + i, "
      "timestamptz '2024-05-01 10:00:00+02' + i * interval '1 hour', "
      "jsonb_build_object('n', i, 'even', i % 2 = 0), '[1, 2]', ARRAY['a', 'b'] FROM "
      "generate_series(1, 23) i");
  open(config({{"users", {{"table", "users"}}}}, 5));

  std::vector<Record> records;
  std::vector<std::size_t> sizes;
  for (auto& batch : fetchBatches(request("users", FetchMode::Full, 7))) {
    sizes.push_back(batch.records.size());
    for (auto& record : batch.records) records.push_back(std::move(record));
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{7, 7, 7, 2}));
  std::vector<int> expected;
  for (int i = 1; i <= 23; ++i) expected.push_back(i);
  EXPECT_EQ(ids(records), expected);
  ASSERT_FALSE(records.empty());
  const Json first = records[0].fields;
  EXPECT_EQ(first,
            Json::parse(
                R"({"id": 1, "name": "user 1", "active": false, "score": 1.25, "born": "2000-01-02",
      "seen": "2024-05-01T09:00:00+00:00", "data": {"n": 1, "even": false}, "raw": [1, 2], "tags": ["a", "b"],
      "note": null})"));
  EXPECT_FALSE(records[0].version.has_value());
}

TEST_F(PostgresTest, FullFetchWithColumnSubsetAndRequestKeyFields) {
  sql("CREATE TABLE people (id integer PRIMARY KEY, email text UNIQUE NOT NULL, name text, secret "
      "text)");
  sql("INSERT INTO people SELECT i, 'p' || i || '@x', 'P' || i, 'hidden' FROM generate_series(1, "
      "4) i");
  open(config({{"people", {{"table", "people"}, {"columns", {"name"}}}}}, 3));
  auto req = request("people", FetchMode::Full);
  const auto by_id = fetch(req);
  ASSERT_EQ(by_id.records.size(), 4U);
  EXPECT_EQ(by_id.records[0].fields,
            Json({{"id", 1}, {"name", "P1"}}));  // key column added, secret left out

  req.key_fields = {"email"};
  const auto by_email = fetch(req);
  ASSERT_EQ(by_email.records.size(), 4U);
  EXPECT_EQ(by_email.records[0].fields, Json({{"email", "p1@x"}, {"name", "P1"}}));
}

TEST_F(PostgresTest, KeysFetchFindsRequestedKeysInBatchesAndSkipsMissingOnes) {
  sql("CREATE TABLE items (id bigint PRIMARY KEY, label text)");
  sql("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20) i");
  open(config({{"items", {{"table", "items"}}}}, 2));
  auto req = request("items", FetchMode::Keys);
  req.keys = {{"3"}, {"17"}, {"999"}, {"abc"}, {"5"}, {""}};  // "abc" and "" cannot be bigints
  const auto result = fetch(req);
  auto found = ids(result.records);
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<int>{3, 5, 17}));

  req.keys = {{"1", "2"}};
  const auto wrong = instance_.fetch(req);
  EXPECT_EQ(wrong.status, SYNCPOD_INVALID);
  EXPECT_NE(wrong.message.find("key 1"), std::string::npos) << wrong.message;
}

TEST_F(PostgresTest, CompositeKeysFetchAndApply) {
  sql("CREATE TABLE stock (region text, id integer, qty integer NOT NULL, PRIMARY KEY (region, "
      "id))");
  sql("INSERT INTO stock VALUES ('eu', 1, 10), ('eu', 2, 20), ('us', 1, 30), ('us', 2, 40), ('eu', "
      "3, 50)");
  open(config({{"stock", {{"table", "stock"}}}}, 2));
  const auto all = fetch(request("stock", FetchMode::Full));
  std::vector<std::string> keys;
  for (const auto& record : all.records) {
    keys.push_back(record.fields["region"].get<std::string>() +
                   std::to_string(record.fields["id"].get<int>()));
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"eu1", "eu2", "eu3", "us1", "us2"}));

  auto req = request("stock", FetchMode::Keys);
  req.keys = {{"us", "2"}, {"eu", "9"}, {"eu", "1"}};
  auto found = fetch(req).records;
  ASSERT_EQ(found.size(), 2U);

  const Json changes = {
      {{"op", "update"}, {"key", {"us", "2"}}, {"fields", {{"qty", 41}}}},
      {{"op", "delete"}, {"key", {"eu", "1"}}},
      {{"op", "create"}, {"key", {"us", "3"}}, {"fields", {{"qty", 5}}}},
  };
  EXPECT_EQ(statuses(apply("stock", "commit", changes)),
            (std::vector<std::string>{"applied", "applied", "applied"}));
  EXPECT_EQ(sql("SELECT region, id, qty FROM stock ORDER BY 1, 2"),
            "eu|2|20\neu|3|50\nus|1|30\nus|2|41\nus|3|5");
  EXPECT_EQ(statuses(apply("stock", "commit", changes)),
            (std::vector<std::string>{"noop", "noop", "noop"}));
}

TEST_F(PostgresTest, IncrementalFetchResumesFromAnyCursorAcrossEqualTimestamps) {
  sql("CREATE TABLE events (id integer PRIMARY KEY, body text, updated_at timestamptz)");
  // Five rows share one timestamp, so with pages of 2 the group spans three pages.
  sql("INSERT INTO events VALUES (1, 'a', '2024-01-01 00:00:00+00'), (2, 'b', '2024-01-02 "
      "00:00:00+00'), "
      "(3, 'c', '2024-01-02 00:00:00+00'), (4, 'd', '2024-01-02 00:00:00+00'), (5, 'e', "
      "'2024-01-02 00:00:00+00'), "
      "(6, 'f', '2024-01-02 00:00:00+00'), (7, 'g', '2023-12-31 00:00:00+00'), (8, 'h', NULL)");
  open(config({{"events", {{"table", "events"}, {"updated_column", "updated_at"}}}}, 2));

  const auto first = fetchBatches(request("events", FetchMode::Incremental, 1));
  std::vector<Record> records;
  std::optional<std::string> last_cursor;
  for (const auto& batch : first) {
    records.insert(records.end(), batch.records.begin(), batch.records.end());
    if (batch.cursor) last_cursor = batch.cursor;
  }
  EXPECT_EQ(ids(records),
            (std::vector<int>{7, 1, 2, 3, 4, 5, 6}));  // NULL updated_at: never incremental
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0].version, "2023-12-31T00:00:00+00:00");
  ASSERT_TRUE(last_cursor);

  // Resuming from the cursor any batch carried never skips a record after that batch (it may
  // repeat some of the batch: a cursor is only as far as the last complete page).
  const auto all = ids(records);
  std::size_t seen = 0;
  bool resumed_inside_group = false;
  for (const auto& batch : first) {
    seen += batch.records.size();
    if (!batch.cursor) continue;
    auto resume = request("events", FetchMode::Incremental, 100);
    resume.cursor = batch.cursor;
    const auto rest = ids(fetch(resume).records);
    ASSERT_GE(rest.size(), all.size() - seen) << "after cursor " << *batch.cursor;
    EXPECT_EQ(rest, std::vector<int>(all.end() - static_cast<long>(rest.size()), all.end()))
        << "after cursor " << *batch.cursor;
    resumed_inside_group = resumed_inside_group || rest == std::vector<int>{4, 5, 6};
  }
  EXPECT_TRUE(resumed_inside_group) << "a page boundary should fall inside the equal timestamps";

  auto resume = request("events", FetchMode::Incremental);
  resume.cursor = last_cursor;
  EXPECT_TRUE(fetch(resume).records.empty());
  sql("UPDATE events SET body = 'c2', updated_at = '2024-02-01 00:00:00+00' WHERE id = 3");
  const auto later = fetch(resume);
  EXPECT_EQ(ids(later.records), std::vector<int>{3});

  resume.cursor = "not a cursor";
  EXPECT_EQ(instance_.fetch(resume).status, SYNCPOD_INVALID);
  open(config({{"events", {{"table", "events"}}}}));
  const auto unsupported = instance_.fetch(request("events", FetchMode::Incremental));
  EXPECT_EQ(unsupported.status, SYNCPOD_INVALID);
  EXPECT_NE(unsupported.message.find("updated_column"), std::string::npos) << unsupported.message;
}

TEST_F(PostgresTest, CreatesInARowKeepTheirOwnOutcomes) {
  // Creates that follow each other with the same fields are written by one statement; each
  // still gets the outcome it would get alone.
  sql("CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL, n integer)");
  sql("INSERT INTO things VALUES (1, 'a', 1), (2, 'b', 2)");
  // A key column whose modifier rounds what is written.
  sql("CREATE TABLE prices (code numeric(6,2) PRIMARY KEY, label text)");
  open(config({{"things", {{"table", "things"}}}, {"prices", {{"table", "prices"}}}}));
  const auto create = [](int id, const Json& fields) {
    return Json{{"op", "create"}, {"key", {std::to_string(id)}}, {"fields", fields}};
  };
  const Json changes = {
      create(1, {{"id", 1}, {"name", "a"}, {"n", 1}}),     // exists, equal
      create(2, {{"id", 2}, {"name", "B"}, {"n", 2}}),     // exists, differs
      create(3, {{"id", 3}, {"name", "c"}, {"n", 3}}),     // new
      create(3, {{"id", 3}, {"name", "C"}, {"n", 3}}),     // the same key again: after the first
      create(4, {{"id", 4}, {"name", "d"}}),               // other fields
      create(5, {{"id", 5}, {"name", "e"}}),
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"n", 10}}}},
      create(6, {{"id", 6}, {"name", "f"}, {"n", 6}}),
  };
  EXPECT_EQ(statuses(apply("things", "commit", changes)),
            (std::vector<std::string>{"noop", "applied", "applied", "applied", "applied", "applied",
                                      "applied", "applied"}));
  EXPECT_EQ(sql("SELECT id, name, n FROM things ORDER BY id"),
            "1|a|10\n2|B|2\n3|C|3\n4|d|NULL\n5|e|NULL\n6|f|6");
  EXPECT_EQ(groupsRunAgain(), 0) << "the statements for runs of creates failed";
  // Again: the first create undoes the update, which then applies again; 3 flips twice.
  EXPECT_EQ(statuses(apply("things", "commit", changes)),
            (std::vector<std::string>{"applied", "noop", "applied", "applied", "noop", "noop",
                                      "applied", "noop"}));

  // One create that fails among them fails alone.
  const Json with_bad_row = {create(7, {{"id", 7}, {"name", "g"}, {"n", 7}}),
                             create(8, {{"id", 8}, {"name", nullptr}, {"n", 8}}),
                             create(9, {{"id", 9}, {"name", "i"}, {"n", 9}})};
  EXPECT_EQ(statuses(apply("things", "commit", with_bad_row)),
            (std::vector<std::string>{"applied", "rejected", "applied"}));
  EXPECT_EQ(sql("SELECT count(*) FROM things WHERE id IN (7, 8, 9)"), "2");
  EXPECT_EQ(groupsRunAgain(), 1);

  const Json prices = {{{"op", "create"}, {"key", {"1.005"}}, {"fields", {{"code", 1.005}, {"label", "x"}}}},
                       {{"op", "create"}, {"key", {"2"}}, {"fields", {{"code", 2}, {"label", "y"}}}}};
  EXPECT_EQ(statuses(apply("prices", "commit", prices)), (std::vector<std::string>{"applied", "applied"}));
  EXPECT_EQ(sql("SELECT code, label FROM prices ORDER BY code"), "1.01|x\n2.00|y");
  EXPECT_EQ(statuses(apply("prices", "commit", prices)), (std::vector<std::string>{"noop", "noop"}));
}

TEST_F(PostgresTest, UpdatesAndDeletesInARowKeepTheirOwnOutcomes) {
  // Updates (with the same fields) and deletes that follow each other are written by one
  // statement per run; each still gets the outcome it would get alone.
  sql("CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL, n integer, v integer)");
  sql("INSERT INTO things SELECT i, 'n' || i, i % 3, 1 FROM generate_series(1, 12) i");
  sql("CREATE TABLE prices (code numeric(6,2) PRIMARY KEY, label text)");
  sql("INSERT INTO prices VALUES (1, 'one'), (2, 'two')");
  open(config({{"things", {{"table", "things"}, {"updated_column", "v"}}},
               {"by_n", {{"table", "things"}, {"key_fields", {"n"}}}},
               {"prices", {{"table", "prices"}}}}));
  const auto update = [](const std::string& key, const Json& fields, const char* expected = nullptr) {
    Json change = {{"op", "update"}, {"key", {key}}, {"fields", fields}};
    if (expected != nullptr) change["expected_version"] = expected;
    return change;
  };
  const auto remove = [](const std::string& key, const char* expected = nullptr) {
    Json change = {{"op", "delete"}, {"key", {key}}};
    if (expected != nullptr) change["expected_version"] = expected;
    return change;
  };
  const Json changes = {
      update("1", {{"name", "n1"}}),                 // equal
      update("2", {{"name", "B"}}),                  // differs
      update("3", {{"name", "C"}}, "1"),             // at the version expected
      update("4", {{"name", "D"}}, "7"),             // at another version
      update("99", {{"name", "x"}}),                 // no such row
      update("abc", {{"name", "x"}}),                // not an integer: no such row either
      update("5", {{"name", "E"}, {"n", 50}}),       // other fields
      update("6", {{"name", "F"}, {"n", 60}}),
      update("6", {{"name", "G"}, {"n", 60}}),       // the same key again: after the first
      remove("7"),
      remove("8", "1"),                              // at the version expected
      remove("9", "2"),                              // at another version
      remove("99"),                                  // no such row
      remove("10"),
      update("11", Json::object()),                  // sets nothing
      remove("12"),
  };
  const auto first = apply("things", "commit", changes);
  EXPECT_EQ(statuses(first),
            (std::vector<std::string>{"noop", "applied", "applied", "conflict", "conflict",
                                      "conflict", "applied", "applied", "applied", "applied",
                                      "applied", "conflict", "noop", "applied", "noop",
                                      "applied"}));
  EXPECT_NE(first.results[3].message.find("has v \"1\", the change expected \"7\""), std::string::npos)
      << first.results[3].message;
  EXPECT_NE(first.results[4].message.find("no row with key [\"99\"]"), std::string::npos)
      << first.results[4].message;
  EXPECT_EQ(sql("SELECT string_agg(id || ':' || name || ':' || n, ' ' ORDER BY id) FROM things"),
            "1:n1:1 2:B:2 3:C:0 4:n4:1 5:E:50 6:G:60 9:n9:0 11:n11:2");
  // "abc" fails its run's statement (it is no integer), which then runs one by one.
  EXPECT_EQ(groupsRunAgain(), 1);

  // The same without "abc": no run fails, and every outcome is what the changes give alone.
  Json again = changes;
  again.erase(5);
  EXPECT_EQ(statuses(apply("things", "commit", again)),
            (std::vector<std::string>{"noop", "noop", "noop", "conflict", "conflict", "noop",
                                      "applied", "applied", "noop", "noop", "conflict", "noop",
                                      "noop", "noop", "noop"}));
  EXPECT_EQ(groupsRunAgain(), 1) << "the statement for a run of updates or deletes failed";
  EXPECT_EQ(sql("SELECT string_agg(id || ':' || name || ':' || n, ' ' ORDER BY id) FROM things"),
            "1:n1:1 2:B:2 3:C:0 4:n4:1 5:E:50 6:G:60 9:n9:0 11:n11:2");

  // A key that names several rows is refused, and only that change.
  const auto several = apply("by_n", "commit", {update("1", {{"name", "one"}}), update("50", {{"name", "fifty"}})});
  EXPECT_EQ(statuses(several), (std::vector<std::string>{"rejected", "applied"}));
  EXPECT_NE(several.results[0].message.find("matches more than one row"), std::string::npos)
      << several.results[0].message;
  EXPECT_EQ(sql("SELECT string_agg(name, ' ' ORDER BY id) FROM things WHERE n IN (1, 50)"), "n1 n4 fifty");
  EXPECT_EQ(statuses(apply("by_n", "commit", {remove("1"), remove("60")})),
            (std::vector<std::string>{"rejected", "applied"}));
  EXPECT_EQ(sql("SELECT count(*) FROM things"), "7");
  EXPECT_EQ(groupsRunAgain(), 1);

  // Two keys that name one row ("1" and "1.00" of a numeric key) run one after the other.
  EXPECT_EQ(statuses(apply("prices", "commit", {update("1", {{"label", "uno"}}), update("1.00", {{"label", "eins"}}),
                                                update("2", {{"label", "dos"}})})),
            (std::vector<std::string>{"applied", "applied", "applied"}));
  EXPECT_EQ(sql("SELECT string_agg(code || ':' || label, ' ' ORDER BY code) FROM prices"), "1.00:eins 2.00:dos");
  EXPECT_EQ(statuses(apply("prices", "commit", {remove("2.0"), remove("2")})),
            (std::vector<std::string>{"applied", "noop"}));
  EXPECT_EQ(sql("SELECT count(*) FROM prices"), "1");
  EXPECT_EQ(groupsRunAgain(), 3);
}

TEST_F(PostgresTest, ApplyThenSecondApplyIsAllNoop) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, score numeric(6,2), data "
      "json, "
      "tags integer[], seen timestamptz, active boolean DEFAULT true)");
  sql("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Bob'), (3, 'Cy')");
  open(config({{"users", {{"table", "users"}}}}));
  const Json changes = {
      {{"op", "create"},
       {"key", {"4"}},
       {"fields",
        {{"id", 4},
         {"name", "Dee"},
         {"score", 1.5},
         {"data", {{"b", 1}, {"a", {1, 2}}}},
         {"tags", {3, 1}},
         {"seen", "2024-05-01T10:00:00+02:00"}}}},
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "Ada L."}, {"score", 2.345}}}},
      {{"op", "delete"}, {"key", {"3"}}},
      {{"op", "create"},
       {"key", {"2"}},
       {"fields", {{"id", 2}, {"name", "Bob"}}}},                       // exists, equal
      {{"op", "update"}, {"key", {"9"}}, {"fields", {{"name", "x"}}}},  // missing row
      {{"op", "delete"}, {"key", {"9"}}},                               // missing row
  };
  const auto first = apply("users", "commit", changes);
  EXPECT_EQ(statuses(first), (std::vector<std::string>{"applied", "applied", "applied", "noop",
                                                       "conflict", "noop"}));
  EXPECT_EQ(sql("SELECT id, name, score, data, tags, seen, active FROM users ORDER BY id"),
            "1|Ada L.|2.35|NULL|NULL|NULL|t\n"
            "2|Bob|NULL|NULL|NULL|NULL|t\n"
            "4|Dee|1.50|{\"a\":[1,2],\"b\":1}|{3,1}|2024-05-01 08:00:00+00|t");

  const auto second = apply("users", "commit", changes);
  EXPECT_EQ(statuses(second),
            (std::vector<std::string>{"noop", "noop", "noop", "noop", "conflict", "noop"}));

  // What a fetch returns, applied back as creates, changes nothing either.
  Json creates = Json::array();
  for (const auto& record : fetch(request("users", FetchMode::Full)).records) {
    creates.push_back({{"op", "create"},
                       {"key", {std::to_string(record.fields["id"].get<int>())}},
                       {"fields", record.fields}});
  }
  for (const auto& status : statuses(apply("users", "commit", creates))) EXPECT_EQ(status, "noop");
}

TEST_F(PostgresTest, EveryCommonTypeRoundTripsWithoutChanges) {
  sql("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
  sql("CREATE DOMAIN percent AS integer CHECK (VALUE BETWEEN 0 AND 100)");
  sql("CREATE TABLE everything (id uuid PRIMARY KEY, small smallint, big bigint, real_n real, "
      "double_n double precision, "
      "money_n numeric(12,4), plain_numeric numeric, flag boolean, code char(4), short varchar(8), "
      "body text, "
      "day date, at_time time, stamp timestamp(3), stamp_tz timestamptz, span interval, bytes "
      "bytea, addr inet, "
      "doc jsonb, raw json, words text[], grid integer[], feeling mood, pct percent, nothing "
      "text)");
  sql("INSERT INTO everything VALUES ('6f1c2c4e-1d7a-4c1e-9a59-0a3c6e1b2d3f', -32768, "
      "9007199254740993, 1.5, 0.1, "
      "12345678.1234, 1.50, true, 'ab', 'short', E'multi\\nline \"quoted\" \\\\ text', "
      "'2024-02-29', '23:59:59.5', "
      "'2024-05-01 10:00:00.123', '2024-05-01 10:00:00+02', '1 day 02:03:04', '\\x00ff10', "
      "'10.1.2.3/32', "
      "'{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}', '{\"z\": 1,  \"a\": 2}', "
      "ARRAY['a,b', 'c\"d', NULL, ''], '{{1,2},{3,4}}', 'happy', 42, NULL)");
  open(config({{"everything", {{"table", "everything"}}}}));
  const auto fetched = fetch(request("everything", FetchMode::Full));
  ASSERT_EQ(fetched.records.size(), 1U);
  const Json record = fetched.records[0].fields;
  EXPECT_EQ(record["big"], 9007199254740993LL);
  EXPECT_EQ(record["code"], "ab  ");
  EXPECT_EQ(record["grid"], Json::parse("[[1,2],[3,4]]"));
  EXPECT_EQ(record["words"], Json::parse(R"(["a,b", "c\"d", null, ""])"));
  EXPECT_EQ(record["stamp"], "2024-05-01T10:00:00.123");

  const std::string before = sql("SELECT xmin, * FROM everything");
  const Json create = {{"op", "create"}, {"key", {record["id"]}}, {"fields", record}};
  Json update = {{"op", "update"}, {"key", {record["id"]}}, {"fields", record}};
  update["fields"].erase("id");
  const auto result = apply("everything", "commit", {create, update});
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"noop", "noop"}))
      << (result.results.empty() ? result.describe() : result.results[0].message);
  EXPECT_EQ(sql("SELECT xmin, * FROM everything"), before);

  // And written into an empty table, the same record reads back equal.
  sql("DELETE FROM everything");
  EXPECT_EQ(statuses(apply("everything", "commit", {create})), std::vector<std::string>{"applied"});
  const auto written = fetch(request("everything", FetchMode::Full));
  ASSERT_EQ(written.records.size(), 1U);
  EXPECT_EQ(written.records[0].fields, record);

  // Two creates in a row go as one statement: every type survives that way too, and applied
  // again they change nothing.
  sql("DELETE FROM everything");
  Json twin = record;
  twin["id"] = "0b2f4c1e-7d3a-4e1c-8a59-1a3c6e1b2d40";
  const Json creates = {create, {{"op", "create"}, {"key", {twin["id"]}}, {"fields", twin}}};
  EXPECT_EQ(statuses(apply("everything", "commit", creates)), (std::vector<std::string>{"applied", "applied"}));
  const auto both = fetch(request("everything", FetchMode::Full));
  ASSERT_EQ(both.records.size(), 2U);
  for (const auto& fetched_record : both.records) {
    EXPECT_EQ(fetched_record.fields, fetched_record.fields["id"] == record["id"] ? record : twin);
  }
  EXPECT_EQ(statuses(apply("everything", "commit", creates)), (std::vector<std::string>{"noop", "noop"}));
  for (const auto& line : plugin_.host().logs()) {
    EXPECT_EQ(line.message.find("one by one"), std::string::npos) << line.message;
  }
}

TEST_F(PostgresTest, PlanWritesNothingAndPredictsCommit) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL CHECK (name <> ''))");
  sql("INSERT INTO users VALUES (1, 'Ada'), (2, 'Bob')");
  open(config({{"users", {{"table", "users"}}}}));
  const Json changes = {
      {{"op", "create"}, {"key", {"3"}}, {"fields", {{"name", "Cy"}}}},
      {{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "Ada"}}}},
      {{"op", "update"}, {"key", {"2"}}, {"fields", {{"name", ""}}}},
      {{"op", "delete"}, {"key", {"2"}}},
  };
  const std::string before = sql("SELECT id, name, xmin FROM users ORDER BY id");
  const auto plan = apply("users", "plan", changes);
  EXPECT_EQ(statuses(plan), (std::vector<std::string>{"applied", "noop", "rejected", "applied"}));
  EXPECT_EQ(sql("SELECT id, name, xmin FROM users ORDER BY id"), before);

  const auto commit = apply("users", "commit", changes);
  EXPECT_EQ(statuses(commit), statuses(plan));
  EXPECT_EQ(sql("SELECT id, name FROM users ORDER BY id"), "1|Ada\n3|Cy");
}

TEST_F(PostgresTest, RowFailuresRejectOnlyTheirChange) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, "
      "age integer CONSTRAINT age_positive CHECK (age >= 0), email text UNIQUE, code varchar(4))");
  sql("INSERT INTO users VALUES (1, 'Ada', 30, 'ada@x')");
  open(config({{"users", {{"table", "users"}}}}));
  Json changes = Json::array();
  for (int i = 2; i <= 60; ++i) {  // more than one savepoint group
    changes.push_back({{"op", "create"},
                       {"key", {std::to_string(i)}},
                       {"fields", {{"name", "u" + std::to_string(i)}}}});
  }
  changes[10]["fields"]["age"] = -1;          // check constraint
  changes[20]["fields"]["name"] = nullptr;    // not-null
  changes[30]["fields"]["age"] = "old";       // not an integer
  changes[40]["fields"]["email"] = "ada@x";   // unique violation
  changes[50]["fields"]["nope"] = 1;          // no such column
  changes[55]["fields"]["code"] = "TOOLONG";  // varchar(4): refused, never truncated
  changes.push_back({{"op", "update"}, {"key", {"1"}}, {"fields", {{"age", -5}}}});
  changes.push_back({{"op", "update"}, {"key", {"1"}}, {"fields", {{"age", 31}}}});
  changes.push_back({{"op", "update"}, {"key", {"1"}}, {"fields", {{"code", "ABCD"}}}});
  // Truncated to four characters this would equal the stored value; it must fail, not be a noop.
  changes.push_back({{"op", "update"}, {"key", {"1"}}, {"fields", {{"code", "ABCDE"}}}});

  const auto result = apply("users", "commit", changes);
  const auto& results = result.results;
  ASSERT_EQ(results.size(), changes.size());
  const auto message = [&](std::size_t i) { return results[i].message; };
  for (std::size_t i = 0; i < results.size(); ++i) {
    const bool bad =
        i == 10 || i == 20 || i == 30 || i == 40 || i == 50 || i == 55 || i == 59 || i == 62;
    EXPECT_EQ(toString(results[i].status), bad ? "rejected" : "applied")
        << i << ": " << results[i].message;
  }
  EXPECT_NE(message(10).find("age_positive"), std::string::npos) << message(10);
  EXPECT_NE(message(20).find("\"name\""), std::string::npos) << message(20);
  EXPECT_NE(message(30).find("invalid input syntax for type integer"), std::string::npos)
      << message(30);
  EXPECT_NE(message(40).find("already exists"), std::string::npos) << message(40);
  EXPECT_NE(message(50).find("no column \"nope\""), std::string::npos) << message(50);
  EXPECT_NE(message(55).find("value too long"), std::string::npos) << message(55);
  EXPECT_NE(message(62).find("value too long"), std::string::npos) << message(62);
  EXPECT_EQ(sql("SELECT count(*), max(age), string_agg(code, ',') FROM users"), "54|31|ABCD");
}

TEST_F(PostgresTest, LockTimeoutMakesThatChangeRetryable) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text)");
  sql("INSERT INTO users VALUES (1, 'Ada'), (2, 'Bob')");
  auto cfg = config({{"users", {{"table", "users"}}}});
  cfg["url"] =
      url_ + (url_.find('?') == std::string::npos ? "?" : "&") + "options=-c%20lock_timeout%3D200";
  open(cfg);
  Sql holder(url_);
  holder("BEGIN; SELECT * FROM " + schema_ + ".users WHERE id = 1 FOR UPDATE");
  const auto result = apply("users", "commit",
                            {{{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "A"}}}},
                             {{"op", "update"}, {"key", {"2"}}, {"fields", {{"name", "B"}}}}});
  holder("ROLLBACK");
  EXPECT_EQ(statuses(result), (std::vector<std::string>{"retryable", "applied"}));
  EXPECT_EQ(sql("SELECT name FROM users ORDER BY id"), "Ada\nB");
}

TEST_F(PostgresTest, UnknownTablesAndColumnsAreInvalidAndNamed) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text)");
  open(config({{"ghosts", {{"table", "nope"}}},
               {"users", {{"table", "users"}, {"key_fields", {"uid"}}}},
               {"typo", {{"table", "users"}, {"columns", {"nmae"}}}}}));
  CallOutcome result = instance_.fetch(request("ghosts", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("table " + schema_ + ".nope does not exist"), std::string::npos)
      << result.message;

  result = instance_.fetch(request("users", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("has no column \"uid\" (key_fields)"), std::string::npos)
      << result.message;

  result = applyDocument("typo", "commit", Json::array());
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("has no column \"nmae\" (columns)"), std::string::npos)
      << result.message;

  result = instance_.fetch(request("orders", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("\"orders\" is not configured"), std::string::npos)
      << result.message;

  result = instance_.check();
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find(".nope does not exist"), std::string::npos) << result.message;
  EXPECT_NE(result.message.find("\"uid\""), std::string::npos) << result.message;
  EXPECT_NE(result.message.find("\"nmae\""), std::string::npos) << result.message;
}

TEST_F(PostgresTest, CheckVerifiesTablesPrivilegesAndUniqueKeys) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text)");
  sql("CREATE TABLE log (id integer, line text)");
  sql("CREATE VIEW active_users AS SELECT * FROM users");
  open(
      config({{"users", {{"table", "users"}}},
              {"log_read", {{"table", "log"}, {"key_fields", {"id"}}, {"read_only", true}}},
              {"view", {{"table", "active_users"}, {"key_fields", {"id"}}, {"read_only", true}}}}));
  const auto good = instance_.check();
  EXPECT_TRUE(good.ok()) << good.describe();

  open(config({{"log", {{"table", "log"}, {"key_fields", {"id"}}}}}));
  const auto bad = instance_.check();
  EXPECT_EQ(bad.status, SYNCPOD_INVALID);
  EXPECT_NE(bad.message.find("no unique index or constraint on (id)"), std::string::npos)
      << bad.message;
  const auto create = applyDocument(
      "log", "commit", {{{"op", "create"}, {"key", {"1"}}, {"fields", Json::object()}}});
  EXPECT_EQ(create.status, SYNCPOD_INVALID);

  open(config({{"log", {{"table", "log"}, {"key_fields", {"id"}}, {"read_only", true}}}}));
  const auto read_only = applyDocument("log", "commit", Json::array());
  EXPECT_EQ(read_only.status, SYNCPOD_INVALID);
  EXPECT_NE(read_only.message.find("read_only"), std::string::npos) << read_only.message;
}

TEST_F(PostgresTest, PasswordNeverAppearsInMessagesOrLogs) {
  const std::string secret = "Sup3rSecretPw";
  // The test cluster trusts every login, so a refused login is a role that does not exist.
  const std::string host_part = url_.substr(url_.find('@') + 1);
  const std::string wrong_role = "postgresql://no_such_role:" + secret + "@" + host_part;
  open({{"url", wrong_role}, {"streams", {{"users", {{"table", "users"}}}}}});
  CallOutcome result = instance_.check();
  EXPECT_EQ(result.status, SYNCPOD_UNAUTHORIZED) << result.describe();
  EXPECT_NE(result.message.find("no_such_role:***@"), std::string::npos) << result.message;
  EXPECT_EQ(everything(result).find(secret), std::string::npos) << everything(result);
  result = instance_.fetch(request("users", FetchMode::Full));
  EXPECT_EQ(result.status, SYNCPOD_UNAUTHORIZED) << result.describe();
  EXPECT_EQ(everything(result).find(secret), std::string::npos) << everything(result);

  // Nothing listens on port 1: a temporary failure, and again no password.
  open({{"url", "postgresql://postgres:" + secret + "@127.0.0.1:1/syncpod"},
        {"streams", {{"users", {{"table", "users"}}}}},
        {"connect_timeout_s", 2}});
  result = instance_.check();
  EXPECT_EQ(result.status, SYNCPOD_RETRYABLE) << result.describe();
  EXPECT_NE(result.message.find("postgresql://postgres:***@127.0.0.1:1/syncpod"), std::string::npos)
      << result.message;
  EXPECT_EQ(everything(result).find(secret), std::string::npos) << everything(result);

  // A password given as a URL parameter is hidden as well.
  const std::string base =
      url_.find('?') == std::string::npos ? url_ : url_.substr(0, url_.find('?'));
  open({{"url", base + "x_missing_db?password=" + secret},
        {"streams", {{"users", {{"table", "users"}}}}}});
  result = instance_.check();
  EXPECT_EQ(result.status, SYNCPOD_INVALID) << result.describe();
  EXPECT_NE(result.message.find("does not exist"), std::string::npos) << result.message;
  EXPECT_EQ(everything(result).find(secret), std::string::npos) << everything(result);
}

}  // namespace
}  // namespace syncpod::plugins::postgres
