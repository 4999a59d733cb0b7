#include "syncpod/service/service.hpp"

#include <cctype>
#include <istream>

#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/URI.h>
#include <spdlog/spdlog.h>

#include "backend.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "router.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::service {
namespace {

/// Reads the body up to the limit; nullopt when it is larger.
std::optional<std::string> readBody(Poco::Net::HTTPServerRequest& request, std::size_t limit) {
  std::string body;
  std::istream& stream = request.stream();
  char buffer[8192];
  while (stream) {
    stream.read(buffer, sizeof buffer);
    body.append(buffer, static_cast<std::size_t>(stream.gcount()));
    if (body.size() > limit) return std::nullopt;
  }
  return body;
}

void send(Poco::Net::HTTPServerResponse& out, const ApiResponse& response) {
  out.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status));
  for (const auto& [name, value] : response.headers) out.set(name, value);
  if (response.text) {
    out.setContentLength(static_cast<std::streamsize>(response.text->size()));
    out.send() << *response.text;
    return;
  }
  if (response.body.is_null()) {
    out.setContentLength(0);
    out.send();
    return;
  }
  const auto text = response.body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  out.setContentType("application/json");
  out.setContentLength(static_cast<std::streamsize>(text.size()));
  out.send() << text;
}

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  RequestHandler(const Router& router, BackendPool& pool, const ServiceOptions& options,
                 HttpMetrics& metrics)
      : router_(router), pool_(pool), options_(options), metrics_(metrics) {}

  void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
    ApiResponse response;
    std::string route;
    try {
      response = handle(in, route);
    } catch (const ApiError& error) {
      response = errorResponse(error);
    } catch (const Poco::Exception& error) {
      // The client went away or sent something the HTTP layer could not read.
      spdlog::debug("{} {}: {}", in.getMethod(), pathOf(in.getURI()), error.displayText());
      response = errorResponse({400, "bad_request", "the request could not be read"});
    } catch (const std::exception& error) {
      spdlog::error("{} {}: {}", in.getMethod(), pathOf(in.getURI()), error.what());
      response = errorResponse({500, "internal", "the request failed inside the service; see its log"});
    }
    if (response.status >= 500) {
      spdlog::warn("{} {} → {}", in.getMethod(), pathOf(in.getURI()), response.status);
    }
    metrics_.count(route.empty() ? HttpMetrics::kUnmatched : route, in.getMethod(),
                   response.status);
    try {
      send(out, response);
    } catch (const Poco::Exception& error) {
      spdlog::debug("cannot send the response: {}", error.displayText());
    }
  }

 private:
  static std::string pathOf(const std::string& uri) { return uri.substr(0, uri.find('?')); }

  /// Sets `route` to the route pattern as soon as the path is known.
  ApiResponse handle(Poco::Net::HTTPServerRequest& in, std::string& route) {
    ApiRequest request;
    request.method = in.getMethod();
    try {
      const Poco::URI uri(in.getURI());
      request.path = uri.getPath();
      for (const auto& [name, value] : uri.getQueryParameters()) request.query[name] = value;
    } catch (const Poco::SyntaxException&) {
      throw ApiError{400, "bad_request", "the request target is not a valid URI"};
    }
    if (request.path.empty() || request.path.front() != '/') {
      throw ApiError{400, "bad_request", "the request target must be a path"};
    }
    route = router_.routeOf(request.method, request.path);
    if (in.hasContentLength() &&
        in.getContentLength64() > static_cast<Poco::Int64>(options_.max_body_bytes)) {
      throw ApiError{
          413, "too_large",
          "the body is larger than " + std::to_string(options_.max_body_bytes) + " bytes"};
    }
    for (const auto& [name, value] : in) {
      std::string key = name;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto& joined = request.headers[key];
      joined += (joined.empty() ? "" : ",") + value;
    }
    auto body = readBody(in, options_.max_body_bytes);
    if (!body) {
      throw ApiError{413, "too_large", "the body is larger than " + std::to_string(options_.max_body_bytes) + " bytes"};
    }
    request.body = std::move(*body);
    auto backend = pool_.acquire();
    return router_.dispatch(request, *backend);
  }

  const Router& router_;
  BackendPool& pool_;
  const ServiceOptions& options_;
  HttpMetrics& metrics_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  HandlerFactory(const Router& router, BackendPool& pool, const ServiceOptions& options,
                 HttpMetrics& metrics)
      : router_(router), pool_(pool), options_(options), metrics_(metrics) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new RequestHandler(router_, pool_, options_, metrics_);
  }

 private:
  const Router& router_;
  BackendPool& pool_;
  const ServiceOptions& options_;
  HttpMetrics& metrics_;
};

}  // namespace

class Service::Impl {
 public:
  Impl(core::DatabaseTarget target, ServiceOptions options, const core::PluginRegistry& plugins)
      : options_(std::move(options)), pool_(withClient(std::move(target)), options_.threads) {
    addRoutes(router_, RouteContext{options_, plugins, metrics_});
  }

  static core::DatabaseTarget withClient(core::DatabaseTarget target) {
    target.client = "service";
    return target;
  }

  void start() {
    try {
      // SO_REUSEADDR only: Poco's one-step constructor also sets SO_REUSEPORT, with which a
      // second service binds the same port without an error and takes half its connections.
      socket_ = std::make_unique<Poco::Net::ServerSocket>();
      socket_->bind(Poco::Net::SocketAddress(options_.host, static_cast<Poco::UInt16>(options_.port)),
                    /*reuseAddress=*/true, /*reusePort=*/false);
      socket_->listen();
    } catch (const Poco::Exception& error) {
      throw core::StartupError("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + ": " + error.displayText());
    }
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(options_.threads);
    params->setMaxQueued(options_.max_queued);
    params->setTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(options_.read_timeout.count()) * 1000));
    params->setKeepAlive(true);
    server_ = std::make_unique<Poco::Net::HTTPServer>(
        new HandlerFactory(router_, pool_, options_, metrics_), *socket_, params);
    server_->start();
    spdlog::info("service listening on {}:{}", options_.host, port());
  }

  void stop() {
    if (server_) server_->stopAll(true);
    server_.reset();
  }

  int port() const { return socket_ ? socket_->address().port() : options_.port; }

  ServiceOptions options_;
  BackendPool pool_;
  HttpMetrics metrics_;
  Router router_;
  std::unique_ptr<Poco::Net::ServerSocket> socket_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

Service::Service(core::DatabaseTarget target, ServiceOptions options, const core::PluginRegistry& plugins)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(options), plugins)) {}
Service::~Service() { impl_->stop(); }
void Service::start() { impl_->start(); }
void Service::stop() { impl_->stop(); }
int Service::port() const { return impl_->port(); }

}  // namespace syncpod::service
