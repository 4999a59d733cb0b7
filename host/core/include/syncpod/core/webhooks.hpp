#pragma once
// Webhooks (docs/api.md#webhooks): how deliveries are signed, and the events the service stores.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syncpod/core/job.hpp"

namespace syncpod::core {

/// The value of one `v1=` entry of the X-Syncpod-Signature header: lower-case hex
/// HMAC-SHA256 of `timestamp + "." + body`, keyed with the integration's webhook secret.
std::string webhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body);

/// Whether the X-Syncpod-Signature header (comma-separated `scheme=value` entries; entries of
/// schemes other than v1 are ignored, hex in either case) holds a v1 signature of
/// `timestamp` and `body` by one of `secrets`. Every entry is compared with every secret in
/// constant time, so the answer's timing tells nothing about how much of a guess was right.
bool webhookSignatureMatches(std::string_view header, std::string_view timestamp,
                             std::string_view body, const std::vector<std::string>& secrets);

/// What identifies one delivery, whatever secret signed it: hex SHA-256 of
/// `timestamp + "." + body`.
std::string webhookContentDigest(std::string_view timestamp, std::string_view body);

/// A new random webhook secret: "whsec_" and 43 characters (256 bits).
std::string newWebhookSecret();

/// Whether `secret` can be a webhook secret: 16 to 256 printable ASCII characters, no spaces.
bool validWebhookSecret(std::string_view secret);

/// What the service needs to check a delivery for one integration.
struct WebhookReceiver {
  bool enabled = true;
  /// The secrets a signature may be made with: the current one, and the previous one while a
  /// rotation overlaps. Empty: the integration takes no webhooks.
  std::vector<std::string> secrets;
};

/// A verified delivery, to be stored.
struct WebhookEventInput {
  IntegrationId integration_id = 0;
  std::optional<std::string> event_id;  ///< the sender's id ("id" in the body)
  std::string content_sha256;           ///< webhookContentDigest()
  TimePoint signed_at;                  ///< X-Syncpod-Timestamp
  std::vector<std::string> keys;
  bool incremental = false;
  std::size_t body_bytes = 0;
};

/// A stored delivery (table webhook_events).
struct WebhookEvent {
  std::int64_t id = 0;
  IntegrationId integration_id = 0;
  std::optional<std::string> event_id;
  TimePoint signed_at;
  TimePoint received_at;
  std::vector<std::string> keys;
  bool incremental = false;
  /// The partial job it became; nullopt while pending.
  std::optional<JobId> job_id;
  std::optional<TimePoint> enqueued_at;
};

/// What storing a delivery did.
struct RecordedWebhookEvent {
  WebhookEvent event;
  /// true: the same delivery (by content, or by the sender's id) was stored before; `event`
  /// is that one and nothing was written.
  bool duplicate = false;
};

/// The job pending webhook events of one integration became.
struct WebhookJob {
  IntegrationId integration_id = 0;
  JobId job_id = 0;
  bool merged = false;  ///< a queued partial job absorbed their keys
  int events = 0;
};

}  // namespace syncpod::core
