// The singleton role as it runs in production: the real `syncpod serve --role=singleton`
// binary, two instances competing for the leader lease, short intervals.

#include <csignal>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pg_test_support.hpp"
#include "process.hpp"

namespace syncpod::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kBinary = SYNCPOD_BINARY;

class SingletonTest : public PgTest {
 protected:
  std::map<std::string, std::string> settings_ = {
      {"scale-interval", "200ms"},        {"leader-lease-ttl", "1500ms"},
      {"leader-renew-interval", "300ms"}, {"rescue-interval", "200ms"},
      {"rescue-lease", "1s"},             {"cleanup-interval", "1s"},
      {"change-poll-interval", "300ms"},  {"plugin-path", SYNCPOD_TEST_PLUGIN_DIR "/libmemory.so"}};

  std::unique_ptr<ChildProcess> startSingleton() {
    std::vector<std::string> args = {kBinary, "serve", "--role=singleton",
                                     "--database-url=" + target_.url, "--schema=" + target_.schema};
    for (const auto& [name, value] : settings_) args.push_back("--" + name + "=" + value);
    return std::make_unique<ChildProcess>(args);
  }

  std::string scalar(const std::string& sql) { return queryScalar(target_, sql); }
  std::string table(const std::string& name) { return target_.schema + "." + name; }

  void setConfig(std::int64_t integration, const Json& config) {
    execute(target_, "UPDATE integrations SET config = '" + config.dump() +
                         "'::jsonb WHERE id = " + std::to_string(integration));
  }
};

TEST_F(SingletonTest, StandbyLeadsAfterTheLeaderIsKilledAndNoCronFireRepeats) {
  // Due every minute; last changed three minutes ago, so the first leader fires the latest
  // missed slot at once — and only that one.
  const auto integration = createIntegration("every-minute");
  setConfig(integration, {{"schedule", {{"cron", "* * * * *"}}}});
  execute(target_, "UPDATE integrations SET updated_at = now() - interval '3 minutes'");

  auto first = startSingleton();
  ASSERT_TRUE(first->waitForOutput("leading (term 1)", 10s)) << first->output();
  auto second = startSingleton();
  ASSERT_TRUE(second->waitForOutput("standing by", 10s)) << second->output();

  // The KEDA query: one integer, computed by the leader (idle → the minimum, 2).
  ASSERT_TRUE(eventually([&] { return scalar("SELECT policy FROM " + table("desired_pod_count")) == "seed"; }, 5s));
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("desired_pod_count")), "1");
  EXPECT_EQ(scalar("SELECT count FROM " + table("desired_pod_count")), "2");
  // At least one: when the test starts just before a whole minute, the next slot may already
  // have fired too (the checks below allow for it).
  ASSERT_TRUE(eventually([&] { return scalar("SELECT count(*) FROM " + table("cron_fires")) != "0"; }, 5s));
  EXPECT_TRUE(first->waitForOutput("desired_pod_count 2 (policy seed", 5s)) << first->output();
  const auto first_fire = scalar("SELECT min(extract(epoch FROM fire_time))::bigint FROM " + table("cron_fires"));
  EXPECT_EQ(std::stoll(first_fire) % 60, 0) << "a fire time is a whole minute";

  first->signal(SIGKILL);
  ASSERT_EQ(first->wait(5s), 128 + SIGKILL);
  // The dead leader's lease as its last renewal left it, and the time, on the database's clock
  // (which log latency does not touch).
  const auto killed_at = std::stod(scalar("SELECT extract(epoch FROM now())"));
  const auto expired_at = std::stod(scalar("SELECT extract(epoch FROM expires_at) FROM " + table("leader_lease")));
  ASSERT_TRUE(second->waitForOutput("leading (term 2)", 10s)) << second->output();
  // The standby takes the lease once it has expired, never before, and within the TTL (1.5 s)
  // and one of its tries (300 ms), with room for a busy machine.
  const auto taken_at = std::stod(scalar("SELECT extract(epoch FROM acquired_at) FROM " + table("leader_lease")));
  EXPECT_GE(taken_at, expired_at);
  EXPECT_LT(taken_at - killed_at, 1.5 + 0.3 + 1.0) << "the standby took the lease "
                                                   << (taken_at - killed_at) << " s after the kill";
  ASSERT_TRUE(eventually([&] { return scalar("SELECT term FROM " + table("desired_pod_count")) == "2"; }, 5s));

  // Let the new leader tick a few times: it must not fire the slot the old one fired.
  const auto ticks = [&] {
    const auto out = second->output();
    std::size_t n = 0;
    for (auto at = out.find("singleton term 2: desired_pod_count"); at != std::string::npos;
         at = out.find("singleton term 2: desired_pod_count", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return ticks() >= 5; }, 5s)) << second->output();
  const auto fires = scalar("SELECT string_agg(extract(epoch FROM fire_time)::bigint::text, ',' ORDER BY fire_time) FROM " +
                            table("cron_fires"));
  // Each fire is a distinct whole minute, from the first one on (a minute may have passed).
  long long previous = 0;
  std::size_t count = 0;
  for (std::size_t at = 0; at <= fires.size();) {
    const auto comma = std::min(fires.find(',', at), fires.size());
    const long long fire = std::stoll(fires.substr(at, comma - at));
    EXPECT_EQ(fire % 60, 0);
    if (count == 0) EXPECT_EQ(std::to_string(fire), first_fire);
    else EXPECT_GE(fire - previous, 60);
    previous = fire;
    ++count;
    at = comma + 1;
  }
  EXPECT_LE(count, 2U) << fires;
  // Every fire made or joined a job; no slot was enqueued twice.
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("cron_fires") + " WHERE job_id IS NULL"), "0");

  // A clean stop releases the lease at once.
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(10s), 0);
  EXPECT_NE(second->output().find("released the lease (term 2)"), std::string::npos) << second->output();
  EXPECT_EQ(scalar("SELECT expires_at <= now() FROM " + table("leader_lease")), "t");

  const auto explain = run({kBinary, "scaling", "explain", "--database-url=" + target_.url,
                            "--schema=" + target_.schema});
  EXPECT_EQ(explain.exit_code, 0) << explain.output;
  EXPECT_NE(explain.output.find("desired_pod_count: 2\n"), std::string::npos) << explain.output;
  EXPECT_NE(explain.output.find("policy:                  seed"), std::string::npos) << explain.output;
  EXPECT_NE(explain.output.find("formula:                 max(0 / 1 + 1, 2) + 0 = 2"), std::string::npos)
      << explain.output;
  EXPECT_NE(explain.output.find("leader: none"), std::string::npos) << explain.output;
}

