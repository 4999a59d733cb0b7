#include "syncpod/core/integrations.hpp"

#include <nlohmann/json.hpp>

#include "job_event_store.hpp"
#include "pg.hpp"

namespace syncpod::core {
namespace {

// The secrets themselves are never selected here: only whether there is one, and until when
// the previous one is accepted.
const std::string kColumns =
    "id, name, enabled, config::text, " + pg::epochMicros("created_at") + ", " +
    pg::epochMicros("updated_at") + ", webhook_secret IS NOT NULL, CASE WHEN " +
    "webhook_previous_expires_at > now() THEN " + pg::epochMicros("webhook_previous_expires_at") +
    " END";

// SET clauses for a WebhookSecretChange, with parameters $N (whether to change), $N+1 (the new
// secret or NULL) and $N+2 (seconds the current secret is kept as the previous one). SET sees
// the row as it was, so webhook_secret on the right is the secret being replaced.
std::string webhookSecretAssignments(int n) {
  const auto change = "$" + std::to_string(n) + "::boolean";
  const auto secret = "$" + std::to_string(n + 1) + "::text";
  const auto keep = "$" + std::to_string(n + 2) + "::float8";
  return "webhook_secret = CASE WHEN " + change + " THEN " + secret + " ELSE webhook_secret END, " +
         "webhook_previous_secret = CASE WHEN NOT " + change + " THEN webhook_previous_secret WHEN " +
         secret + " IS NOT NULL AND " + keep + " > 0 THEN webhook_secret END, " +
         "webhook_previous_expires_at = CASE WHEN NOT " + change +
         " THEN webhook_previous_expires_at WHEN " + secret + " IS NOT NULL AND " + keep +
         " > 0 AND webhook_secret IS NOT NULL THEN now() + make_interval(secs => " + keep + ") END";
}

const std::string kEventColumns =
    "id, integration_id, event_id, " + pg::epochMicros("signed_at") + ", " +
    pg::epochMicros("received_at") + ", keys::text, incremental, job_id, " +
    pg::epochMicros("enqueued_at");

WebhookEvent eventOf(const pqxx::row& row) {
  WebhookEvent event;
  event.id = row[0].as<std::int64_t>();
  event.integration_id = row[1].as<IntegrationId>();
  if (!row[2].is_null()) event.event_id = row[2].as<std::string>();
  event.signed_at = pg::fromEpochMicros(row[3].as<long long>());
  event.received_at = pg::fromEpochMicros(row[4].as<long long>());
  const auto keys = nlohmann::json::parse(row[5].c_str(), nullptr, false);
  if (keys.is_array()) {
    for (const auto& key : keys) {
      if (key.is_string()) event.keys.push_back(key.get<std::string>());
    }
  }
  event.incremental = row[6].as<bool>();
  if (!row[7].is_null()) event.job_id = row[7].as<JobId>();
  if (!row[8].is_null()) event.enqueued_at = pg::fromEpochMicros(row[8].as<long long>());
  return event;
}

/// The error without what could hold a secret: PostgreSQL's "Failing row contains (…)" detail
/// quotes the whole row (the config's secrets, the webhook secret), and callers log messages.
/// Every occurrence of `secret` is replaced by *** as well.
template <class T>
Result<T> withoutSecrets(Result<T> result, const std::optional<std::string>& secret = std::nullopt) {
  if (result) return result;
  auto error = result.error();
  if (const auto row = error.message.find("Failing row contains"); row != std::string::npos) {
    error.message = error.message.substr(0, row) + "(the row is not shown: it holds secrets)";
  }
  if (secret && !secret->empty()) {
    for (auto at = error.message.find(*secret); at != std::string::npos;
         at = error.message.find(*secret, at)) {
      error.message.replace(at, secret->size(), "***");
    }
  }
  return error;
}

Integration integrationOf(const pqxx::row& row) {
  Integration integration;
  integration.id = row[0].as<IntegrationId>();
  integration.name = row[1].as<std::string>();
  integration.enabled = row[2].as<bool>();
  integration.config_json = row[3].as<std::string>();
  integration.created_at = pg::fromEpochMicros(row[4].as<long long>());
  integration.updated_at = pg::fromEpochMicros(row[5].as<long long>());
  integration.webhook_secret_set = row[6].as<bool>();
  if (!row[7].is_null()) integration.webhook_previous_expires_at = pg::fromEpochMicros(row[7].as<long long>());
  return integration;
}

template <class T>
Result<T> nameTaken(const Result<T>& result, const std::string& name) {
  if (!result && result.error().code == Error::Code::Conflict) {
    return Error{Error::Code::Conflict, "an integration named '" + name + "' exists already"};
  }
  return result;
}

}  // namespace

class IntegrationStore::Impl : public pg::Session {
 public:
  using Session::Session;
};

IntegrationStore::IntegrationStore(DatabaseTarget target) : impl_(std::make_unique<Impl>(target)) {}
IntegrationStore::~IntegrationStore() = default;

Result<IntegrationPage> IntegrationStore::list(IntegrationId after, int limit) {
  return impl_->run([&](pqxx::work& tx) {
    IntegrationPage page;
    // One more than asked: whether there is a next page, without a count.
    const auto rows = tx.exec_params("SELECT " + kColumns +
                                         " FROM integrations WHERE id > $1 ORDER BY id LIMIT $2",
                                     after, limit + 1);
    for (const auto& row : rows) {
      if (static_cast<int>(page.items.size()) == limit) {
        page.next_after = page.items.back().id;
        break;
      }
      page.items.push_back(integrationOf(row));
    }
    return page;
  });
}

Result<std::optional<Integration>> IntegrationStore::find(IntegrationId id) {
  return impl_->run([&](pqxx::work& tx) -> std::optional<Integration> {
    const auto rows = tx.exec_params("SELECT " + kColumns + " FROM integrations WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    return integrationOf(rows[0]);
  });
}

Result<Integration> IntegrationStore::create(const std::string& name, bool enabled,
                                             const std::string& config_json,
                                             const std::optional<std::string>& webhook_secret) {
  return withoutSecrets(nameTaken(impl_->run([&](pqxx::work& tx) {
    return integrationOf(tx.exec_params1(
        "INSERT INTO integrations (name, enabled, config, webhook_secret) "
        "VALUES ($1, $2, $3::jsonb, $4) RETURNING " + kColumns,
        name, enabled, config_json, webhook_secret));
  }), name), webhook_secret);
}

Result<std::optional<Integration>> IntegrationStore::update(const Integration& integration,
                                                            const std::optional<WebhookSecretChange>& webhook) {
  const auto secret = webhook ? webhook->secret : std::nullopt;
  const double keep = webhook ? double(webhook->keep_previous.count()) : 0.0;
  return withoutSecrets(nameTaken(impl_->run([&](pqxx::work& tx) -> std::optional<Integration> {
    const auto rows = tx.exec_params(
        "UPDATE integrations SET name = $2, enabled = $3, config = $4::jsonb, updated_at = now(), " +
            webhookSecretAssignments(5) + " WHERE id = $1 RETURNING " + kColumns,
        integration.id, integration.name, integration.enabled, integration.config_json,
        webhook.has_value(), secret, keep);
    if (rows.empty()) return std::nullopt;
    return integrationOf(rows[0]);
  }), integration.name), secret);
}

Result<std::optional<Integration>> IntegrationStore::setWebhookSecret(IntegrationId id,
                                                                      const WebhookSecretChange& change) {
  return withoutSecrets(impl_->run([&](pqxx::work& tx) -> std::optional<Integration> {
    const auto rows = tx.exec_params(
        "UPDATE integrations SET updated_at = now(), " + webhookSecretAssignments(2) +
            " WHERE id = $1 RETURNING " + kColumns,
        id, true, change.secret, double(change.keep_previous.count()));
    if (rows.empty()) return std::nullopt;
    return integrationOf(rows[0]);
  }), change.secret);
}

Result<bool> IntegrationStore::remove(IntegrationId id) {
  auto removed = impl_->run([&](pqxx::work& tx) -> std::optional<bool> {
    // The lane row says whether a job runs; locking it keeps a claim from starting one now.
    const auto lane = tx.exec_params(
        "SELECT running_job_id FROM job_lanes WHERE integration_id = $1 FOR UPDATE", id);
    if (!lane.empty() && !lane[0][0].is_null()) return std::nullopt;
    // Its jobs go with it. Their job_queue, job_attempts and job_events rows have no foreign
    // key to cascade.
    tx.exec_params("DELETE FROM job_queue WHERE integration_id = $1", id);
    const std::string jobs = "SELECT id FROM jobs WHERE integration_id = $1";
    tx.exec_params("DELETE FROM job_attempts WHERE job_id IN (" + jobs + ")", id);
    tx.exec_params(job_events::deleteForJobsSql(jobs), id);
    return tx.exec_params("DELETE FROM integrations WHERE id = $1", id).affected_rows() > 0;
  });
  if (!removed) return removed.error();
  if (!*removed) {
    return Error{Error::Code::Conflict,
                 "integration " + std::to_string(id) + " has a running job; cancel it first"};
  }
  return **removed;
}

Result<std::optional<WebhookReceiver>> IntegrationStore::webhookReceiver(IntegrationId id) {
  return impl_->run([&](pqxx::work& tx) -> std::optional<WebhookReceiver> {
    const auto rows = tx.exec_params(
        "SELECT enabled, webhook_secret, CASE WHEN webhook_previous_expires_at > now() THEN "
        "webhook_previous_secret END FROM integrations WHERE id = $1",
        id);
    if (rows.empty()) return std::nullopt;
    WebhookReceiver receiver;
    receiver.enabled = rows[0][0].as<bool>();
    for (int column = 1; column <= 2; ++column) {
      if (!rows[0][column].is_null()) receiver.secrets.push_back(rows[0][column].as<std::string>());
    }
    return receiver;
  });
}

Result<RecordedWebhookEvent> IntegrationStore::recordWebhookEvent(const WebhookEventInput& input) {
  const auto keys = nlohmann::json(input.keys).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return impl_->run([&](pqxx::work& tx) {
    // Either unique index may refuse the row: the same content, or the same sender's id.
    const auto inserted = tx.exec_params(
        "INSERT INTO webhook_events (integration_id, event_id, content_sha256, signed_at, keys, "
        "incremental, body_bytes) VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000000), "
        "$5::jsonb, $6, $7) ON CONFLICT DO NOTHING RETURNING " + kEventColumns,
        input.integration_id, input.event_id, input.content_sha256,
        pg::toEpochMicros(input.signed_at), keys, input.incremental,
        static_cast<long long>(input.body_bytes));
    if (!inserted.empty()) return RecordedWebhookEvent{eventOf(inserted[0]), false};
    // A statement of its own: it sees a conflicting row that a concurrent delivery committed
    // while the insert waited for it.
    const auto stored = tx.exec_params(
        "SELECT " + kEventColumns + " FROM webhook_events WHERE integration_id = $1 AND "
        "(content_sha256 = $2 OR event_id = $3) ORDER BY id LIMIT 1",
        input.integration_id, input.content_sha256, input.event_id);
    if (stored.empty()) throw std::runtime_error("a conflicting webhook event vanished; try again");
    return RecordedWebhookEvent{eventOf(stored[0]), true};
  });
}

Result<std::optional<WebhookEvent>> IntegrationStore::findWebhookEvent(std::int64_t id) {
  return impl_->run([&](pqxx::work& tx) -> std::optional<WebhookEvent> {
    const auto rows = tx.exec_params("SELECT " + kEventColumns + " FROM webhook_events WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    return eventOf(rows[0]);
  });
}

}  // namespace syncpod::core
