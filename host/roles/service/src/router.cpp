#include "router.hpp"

#include <spdlog/spdlog.h>

#include "backend.hpp"

namespace syncpod::service {
namespace {

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> segments;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string::npos ? path.size() : slash;
    segments.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

bool isParameter(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::add(std::string method, std::string pattern, std::optional<core::TokenScope> scope,
                 Handler handler) {
  auto segments = split(pattern);
  routes_.push_back({std::move(method), std::move(pattern), std::move(segments), scope, std::move(handler)});
}

bool Router::match(const Route& route, const std::vector<std::string>& segments,
                   std::map<std::string, std::string>& params) {
  if (route.segments.size() != segments.size()) return false;
  std::map<std::string, std::string> found;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& expected = route.segments[i];
    if (isParameter(expected)) {
      if (segments[i].empty()) return false;
      found[expected.substr(1, expected.size() - 2)] = segments[i];
    } else if (expected != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

void Router::authenticate(const Route& route, ApiRequest& request, Backend& backend) {
  if (!route.scope) return;
  constexpr std::string_view kBearer = "Bearer ";
  const auto header = request.header("Authorization");
  if (header.empty()) {
    throw ApiError{401, "unauthenticated", "this endpoint needs a token: Authorization: Bearer <token>"};
  }
  if (header.compare(0, kBearer.size(), kBearer) != 0 || header.size() == kBearer.size()) {
    throw ApiError{401, "unauthenticated", "the Authorization header must be 'Bearer <token>'"};
  }
  auto token = backend.tokens().verify(std::string_view(header).substr(kBearer.size()));
  if (!token) {
    throw ApiError{503, "unavailable", "the database cannot be reached; try again"};
  }
  if (!*token) throw ApiError{401, "unauthenticated", "the token is unknown or revoked"};
  if ((*token)->scope < *route.scope) {
    throw ApiError{403, "forbidden",
                   "this needs a token with scope " + std::string(core::toString(*route.scope)) +
                       "; this one has " + std::string(core::toString((*token)->scope)),
                   {{"required_scope", core::toString(*route.scope)}}};
  }
  request.token = std::move(**token);
}

ApiResponse Router::dispatch(ApiRequest& request, Backend& backend) const {
  const auto segments = split(request.path);
  std::vector<std::string> allowed;
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    if (!match(route, segments, params)) continue;
    if (route.method != request.method) {
      allowed.push_back(route.method);
      continue;
    }
    request.params = std::move(params);
    try {
      authenticate(route, request, backend);
      return route.handler(request, backend);
    } catch (const ApiError& error) {
      auto response = errorResponse(error);
      // A handler that authenticates otherwise names its own scheme.
      if (error.status == 401 && response.headers.count("WWW-Authenticate") == 0) {
        response.headers["WWW-Authenticate"] = "Bearer realm=\"syncpod\"";
      }
      return response;
    } catch (const std::exception& error) {
      spdlog::error("{} {}: {}", request.method, route.pattern, error.what());
      return errorResponse({500, "internal", "the request failed inside the service; see its log"});
    }
  }
  if (!allowed.empty()) {
    std::string list;
    for (const auto& method : allowed) list += (list.empty() ? "" : ", ") + method;
    auto response = errorResponse({405, "method_not_allowed",
                                   request.method + " is not allowed here; use " + list});
    response.headers["Allow"] = list;
    return response;
  }
  return errorResponse({404, "not_found", "no endpoint " + request.path.substr(0, 200)});
}

std::string Router::routeOf(const std::string& method, const std::string& path) const {
  const auto segments = split(path);
  std::string first;
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    if (!match(route, segments, params)) continue;
    if (route.method == method) return route.pattern;
    if (first.empty()) first = route.pattern;
  }
  return first;
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> infos;
  for (const auto& route : routes_) infos.push_back({route.method, route.pattern});
  return infos;
}

}  // namespace syncpod::service
