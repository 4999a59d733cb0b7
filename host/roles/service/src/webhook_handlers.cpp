// POST /api/v1/integrations/{id}/webhook: deliveries from a foreign system, authenticated by
// an HMAC-SHA256 signature instead of a token (docs/api.md#webhooks).

#include <charconv>

#include <spdlog/spdlog.h>

#include "backend.hpp"
#include "handlers.hpp"
#include "syncpod/core/webhooks.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

constexpr const char* kTimestampHeader = "X-Syncpod-Timestamp";
constexpr const char* kSignatureHeader = "X-Syncpod-Signature";

/// 401 for a delivery that is not authenticated; `reason` (details.reason) tells a sender's
/// developer which check failed, never anything about the secret.
ApiError unauthenticated(const std::string& reason, const std::string& message,
                         Json details = Json::object()) {
  details["reason"] = reason;
  return {401,
          "unauthenticated",
          message,
          std::move(details),
          {{"WWW-Authenticate", "Syncpod-Signature realm=\"syncpod\""}}};
}

/// Unix seconds: digits only, so "+5", " 5" or "5.0" never pass as a timestamp.
std::optional<std::int64_t> parseTimestamp(const std::string& text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::int64_t value = 0;
  const auto end = text.data() + text.size();
  const auto [last, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || last != end || text.front() == '-') return std::nullopt;
  return value;
}

Json eventJson(const core::WebhookEvent& event, bool duplicate) {
  return {{"id", event.id},
          {"integration_id", event.integration_id},
          {"event_id", event.event_id ? Json(*event.event_id) : Json(nullptr)},
          {"keys", event.keys},
          {"incremental", event.incremental},
          {"signed_at", isoTime(event.signed_at)},
          {"received_at", isoTime(event.received_at)},
          {"job_id", event.job_id ? Json(*event.job_id) : Json(nullptr)},
          {"duplicate", duplicate}};
}

/// The delivery's body: {"id"?, "keys"?, "incremental"?}, naming at least one key or asking
/// for the changes since the cursor.
core::WebhookEventInput eventInput(const std::string& body, int max_depth) {
  const auto json = parseJsonObject(body, max_depth);
  rejectUnknownFields(json, {"id", "keys", "incremental"});
  core::WebhookEventInput input;
  if (const auto* id = field(json, "id", Json::value_t::string, false)) {
    const auto text = id->get<std::string>();
    if (text.empty() || text.size() > 200) {
      throw ApiError{
          400, "invalid_field", "field 'id' must be 1 to 200 characters", {{"field", "id"}}};
    }
    input.event_id = text;
  }
  if (const auto* keys = field(json, "keys", Json::value_t::array, false)) {
    for (const auto& key : *keys) {
      if (!key.is_string() || key.get<std::string>().empty()) {
        throw ApiError{
            400, "invalid_field", "field 'keys' must hold non-empty strings", {{"field", "keys"}}};
      }
      input.keys.push_back(key.get<std::string>());
    }
  }
  if (const auto* incremental = field(json, "incremental", Json::value_t::boolean, false)) {
    input.incremental = incremental->get<bool>();
  }
  if (input.keys.empty() && !input.incremental) {
    throw ApiError{
        400, "invalid_field", "a webhook needs keys, or incremental: true", {{"field", "keys"}}};
  }
  return input;
}

/// A delivery whose signature checked out; its body is not read yet.
struct SignedDelivery {
  core::IntegrationId integration = 0;
  std::string timestamp;  ///< as signed
  std::int64_t signed_at = 0;
};

void checkTimestamp(std::int64_t signed_at, const ServiceOptions& options, core::IntegrationId id) {
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(core::Clock::now().time_since_epoch())
          .count();
  const auto skew = signed_at - now;
  const auto tolerance = options.webhook_tolerance.count();
  if (skew <= tolerance && -skew <= tolerance) return;
  spdlog::debug("webhook for integration {} refused: timestamp {} s off", id, skew);
  throw unauthenticated(
      "stale_timestamp",
      std::string(kTimestampHeader) + " is " + std::to_string(skew < 0 ? -skew : skew) + " s " +
          (skew < 0 ? "in the past" : "in the future") + "; at most " + std::to_string(tolerance) +
          " s are accepted: sign each delivery when it is sent, with a synchronised clock",
      {{"header", kTimestampHeader}, {"tolerance_s", tolerance}, {"server_time", now}});
}

