#include "syncpod/testkit/conformance.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

namespace {

using syncpod::ChangeOp;
using syncpod::Json;
using syncpod::testkit::Conformance;

/// The faulty connector with one fault (or none), each test on a store of its own.
class FaultySubject : public syncpod::testkit::Subject {
 public:
  explicit FaultySubject(std::string fault = "none", std::string plugin = FAULTY_PLUGIN)
      : fault_(std::move(fault)), plugin_(std::move(plugin)) {}

  std::string pluginPath() const override { return plugin_; }
  void prepare() override {
    static std::atomic<int> stores{0};
    store_ = "store-" + std::to_string(++stores);
  }
  Json goodConfig() const override {
    return {{"name", store_}, {"fault", fault_}, {"token", "good-token-value"}};
  }
  Json badConfig() const override {
    return {{"name", "not/allowed"}, {"fault", fault_}, {"token", "bad-token-value"}};
  }
  std::map<std::string, std::string> secrets() const override {
    return {{"faulty-token", "secret-store-value"}};
  }
  std::string stream() const override { return "items"; }
  std::vector<std::string> keyFields() const override { return {"id"}; }
  std::vector<syncpod::Change> seedChanges() const override {
    return {{ChangeOp::Create, {"a"}, {{"id", "a"}, {"title", "Alpha"}, {"rank", 1}}, {}},
            {ChangeOp::Create, {"b"}, {{"id", "b"}, {"title", "Beta"}, {"rank", 2}}, {}},
            {ChangeOp::Create, {"c"}, {{"id", "c"}, {"title", "Gamma"}, {"rank", 3}}, {}}};
  }
  std::vector<syncpod::Change> secondChanges() const override {
    return {{ChangeOp::Update, {"a"}, {{"title", "Alpha, revised"}}, {}},
            {ChangeOp::Create, {"d"}, {{"id", "d"}, {"title", "Delta"}, {"rank", 4}}, {}},
            {ChangeOp::Delete, {"b"}, Json::object(), {}}};
  }

 private:
  std::string fault_;
  std::string plugin_;
  std::string store_;
};

/// The connector without a fault: the whole suite must pass for it.
class WellBehaved : public FaultySubject {};

SYNCPOD_CONFORMANCE_TESTS(WellBehaved);

/// The failure messages of GoogleTest assertions inside `body`, kept from the running test.
std::vector<std::string> failuresOf(const std::function<void()>& body) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    body();
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i) {
    if (results.GetTestPartResult(i).failed())
      messages.emplace_back(results.GetTestPartResult(i).message());
  }
  return messages;
}

struct FaultCase {
  const char* name;
  const char* fault;
  const char* plugin;
  void (Conformance::*check)();
  /// A part of the failure message that says the check caught this fault.
  const char* expected;
};

class ConformanceCatches : public ::testing::TestWithParam<FaultCase> {};

TEST_P(ConformanceCatches, TheFault) {
  const auto& fault = GetParam();
  Conformance conformance(std::make_unique<FaultySubject>(fault.fault, fault.plugin));
  const auto setup = failuresOf([&] { conformance.setUp(); });
  ASSERT_TRUE(setup.empty()) << "setUp failed: " << setup.front();
  const auto failures = failuresOf([&] {
    (conformance.*fault.check)();
    conformance.tearDown();
  });
  ASSERT_FALSE(failures.empty()) << "the check passed a plugin with fault " << fault.name;
  bool caught = false;
  std::string all;
  for (const auto& failure : failures) {
    caught = caught || failure.find(fault.expected) != std::string::npos;
    all += "\n---\n" + failure;
  }
  EXPECT_TRUE(caught) << "no failure says \"" << fault.expected << "\":" << all;
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ConformanceCatches,
    ::testing::Values(
        FaultCase{"BadManifest", "none", FAULTY_BAD_MANIFEST_PLUGIN, &Conformance::manifestIsValid,
                  "manifest problems: \"id\" must be 1-63 lower-case letters"},
        FaultCase{"BadConfigSchema", "none", FAULTY_BAD_MANIFEST_PLUGIN,
                  &Conformance::configSchemaIsValid, "unsupported keyword \"oneOf\""},
        FaultCase{"AcceptsAnything", "accepts_anything", FAULTY_PLUGIN,
                  &Conformance::openRejectsBadConfig,
                  "open(bad config) must fail with SYNCPOD_INVALID; it returned SYNCPOD_OK"},
        FaultCase{"LeaksSecret", "leaks_secret", FAULTY_PLUGIN,
                  &Conformance::openAndCheckAcceptGoodConfig,
                  "a log line shows the value of good config /token"},
        FaultCase{"HostAfterCall", "host_after_call", FAULTY_PLUGIN,
                  &Conformance::openAndCheckAcceptGoodConfig,
                  "log was called outside a plugin call"},
        FaultCase{
            "UnknownStreamOk", "unknown_stream_ok", FAULTY_PLUGIN,
            &Conformance::unknownStreamIsInvalid,
            "fetch of stream \"syncpod-testkit-no-such-stream\" must fail with SYNCPOD_INVALID"},
        FaultCase{"BatchTooBig", "batch_too_big", FAULTY_PLUGIN,
                  &Conformance::seededRecordsAreFetched,
                  "holds 3 records; the request allowed at most 2"},
        FaultCase{"UnstableFetch", "unstable_fetch", FAULTY_PLUGIN, &Conformance::fullFetchesAgree,
                  "the second full fetch differs for key [\"a\"]"},
        FaultCase{"NoCursor", "no_cursor", FAULTY_PLUGIN,
                  &Conformance::incrementalFetchEndsWithCursor,
                  "an incremental fetch must end with a cursor"},
        FaultCase{"CursorIgnored", "cursor_ignored", FAULTY_PLUGIN,
                  &Conformance::incrementalFetchEndsWithCursor,
                  "yet the fetch from it returned [\"a\"]"},
        FaultCase{"MissesDeletes", "misses_deletes", FAULTY_PLUGIN,
                  &Conformance::incrementalFetchFromCursorSeesLaterChanges,
                  "reported no deletion of key [\"b\"]"},
        FaultCase{"NoNoop", "no_noop", FAULTY_PLUGIN, &Conformance::applyTwiceIsNoop,
                  "must be noop, it is applied"},
        FaultCase{"WrongResultCount", "wrong_result_count", FAULTY_PLUGIN,
                  &Conformance::applyTwiceIsNoop, "the connector returned 2 results for 3 changes"},
        FaultCase{"MemoryOnly", "memory_only", FAULTY_PLUGIN, &Conformance::committedChangesPersist,
                  "full fetch after the second changeset: key [\"a\"] is missing"},
        FaultCase{"PlanWrites", "plan_writes", FAULTY_PLUGIN, &Conformance::planModeWritesNothing,
                  "plan mode wrote to the empty system"},
        FaultCase{"KeysReturnsAll", "keys_returns_all", FAULTY_PLUGIN,
                  &Conformance::fetchByKeysReturnsExactlyThem, "key [\"b\"] should not be there"},
        FaultCase{"IgnoresCancel", "ignores_cancel", FAULTY_PLUGIN,
                  &Conformance::fetchStopsWhenCancelled,
                  "a fetch while the host says cancelled must end with SYNCPOD_CANCELLED"},
        FaultCase{"ChangingManifest", "none", FAULTY_CHANGING_MANIFEST_PLUGIN,
                  &Conformance::unloadsAndReloads, "the manifest differs after reloading"}),
    [](const ::testing::TestParamInfo<FaultCase>& fault_info) {
      return std::string(fault_info.param.name);
    });

}  // namespace
