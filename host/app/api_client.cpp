#include "api_client.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include "syncpod/core/errors.hpp"

namespace syncpod::app {

std::string ApiReply::errorMessage() const {
  if (status < 400) return "";
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("message") && body["error"]["message"].is_string()) {
    return body["error"]["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

ApiClient::ApiClient(const core::Settings& settings) : url_(settings.get("url")), token_(settings.get("token")) {
  try {
    const Poco::URI uri(url_);
    if (uri.getScheme() != "http" || uri.getHost().empty()) throw Poco::SyntaxException("scheme");
    host_ = uri.getHost();
    port_ = uri.getPort();
  } catch (const Poco::Exception&) {
    throw core::ConfigError("url '" + url_ + "' (from " + settings.sourceOf("url") +
                            ") must look like http://host:port");
  }
  if (token_.empty()) {
    throw core::ConfigError("no API token: set SYNCPOD_API_TOKEN (create one with `syncpod tokens create`)");
  }
}

ApiReply ApiClient::call(const std::string& method, const std::string& path, const std::string& body) const {
  try {
    Poco::Net::HTTPClientSession session(host_, port_);
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Authorization", "Bearer " + token_);
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    if (!body.empty()) request.setContentType("application/json");
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    auto& stream = session.receiveResponse(response);
    std::string text;
    Poco::StreamCopier::copyToString(stream, text);
    ApiReply reply;
    reply.status = static_cast<int>(response.getStatus());
    reply.body = nlohmann::json::parse(text, nullptr, false);
    if (reply.body.is_discarded()) reply.body = nullptr;
    return reply;
  } catch (const Poco::Exception& error) {
    throw core::StartupError("cannot reach the syncpod service at " + url_ + ": " + error.displayText());
  }
}

}  // namespace syncpod::app
