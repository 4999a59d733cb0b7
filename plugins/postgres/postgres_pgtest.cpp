// Tests of the postgres connector through its real shared library and the C ABI, against the
// test PostgreSQL named by SYNCPOD_TEST_DATABASE_URL (scripts/test starts one and sets it).
// Each test works in a schema of its own and drops it at the end.
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <syncpod/sdk/json_schema.hpp>
#include <syncpod/sdk/manifest_check.hpp>

#include "plugin_client.hpp"

namespace syncpod::plugins::postgres {
namespace {

using testing::CallResult;
using testing::PluginClient;
using testing::statusName;

/// A libpq connection for setting up and inspecting test data.
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

std::string uniqueSchema() {
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

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL");
    if (url == nullptr || *url == '\0') {
      GTEST_FAIL()
          << "SYNCPOD_TEST_DATABASE_URL is not set: run the tests through scripts/test, or "
             "export the URL printed by `scripts/pg start`";
    }
    url_ = url;
    schema_ = uniqueSchema();
    sql_ = std::make_unique<Sql>(url_);
    (*sql_)("CREATE SCHEMA " + schema_);
  }

  void TearDown() override {
    client_.close();
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

  void open(const Json& cfg) {
    const auto result = client_.open(cfg);
    ASSERT_TRUE(result.ok()) << statusName(result.status) << ": " << result.message;
  }

  static Json request(const std::string& stream, const std::string& mode,
                      std::size_t batch_size = 1000) {
    return {{"stream", stream},
            {"mode", mode},
            {"key_fields", Json::array()},
            {"batch_size", batch_size}};
  }

  CallResult fetch(const Json& req) {
    auto result = client_.fetch(req);
    EXPECT_TRUE(result.ok()) << statusName(result.status) << ": " << result.message;
    return result;
  }

  static Json changeset(const std::string& stream, const std::string& mode, Json changes,
                        Json key_fields = Json::array()) {
    return {{"stream", stream},
            {"key_fields", std::move(key_fields)},
            {"mode", mode},
            {"changes", std::move(changes)}};
  }

  CallResult apply(const Json& cs) {
    auto result = client_.apply(cs);
    EXPECT_TRUE(result.ok()) << statusName(result.status) << ": " << result.message;
    return result;
  }

  static std::vector<int> ids(const CallResult& result, const char* field = "id") {
    std::vector<int> out;
    for (const auto& record : result.records()) out.push_back(record.at(field).get<int>());
    return out;
  }

  std::string url_;
  std::string schema_;
  std::unique_ptr<Sql> sql_;
  PluginClient client_{SYNCPOD_POSTGRES_PLUGIN};
};

TEST_F(PostgresTest, ManifestIsValid) {
  const Json manifest = client_.manifest();
  EXPECT_TRUE(manifestProblems(manifest).empty()) << manifest.dump(2);
  EXPECT_EQ(manifest["id"], "postgres");
  EXPECT_EQ(manifest["capabilities"]["configurable_streams"], true);
  EXPECT_EQ(json_schema::secretPaths(manifest["config_schema"]), std::vector<std::string>{"/url"});
}

TEST_F(PostgresTest, BadConfigIsRejectedByTheSchema) {
  const auto expect_invalid = [&](const Json& cfg, const std::string& part) {
    const auto result = client_.open(cfg);
    EXPECT_EQ(result.status, SYNCPOD_INVALID) << cfg.dump();
    EXPECT_NE(result.message.find(part), std::string::npos) << result.message << " for " << cfg.dump();
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
  const auto result = client_.open(
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

  const auto result = fetch(request("users", "full", 7));
  EXPECT_EQ(result.batchSizes(), (std::vector<std::size_t>{7, 7, 7, 2}));
  std::vector<int> expected;
  for (int i = 1; i <= 23; ++i) expected.push_back(i);
  EXPECT_EQ(ids(result), expected);
  const Json first = result.records()[0];
  EXPECT_EQ(first,
            Json::parse(
                R"({"id": 1, "name": "user 1", "active": false, "score": 1.25, "born": "2000-01-02",
      "seen": "2024-05-01T09:00:00+00:00", "data": {"n": 1, "even": false}, "raw": [1, 2], "tags": ["a", "b"],
      "note": null})"));
  EXPECT_FALSE(result.recordDocuments()[0].contains("version"));
}

TEST_F(PostgresTest, FullFetchWithColumnSubsetAndRequestKeyFields) {
  sql("CREATE TABLE people (id integer PRIMARY KEY, email text UNIQUE NOT NULL, name text, secret "
      "text)");
  sql("INSERT INTO people SELECT i, 'p' || i || '@x', 'P' || i, 'hidden' FROM generate_series(1, "
      "4) i");
  open(config({{"people", {{"table", "people"}, {"columns", {"name"}}}}}, 3));
  auto req = request("people", "full");
  const auto by_id = fetch(req);
  ASSERT_EQ(by_id.records().size(), 4U);
  EXPECT_EQ(by_id.records()[0],
            Json({{"id", 1}, {"name", "P1"}}));  // key column added, secret left out

  req["key_fields"] = {"email"};
  const auto by_email = fetch(req);
  ASSERT_EQ(by_email.records().size(), 4U);
  EXPECT_EQ(by_email.records()[0], Json({{"email", "p1@x"}, {"name", "P1"}}));
}

TEST_F(PostgresTest, KeysFetchFindsRequestedKeysInBatchesAndSkipsMissingOnes) {
  sql("CREATE TABLE items (id bigint PRIMARY KEY, label text)");
  sql("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20) i");
  open(config({{"items", {{"table", "items"}}}}, 2));
  auto req = request("items", "keys");
  req["keys"] = {{"3"}, {"17"}, {"999"}, {"abc"}, {"5"}, {""}};  // "abc" and "" cannot be bigints
  const auto result = fetch(req);
  auto found = ids(result);
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<int>{3, 5, 17}));

  req["keys"] = Json::array({Json::array({"1", "2"})});
  const auto wrong = client_.fetch(req);
  EXPECT_EQ(wrong.status, SYNCPOD_INVALID);
  EXPECT_NE(wrong.message.find("key 1"), std::string::npos) << wrong.message;
}

TEST_F(PostgresTest, CompositeKeysFetchAndApply) {
  sql("CREATE TABLE stock (region text, id integer, qty integer NOT NULL, PRIMARY KEY (region, "
      "id))");
  sql("INSERT INTO stock VALUES ('eu', 1, 10), ('eu', 2, 20), ('us', 1, 30), ('us', 2, 40), ('eu', "
      "3, 50)");
  open(config({{"stock", {{"table", "stock"}}}}, 2));
  const auto all = fetch(request("stock", "full"));
  std::vector<std::string> keys;
  for (const auto& record : all.records()) {
    keys.push_back(record["region"].get<std::string>() + std::to_string(record["id"].get<int>()));
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"eu1", "eu2", "eu3", "us1", "us2"}));

