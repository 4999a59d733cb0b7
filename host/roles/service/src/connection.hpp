#pragma once
// Private to the service role: the server side of HTTP/1.1 connections. Poco's HTTPServer
// answers a request it cannot read with a bare 400, or closes the connection without a word;
// these connections answer it like any other bad request, in the API's error shape.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/TCPServerConnectionFactory.h>

#include "api.hpp"

namespace Poco::Net {
class HTTPServerRequest;
class HTTPServerResponse;
class HTTPSession;
}  // namespace Poco::Net

namespace syncpod::service {

/// Up to 40 bytes of a client's `bytes`, safe to show in a message or a log line: printable
/// ASCII as it is, other bytes as \xNN, and "…" when there were more.
std::string printableExcerpt(std::string_view bytes);

/// Whether the session's last read failed by timing out (Poco keeps the failure in the
/// session; the stream that read shows it as the end of the input).
bool lastReadTimedOut(const Poco::Net::HTTPSession& session);

/// Answers the requests the connections read. Called on the connections' threads, several at
/// once.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;

  /// Answers a request whose header has been read; its body has not been. Returns whether the
  /// request was read to its end, its body included: if not, the connection closes after the
  /// answer and reads what is left first (a lingering close).
  virtual bool handle(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) = 0;

  /// Answers a request that could not be read with `error`. `out` says `Connection: close`:
  /// the connection is closed after it.
  virtual void refuse(const ApiError& error, Poco::Net::HTTPServerResponse& out) = 0;
};

class Connection;

/// Makes the connections of a Poco::Net::TCPServer. A connection reads requests as Poco's
/// HTTPServer does, with the timeouts and keep-alive limits of `params`.
class ConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  /// `handler` must outlive the connections.
  ConnectionFactory(RequestHandler& handler, Poco::Net::HTTPServerParams::Ptr params);

  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override;

  /// Ends every connection, at once: one waiting for a request closes, one being answered
  /// loses its socket, so its answer is not sent. Call after TCPServer::stop(), which stops
  /// new ones (as HTTPServer::stopAll(true) does).
  void stopAll();

  /// Waits until every connection has ended (their handlers returned), at most `limit`; false
  /// when some are still running then.
  bool awaitAllEnded(std::chrono::milliseconds limit);

 private:
  friend class Connection;
  /// Registers a connection for its lifetime, so that stopAll() reaches it; false when the
  /// server has stopped already.
  bool add(Connection& connection);
  void remove(Connection& connection);

  RequestHandler& handler_;
  Poco::Net::HTTPServerParams::Ptr params_;
  std::mutex mutex_;
  std::condition_variable ended_;  ///< a connection ended
  std::set<Connection*> open_;
  bool stopped_ = false;
};

}  // namespace syncpod::service
