// Webhook secrets, webhook events and how pending events become jobs, against a real PostgreSQL.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pg_test_support.hpp"
#include "syncpod/core/integrations.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"

namespace syncpod::core {
namespace {

using namespace std::chrono_literals;
using testing::execute;
using testing::queryScalar;

template <class T>
T must(Result<T> result, const std::string& what) {
  if (!result) throw std::runtime_error(what + " failed: " + result.error().message);
  return std::move(result).value();
}

const std::string kSecret = "whsec_first_secret_0123456789";

class WebhooksTest : public testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    store_ = std::make_unique<IntegrationStore>(target_);
    queue_ = std::make_unique<JobQueue>(target_);
  }

  IntegrationId integration(const std::string& name, bool enabled = true) {
    return must(store_->create(name, enabled, "{}", kSecret), "create").id;
  }

  /// Stores a delivery naming `keys`; its content digest is `digest`.
  RecordedWebhookEvent deliver(IntegrationId id, const std::string& digest,
                               std::vector<std::string> keys,
                               std::optional<std::string> event_id = std::nullopt) {
    WebhookEventInput input;
    input.integration_id = id;
    input.event_id = std::move(event_id);
    input.content_sha256 = digest;
    input.signed_at = Clock::now();
    input.keys = std::move(keys);
    input.body_bytes = 10;
    return must(store_->recordWebhookEvent(input), "record");
  }

  WebhookEvent event(std::int64_t id) {
    auto found = must(store_->findWebhookEvent(id), "find event");
    if (!found) throw std::runtime_error("no webhook event " + std::to_string(id));
    return *found;
  }

  nlohmann::json payload(JobId job) {
    auto found = must(queue_->find(job), "find job");
    if (!found) throw std::runtime_error("no job " + std::to_string(job));
    return nlohmann::json::parse(found->payload_json);
  }

  std::string scalar(const std::string& sql) { return queryScalar(target_, sql); }

  std::unique_ptr<IntegrationStore> store_;
  std::unique_ptr<JobQueue> queue_;
};

TEST_F(WebhooksTest, SecretsAreSetRotatedAndRemovedButNeverReadIntoAnIntegration) {
  const auto id = integration("crm");
  auto shown = must(store_->find(id), "find");
  ASSERT_TRUE(shown);
  EXPECT_TRUE(shown->webhook_secret_set);
  EXPECT_FALSE(shown->webhook_previous_expires_at);
  auto receiver = must(store_->webhookReceiver(id), "receiver");
  ASSERT_TRUE(receiver);
  EXPECT_TRUE(receiver->enabled);
  EXPECT_EQ(receiver->secrets, std::vector<std::string>{kSecret});

  // A rotation that keeps the old secret for an hour: both are accepted meanwhile.
  const std::string second = "whsec_second_secret_0123456789";
  auto rotated = must(store_->setWebhookSecret(id, {second, 1h}), "rotate");
  ASSERT_TRUE(rotated && rotated->webhook_previous_expires_at);
  EXPECT_GT(*rotated->webhook_previous_expires_at, Clock::now() + 59min);
  EXPECT_EQ(must(store_->webhookReceiver(id), "receiver")->secrets,
            (std::vector<std::string>{second, kSecret}));
  // Once the overlap has passed only the new one is.
  execute(target_,
          "UPDATE integrations SET webhook_previous_expires_at = now() - interval '1 second'");
  EXPECT_EQ(must(store_->webhookReceiver(id), "receiver")->secrets,
            std::vector<std::string>{second});
  EXPECT_FALSE(must(store_->find(id), "find")->webhook_previous_expires_at);

  // A rotation without overlap, then an update that leaves the secret alone.
  const std::string third = "whsec_third_secret_0123456789";
  ASSERT_FALSE(
      must(store_->setWebhookSecret(id, {third, 0s}), "rotate")->webhook_previous_expires_at);
  auto changed = *must(store_->find(id), "find");
  changed.name = "crm2";
  ASSERT_TRUE(must(store_->update(changed), "update")->webhook_secret_set);
  EXPECT_EQ(must(store_->webhookReceiver(id), "receiver")->secrets,
            std::vector<std::string>{third});

  // An update that removes it: no webhooks any more.
  auto removed = must(store_->update(changed, WebhookSecretChange{}), "update");
  ASSERT_TRUE(removed);
  EXPECT_FALSE(removed->webhook_secret_set);
  EXPECT_TRUE(must(store_->webhookReceiver(id), "receiver")->secrets.empty());
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema +
                   ".integrations WHERE webhook_secret IS NOT NULL "
                   "OR webhook_previous_secret IS NOT NULL"),
            "0");

  EXPECT_FALSE(must(store_->webhookReceiver(9999), "receiver"));
  EXPECT_FALSE(must(store_->setWebhookSecret(9999, {third, 0s}), "rotate"));
}

