#pragma once
// Private to the service role: maps method + path to a handler, and authenticates.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "api.hpp"

namespace syncpod::service {

class Backend;

/// Routes are patterns of literal segments and {parameters}: "/api/v1/jobs/{id}/cancel".
/// A route with a scope needs a bearer token with at least that scope.
class Router {
 public:
  using Handler = std::function<ApiResponse(ApiRequest&, Backend&)>;

  void add(std::string method, std::string pattern, std::optional<core::TokenScope> scope,
           Handler handler);

  /// Never throws: unknown path 404, known path with another method 405, authentication 401
  /// and 403, ApiError as thrown, anything else 500 with a generic message (logged).
  ApiResponse dispatch(ApiRequest& request, Backend& backend) const;

  /// The pattern of the route that dispatch() would give this request: the first whose
  /// path and method match, else the first whose path matches (a 405); "" when none does.
  /// The route label of /metrics, whose values stay as few as the routes.
  std::string routeOf(const std::string& method, const std::string& path) const;

  struct RouteInfo {
    std::string method;
    std::string pattern;
  };
  /// Every route, for docs/openapi.yaml checks.
  std::vector<RouteInfo> routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    std::optional<core::TokenScope> scope;
    Handler handler;
  };
  static bool match(const Route& route, const std::vector<std::string>& segments,
                    std::map<std::string, std::string>& params);
  static void authenticate(const Route& route, ApiRequest& request, Backend& backend);

  std::vector<Route> routes_;
};

}  // namespace syncpod::service