  auto req = request("stock", "keys");
  req["keys"] =
      Json::array({Json::array({"us", "2"}), Json::array({"eu", "9"}), Json::array({"eu", "1"})});
  auto found = fetch(req).records();
  ASSERT_EQ(found.size(), 2U);

  const Json changes = {
      {{"op", "update"}, {"key", {"us", "2"}}, {"fields", {{"qty", 41}}}},
      {{"op", "delete"}, {"key", {"eu", "1"}}},
      {{"op", "create"}, {"key", {"us", "3"}}, {"fields", {{"qty", 5}}}},
  };
  EXPECT_EQ(apply(changeset("stock", "commit", changes)).statuses(),
            (std::vector<std::string>{"applied", "applied", "applied"}));
  EXPECT_EQ(sql("SELECT region, id, qty FROM stock ORDER BY 1, 2"),
            "eu|2|20\neu|3|50\nus|1|30\nus|2|41\nus|3|5");
  EXPECT_EQ(apply(changeset("stock", "commit", changes)).statuses(),
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

  const auto first = fetch(request("events", "incremental", 1));
  EXPECT_EQ(ids(first),
            (std::vector<int>{7, 1, 2, 3, 4, 5, 6}));  // NULL updated_at: never incremental
  EXPECT_EQ(first.recordDocuments()[0]["version"], "2023-12-31T00:00:00+00:00");
  ASSERT_TRUE(first.cursor());

  // Resuming from the cursor any batch carried never skips a record after that batch (it may
  // repeat some of the batch: a cursor is only as far as the last complete page).
  const auto all = ids(first);
  std::size_t seen = 0;
  bool resumed_inside_group = false;
  for (const auto& document : first.documents) {
    seen += document["records"].size();
    if (!document.contains("cursor")) continue;
    auto resume = request("events", "incremental", 100);
    resume["cursor"] = document["cursor"];
    const auto rest = ids(fetch(resume));
    ASSERT_GE(rest.size(), all.size() - seen) << "after cursor " << document["cursor"];
    EXPECT_EQ(rest, std::vector<int>(all.end() - static_cast<long>(rest.size()), all.end()))
        << "after cursor " << document["cursor"];
    resumed_inside_group = resumed_inside_group || rest == std::vector<int>{4, 5, 6};
  }
  EXPECT_TRUE(resumed_inside_group) << "a page boundary should fall inside the equal timestamps";

  auto resume = request("events", "incremental");
  resume["cursor"] = *first.cursor();
  EXPECT_TRUE(fetch(resume).records().empty());
  sql("UPDATE events SET body = 'c2', updated_at = '2024-02-01 00:00:00+00' WHERE id = 3");
  const auto later = fetch(resume);
  EXPECT_EQ(ids(later), std::vector<int>{3});

  resume["cursor"] = "not a cursor";
  EXPECT_EQ(client_.fetch(resume).status, SYNCPOD_INVALID);
  open(config({{"events", {{"table", "events"}}}}));
  const auto unsupported = client_.fetch(request("events", "incremental"));
  EXPECT_EQ(unsupported.status, SYNCPOD_INVALID);
  EXPECT_NE(unsupported.message.find("updated_column"), std::string::npos) << unsupported.message;
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
  const auto first = apply(changeset("users", "commit", changes));
  EXPECT_EQ(first.statuses(), (std::vector<std::string>{"applied", "applied", "applied", "noop",
                                                        "conflict", "noop"}));
  EXPECT_EQ(sql("SELECT id, name, score, data, tags, seen, active FROM users ORDER BY id"),
            "1|Ada L.|2.35|NULL|NULL|NULL|t\n"
            "2|Bob|NULL|NULL|NULL|NULL|t\n"
            "4|Dee|1.50|{\"a\":[1,2],\"b\":1}|{3,1}|2024-05-01 08:00:00+00|t");

  const auto second = apply(changeset("users", "commit", changes));
  EXPECT_EQ(second.statuses(),
            (std::vector<std::string>{"noop", "noop", "noop", "noop", "conflict", "noop"}));

  // What a fetch returns, applied back as creates, changes nothing either.
  Json creates = Json::array();
  for (const auto& record : fetch(request("users", "full")).records()) {
    creates.push_back(
        {{"op", "create"}, {"key", {std::to_string(record["id"].get<int>())}}, {"fields", record}});
  }
  for (const auto& status : apply(changeset("users", "commit", creates)).statuses())
    EXPECT_EQ(status, "noop");
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
  const auto fetched = fetch(request("everything", "full"));
  ASSERT_EQ(fetched.records().size(), 1U);
  const Json record = fetched.records()[0];
  EXPECT_EQ(record["big"], 9007199254740993LL);
  EXPECT_EQ(record["code"], "ab  ");
  EXPECT_EQ(record["grid"], Json::parse("[[1,2],[3,4]]"));
  EXPECT_EQ(record["words"], Json::parse(R"(["a,b", "c\"d", null, ""])"));
  EXPECT_EQ(record["stamp"], "2024-05-01T10:00:00.123");

  const std::string before = sql("SELECT xmin, * FROM everything");
  const Json create = {{"op", "create"}, {"key", {record["id"]}}, {"fields", record}};
  Json update = {{"op", "update"}, {"key", {record["id"]}}, {"fields", record}};
  update["fields"].erase("id");
  const auto result = apply(changeset("everything", "commit", {create, update}));
  EXPECT_EQ(result.statuses(), (std::vector<std::string>{"noop", "noop"})) << result.documents[0];
  EXPECT_EQ(sql("SELECT xmin, * FROM everything"), before);

  // And written into an empty table, the same record reads back equal.
  sql("DELETE FROM everything");
  EXPECT_EQ(apply(changeset("everything", "commit", {create})).statuses(),
            std::vector<std::string>{"applied"});
  EXPECT_EQ(fetch(request("everything", "full")).records()[0], record);
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
  const auto plan = apply(changeset("users", "plan", changes));
  EXPECT_EQ(plan.statuses(), (std::vector<std::string>{"applied", "noop", "rejected", "applied"}));
  EXPECT_EQ(sql("SELECT id, name, xmin FROM users ORDER BY id"), before);

  const auto commit = apply(changeset("users", "commit", changes));
  EXPECT_EQ(commit.statuses(), plan.statuses());
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

  const auto result = apply(changeset("users", "commit", changes));
  const auto results = result.results();
  ASSERT_EQ(results.size(), changes.size());
  const auto message = [&](std::size_t i) { return results[i].value("message", ""); };
  for (std::size_t i = 0; i < results.size(); ++i) {
    const bool bad =
        i == 10 || i == 20 || i == 30 || i == 40 || i == 50 || i == 55 || i == 59 || i == 62;
    EXPECT_EQ(results[i]["status"], bad ? "rejected" : "applied") << i << ": " << results[i];
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
  const auto result =
      apply(changeset("users", "commit",
                      {{{"op", "update"}, {"key", {"1"}}, {"fields", {{"name", "A"}}}},
                       {{"op", "update"}, {"key", {"2"}}, {"fields", {{"name", "B"}}}}}));
  holder("ROLLBACK");
  EXPECT_EQ(result.statuses(), (std::vector<std::string>{"retryable", "applied"}));
  EXPECT_EQ(sql("SELECT name FROM users ORDER BY id"), "Ada\nB");
}

TEST_F(PostgresTest, UnknownTablesAndColumnsAreInvalidAndNamed) {
  sql("CREATE TABLE users (id integer PRIMARY KEY, name text)");
  open(config({{"ghosts", {{"table", "nope"}}},
               {"users", {{"table", "users"}, {"key_fields", {"uid"}}}},
               {"typo", {{"table", "users"}, {"columns", {"nmae"}}}}}));
  auto result = client_.fetch(request("ghosts", "full"));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("table " + schema_ + ".nope does not exist"), std::string::npos)
      << result.message;

  result = client_.fetch(request("users", "full"));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("has no column \"uid\" (key_fields)"), std::string::npos)
      << result.message;