TEST_F(WebhooksTest, AFailedWriteNeverQuotesTheSecret) {
  const auto id = integration("crm");
  auto changed = *must(store_->find(id), "find");
  changed.name = "";  // the name check fails; PostgreSQL quotes the failing row
  const std::string secret = "whsec_never_in_a_message_0123";
  auto failed = store_->update(changed, WebhookSecretChange{secret, 0s});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message.find(secret), std::string::npos) << failed.error().message;
}

TEST_F(WebhooksTest, DeliveriesAreStoredOnceByContentAndBySendersId) {
  const auto id = integration("crm");
  const auto other = integration("erp");
  const auto first = deliver(id, "digest-1", {"17"}, "evt-1");
  EXPECT_FALSE(first.duplicate);
  EXPECT_EQ(first.event.keys, std::vector<std::string>{"17"});
  EXPECT_EQ(first.event.event_id, "evt-1");
  EXPECT_FALSE(first.event.job_id);

  const auto same_content = deliver(id, "digest-1", {"17"});
  EXPECT_TRUE(same_content.duplicate);
  EXPECT_EQ(same_content.event.id, first.event.id);
  const auto same_id = deliver(id, "digest-2", {"99"}, "evt-1");
  EXPECT_TRUE(same_id.duplicate);
  EXPECT_EQ(same_id.event.id, first.event.id);
  EXPECT_EQ(same_id.event.keys, std::vector<std::string>{"17"}) << "the first delivery stands";

  EXPECT_FALSE(deliver(id, "digest-3", {"18"}).duplicate);
  EXPECT_FALSE(deliver(id, "digest-4", {"18"}).duplicate)
      << "no event id: only the content identifies it";
  EXPECT_FALSE(deliver(other, "digest-1", {"17"}, "evt-1").duplicate)
      << "identities are per integration";
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema + ".webhook_events"), "4");
}

TEST_F(WebhooksTest, PendingEventsBecomeOnePartialJobOfTheirKeysAndLaterOnesMergeIntoIt) {
  const auto id = integration("crm");
  const auto a = deliver(id, "d1", {"b", "a"}).event.id;
  const auto b = deliver(id, "d2", {"a", "c"}).event.id;
  const auto job = must(queue_->enqueueWebhookEvents(id), "enqueue");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->integration_id, id);
  EXPECT_EQ(job->events, 2);
  EXPECT_FALSE(job->merged);
  EXPECT_EQ(payload(job->job_id)["keys"], nlohmann::json({"a", "b", "c"}));
  EXPECT_EQ(event(a).job_id, job->job_id);
  EXPECT_EQ(event(b).job_id, job->job_id);
  EXPECT_TRUE(event(b).enqueued_at);
  EXPECT_FALSE(must(queue_->enqueueWebhookEvents(id), "enqueue")) << "nothing pending";

  // A later delivery coalesces into the job while it is queued.
  const auto c = deliver(id, "d3", {"d"}).event.id;
  const auto again = must(queue_->enqueueWebhookEvents(id), "enqueue");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_id, job->job_id);
  EXPECT_TRUE(again->merged);
  EXPECT_EQ(payload(job->job_id)["keys"], nlohmann::json({"a", "b", "c", "d"}));
  EXPECT_EQ(event(c).job_id, job->job_id);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema + ".jobs"), "1");
}