TEST_F(SingletonTest, AScheduleChangedAfterItsSlotDoesNotFireThatSlot) {
  // Daily at the minute 30 minutes ago; it last fired at that minute yesterday. Changed since
  // today's slot passed, the schedule was not in effect then: its next fire is tomorrow's.
  // Changed before the slot, it was, and the missed slot fires.
  const auto slot = std::stoll(scalar("SELECT extract(epoch FROM date_trunc('minute', now() - interval '30 minutes'))::bigint"));
  const std::string cron = std::to_string((slot / 60) % 60) + " " + std::to_string((slot / 3600) % 24) + " * * *";
  const auto changed_after = createIntegration("changed-after-the-slot");
  const auto changed_before = createIntegration("changed-before-the-slot");
  for (const auto id : {changed_after, changed_before}) {
    setConfig(id, {{"schedule", {{"cron", cron}}}});
    execute(target_, "INSERT INTO cron_fires (integration_id, fire_time, term) VALUES (" + std::to_string(id) +
                         ", to_timestamp(" + std::to_string(slot - 86400) + "), 0)");
  }
  execute(target_, "UPDATE integrations SET updated_at = now() - interval '10 minutes' WHERE id = " +
                       std::to_string(changed_after));
  execute(target_, "UPDATE integrations SET updated_at = now() - interval '40 minutes' WHERE id = " +
                       std::to_string(changed_before));

  auto singleton = startSingleton();
  ASSERT_TRUE(singleton->waitForOutput("cron fired: changed-before-the-slot", 10s)) << singleton->output();
  // Three more ticks (each checks every schedule): the other one stays quiet.
  const auto ticks = [&] {
    const auto out = singleton->output();
    std::size_t n = 0;
    for (auto at = out.find(": desired_pod_count"); at != std::string::npos; at = out.find(": desired_pod_count", at + 1)) ++n;
    return n;
  };
  const auto ticked = ticks();
  ASSERT_TRUE(eventually([&] { return ticks() >= ticked + 3; }, 5s)) << singleton->output();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("jobs")), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("cron_fires") + " WHERE integration_id = " +
                   std::to_string(changed_after)),
            "1")
      << singleton->output();
  EXPECT_EQ(scalar("SELECT extract(epoch FROM fire_time)::bigint FROM " + table("cron_fires") +
                   " WHERE integration_id = " + std::to_string(changed_before) + " ORDER BY fire_time DESC LIMIT 1"),
            std::to_string(slot));
  singleton->signal(SIGTERM);
  EXPECT_EQ(singleton->wait(10s), 0) << singleton->output();
}

