#include "syncpod/service/service.hpp"

#include <sys/socket.h>

#include <cctype>
#include <istream>

#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPFixedLengthStream.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/SharedPtr.h>
#include <Poco/String.h>
#include <Poco/URI.h>
#include <spdlog/spdlog.h>

#include "backend.hpp"
#include "connection.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "router.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::service {
namespace {

/// Why the request's framing cannot be trusted, or "" when it can. Poco would take the first
/// of several Content-Length headers, and chunked over a Content-Length beside it; a proxy in
/// front may choose otherwise and see another request than the service does (request
/// smuggling), so such requests are refused instead (RFC 9112 §6.3).
std::string framingProblem(const Poco::Net::HTTPServerRequest& in) {
  int lengths = 0;
  int encodings = 0;
  std::string length;
  std::string encoding;
  // Field names were checked as the header was read (connection.cpp): each is a token.
  for (const auto& [name, value] : in) {
    if (Poco::icompare(name, "Content-Length") == 0) {
      ++lengths;
      length = value;
    } else if (Poco::icompare(name, "Transfer-Encoding") == 0) {
      ++encodings;
      encoding = value;
    }
  }
  if (lengths > 1) return "the request has " + std::to_string(lengths) + " Content-Length headers; send one";
  if (encodings > 1) return "the request has " + std::to_string(encodings) + " Transfer-Encoding headers; send one";
  if (lengths == 1 && encodings == 1) return "the request has both Content-Length and Transfer-Encoding; send one";
  if (encodings == 1 && Poco::icompare(encoding, "chunked") != 0) {
    return "Transfer-Encoding '" + encoding.substr(0, 40) + "' is not supported: send a Content-Length, or chunked";
  }
  if (lengths == 1 && (length.empty() || length.find_first_not_of("0123456789") != std::string::npos)) {
    return "Content-Length must be a number of bytes, not '" + length.substr(0, 40) + "'";
  }
  return "";
}

ApiError tooLarge(std::size_t limit) {
  return {413, "too_large", "the body is larger than " + std::to_string(limit) + " bytes"};
}

/// 408 when the session's last read timed out, else 400: the request did not arrive whole.
[[noreturn]] void cutShort(const Poco::Net::HTTPSession* session, const std::string& what) {
  if (session != nullptr && lastReadTimedOut(*session)) {
    throw ApiError{408, "timeout", what + ": it did not arrive in time"};
  }
  throw ApiError{400, "bad_request", what};
}

/// A chunked body (RFC 9112 §7.1), read from the session itself: Poco's chunked stream ends
/// quietly, as if the body were complete, when the connection closes before the last chunk.
/// Reads exactly to the end of the trailer section, so a request pipelined after it stays
/// unread for the next round.
class ChunkedBody {
 public:
  explicit ChunkedBody(Poco::Net::HTTPSession& session) : session_(session) {}

  std::string read(std::size_t limit) {
    std::string body;
    for (;;) {
      const auto size_line = line();
      const auto digits_end = size_line.find_first_not_of("0123456789abcdefABCDEF");
      const auto digits = size_line.substr(0, digits_end);
      if (digits.empty() || digits.size() > 15 ||
          (digits_end != std::string::npos && std::string_view(" \t;").find(size_line[digits_end]) == std::string_view::npos)) {
        throw ApiError{400, "bad_request", "the chunked body has a malformed chunk size line"};
      }
      const auto size = std::stoull(digits, nullptr, 16);
      if (size == 0) break;
      if (size > limit - body.size()) throw tooLarge(limit);
      body += bytes(size);
      if (!line().empty()) throw ApiError{400, "bad_request", "a chunk of the chunked body is longer than its size"};
    }
    // Trailer fields are allowed and ignored, up to the empty line that ends the body.
    for (int fields = 0; !line().empty(); ++fields) {
      if (fields == 100) throw ApiError{400, "bad_request", "the chunked body has more than 100 trailer fields"};
    }
    return body;
  }

 private:
  std::string bytes(std::size_t count) {
    Poco::Net::HTTPFixedLengthInputStream in(session_, static_cast<Poco::Net::HTTPFixedLengthStreamBuf::ContentLength>(count));
    std::string out(count, '\0');
    in.read(out.data(), static_cast<std::streamsize>(count));
    if (static_cast<std::size_t>(in.gcount()) != count) cutShort(&session_, "the chunked body ended before its last chunk");
    return out;
  }

  /// A line without its CRLF (a bare LF is accepted too).
  std::string line() {
    std::string text;
    for (;;) {
      const auto c = bytes(1).front();
      if (c == '\n') break;
      if (text.size() == 4096) throw ApiError{400, "bad_request", "the chunked body has a line longer than 4096 bytes"};
      text += c;
    }
    if (!text.empty() && text.back() == '\r') text.pop_back();
    return text;
  }

