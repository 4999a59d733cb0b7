#pragma once
// The REST API as the CLI's job and sync commands use it.

#include <string>

#include <nlohmann/json.hpp>

#include "syncpod/core/settings.hpp"

namespace syncpod::app {

/// One answer of the API: the status and the parsed body (null when empty or not JSON).
struct ApiReply {
  int status = 0;
  nlohmann::json body;
  /// The error's message for 4xx/5xx ({"error": {"message"}}), else "".
  std::string errorMessage() const;
};

/// Talks to the service at the `url` setting with the `token` setting (SYNCPOD_API_TOKEN).
/// Plain HTTP: put a TLS-terminating proxy or `kubectl port-forward` in front when crossing a
/// network.
class ApiClient {
 public:
  /// Throws core::ConfigError for a URL that is not http://host[:port] or a missing token.
  explicit ApiClient(const core::Settings& settings);

  /// Sends one request; throws core::StartupError when the service cannot be reached.
  ApiReply call(const std::string& method, const std::string& path, const std::string& body = "") const;

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string host_;
  unsigned short port_ = 0;
  std::string token_;
};

}  // namespace syncpod::app
