#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"
#include "syncpod/core/webhooks.hpp"

namespace syncpod::core {

/// An integrations row. The config is the JSON document sync/integration_spec.hpp parses,
/// secrets included: callers that show it redact it first. The webhook secret is never read
/// into it: only whether there is one.
struct Integration {
  IntegrationId id = 0;
  std::string name;
  bool enabled = true;
  std::string config_json = "{}";
  TimePoint created_at;
  TimePoint updated_at;
  bool webhook_secret_set = false;
  /// Until when the secret before the last rotation is still accepted; nullopt: it is not.
  std::optional<TimePoint> webhook_previous_expires_at;
};

/// A new webhook secret for an integration, or none.
struct WebhookSecretChange {
  /// nullopt: the integration takes no more webhooks (both secrets are removed).
  std::optional<std::string> secret;
  /// How long the secret being replaced is still accepted beside the new one (0: not at all),
  /// so a sender can switch over without a delivery being refused.
  std::chrono::seconds keep_previous{0};
};

/// What a page of integrations ends with: the id to pass as `after` for the next page.
struct IntegrationPage {
  std::vector<Integration> items;
  std::optional<IntegrationId> next_after;
};

/// The integrations table. One instance owns one connection; not thread-safe.
class IntegrationStore {
 public:
  /// Connects at once; throws DatabaseUnavailable.
  explicit IntegrationStore(DatabaseTarget target);
  ~IntegrationStore();
  IntegrationStore(const IntegrationStore&) = delete;
  IntegrationStore& operator=(const IntegrationStore&) = delete;

  /// Up to `limit` integrations with ids above `after`, in id order.
  Result<IntegrationPage> list(IntegrationId after, int limit);
  Result<std::optional<Integration>> find(IntegrationId id);
  /// Conflict when the name is taken. `webhook_secret` must pass validWebhookSecret().
  Result<Integration> create(const std::string& name, bool enabled, const std::string& config_json,
                             const std::optional<std::string>& webhook_secret = std::nullopt);
  /// Replaces name, enabled and config, and the webhook secret when `webhook` is given;
  /// nullopt when there is no such integration; Conflict when the name is taken by another.
  Result<std::optional<Integration>> update(const Integration& integration,
                                            const std::optional<WebhookSecretChange>& webhook = std::nullopt);
  /// Changes only the webhook secret; nullopt when there is no such integration.
  Result<std::optional<Integration>> setWebhookSecret(IntegrationId id, const WebhookSecretChange& change);
  /// Conflict while one of its jobs runs (cancel it first); false when there was none.
  Result<bool> remove(IntegrationId id);

  // --- webhooks --------------------------------------------------------------------------

  /// Whether the integration is enabled and the secrets a delivery may be signed with;
  /// nullopt when there is no such integration.
  Result<std::optional<WebhookReceiver>> webhookReceiver(IntegrationId id);
  /// Stores a verified delivery in a transaction of its own, or finds the one stored before
  /// with the same content or the same sender's id (duplicate = true, nothing written).
  Result<RecordedWebhookEvent> recordWebhookEvent(const WebhookEventInput& input);
  Result<std::optional<WebhookEvent>> findWebhookEvent(std::int64_t id);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
