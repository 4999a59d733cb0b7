#pragma once
// Private to the service role: the endpoints, registered on a Router.

#include "router.hpp"

namespace syncpod::service {

struct ServiceOptions;

/// /healthz, /readyz and /api/v1/…; docs/openapi.yaml describes each.
void addRoutes(Router& router, const ServiceOptions& options);

/// "2026-11-26T10:00:00.123Z"
std::string isoTime(core::TimePoint time);

}  // namespace syncpod::service