  result = client_.apply(changeset("typo", "commit", Json::array()));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("has no column \"nmae\" (columns)"), std::string::npos)
      << result.message;

  result = client_.fetch(request("orders", "full"));
  EXPECT_EQ(result.status, SYNCPOD_INVALID);
  EXPECT_NE(result.message.find("\"orders\" is not configured"), std::string::npos)
      << result.message;

  result = client_.check();
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
  const auto good = client_.check();
  EXPECT_TRUE(good.ok()) << good.message;

  open(config({{"log", {{"table", "log"}, {"key_fields", {"id"}}}}}));
  const auto bad = client_.check();
  EXPECT_EQ(bad.status, SYNCPOD_INVALID);
  EXPECT_NE(bad.message.find("no unique index or constraint on (id)"), std::string::npos)
      << bad.message;
  const auto create = client_.apply(
      changeset("log", "commit", {{{"op", "create"}, {"key", {"1"}}, {"fields", Json::object()}}}));
  EXPECT_EQ(create.status, SYNCPOD_INVALID);

  open(config({{"log", {{"table", "log"}, {"key_fields", {"id"}}, {"read_only", true}}}}));
  const auto read_only = client_.apply(changeset("log", "commit", Json::array()));
  EXPECT_EQ(read_only.status, SYNCPOD_INVALID);
  EXPECT_NE(read_only.message.find("read_only"), std::string::npos) << read_only.message;
}

