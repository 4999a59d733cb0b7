#pragma once
// Private to the service role: requests, responses and errors as the handlers see them.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "syncpod/core/api_tokens.hpp"

namespace syncpod::service {

using Json = nlohmann::json;

/// A request once read: the body is complete and within the size limit.
struct ApiRequest {
  std::string method;
  std::string path;                          ///< without the query string
  std::map<std::string, std::string> query;  ///< decoded; the last value of a repeated name
  std::map<std::string, std::string> params; ///< from the route pattern, e.g. {"id": "17"}
  /// Header names in lower case; a header sent more than once has its values joined by ",".
  std::map<std::string, std::string> headers;
  std::string body;
  std::optional<core::ApiToken> token;       ///< set once authenticated

  /// The header's value (name in any case), "" when absent.
  std::string header(std::string_view name) const;
};

struct ApiResponse {
  int status = 200;
  Json body;  ///< null: no body (204)
  std::map<std::string, std::string> headers;
  /// A body that is not JSON (/metrics), sent as it is instead of `body`, with the
  /// Content-Type in `headers`.
  std::optional<std::string> text;
};

/// An error response: {"error": {"code", "message", "details"}}. Thrown by handlers and turned
/// into the response by the router; `code` is a stable machine-readable word.
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
  Json details = Json::object();
  /// Sent with the response, e.g. WWW-Authenticate.
  std::map<std::string, std::string> headers = {};
};

ApiResponse errorResponse(const ApiError& error);

/// The body parsed as a JSON object, or ApiError 400 saying what is wrong and where.
Json parseJsonObject(const std::string& body, int max_depth);

/// A positive 64-bit id from a path segment, or ApiError 400 naming the parameter.
std::int64_t parseId(const std::string& text, const std::string& name);

/// A UUID in its 36-character text form (any case) from a path segment, lower-cased; or
/// ApiError 400 naming the parameter.
std::string parseUuid(const std::string& text, const std::string& name);

/// ApiError 400 for a member of `object` not in `allowed` ("unknown field 'x'"), so a typo
/// never passes silently. `where` prefixes the name in the message ("config.").
void rejectUnknownFields(const Json& object, const std::vector<std::string>& allowed,
                         const std::string& where = "");

/// The member `name` when present and of `type`; nullptr when absent and not `required`;
/// otherwise ApiError 400 saying which field and what type it needs.
const Json* field(const Json& object, const std::string& name, Json::value_t type, bool required);

/// ApiError 400 for a query parameter not in `allowed`.
void rejectUnknownParameters(const ApiRequest& request, const std::vector<std::string>& allowed);

/// The "limit" query parameter: 1..max, default `fallback`.
int pageLimit(const ApiRequest& request, int fallback, int max);

}  // namespace syncpod::service
