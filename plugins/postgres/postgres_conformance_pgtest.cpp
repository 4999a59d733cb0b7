// The SDK's conformance suite against the postgres connector: the real library through the C
// ABI, against the test PostgreSQL named by SYNCPOD_TEST_DATABASE_URL, each test in a schema of
// its own. Without the variable every test fails (Subject::prepare throws); none is skipped.
#include <memory>
#include <string>
#include <vector>

#include <syncpod/testkit/conformance.hpp>

#include "postgres_test_support.hpp"

namespace syncpod::plugins::postgres {
namespace {

Change create(int id, const std::string& name, double score) {
  return {ChangeOp::Create,
          {std::to_string(id)},
          {{"id", id}, {"name", name}, {"score", score}, {"active", true}},
          {}};
}

/// One table, "users", whose updated_at the database keeps (a default and a trigger), as the
/// connector's README recommends for incremental fetch. Pages of two rows, so that fetches
/// cross page boundaries.
class Postgres : public testkit::Subject {
 public:
  ~Postgres() override {
    if (sql_) (*sql_)("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  std::string pluginPath() const override { return SYNCPOD_TESTKIT_PLUGIN_FILE; }

  void prepare() override {
    url_ = pgtest::testDatabaseUrl();
    schema_ = pgtest::uniqueSchema();
    sql_ = std::make_unique<pgtest::Sql>(url_);
    (*sql_)("CREATE SCHEMA " + schema_ + "; SET search_path = " + schema_ +
            "; CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, "
            "score numeric(6,2), active boolean, "
            "updated_at timestamptz NOT NULL DEFAULT clock_timestamp()); "
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$; "
            "CREATE TRIGGER users_touch BEFORE UPDATE ON users "
            "FOR EACH ROW EXECUTE FUNCTION touch()");
  }

  Json goodConfig() const override {
    return {{"url", url_},
            {"schema", schema_},
            {"batch_size", 2},
            {"streams", {{"users", {{"table", "users"}, {"updated_column", "updated_at"}}}}}};
  }
  // libpq cannot parse the URL (an unknown parameter), so the constructor refuses it; the kit
  // checks that the URL, password and all, is not in the message.
  Json badConfig() const override {
    return {{"url", "postgresql://sync:Conformance-Pw@db.invalid/crm?bogus_option=1"},
            {"streams", {{"users", {{"table", "users"}}}}}};
  }

  std::string stream() const override { return "users"; }
  std::vector<std::string> keyFields() const override { return {"id"}; }
  std::vector<Change> seedChanges() const override {
    return {create(1, "Ada", 1.5), create(2, "Bob", 2.25), create(3, "Cy", 3)};
  }
  std::vector<Change> secondChanges() const override {
    return {{ChangeOp::Update, {"1"}, {{"name", "Ada L."}, {"score", 4.75}}, {}},
            create(4, "Dee", 0.5),
            {ChangeOp::Delete, {"2"}, Json::object(), {}}};
  }
  // The key column is an integer.
  testkit::Key missingKey() const override { return {"404"}; }

 private:
  std::string url_;
  std::string schema_;
  std::unique_ptr<pgtest::Sql> sql_;
};

SYNCPOD_CONFORMANCE_TESTS(Postgres);

}  // namespace
}  // namespace syncpod::plugins::postgres