TEST_F(PostgresTest, PasswordNeverAppearsInMessagesOrLogs) {
  const std::string secret = "Sup3rSecretPw";
  // The test cluster trusts every login, so a refused login is a role that does not exist.
  const std::string host_part = url_.substr(url_.find('@') + 1);
  const std::string wrong_role = "postgresql://no_such_role:" + secret + "@" + host_part;
  open({{"url", wrong_role}, {"streams", {{"users", {{"table", "users"}}}}}});
  auto result = client_.check();
  EXPECT_EQ(result.status, SYNCPOD_UNAUTHORIZED) << result.message;
  EXPECT_NE(result.message.find("no_such_role:***@"), std::string::npos) << result.message;
  EXPECT_EQ(result.everything().find(secret), std::string::npos) << result.everything();
  result = client_.fetch(request("users", "full"));
  EXPECT_EQ(result.everything().find(secret), std::string::npos) << result.everything();

  // Nothing listens on port 1: a temporary failure, and again no password.
  open({{"url", "postgresql://postgres:" + secret + "@127.0.0.1:1/syncpod"},
        {"streams", {{"users", {{"table", "users"}}}}},
        {"connect_timeout_s", 2}});
  result = client_.check();
  EXPECT_EQ(result.status, SYNCPOD_RETRYABLE) << result.message;
  EXPECT_NE(result.message.find("postgresql://postgres:***@127.0.0.1:1/syncpod"), std::string::npos)
      << result.message;
  EXPECT_EQ(result.everything().find(secret), std::string::npos) << result.everything();

  // A password given as a URL parameter is hidden as well.
  const std::string base =
      url_.find('?') == std::string::npos ? url_ : url_.substr(0, url_.find('?'));
  open({{"url", base + "x_missing_db?password=" + secret},
        {"streams", {{"users", {{"table", "users"}}}}}});
  result = client_.check();
  EXPECT_EQ(result.status, SYNCPOD_INVALID) << result.message;
  EXPECT_NE(result.message.find("does not exist"), std::string::npos) << result.message;
  EXPECT_EQ(result.everything().find(secret), std::string::npos) << result.everything();
}

}  // namespace
}  // namespace syncpod::plugins::postgres
