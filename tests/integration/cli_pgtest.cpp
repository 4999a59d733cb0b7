// The syncpod binary as a user runs it: help, migrate, serve, and its start-up errors.

#include <csignal>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pg_test_support.hpp"
#include "process.hpp"

namespace syncpod::testing {
namespace {

const std::string kBinary = SYNCPOD_BINARY;

class CliTest : public PgTest {
 protected:
  CliTest() { migrate_ = false; }

  std::vector<std::string> command(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {kBinary, name, "--database-url=" + target_.url,
                                     "--schema=" + target_.schema};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

TEST(Cli, HelpListsCommandsAndOptions) {
  const auto overview = run({kBinary, "--help"});
  EXPECT_EQ(overview.exit_code, 0);
  EXPECT_NE(overview.output.find("migrate"), std::string::npos) << overview.output;
  EXPECT_NE(overview.output.find("serve"), std::string::npos) << overview.output;

  const auto serve = run({kBinary, "serve", "--help"});
  EXPECT_EQ(serve.exit_code, 0);
  for (const char* option : {"--role", "--database-url", "--schema", "--log-format", "--config"}) {
    EXPECT_NE(serve.output.find(option), std::string::npos) << option << "\n" << serve.output;
  }
  EXPECT_NE(serve.output.find("SYNCPOD_DATABASE_URL"), std::string::npos) << serve.output;
}

TEST(Cli, UnknownCommandAndOptionAreUsageErrors) {
  const auto command = run({kBinary, "frobnicate"});
  EXPECT_EQ(command.exit_code, 64);
  EXPECT_NE(command.output.find("unknown command 'frobnicate'"), std::string::npos);
  const auto option = run({kBinary, "migrate", "--no-such-option=1"});
  EXPECT_EQ(option.exit_code, 64);
  EXPECT_NE(option.output.find("no-such-option"), std::string::npos) << option.output;
}

TEST(Cli, MissingDatabaseUrlSaysWhereToSetIt) {
  const auto result = run({kBinary, "migrate"}, {{"SYNCPOD_DATABASE_URL", ""}});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("SYNCPOD_DATABASE_URL"), std::string::npos) << result.output;
}

TEST(Cli, UnreachableDatabaseIsOneLineWithoutPassword) {
  const auto result =
      run({kBinary, "serve", "--database-url=postgresql://alice:s3cret@127.0.0.1:1/db"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
  EXPECT_NE(result.output.find("cannot connect to PostgreSQL"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("s3cret"), std::string::npos) << result.output;
}

TEST(Cli, BadDatabaseUrlIsOneLine) {
  const auto result = run({kBinary, "migrate", "--database-url=postgresql://[::1"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
}

TEST_F(CliTest, MigrateThenMigrateAgainIsANoOp) {
  const auto first = run(command("migrate"));
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("applied"), std::string::npos) << first.output;
  const auto second = run(command("migrate"));
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("is current"), std::string::npos) << second.output;
}

TEST_F(CliTest, ServeRefusesASchemaThatIsBehind) {
  const auto result = run(command("serve", {"--role=worker"}));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("is behind"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("0001"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("syncpod migrate"), std::string::npos) << result.output;
}

TEST_F(CliTest, ServeRefusesAnUnknownRole) {
  ASSERT_EQ(run(command("migrate")).exit_code, 0);
  const auto result = run(command("serve", {"--role=boss"}));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("invalid role 'boss'"), std::string::npos) << result.output;
}

TEST_F(CliTest, ServeRunsUntilSigtermAndExitsZero) {
  ASSERT_EQ(run(command("migrate")).exit_code, 0);
  ChildProcess serve(command("serve", {"--role=all", "--log-format=json"}));
  ASSERT_TRUE(serve.waitForOutput("ready", std::chrono::seconds(20))) << serve.output();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds(20)), 0) << serve.output();

  // --log-format=json: every line is a JSON object.
  std::istringstream lines(serve.output());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
  }
  EXPECT_GE(count, 2);
}

TEST_F(CliTest, ServeRescuesJobsOfSilentWorkers) {
  ASSERT_EQ(run(command("migrate")).exit_code, 0);
  // A job held by a worker that stopped heartbeating an hour ago.
  const std::string integration =
      queryScalar(target_, "INSERT INTO integrations (name) VALUES ('crm') RETURNING id");
  const std::string job = queryScalar(target_, R"SQL(
    WITH w AS (INSERT INTO worker_lifecycle (state, last_heartbeat_at)
               VALUES ('ACTIVE', now() - interval '1 hour') RETURNING id)
    INSERT INTO jobs (integration_id, kind, state, worker_id, attempt, claimed_at)
    SELECT )SQL" + integration + R"SQL(, 'full', 'running', w.id, 1, now() FROM w
    RETURNING id)SQL");
  execute(target_, "UPDATE job_lanes SET running_job_id = " + job +
                       " WHERE integration_id = " + integration);
  ASSERT_FALSE(job.empty());

  ChildProcess serve(command("serve", {"--role=singleton", "--rescue-interval=100ms",
                                       "--rescue-lease=1s"}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string state;
  while (std::chrono::steady_clock::now() < deadline) {
    state = queryScalar(target_, "SELECT state FROM jobs WHERE id = " + job);
    if (state == "queued") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(state, "queued") << serve.output();
  EXPECT_EQ(queryScalar(target_, "SELECT outcome FROM job_attempts WHERE job_id = " + job),
            "rescued");
  EXPECT_TRUE(serve.waitForOutput("rescued orphaned jobs: 1 re-queued", std::chrono::seconds(5)))
      << serve.output();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(std::chrono::seconds(20)), 0) << serve.output();
}

TEST_F(CliTest, SettingsComeFromEnvironment) {
  const auto result = run({kBinary, "migrate"}, {{"SYNCPOD_DATABASE_URL", target_.url},
                                                  {"SYNCPOD_SCHEMA", target_.schema}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(queryScalar(target_, "SELECT count(*) > 0 FROM schema_migrations"), "t");
}

TEST_F(CliTest, TokensAreCreatedListedAndRevoked) {
  ASSERT_EQ(run(command("migrate")).exit_code, 0);
  // The token alone on stdout, so that scripts can capture it; the notice on stderr.
  const auto created = runSplit(command("tokens", {"create", "--name=ci", "--scope=write"}));
  ASSERT_EQ(created.exit_code, 0) << created.errors;
  const auto secret = created.output.substr(0, created.output.find('\n'));
  EXPECT_EQ(secret.rfind("sp_", 0), 0U) << created.output;
  EXPECT_EQ(created.output, secret + "\n");
  EXPECT_NE(created.errors.find("shown only this once"), std::string::npos) << created.errors;

  const auto listed = runSplit(command("tokens", {"list", "--json"}));
  ASSERT_EQ(listed.exit_code, 0) << listed.errors;
  const auto tokens = nlohmann::json::parse(listed.output);
  ASSERT_EQ(tokens.size(), 1U) << listed.output;
  EXPECT_EQ(tokens[0]["name"], "ci");
  EXPECT_EQ(tokens[0]["scope"], "write");
  EXPECT_EQ(tokens[0]["prefix"], secret.substr(0, 7));
  EXPECT_TRUE(tokens[0]["revoked_at"].is_null());
  EXPECT_EQ(listed.output.find(secret), std::string::npos) << "the token is shown only once";

  const auto taken = runSplit(command("tokens", {"create", "--name=ci", "--scope=read"}));
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.errors.find("a token named 'ci' exists already"), std::string::npos) << taken.errors;
  const auto bad_scope = runSplit(command("tokens", {"create", "--name=x", "--scope=root"}));
  EXPECT_EQ(bad_scope.exit_code, 64);
  EXPECT_NE(bad_scope.errors.find("not 'root'"), std::string::npos) << bad_scope.errors;

  EXPECT_EQ(runSplit(command("tokens", {"revoke", "--name=ci"})).exit_code, 0);
  const auto after = nlohmann::json::parse(runSplit(command("tokens", {"list", "--json"})).output);
  EXPECT_TRUE(after[0]["revoked_at"].is_string()) << after.dump();
  EXPECT_EQ(runSplit(command("tokens", {"revoke", "--name=nobody"})).exit_code, 1);
}

}  // namespace
}  // namespace syncpod::testing
