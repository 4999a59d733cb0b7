// HTTP/1.1 connections: what Poco's HTTPServerConnection does (keep-alive, 100-continue, the
// session's timeouts, stopping with the server), except that a request that cannot be read is
// answered in the API's error shape.

#include "connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Timestamp.h>
#include <spdlog/spdlog.h>

namespace syncpod::service {

std::string printableExcerpt(std::string_view bytes) {
  constexpr std::size_t kLimit = 40;
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  for (const char c : bytes.substr(0, kLimit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[byte >> 4U];
      out += kHex[byte & 15U];
    }
  }
  if (bytes.size() > kLimit) out += "…";
  return out;
}

bool lastReadTimedOut(const Poco::Net::HTTPSession& session) {
  return dynamic_cast<const Poco::TimeoutException*>(session.networkException()) != nullptr;
}

namespace {

/// The connection's socket, keeping a copy of what Poco reads from it for a request's header:
/// Poco skips a header line without a colon as if it had not been sent, and only the header
/// as sent shows it.
class HeaderRecordingSocket final : public Poco::Net::StreamSocketImpl {
 public:
  /// Takes `fd` over.
  explicit HeaderRecordingSocket(poco_socket_t fd) : StreamSocketImpl(fd) {}

  using StreamSocketImpl::receiveBytes;
  int receiveBytes(void* buffer, int length, int flags) override {
    const int received = StreamSocketImpl::receiveBytes(buffer, length, flags);
    if (received > 0 && (flags & MSG_PEEK) == 0) {
      last_.assign(static_cast<const char*>(buffer), static_cast<std::size_t>(received));
      if (recording_) header_ += last_;
    }
    return received;
  }

  /// Starts a header. `unread`: the bytes Poco's session has read from the socket and not yet
  /// used. It reads only when it holds none, so they are the end of the last read.
  void startHeader(std::size_t unread) {
    header_ = last_.substr(last_.size() - std::min(unread, last_.size()));
    recording_ = true;
  }

  /// The header read since startHeader(), without the `unread` bytes read after it.
  std::string endHeader(std::size_t unread) {
    recording_ = false;
    header_.resize(header_.size() - std::min(unread, header_.size()));
    return std::exchange(header_, {});
  }

 private:
  std::string last_;  ///< what the last read returned
  std::string header_;
  bool recording_ = false;
};

/// Poco's server session, telling how much it has read ahead.
class Session final : public Poco::Net::HTTPServerSession {
 public:
  using HTTPServerSession::HTTPServerSession;

