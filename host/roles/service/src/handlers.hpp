#pragma once
// Private to the service role: the endpoints, registered on a Router.

#include "router.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::service {

struct ServiceOptions;
class HttpMetrics;

/// What the endpoints need besides a Backend.
struct RouteContext {
  const ServiceOptions& options;
  const core::PluginRegistry& plugins;  ///< for config validation and knowing secret fields
  const HttpMetrics& http;              ///< the requests counted so far, for /metrics
};

/// /healthz, /readyz and /api/v1/…; docs/openapi.yaml describes each.
void addRoutes(Router& router, const RouteContext& context);
/// The integration endpoints (integration_handlers.cpp).
void addIntegrationRoutes(Router& router, const RouteContext& context);
/// The webhook endpoint (webhook_handlers.cpp).
void addWebhookRoutes(Router& router, const RouteContext& context);
/// Workers, scaling and plugins: what the installation runs (status_handlers.cpp).
void addStatusRoutes(Router& router, const RouteContext& context);
/// /metrics (metrics.cpp).
void addMetricsRoute(Router& router, const RouteContext& context);

using core::isoTime;
/// A job as the API shows it.
Json jobJson(const core::Job& job);
/// 503 for a database that cannot be reached, 500 (logged by the router) for anything else.
ApiError databaseError(const core::Error& error);

}  // namespace syncpod::service
