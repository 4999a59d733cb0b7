// The conformance kit against hello-connector, and tests of what is particular to it, written
// with the kit's PluginHandle.
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <syncpod/testkit/conformance.hpp>
#include <syncpod/testkit/plugin_handle.hpp>
#include <syncpod/testkit/scratch_directory.hpp>

namespace {

using syncpod::Change;
using syncpod::ChangeOp;
using syncpod::ChangeStatus;
using syncpod::Json;
using syncpod::testkit::PluginHandle;
using syncpod::testkit::ScratchDirectory;

Change create(const std::string& id, const std::string& text) {
  return {ChangeOp::Create, {id}, {{"id", id}, {"text", text}}, {}};
}

/// The suite's view of hello-connector: a fresh scratch directory per test.
class HelloConnector : public syncpod::testkit::Subject {
 public:
  std::string pluginPath() const override { return SYNCPOD_TESTKIT_PLUGIN_FILE; }
  void prepare() override { directory_.emplace("hello-connector"); }
  Json goodConfig() const override { return {{"directory", directory_->string()}}; }
  Json badConfig() const override { return {{"directory", "relative/greetings"}}; }
  std::string stream() const override { return "greetings"; }
  std::vector<std::string> keyFields() const override { return {"id"}; }
  std::vector<Change> seedChanges() const override {
    return {create("1", "Hello"), create("2", "Bonjour"), create("3", "Hallo")};
  }
  std::vector<Change> secondChanges() const override {
    return {{ChangeOp::Update, {"1"}, {{"text", "Hello, world"}}, {}},
            create("4", "Hola"),
            {ChangeOp::Delete, {"2"}, Json::object(), {}}};
  }

 private:
  std::optional<ScratchDirectory> directory_;
};

SYNCPOD_CONFORMANCE_TESTS(HelloConnector);

/// hello-connector opened on a scratch directory, for the tests below.
class HelloTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = plugin_.open({{"directory", directory_.string()}});
    ASSERT_TRUE(opened.ok()) << opened.describe();
    instance_ = std::move(opened.instance);
  }

  syncpod::testkit::ApplyOutcome commit(std::vector<Change> changes) {
    return instance_.apply({"greetings", {"id"}, std::move(changes)}, syncpod::ApplyMode::Commit);
  }

  ScratchDirectory directory_{"hello-connector"};
  PluginHandle plugin_ = PluginHandle::load(SYNCPOD_TESTKIT_PLUGIN_FILE);
  syncpod::testkit::Instance instance_;
};

TEST_F(HelloTest, KeepsGreetingsInAJsonFile) {
  ASSERT_TRUE(commit({create("1", "Hello")}).ok());
  std::ifstream file(directory_.path() / "greetings.json");
  const auto json = Json::parse(file);
  EXPECT_EQ(json["greetings"]["1"]["fields"], Json({{"id", "1"}, {"text", "Hello"}}));
  EXPECT_FALSE(std::filesystem::exists(directory_.path() / "greetings.json.tmp"));
}

TEST_F(HelloTest, AnUpdateOfAMissingGreetingIsAConflict) {
  const auto applied = commit({{ChangeOp::Update, {"9"}, {{"text", "?"}}, {}}});
  ASSERT_TRUE(applied.ok()) << applied.describe();
  EXPECT_TRUE(applied.results[0].status == ChangeStatus::Conflict);
  EXPECT_EQ(applied.results[0].message, "greeting 9 does not exist (deleted since it was read?)");
}

TEST_F(HelloTest, AnOutdatedExpectedVersionIsAConflict) {
  ASSERT_TRUE(commit({create("1", "Hello")}).ok());
  ASSERT_TRUE(commit({{ChangeOp::Update, {"1"}, {{"text", "Hi"}}, {}}}).ok());
  const auto applied = commit({{ChangeOp::Update, {"1"}, {{"text", "Hey"}}, "1"}});
  ASSERT_TRUE(applied.ok()) << applied.describe();
  EXPECT_TRUE(applied.results[0].status == ChangeStatus::Conflict) << applied.results[0].message;
  const auto current = commit({{ChangeOp::Update, {"1"}, {{"text", "Hey"}}, "2"}});
  ASSERT_TRUE(current.ok()) << current.describe();
  EXPECT_TRUE(current.results[0].status == ChangeStatus::Applied) << current.results[0].message;
}

TEST_F(HelloTest, TheIdOfAGreetingCannotChange) {
  ASSERT_TRUE(commit({create("1", "Hello")}).ok());
  const auto applied = commit({{ChangeOp::Update, {"1"}, {{"id", "2"}}, {}}});
  ASSERT_TRUE(applied.ok()) << applied.describe();
  EXPECT_TRUE(applied.results[0].status == ChangeStatus::Rejected);
  EXPECT_EQ(applied.results[0].message, "the id of greeting 1 cannot change to \"2\"");
}

TEST_F(HelloTest, ACorruptFileFailsTheFetchAndNamesTheFile) {
  std::ofstream(directory_.path() / "greetings.json") << "{\"revision\": -1}";
  syncpod::FetchRequest request;
  request.stream = "greetings";
  const auto fetched = instance_.fetch(request);
  EXPECT_EQ(fetched.status, SYNCPOD_FAILED) << fetched.describe();
  EXPECT_NE(fetched.message.find((directory_.path() / "greetings.json").string() +
                                 " is not a greetings file"),
            std::string::npos)
      << fetched.message;
}

TEST_F(HelloTest, CheckRefusesADirectoryThatDoesNotExist) {
  auto opened = plugin_.open({{"directory", (directory_.path() / "missing").string()}});
  ASSERT_TRUE(opened.ok()) << opened.describe();
  const auto checked = opened.instance.check();
  EXPECT_EQ(checked.status, SYNCPOD_INVALID) << checked.describe();
  EXPECT_NE(checked.message.find("does not exist"), std::string::npos) << checked.message;
}

TEST_F(HelloTest, AnUnknownCursorIsInvalid) {
  syncpod::FetchRequest request;
  request.stream = "greetings";
  request.mode = syncpod::FetchMode::Incremental;
  request.cursor = "yesterday";
  const auto fetched = instance_.fetch(request);
  EXPECT_EQ(fetched.status, SYNCPOD_INVALID) << fetched.describe();
  EXPECT_EQ(fetched.message, "cursor \"yesterday\" is not a hello revision");
}

}  // namespace