  /// Bytes read from the socket and not yet used.
  std::size_t unread() const { return static_cast<std::size_t>(buffered()); }
};


/// The characters of an HTTP token (RFC 9110 §5.6.2), such as a header field name.
constexpr std::string_view kTokenCharacters =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";

/// What is wrong with the first header line that is not a field (nor the fold of one), or
/// nullopt. `header` is the header as sent: any blank lines, the request line, the field lines,
/// each perhaps folded onto lines that start with a space or tab, the empty line. Poco skips a
/// line without a colon and keeps whatever precedes a colon as the name; RFC 9112 §5.1 wants a
/// token there, with no whitespace before the colon, or "Content-Length : 5" would be a field
/// of another name to the service and a length to a proxy in front.
std::optional<std::string> malformedFieldLine(std::string_view header) {
  auto end = header.find('\n', header.find_first_not_of(" \t\r\n"));
  bool after_field = false;
  while (end != std::string_view::npos && end + 1 < header.size()) {
    const auto start = end + 1;
    end = header.find('\n', start);
    auto line = header.substr(start, end == std::string_view::npos ? end : end - start);
    // Poco ends the header at a line that starts with CR, whatever follows on it.
    if (line.empty() || line.front() == '\r') break;
    if (after_field && (line.front() == ' ' || line.front() == '\t')) continue;  // a fold
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (line.back() == '\r') line.remove_suffix(1);
      return "its line '" + printableExcerpt(line) + "' has no colon, so it is not a header field";
    }
    const auto name = line.substr(0, colon);
    if (name.empty() || name.find_first_not_of(kTokenCharacters) != std::string_view::npos) {
      return "the header field name '" + printableExcerpt(name) +
             "' is not a token (letters, digits and !#$%&'*+-.^_`|~, nothing else)";
    }
    after_field = true;
  }
  return std::nullopt;
}

/// What Poco could not read, in plain words, from its message. The messages and limits are
/// those of HTTPRequest::read and MessageHeader::read in Poco 1.11, which keeps its limits
/// private.
std::string unreadableBecause(const std::string& poco_message) {
  struct Known {
    std::string_view poco;
    std::string_view plain;
  };
  static constexpr Known kKnown[] = {
      {"No HTTP request header", "the request line could not be read: the request has only blank lines"},
      {"HTTP request method invalid or too long",
       "the request line could not be read: it must start with a method of at most 32 characters and a space"},
      {"HTTP request URI invalid or too long",
       "the request line could not be read: its target is missing or longer than 16384 bytes"},
      {"Invalid HTTP version string",
       "the request line could not be read: its HTTP version is missing or longer than 8 characters"},
      {"Field name too long/no colon found",
       "the request's header could not be read: a header field name is longer than 256 bytes or has no colon "
       "after it"},
      {"Field value too long/no CRLF found",
       "the request's header could not be read: a header field value is longer than 8192 bytes or its line "
       "does not end with CRLF"},
      {"Folded field value too long/no CRLF found",
       "the request's header could not be read: a folded header field value is longer than 8192 bytes or its "
       "line does not end with CRLF"},
      {"Too many header fields", "the request's header could not be read: it has more than 100 header fields"},
  };
  for (const auto& known : kKnown) {
    if (poco_message == known.poco) return std::string(known.plain);
  }
  return "the request could not be read: " + printableExcerpt(poco_message);
}

/// The answer to a request whose header could not be read, or nullopt when nobody is left to
/// answer: the connection failed.
std::optional<ApiError> unreadable(const Poco::Exception& error, const Poco::Net::HTTPSession& session) {
  // Poco reads the request line through a stream that turns a failed read into the end of the
  // input, so a line cut by a timeout looks malformed; the session keeps the failure.
  if (dynamic_cast<const Poco::TimeoutException*>(&error) != nullptr || lastReadTimedOut(session)) {
    return ApiError{408, "timeout", "the request's header did not arrive in time"};
  }
  if (session.networkException() != nullptr) return std::nullopt;
  if (dynamic_cast<const Poco::Net::MessageException*>(&error) != nullptr) {
    return ApiError{400, "bad_request", unreadableBecause(error.message())};
  }
  // Poco parses Content-Length as it reads the header; its message holds the client's bytes.
  if (dynamic_cast<const Poco::SyntaxException*>(&error) != nullptr) {
    return ApiError{400, "bad_request", "the request's Content-Length must be a number of bytes"};
  }
  spdlog::debug("a request could not be read: {}", printableExcerpt(error.displayText()));
  return ApiError{400, "bad_request", "the request could not be read"};
}

}  // namespace

class Connection final : public Poco::Net::TCPServerConnection {
 public:
  Connection(const Poco::Net::StreamSocket& socket, ConnectionFactory& factory)
      : TCPServerConnection(socket), factory_(factory), server_(factory.params_->getSoftwareVersion()) {
    if (!factory_.add(*this)) stopped_ = true;
  }
  ~Connection() override { factory_.remove(*this); }

  void run() override {
    // The session reads a duplicate of the socket, so that it can be one that records the
    // header; stop() shuts the original down, which ends both.
    const int fd = ::dup(socket().impl()->sockfd());
    if (fd < 0) {
      spdlog::warn("cannot serve a connection: {}", std::error_code(errno, std::system_category()).message());
      return;
    }
    auto* recorder = new HeaderRecordingSocket(fd);
    Session session{Poco::Net::StreamSocket(recorder), factory_.params_};  // the socket owns it
    Ending ending = Ending::Close;
    while (!stopped_ && session.hasMoreRequests()) {
      ending = serve(session, *recorder);
      if (ending != Ending::NotYet) break;
    }
    if (ending == Ending::Linger) lingerBeforeClosing(fd);
  }

  /// Ends the connection, from another thread: its socket's reads and writes fail from now on.
  void stop() {
    stopped_ = true;
    try {
      socket().shutdown();
    } catch (const Poco::Exception&) {
      // The client has closed it already.
    }
  }

 private:
  enum class Ending {
    NotYet,  ///< the connection goes on to its next request
    Close,   ///< it closes: nothing of the request is left unread, or nobody is left to answer
    Linger,  ///< it closes after an answer, with some of the request perhaps unread
  };