TEST_F(SingletonTest, ExplainOnAFreshDatabaseSaysNothingWasComputed) {
  const auto explain = run({kBinary, "scaling", "explain", "--database-url=" + target_.url,
                            "--schema=" + target_.schema, "--json"});
  ASSERT_EQ(explain.exit_code, 0) << explain.output;
  const auto out = Json::parse(explain.output);
  EXPECT_EQ(out["count"], 0);
  EXPECT_EQ(out["policy"], "initial");
  const auto usage = run({kBinary, "scaling", "--database-url=" + target_.url});
  EXPECT_EQ(usage.exit_code, 64) << usage.output;
}

TEST_F(SingletonTest, InvalidScheduleIsSkippedAndChangesEnqueuePartialJobs) {
  const Json records = {{"items", {{{"id", 1}, {"seq", 1}}, {{"id", 2}, {"seq", 2}}, {{"id", 3}, {"seq", 3}}}}};
  const auto config = [&](bool detect) {
    return Json{{"source", {{"plugin", "memory"}, {"config", {{"records", records}}}}},
                {"target", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array()}}}}}}},
                {"streams", {{{"name", "items"}, {"key", {"id"}}, {"fields", {{"id", "id"}}}}}},
                {"detect_changes", detect}};
  };
  const auto unchanged = createIntegration("unchanged");
  const auto changed = createIntegration("changed");
  const auto not_asked = createIntegration("not-asked");
  const auto broken = createIntegration("broken-schedule");
  setConfig(unchanged, config(true));
  setConfig(changed, config(true));
  setConfig(not_asked, config(false));
  auto broken_config = config(false);
  broken_config["schedule"] = {{"cron", "0 24 * * *"}};
  setConfig(broken, broken_config);
  execute(target_, "INSERT INTO sync_cursors (integration_id, stream, side, cursor) VALUES (" +
                       std::to_string(unchanged) + ", 'items', 'source', '3'), (" +
                       std::to_string(changed) + ", 'items', 'source', '1')");

  auto singleton = startSingleton();
  ASSERT_TRUE(singleton->waitForOutput("changes detected: changed → job", 10s)) << singleton->output();
  EXPECT_TRUE(singleton->waitForOutput("schedule ignored: /schedule/cron: hour field '24': 24 is out of range 0-23", 5s))
      << singleton->output();
  // Polled again and again, the change stays one queued partial job.
  ASSERT_TRUE(singleton->waitForOutput("(merged)", 5s)) << singleton->output();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("jobs")), "1");
  EXPECT_EQ(scalar("SELECT integration_id || ':' || kind || ':' || (payload->>'incremental') FROM " + table("jobs")),
            std::to_string(changed) + ":partial:true");
  singleton->signal(SIGTERM);
  EXPECT_EQ(singleton->wait(10s), 0) << singleton->output();
}

