// /api/v1/workers, /api/v1/scaling and /api/v1/plugins over real HTTP, against the test
// PostgreSQL.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <vector>

#include "service_pgtest_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"

namespace syncpod::service {
namespace {

using namespace std::chrono_literals;
using syncpod::testing::execute;
using StatusTest = testing::ServiceFixture;

template <class T>
T must(core::Result<T> result) {
  EXPECT_TRUE(result) << result.error().message;
  return std::move(result.value());
}

std::vector<std::string> idsOf(const Json& items) {
  std::vector<std::string> ids;
  for (const auto& item : items) ids.push_back(item["id"].get<std::string>());
  return ids;
}

TEST_F(StatusTest, StatusEndpointsNeedAReadToken) {
  for (const std::string path :
       {"/api/v1/workers", "/api/v1/workers/3f2c1e9a-0000-4000-8000-000000000001",
        "/api/v1/scaling", "/api/v1/plugins", "/api/v1/plugins/memory"}) {
    const auto none = call("GET", path, std::nullopt);
    expectError(none, 401, "unauthenticated");
    EXPECT_EQ(none.headers.count("WWW-Authenticate"), 1U) << path;
    const auto read = call("GET", path, core::TokenScope::Read);
    EXPECT_TRUE(read.status == 200 || read.status == 404) << path << ": " << read.text;
  }
  expectError(call("POST", "/api/v1/workers", core::TokenScope::Admin), 405, "method_not_allowed");
}

TEST_F(StatusTest, WorkersAreListedNewestFirstInPages) {
  core::JobQueue queue(target_);
  const auto oldest = must(queue.registerWorker({1, "1.0.0", "pod-a", 11}));
  const auto middle = must(queue.registerWorker({2, "1.1.0", "pod-b", 12}));
  const auto newest = must(queue.registerWorker({4, "1.2.0", "pod-c", 13}));
  execute(
      target_,
      "UPDATE worker_lifecycle SET started_at = now() - interval '3 minutes' WHERE id = '" +
          oldest +
          "'; UPDATE worker_lifecycle SET started_at = now() - interval '2 minutes' WHERE id = '" +
          middle + "'");
  must(queue.setWorkerState(middle, core::WorkerState::Active));
  must(queue.setWorkerState(newest, core::WorkerState::Active));

  const auto first = call("GET", "/api/v1/workers?limit=2", core::TokenScope::Read);
  ASSERT_EQ(first.status, 200) << first.text;
  EXPECT_EQ(idsOf(first.body["items"]), (std::vector<std::string>{newest, middle}));
  const auto& shown = first.body["items"][0];
  EXPECT_EQ(shown["state"], "ACTIVE");
  EXPECT_EQ(shown["capacity"], 4);
  EXPECT_EQ(shown["running_jobs"], 0);
  EXPECT_EQ(shown["version"], "1.2.0");
  EXPECT_EQ(shown["host"], "pod-c");
  EXPECT_EQ(shown["pid"], 13);
  for (const char* time : {"started_at", "state_changed_at", "last_heartbeat_at"}) {
    EXPECT_TRUE(shown[time].get<std::string>().ends_with("Z")) << time << ": " << first.text;
  }
  EXPECT_FALSE(shown.contains("transitions")) << "the list leaves the history out";
  ASSERT_TRUE(first.body["next_cursor"].is_string()) << first.text;

  const auto second =
      call("GET", "/api/v1/workers?limit=2&cursor=" + first.body["next_cursor"].get<std::string>(),
           core::TokenScope::Read);
  ASSERT_EQ(second.status, 200) << second.text;
  EXPECT_EQ(idsOf(second.body["items"]), (std::vector<std::string>{oldest}));
  EXPECT_EQ(second.body["items"][0]["state"], "INACTIVE");
  EXPECT_TRUE(second.body["next_cursor"].is_null()) << second.text;

  // The state filter takes the stored upper-case names in either case.
  EXPECT_EQ(
      idsOf(call("GET", "/api/v1/workers?state=active", core::TokenScope::Read).body["items"]),
      (std::vector<std::string>{newest, middle}));
  EXPECT_EQ(
      idsOf(call("GET", "/api/v1/workers?state=INACTIVE", core::TokenScope::Read).body["items"]),
      (std::vector<std::string>{oldest}));
  const auto none = call("GET", "/api/v1/workers?state=terminated", core::TokenScope::Read);
  EXPECT_TRUE(none.body["items"].empty()) << none.text;
  EXPECT_TRUE(none.body["next_cursor"].is_null()) << none.text;

  const auto bad_state = call("GET", "/api/v1/workers?state=done", core::TokenScope::Read);
  expectError(bad_state, 400, "invalid_parameter");
  EXPECT_EQ(bad_state.body["error"]["details"]["parameter"], "state");
  for (const char* cursor : {"xyz", "12_not-a-uuid",
                             "_"
                             "3f2c1e9a-0000-4000-8000-000000000001",
                             "-5_3f2c1e9a-0000-4000-8000-000000000001"}) {
    const auto bad =
        call("GET", std::string("/api/v1/workers?cursor=") + cursor, core::TokenScope::Read);
    expectError(bad, 400, "invalid_parameter");
    EXPECT_EQ(bad.body["error"]["details"]["parameter"], "cursor") << cursor;
  }
  expectError(call("GET", "/api/v1/workers?limit=501", core::TokenScope::Read), 400,
              "invalid_parameter");
  expectError(call("GET", "/api/v1/workers?colour=red", core::TokenScope::Read), 400,
              "unknown_parameter");
}

TEST_F(StatusTest, WorkersStartedAtTheSameTimeAreEachListedOnce) {
  core::JobQueue queue(target_);
  std::vector<std::string> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(must(queue.registerWorker({1, "1.0.0", "pod", i})));
  execute(target_, "UPDATE worker_lifecycle SET started_at = '2026-11-26T05:00:00.123456Z'");
  std::vector<std::string> seen;
  std::string path = "/api/v1/workers?limit=1";
  for (int page = 0; page < 3; ++page) {
    const auto reply = call("GET", path, core::TokenScope::Read);
    ASSERT_EQ(reply.status, 200) << reply.text;
    ASSERT_EQ(reply.body["items"].size(), 1U) << reply.text;
    seen.push_back(reply.body["items"][0]["id"].get<std::string>());
    EXPECT_EQ(reply.body["items"][0]["started_at"], "2026-11-26T05:00:00.123Z");
    if (page < 2) {
      ASSERT_TRUE(reply.body["next_cursor"].is_string()) << reply.text;
      path = "/api/v1/workers?limit=1&cursor=" + reply.body["next_cursor"].get<std::string>();
    } else {
      EXPECT_TRUE(reply.body["next_cursor"].is_null()) << reply.text;
    }
  }
  std::sort(workers.rbegin(), workers.rend());
  EXPECT_EQ(seen, workers) << "ties are broken by id, descending";
}

TEST_F(StatusTest, OneWorkerShowsItsTransitionsAndRunningJobs) {
  core::JobQueue queue(target_);
  const auto worker = must(queue.registerWorker({2, "1.2.0", "pod-a", 4242}));
  must(queue.setWorkerState(worker, core::WorkerState::Active));
  core::EnqueueRequest request;
  request.integration_id = createIntegration("busy");
  const auto job = must(queue.enqueue(request)).id;
  ASSERT_EQ(must(queue.claim(worker, 2)).size(), 1U);
  ASSERT_TRUE(must(queue.heartbeat(worker)).known);
  // A transition written by a session in another time zone carries that offset in its text;
  // the API shows it in UTC.
  execute(
      target_,
      "SET TIME ZONE 'Asia/Kolkata'; UPDATE worker_lifecycle SET transitions = transitions || "
      "jsonb_build_object('state', 'RETIRED', 'at', timestamptz '2026-11-26 15:30:00.25+05:30', "
      "'reason', 'a test') WHERE id = '" +
          worker + "'");

  const auto path = "/api/v1/workers/" + worker;
  const auto reply = call("GET", path, core::TokenScope::Read);
  ASSERT_EQ(reply.status, 200) << reply.text;
  EXPECT_EQ(reply.body["id"], worker);
  EXPECT_EQ(reply.body["state"], "ACTIVE");
  EXPECT_EQ(reply.body["running_jobs"], 1);
  EXPECT_EQ(reply.body["running_job_ids"], Json::array({job}));
  EXPECT_EQ(reply.body["pid"], 4242);
  const auto& transitions = reply.body["transitions"];
  ASSERT_EQ(transitions.size(), 3U) << reply.text;
  EXPECT_EQ(transitions[0]["state"], "INACTIVE");
  EXPECT_TRUE(transitions[0]["reason"].is_null());
  EXPECT_EQ(transitions[1]["state"], "ACTIVE");
  EXPECT_EQ(transitions[1]["at"], reply.body["state_changed_at"]);
  EXPECT_EQ(transitions[2]["state"], "RETIRED");
  EXPECT_EQ(transitions[2]["at"], "2026-11-26T10:00:00.250Z");
  EXPECT_EQ(transitions[2]["reason"], "a test");

  std::string upper = worker;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(call("GET", "/api/v1/workers/" + upper, core::TokenScope::Read).body["id"], worker);
  expectError(
      call("GET", "/api/v1/workers/3f2c1e9a-0000-4000-8000-000000000001", core::TokenScope::Read),
      404, "not_found");
  const auto malformed = call("GET", "/api/v1/workers/not-a-uuid", core::TokenScope::Read);
  expectError(malformed, 400, "invalid_id");
  EXPECT_EQ(malformed.body["error"]["details"]["parameter"], "worker id");
  expectError(call("GET", "/api/v1/workers/17", core::TokenScope::Read), 400, "invalid_id");
  expectError(call("GET", path + "?verbose=1", core::TokenScope::Read), 400, "unknown_parameter");
}

TEST_F(StatusTest, ScalingShowsTheRowItsInputsAndTheLease) {
  const auto fresh = call("GET", "/api/v1/scaling", core::TokenScope::Read);
  ASSERT_EQ(fresh.status, 200) << fresh.text;
  EXPECT_EQ(fresh.body["count"], 0);
  EXPECT_EQ(fresh.body["policy"], "initial");
  EXPECT_TRUE(fresh.body["formula"].is_null()) << fresh.text;
  EXPECT_TRUE(fresh.body["computed_at"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(fresh.body["lease"]["holder"], "");
  EXPECT_EQ(fresh.body["lease"]["valid"], false);
  EXPECT_TRUE(fresh.body["lease"]["expires_at"].is_null())
      << "a lease never held has no expiry to show";

  core::LeaderLease lease(target_, core::kSingletonLease, "vm:42:abcd", 30s);
  const auto token = must(lease.acquire());
  ASSERT_TRUE(token.has_value());
  core::ScalingRecord record;
  record.inputs.ongoing_jobs = 3;
  record.inputs.runs_in_retired_workers = 1;
  record.inputs.retired_workers = 1;
  record.inputs.active_workers = 2;
  record.inputs.queued_jobs = 4;
  record.settings = {core::ScalingPolicy::QueueAware, 2, 2};
  record.count = core::desiredPodCount(record.inputs, record.settings);
  core::JobQueue queue(target_);
  must(queue.storeScaling(*token, record));

  const auto reply = call("GET", "/api/v1/scaling", core::TokenScope::Read);
  ASSERT_EQ(reply.status, 200) << reply.text;
  EXPECT_EQ(reply.body["count"], 5);
  EXPECT_EQ(reply.body["policy"], "queue-aware");
  EXPECT_EQ(reply.body["formula"], "max(6 / 2 + 1, 2) + 1 = 5");
  EXPECT_EQ(reply.body["computed_by"], "vm:42:abcd");
  EXPECT_EQ(reply.body["term"], token->term);
  EXPECT_EQ(reply.body["inputs"], (Json{{"ongoing_jobs", 3},
                                        {"runs_in_retired_workers", 1},
                                        {"retired_workers", 1},
                                        {"active_workers", 2},
                                        {"queued_jobs", 4},
                                        {"worker_capacity", 2},
                                        {"minimum_active_workers", 2}}));
  EXPECT_EQ(reply.body["lease"]["holder"], "vm:42:abcd");
  EXPECT_EQ(reply.body["lease"]["valid"], true);
  EXPECT_TRUE(reply.body["lease"]["expires_at"].get<std::string>().ends_with("Z")) << reply.text;
  expectError(call("GET", "/api/v1/scaling?policy=seed", core::TokenScope::Read), 400,
              "unknown_parameter");
}

TEST_F(StatusTest, PluginsShowTheirManifestsAndSchemas) {
  const auto list = call("GET", "/api/v1/plugins", core::TokenScope::Read);
  ASSERT_EQ(list.status, 200) << list.text;
  EXPECT_EQ(idsOf(list.body["items"]), (std::vector<std::string>{"memory", "memory-loose"}));
  EXPECT_TRUE(list.body["next_cursor"].is_null());
  const auto& memory = list.body["items"][0];
  EXPECT_EQ(memory["version"], "1.2.3");
  EXPECT_EQ(memory["abi"], "1.0");
  EXPECT_EQ(memory["custom_diff"], false);
  EXPECT_EQ(memory["streams"][0]["name"], "items");
  EXPECT_EQ(memory["streams"][0]["key_fields"], Json::array({"id"}));
  EXPECT_EQ(memory["capabilities"]["incremental_cursor_field"], "seq");
  EXPECT_NE(std::find(memory["capabilities"]["fetch"].begin(),
                      memory["capabilities"]["fetch"].end(), "incremental"),
            memory["capabilities"]["fetch"].end());
  EXPECT_EQ(memory["config_schema"]["properties"]["token"]["writeOnly"], true);
  EXPECT_FALSE(memory.contains("path")) << "files on the server are not shown";
  EXPECT_EQ(list.body["items"][1]["custom_diff"], true);

  const auto first = call("GET", "/api/v1/plugins?limit=1", core::TokenScope::Read);
  EXPECT_EQ(idsOf(first.body["items"]), (std::vector<std::string>{"memory"}));
  ASSERT_EQ(first.body["next_cursor"], "memory") << first.text;
  const auto second = call("GET", "/api/v1/plugins?limit=1&cursor=memory", core::TokenScope::Read);
  EXPECT_EQ(idsOf(second.body["items"]), (std::vector<std::string>{"memory-loose"}));
  EXPECT_TRUE(second.body["next_cursor"].is_null()) << second.text;
  expectError(call("GET", "/api/v1/plugins?cursor=Not%20an%20id", core::TokenScope::Read), 400,
              "invalid_parameter");

  const auto one = call("GET", "/api/v1/plugins/memory-loose", core::TokenScope::Read);
  ASSERT_EQ(one.status, 200) << one.text;
  EXPECT_EQ(one.body, list.body["items"][1]);
  expectError(call("GET", "/api/v1/plugins/nosuch", core::TokenScope::Read), 404, "not_found");
  const auto malformed = call("GET", "/api/v1/plugins/Memory", core::TokenScope::Read);
  expectError(malformed, 400, "invalid_id");
  EXPECT_EQ(malformed.body["error"]["details"]["parameter"], "plugin id");
}

}  // namespace
}  // namespace syncpod::service