  /// Reads a request and answers it; says whether and how the connection is to close.
  Ending serve(Session& session, HeaderRecordingSocket& recorder) {
    Poco::Net::HTTPServerResponseImpl response(session);
    std::optional<Poco::Net::HTTPServerRequestImpl> request;
    recorder.startHeader(session.unread());
    try {
      request.emplace(response, session, factory_.params_.get());
    } catch (const Poco::Net::NoMessageException&) {
      return Ending::Close;  // the connection ended between requests
    } catch (const Poco::Exception& error) {
      const auto answer = unreadable(error, session);
      if (!answer) return Ending::Close;
      refuse(session, *answer);
      return Ending::Linger;
    }
    const auto header = recorder.endHeader(session.unread());
    if (const auto problem = malformedFieldLine(header)) {
      refuse(session, {400, "bad_request", "the request's header could not be read: " + *problem});
      return Ending::Linger;
    }
    const bool keep_alive = factory_.params_->getKeepAlive() && session.canKeepAlive();
    response.setDate(Poco::Timestamp());
    response.setVersion(request->getVersion());
    response.setKeepAlive(keep_alive && request->getKeepAlive());
    if (!server_.empty()) response.set("Server", server_);
    bool read_whole = false;
    try {
      if (request->getExpectContinue() && response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) {
        response.sendContinue();
      }
      read_whole = factory_.handler_.handle(*request, response);
    } catch (const Poco::Exception& error) {
      spdlog::debug("connection ended while answering: {}", error.displayText());
      return Ending::Close;
    }
    session.setKeepAlive(keep_alive && response.getKeepAlive());
    if (session.getKeepAlive()) return Ending::NotYet;
    return read_whole ? Ending::Close : Ending::Linger;
  }

  /// Closes the sending side and reads what the client still sends until it closes too, for a
  /// few seconds at most (a "lingering close", as Apache and nginx do). Closing a socket with
  /// unread bytes makes the kernel reset the connection, and a reset can destroy the answer
  /// on its way or in the client's buffers: a client still sending a refused body (413) would
  /// get an error in place of the answer.
  void lingerBeforeClosing(int fd) {
    constexpr auto kAtMost = std::chrono::seconds(5);
    constexpr auto kQuietFor = std::chrono::seconds(1);  // no byte this long: the client waits for the close
    if (stopped_ || ::shutdown(fd, SHUT_WR) != 0) return;
    const auto until = std::chrono::steady_clock::now() + kAtMost;
    char discarded[16384];
    while (!stopped_) {
      const auto left = std::min<std::chrono::steady_clock::duration>(until - std::chrono::steady_clock::now(), kQuietFor);
      if (left <= std::chrono::steady_clock::duration::zero()) return;
      pollfd readable{fd, POLLIN, 0};
      const int ready = ::poll(&readable, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return;
      const auto got = ::recv(fd, discarded, sizeof discarded, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return;
    }
  }

  /// Answers a request that could not be read, as the connection's last.
  void refuse(Session& session, const ApiError& error) {
    session.setKeepAlive(false);
    if (stopped_) return;  // its socket is shut down: the answer could not be sent
    // A response of its own: the one made for the request still points to it.
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    response.setDate(Poco::Timestamp());
    if (!server_.empty()) response.set("Server", server_);
    response.setKeepAlive(false);
    try {
      factory_.handler_.refuse(error, response);
    } catch (const Poco::Exception& failure) {
      spdlog::debug("cannot send a refusal: {}", failure.displayText());
    }
  }

  ConnectionFactory& factory_;
  const std::string server_;  ///< the Server header; none when empty
  std::atomic<bool> stopped_ = false;
};

ConnectionFactory::ConnectionFactory(RequestHandler& handler, Poco::Net::HTTPServerParams::Ptr params)
    : handler_(handler), params_(std::move(params)) {}

Poco::Net::TCPServerConnection* ConnectionFactory::createConnection(const Poco::Net::StreamSocket& socket) {
  return new Connection(socket, *this);
}

void ConnectionFactory::stopAll() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  for (auto* connection : open_) connection->stop();
}

bool ConnectionFactory::add(Connection& connection) {
  std::lock_guard lock(mutex_);
  open_.insert(&connection);
  return !stopped_;
}

bool ConnectionFactory::awaitAllEnded(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  return ended_.wait_for(lock, limit, [&] { return open_.empty(); });
}

void ConnectionFactory::remove(Connection& connection) {
  std::lock_guard lock(mutex_);
  open_.erase(&connection);
  ended_.notify_all();
}

}  // namespace syncpod::service