TEST_F(SingletonTest, ASlowSourceHoldsUpNeitherTheTickNorTheLeaseNorStopping) {
  // The source's fetch takes a minute, checking for cancellation as a well-behaved plugin does.
  settings_["plugin-path"] = SYNCPOD_TEST_PLUGIN_DIR "/libworkload.so";
  const std::string secret = "s3cret-source-token";
  const auto integration = createIntegration("slow-source");
  setConfig(integration,
            {{"source", {{"plugin", "workload"}, {"config", {{"fetch_ms", 60000}, {"token", secret}}}}},
             {"target", {{"plugin", "workload"}, {"config", Json::object()}}},
             {"streams", {{{"name", "items"}, {"key", {"id"}}, {"fields", {{"id", "id"}}}}}},
             {"detect_changes", true}});
  execute(target_, "INSERT INTO sync_cursors (integration_id, stream, side, cursor) VALUES (" +
                       std::to_string(integration) + ", 'items', 'source', '1')");

  auto singleton = startSingleton();
  ASSERT_TRUE(singleton->waitForOutput("leading (term 1)", 10s)) << singleton->output();
  // The plugin warns as its fetch begins: change detection is now inside it.
  ASSERT_TRUE(singleton->waitForOutput("workload: using token", 10s)) << singleton->output();
  const auto fetch_began = scalar("SELECT now()");

  // Meanwhile the tick (every 200 ms) goes on rewriting desired_pod_count, and the lease (TTL
  // 1.5 s) stays renewed.
  EXPECT_TRUE(eventually([&] {
    return scalar("SELECT computed_at > '" + fetch_began + "'::timestamptz + interval '2 seconds' FROM " +
                  table("desired_pod_count")) == "t";
  }, 10s)) << singleton->output();
  EXPECT_EQ(scalar("SELECT term || ':' || (expires_at > now()) FROM " + table("leader_lease")), "1:true");

  // Stopping asks the plugin to cancel its fetch instead of waiting the minute out.
  singleton->signal(SIGTERM);
  EXPECT_EQ(singleton->wait(10s), 0) << singleton->output();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("jobs")), "0");
  EXPECT_EQ(singleton->output().find(secret), std::string::npos) << singleton->output();
}

TEST_F(SingletonTest, PendingWebhookEventsBecomeJobsAndOldOnesAreCleanedUp) {
  // Stored by the service while the integration was disabled, or when the job insert failed.
  const auto integration = createIntegration("hooked");
  const auto disabled = createIntegration("still-disabled");
  execute(target_, "UPDATE integrations SET enabled = false WHERE id = " + std::to_string(disabled));
  const auto event = [&](std::int64_t id, const std::string& digest, const std::string& keys, const std::string& age) {
    execute(target_, "INSERT INTO webhook_events (integration_id, content_sha256, signed_at, received_at, keys, "
                     "body_bytes) VALUES (" + std::to_string(id) + ", '" + digest + "', now(), now() - interval '" +
                         age + "', '" + keys + "'::jsonb, 10)");
  };
  event(integration, "a", R"(["1", "2"])", "1 second");
  event(integration, "b", R"(["2", "3"])", "1 second");
  event(disabled, "c", R"(["9"])", "30 days");
  // Long done: deleted by cleanup.
  event(integration, "d", R"(["4"])", "30 days");
  execute(target_, "UPDATE webhook_events SET job_id = 0 WHERE content_sha256 = 'd'");

  auto singleton = startSingleton();
  ASSERT_TRUE(singleton->waitForOutput("pending webhook events enqueued: integration " + std::to_string(integration) +
                                           ": 2 → job", 10s))
      << singleton->output();
  ASSERT_TRUE(singleton->waitForOutput("1 webhook events", 5s)) << singleton->output();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("jobs")), "1");
  EXPECT_EQ(scalar("SELECT integration_id || ':' || kind || ':' || (payload->'keys')::text FROM " + table("jobs")),
            std::to_string(integration) + R"(:partial:["1", "2", "3"])");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("webhook_events") + " WHERE job_id = (SELECT id FROM " +
                   table("jobs") + ")"),
            "2");
  // The disabled integration's event waits, however old.
  EXPECT_EQ(scalar("SELECT count(*) FROM " + table("webhook_events") + " WHERE job_id IS NULL"), "1");
  singleton->signal(SIGTERM);
  EXPECT_EQ(singleton->wait(10s), 0) << singleton->output();
}

}  // namespace
}  // namespace syncpod::testing