  Poco::Net::HTTPSession& session_;
};

/// Whether the client has closed its side of the connection: all it sent has been read.
bool clientClosed(Poco::Net::HTTPServerRequest& request) {
  auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
  if (impl == nullptr) return false;
  try {
    auto& socket = impl->socket();
    char next = 0;
    return socket.poll(Poco::Timespan(0), Poco::Net::Socket::SELECT_READ) &&
           socket.receiveBytes(&next, 1, MSG_PEEK) <= 0;
  } catch (const Poco::Exception&) {
    return true;
  }
}

/// The whole body: 413 when it is larger than `limit`, 400 (408 for a timeout) when it ended
/// before the length it announced or its chunks are malformed, so that a request that did not
/// arrive whole is never acted on. A request without Content-Length and chunks has no body
/// (RFC 9112 §6.3): it is not read, where Poco would wait for the client to close.
std::string readBody(Poco::Net::HTTPServerRequest& request, std::size_t limit) {
  auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
  Poco::Net::HTTPSession* session = impl != nullptr ? &impl->session() : nullptr;
  const bool chunked = request.getChunkedTransferEncoding();
  if (chunked && session != nullptr) return ChunkedBody(*session).read(limit);
  if (!chunked && !request.hasContentLength()) return {};
  if (!chunked && request.getContentLength64() > static_cast<Poco::Int64>(limit)) throw tooLarge(limit);
  std::string body;
  std::istream& stream = request.stream();
  char buffer[8192];
  while (stream) {
    stream.read(buffer, sizeof buffer);
    body.append(buffer, static_cast<std::size_t>(stream.gcount()));
    if (body.size() > limit) throw tooLarge(limit);
  }
  // Poco's stream ends quietly when the connection closes or times out: the body is short.
  if (!chunked && body.size() < static_cast<std::size_t>(request.getContentLength64())) {
    cutShort(session, "the body ended after " + std::to_string(body.size()) + " of the " +
                          std::to_string(request.getContentLength64()) + " bytes its Content-Length announced");
  }
  if (stream.bad()) cutShort(session, "the body could not be read");
  return body;
}

void send(Poco::Net::HTTPServerResponse& out, const ApiResponse& response) {
  out.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status));
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

class ApiRequestHandler final : public RequestHandler {
 public:
  ApiRequestHandler(const Router& router, BackendPool& pool, const ServiceOptions& options,
                    HttpMetrics& metrics)
      : router_(router), pool_(pool), options_(options), metrics_(metrics) {}

  bool handle(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
    ApiResponse response;
    std::string route;
    bool body_read = false;
    try {
      response = respond(in, route, body_read);
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
    // Whatever is left of an unread body would be read as the next request on the connection.
    if (!body_read) out.setKeepAlive(false);
    answer(out, response);
    return body_read;
  }

  /// A request the connection could not read: no route, no method known.
  void refuse(const ApiError& error, Poco::Net::HTTPServerResponse& out) override {
    metrics_.count(HttpMetrics::kUnmatched, "", error.status);
    answer(out, errorResponse(error));
  }

 private:
  static void answer(Poco::Net::HTTPServerResponse& out, const ApiResponse& response) {
    try {
      send(out, response);
    } catch (const Poco::Exception& error) {
      spdlog::debug("cannot send the response: {}", error.displayText());
    }
  }

  static std::string pathOf(const std::string& uri) { return uri.substr(0, uri.find('?')); }

  /// Sets `route` to the route pattern as soon as the path is known, and `body_read` once the
  /// body has been read to its end.
  ApiResponse respond(Poco::Net::HTTPServerRequest& in, std::string& route, bool& body_read) {
    if (const auto problem = framingProblem(in); !problem.empty()) throw ApiError{400, "bad_request", problem};
    // Poco ends a header at the end of the connection as if its empty line had come, so a
    // request cut inside its header looks complete, and without its Content-Length it looks
    // like one without a body. A request that changes something is not acted on then.
    if (!in.hasContentLength() && !in.getChunkedTransferEncoding() && in.getMethod() != "GET" &&
        in.getMethod() != "HEAD" && clientClosed(in)) {
      throw ApiError{400, "bad_request", "the connection ended with the request, perhaps inside its header; it was not acted on"};
    }
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
    request.body = readBody(in, options_.max_body_bytes);
    body_read = true;
    for (const auto& [name, value] : in) {
      std::string key = name;
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto& joined = request.headers[key];
      joined += (joined.empty() ? "" : ",") + value;
    }
    auto backend = pool_.acquire();
    return router_.dispatch(request, *backend);
  }

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
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(options_.threads);
    params->setMaxQueued(options_.max_queued);
    params->setTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(options_.read_timeout.count()) * 1000));
    params->setKeepAlive(true);
    connections_ = new ConnectionFactory(handler_, params);
    server_ = std::make_unique<Poco::Net::TCPServer>(connections_, *socket_, params);
    server_->start();
    spdlog::info("service listening on {}:{}", options_.host, port());
  }

  void stop() {
    if (server_) {
      server_->stop();
      connections_->stopAll();
      // The connections run on Poco's shared thread pool and use this object's handler,
      // router and database connections: they must be done before it goes, however long a
      // request stuck in a database call takes (the pod's grace period bounds it).
      for (auto waited = kStopWarnEvery; !connections_->awaitAllEnded(kStopWarnEvery);
           waited += kStopWarnEvery) {
        spdlog::warn("stopping: requests still running after {} s; waiting for them",
                     std::chrono::duration_cast<std::chrono::seconds>(waited).count());
      }
    }
    server_.reset();
  }

  static constexpr std::chrono::milliseconds kStopWarnEvery{std::chrono::seconds(10)};

  int port() const { return socket_ ? socket_->address().port() : options_.port; }

  ServiceOptions options_;
  BackendPool pool_;
  HttpMetrics metrics_;
  Router router_;
  ApiRequestHandler handler_{router_, pool_, options_, metrics_};
  std::unique_ptr<Poco::Net::ServerSocket> socket_;
  Poco::SharedPtr<ConnectionFactory> connections_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
};

Service::Service(core::DatabaseTarget target, ServiceOptions options, const core::PluginRegistry& plugins)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(options), plugins)) {}
Service::~Service() { impl_->stop(); }
void Service::start() { impl_->start(); }
void Service::stop() { impl_->stop(); }
int Service::port() const { return impl_->port(); }

}  // namespace syncpod::service