/// Size, headers, timestamp, integration and signature, cheapest first: a stale or unsigned
/// request costs no database round trip.
SignedDelivery authenticate(const ApiRequest& request, Backend& backend,
                            const ServiceOptions& options) {
  SignedDelivery delivery;
  delivery.integration = parseId(request.params.at("id"), "integration id");
  const auto id = delivery.integration;
  if (request.body.size() > options.webhook_max_body_bytes) {
    throw ApiError{413,
                   "too_large",
                   "a webhook body may have at most " +
                       std::to_string(options.webhook_max_body_bytes) + " bytes",
                   {{"limit_bytes", options.webhook_max_body_bytes}}};
  }
  delivery.timestamp = request.header(kTimestampHeader);
  const auto signature = request.header(kSignatureHeader);
  if (delivery.timestamp.empty() || signature.empty()) {
    throw unauthenticated(
        "missing_header",
        std::string("a webhook needs the headers ") + kTimestampHeader + " (unix seconds) and " +
            kSignatureHeader + " (v1=<hex HMAC-SHA256 of timestamp.body>)",
        {{"header", delivery.timestamp.empty() ? kTimestampHeader : kSignatureHeader}});
  }
  const auto signed_at = parseTimestamp(delivery.timestamp);
  if (!signed_at) {
    throw unauthenticated("malformed_header",
                          std::string(kTimestampHeader) + " must be unix seconds",
                          {{"header", kTimestampHeader}});
  }
  delivery.signed_at = *signed_at;
  checkTimestamp(delivery.signed_at, options, id);

  auto receiver = backend.integrations().webhookReceiver(id);
  if (!receiver) throw databaseError(receiver.error());
  if (!*receiver) throw ApiError{404, "not_found", "no integration " + std::to_string(id)};
  if ((*receiver)->secrets.empty()) {
    throw ApiError{403, "forbidden",
                   "integration " + std::to_string(id) +
                       " takes no webhooks: it has no webhook secret (set one with PUT or POST "
                       "/api/v1/integrations/" +
                       std::to_string(id) + "/webhook-secret)"};
  }
  if (!core::webhookSignatureMatches(signature, delivery.timestamp, request.body,
                                     (*receiver)->secrets)) {
    spdlog::debug("webhook for integration {} refused: no matching signature", id);
    throw unauthenticated("bad_signature",
                          std::string(kSignatureHeader) +
                              " holds no valid v1 signature of this timestamp and body by the "
                              "integration's webhook secret",
                          {{"header", kSignatureHeader}});
  }
  return delivery;
}

}  // namespace

void addWebhookRoutes(Router& router, const RouteContext& context) {
  const auto& options = context.options;

  // No token: the signature authenticates the delivery.
  router.add("POST", "/api/v1/integrations/{id}/webhook", std::nullopt,
             [&options](ApiRequest& request, Backend& backend) {
               rejectUnknownParameters(request, {});
               const auto delivery = authenticate(request, backend, options);
               const auto id = delivery.integration;
               auto input = eventInput(request.body, options.max_json_depth);
               input.integration_id = id;
               input.content_sha256 = core::webhookContentDigest(delivery.timestamp, request.body);
               input.signed_at = core::TimePoint(std::chrono::seconds(delivery.signed_at));
               input.body_bytes = request.body.size();

               // Its own transaction: once it committed, the delivery is accepted whatever
               // happens next.
               auto recorded = backend.integrations().recordWebhookEvent(input);
               if (!recorded) throw databaseError(recorded.error());
               auto event = std::move(recorded->event);
               const bool duplicate = recorded->duplicate;

               // Then the event, with whatever its integration still has pending, becomes a
               // partial job. A failure (or a disabled integration) leaves them pending for the
               // next delivery or the singleton's rescue pass; the sender gets its 202 all the
               // same, since nothing it sent is lost.
               if (!event.job_id) {
                 if (auto job = backend.queue().enqueueWebhookEvents(id); !job) {
                   spdlog::warn("webhook event {} of integration {} stays pending: {}", event.id,
                                id, job.error().message);
                 }
                 // Read back: this call, or a concurrent one, may have linked it to a job.
                 if (auto stored = backend.integrations().findWebhookEvent(event.id);
                     stored && *stored) {
                   event = std::move(**stored);
                 }
               }
               spdlog::debug("webhook event {} of integration {}{}: job {}", event.id, id,
                             duplicate ? " (duplicate)" : "",
                             event.job_id ? std::to_string(*event.job_id) : "pending");
               return ApiResponse{duplicate ? 200 : 202, eventJson(event, duplicate), {}};
             });
}

}  // namespace syncpod::service