TEST_F(WebhooksTest,
       EventsStayPendingWhileDisabledOrWhenTheJobCannotBeInsertedThenTheRescuePassEnqueuesThem) {
  const auto disabled = integration("disabled", false);
  const auto failing = integration("failing");
  const auto off = deliver(disabled, "d1", {"1"}).event.id;
  const auto broken = deliver(failing, "d2", {"2"}).event.id;
  EXPECT_FALSE(must(queue_->enqueueWebhookEvents(disabled), "enqueue"));

  // The job insert fails: the transaction is rolled back whole and the event stays pending.
  execute(target_, R"SQL(
    CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'no jobs today'; END $$;
    CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs();
  )SQL");
  auto refused = queue_->enqueueWebhookEvents(failing);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("no jobs today"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(event(broken).job_id);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + target_.schema + ".jobs"), "0");

  execute(target_, "DROP TRIGGER refuse_jobs ON jobs");
  execute(target_, "UPDATE integrations SET enabled = true WHERE id = " + std::to_string(disabled));
  LeaderLease lease(target_, "singleton", "test", 30s);
  const auto token = must(lease.acquire(), "acquire");
  ASSERT_TRUE(token);
  const auto jobs = must(queue_->enqueueWebhookEvents(*token, 1000), "rescue pass");
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(jobs[0].integration_id, disabled);
  EXPECT_EQ(jobs[1].integration_id, failing);
  EXPECT_EQ(event(off).job_id, jobs[0].job_id);
  EXPECT_EQ(event(broken).job_id, jobs[1].job_id);
  EXPECT_EQ(payload(jobs[1].job_id)["keys"], nlohmann::json({"2"}));
  EXPECT_TRUE(must(queue_->enqueueWebhookEvents(*token, 1000), "rescue pass").empty());

  // A former leader changes nothing.
  deliver(failing, "d3", {"3"});
  auto stale = *token;
  stale.term += 1;
  auto fenced = queue_->enqueueWebhookEvents(stale, 1000);
  ASSERT_FALSE(fenced);
  EXPECT_EQ(fenced.error().code, Error::Code::Fenced);
  EXPECT_EQ(
      scalar("SELECT count(*) FROM " + target_.schema + ".webhook_events WHERE job_id IS NULL"),
      "1");
}

TEST_F(WebhooksTest, CleanupDeletesOldEventsThatBecameJobsAndKeepsPendingOnes) {
  const auto id = integration("crm");
  const auto old_done = deliver(id, "d1", {"1"}).event.id;
  ASSERT_TRUE(must(queue_->enqueueWebhookEvents(id), "enqueue"));
  const auto new_done = deliver(id, "d2", {"2"}).event.id;
  ASSERT_TRUE(must(queue_->enqueueWebhookEvents(id), "enqueue"));
  execute(target_, "UPDATE integrations SET enabled = false");
  const auto old_pending = deliver(id, "d3", {"3"}).event.id;
  execute(target_,
          "UPDATE webhook_events SET received_at = now() - interval '30 days' WHERE id IN (" +
              std::to_string(old_done) + ", " + std::to_string(old_pending) + ")");

  LeaderLease lease(target_, "singleton", "test", 30s);
  const auto token = must(lease.acquire(), "acquire");
  ASSERT_TRUE(token);
  const auto cleaned = must(queue_->cleanup(*token, {}), "cleanup");
  EXPECT_EQ(cleaned.webhook_events_deleted, 1);
  EXPECT_FALSE(must(store_->findWebhookEvent(old_done), "find"));
  EXPECT_TRUE(must(store_->findWebhookEvent(new_done), "find"));
  EXPECT_TRUE(must(store_->findWebhookEvent(old_pending), "find"));
}

}  // namespace
}  // namespace syncpod::core
