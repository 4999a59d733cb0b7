// Hostile requests: malformed, truncated and oversized requests over raw TCP against a real
// Service on 127.0.0.1 with the test PostgreSQL. A randomized run (SYNCPOD_FUZZ_SECONDS, default
// 8; SYNCPOD_FUZZ_SEED to replay a seed) and focused tests for what such runs found.
//
// Raw sockets, not an HTTP client: a client library refuses to send most of what is tested here
// (bad framing, conflicting lengths, garbage methods, bodies cut short).

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "api.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "router.hpp"
#include "service_pgtest_support.hpp"
#include "syncpod/core/integrations.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/webhooks.hpp"

namespace syncpod::service {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long long envNumber(const char* name, long long fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return std::stoll(text);
}

/// Bytes as a C string literal would show them, cut at `limit` bytes.
std::string escaped(const std::string& bytes, std::size_t limit = 1500) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          static const char* kHex = "0123456789abcdef";
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (bytes.size() > limit) out += "\"… (" + std::to_string(bytes.size()) + " bytes in all)";
  return "\"" + out + (bytes.size() > limit ? "" : "\"");
}

// --- a raw HTTP/1.1 client ----------------------------------------------------------------

struct Answer {
  enum class Outcome { Answered, Closed, Reset, TimedOut, Garbled };
  Outcome outcome = Outcome::Closed;
  int status = 0;
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  std::string why;  ///< for Garbled: what was wrong with it

  bool closes() const {
    const auto found = headers.find("connection");
    if (found == headers.end()) return false;
    auto value = found->second;
    for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return value.find("close") != std::string::npos;
  }
};

const char* toString(Answer::Outcome outcome) {
  switch (outcome) {
    case Answer::Outcome::Answered: return "answered";
    case Answer::Outcome::Closed: return "closed without an answer";
    case Answer::Outcome::Reset: return "reset without an answer";
    case Answer::Outcome::TimedOut: return "no answer in time";
    case Answer::Outcome::Garbled: return "garbled answer";
  }
  return "?";
}

/// One TCP connection to 127.0.0.1:port that sends bytes exactly as given and reads answers
/// with a deadline, so a hung server fails a test instead of hanging it.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) close();
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }

  /// Sends everything unless the server stops reading (false after `timeout`) or goes away.
  bool send(std::string_view bytes, milliseconds timeout = milliseconds(5000)) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!bytes.empty() && fd_ >= 0) {
      pollfd waiting{fd_, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0 || ::poll(&waiting, 1, static_cast<int>(left)) <= 0) return false;
      const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return bytes.empty();
  }

  void shutdownWrite() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }

  /// Closes with a reset instead of an orderly FIN.
  void reset() {
    if (fd_ < 0) return;
    const linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    close();
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// The next answer; interim 1xx answers are skipped. `head`: the request was HEAD, so the
  /// answer has no body whatever its Content-Length says.
  Answer receive(milliseconds timeout, bool head = false) {
    const auto deadline = SteadyClock::now() + timeout;
    Answer answer;
    for (;;) {
      std::size_t end = buffer_.find("\r\n\r\n");
      while (end == std::string::npos) {
        if (buffer_.size() > 256 * 1024) return garbled("an answer's header is larger than 256 KiB");
        const auto read = readMore(deadline);
        if (read != Read::Data) {
          if (!buffer_.empty() && read == Read::Eof) return garbled("the connection closed inside an answer's header");
          answer.outcome = read == Read::Eof ? Answer::Outcome::Closed
                           : read == Read::Reset ? Answer::Outcome::Reset
                                                 : Answer::Outcome::TimedOut;
          return answer;
        }
        end = buffer_.find("\r\n\r\n");
      }
      const auto head_text = buffer_.substr(0, end);
      buffer_.erase(0, end + 4);
      std::istringstream lines(head_text);
      std::string line;
      std::getline(lines, line);
      // "<version> <3 digits> <reason>": the service echoes the request's version, whatever it was.
      const auto space = line.find(' ');
      if (space == std::string::npos || line.size() < space + 4 ||
          !std::all_of(line.begin() + static_cast<std::ptrdiff_t>(space) + 1,
                       line.begin() + static_cast<std::ptrdiff_t>(space) + 4,
                       [](char c) { return c >= '0' && c <= '9'; })) {
        return garbled("status line " + escaped(line));
      }
      answer.status = std::stoi(line.substr(space + 1, 3));
      answer.headers.clear();
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto colon = line.find(':');
        if (colon == std::string::npos) return garbled("header line " + escaped(line));
        auto name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        answer.headers[name] = value;
      }
      if (answer.status >= 100 && answer.status < 200) continue;
      break;
    }
    answer.outcome = Answer::Outcome::Answered;
    if (head || answer.status == 204 || answer.status == 304) return answer;
    if (const auto length = answer.headers.find("content-length"); length != answer.headers.end()) {
      const auto size = static_cast<std::size_t>(std::stoull(length->second));
      while (buffer_.size() < size) {
        const auto read = readMore(deadline);
        if (read == Read::TimedOut) return timedOutInBody();
        if (read != Read::Data) return garbled("the connection closed inside an answer's body");
      }
      answer.body = buffer_.substr(0, size);
      buffer_.erase(0, size);
      return answer;
    }
    // No length: the body ends with the connection.
    for (;;) {
      const auto read = readMore(deadline);
      if (read == Read::TimedOut) return timedOutInBody();
      if (read != Read::Data) break;
    }
    answer.body = std::move(buffer_);
    buffer_.clear();
    return answer;
  }

 private:
  enum class Read { Data, Eof, Reset, TimedOut };

  Read readMore(SteadyClock::time_point deadline) {
    if (fd_ < 0) return Read::Eof;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0) return Read::TimedOut;
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = ::poll(&waiting, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return Read::TimedOut;
      char chunk[16384];
      const auto got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(got));
        return Read::Data;
      }
      if (got == 0) return Read::Eof;
      if (errno == EINTR || errno == EAGAIN) continue;
      return Read::Reset;
    }
  }

  static Answer garbled(std::string why) {
    Answer answer;
    answer.outcome = Answer::Outcome::Garbled;
    answer.why = std::move(why);
    return answer;
  }

  static Answer timedOutInBody() {
    Answer answer;
    answer.outcome = Answer::Outcome::TimedOut;
    answer.why = "inside an answer's body";
    return answer;
  }

  int fd_ = -1;
  std::string buffer_;
};

/// Whether a JSON body has the error shape {"error": {"code", "message", "details"}}.
bool isErrorShape(const Json& body) {
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) return false;
  const auto& error = body["error"];
  return error.contains("code") && error["code"].is_string() && !error["code"].get<std::string>().empty() &&
         error.contains("message") && error["message"].is_string() &&
         !error["message"].get<std::string>().empty() && error.contains("details") && error["details"].is_object();
}

// --- what a request looks like --------------------------------------------------------------

/// A request as parts, serialised with the framing asked for.
struct Request {
  enum class Framing { Length, None, Chunked };
  std::string method = "GET";
  std::string target = "/healthz";
  std::string version = "HTTP/1.1";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Framing framing = Framing::Length;
  std::vector<std::size_t> chunks;  ///< chunk sizes for Chunked; empty: one chunk

  /// The bytes on the wire; `complete_at`: how many of them make the request complete.
  std::string serialize(std::size_t* complete_at = nullptr) const {
    std::string out = method + " " + target + " " + version + "\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    if (framing == Framing::Length) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (framing == Framing::Chunked) out += "Transfer-Encoding: chunked\r\n";
    out += "\r\n";
    if (framing == Framing::Chunked) {
      std::size_t at = 0;
      for (std::size_t i = 0; at < body.size(); ++i) {
        const auto size = std::min(body.size() - at, i < chunks.size() && chunks[i] > 0 ? chunks[i] : body.size());
        std::ostringstream hex;
        hex << std::hex << size;
        out += hex.str() + "\r\n" + body.substr(at, size) + "\r\n";
        at += size;
      }
      out += "0\r\n";
      // Complete with its last chunk: what follows is an (empty) trailer section.
      if (complete_at != nullptr) *complete_at = out.size();
      out += "\r\n";
      return out;
    } else {
      out += body;
    }
    if (complete_at != nullptr) *complete_at = out.size();
    return out;
  }
};

/// One exchange the fuzzer makes: bytes sent on a connection and how it ends.
struct Probe {
  enum class End {
    Read,       ///< send, read the answers
    ShutWrite,  ///< send (a part), close the sending side, read what comes back
    Close,      ///< send (a part), close without reading
    Reset,      ///< send (a part), reset the connection
    Stall,      ///< send a part, wait for the service to give up on it
  };
  std::string category;
  std::string bytes;
  std::size_t answers = 1;        ///< answers expected when all goes well
  bool well_framed = true;        ///< complete, valid HTTP/1.1 framing: it must be answered
  std::size_t complete_at = 0;    ///< bytes that complete the first request; 0: unknown
  bool head = false;
  bool changes = false;  ///< the first request's method may change something (not GET or HEAD)
  End end = End::Read;
  std::size_t cut = std::string::npos;  ///< send only this many bytes
};

/// What the fuzzer knows of the service it talks to.
struct Target {
  int port = 0;
  std::string write_token;
  std::string read_token;
  std::vector<std::int64_t> integrations;  ///< to sync, read and replace
  std::vector<std::int64_t> victims;       ///< to delete and disable
  std::vector<std::int64_t> jobs;
  std::int64_t webhook_integration = 0;
  std::string webhook_secret;
  std::vector<Router::RouteInfo> routes;
  std::size_t max_body_bytes = 0;
};

Json memoryConfig() {
  return {{"source", {{"plugin", "memory"},
                      {"config", {{"records", {{"items", Json::array({{{"id", 1}, {"name", "a"}}})}}},
                                  {"token", "s3cret-token"}}}}},
          {"target", {{"plugin", "memory"}, {"config", {{"records", {{"items", Json::array()}}}}}}},
          {"deletion_policy", "additive"},
          {"streams", {{{"name", "items"}, {"source_stream", "items"}, {"target_stream", "items"},
                        {"key", {"id"}}, {"fields", {{"id", "id"}, {"name", "name"}}}}}}};
}

/// Generates probes from a seeded PRNG; one per client thread.
class Fuzzer {
 public:
  Fuzzer(const Target& target, std::uint64_t seed) : target_(target), rng_(seed) {}

  Probe next() {
    switch (below(12)) {
      case 0: return routeProbe();
      case 1: return queryProbe();
      case 2: return headerProbe();
      case 3: return framingProbe();
      case 4: return bytesBodyProbe();
      case 5:
      case 6: return jsonBodyProbe();
      case 7: return oversizedProbe();
      case 8: return truncatedProbe();
      case 9: return requestLineProbe();
      case 10: return webhookProbe();
      default: return pipelinedProbe();
    }
  }

 private:
  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  /// A copy: callers often pass a temporary list.
  template <class T>
  T pick(const std::vector<T>& options) { return options[below(options.size())]; }

  std::string randomBytes(std::size_t size) {
    std::string out(size, '\0');
    for (auto& c : out) c = static_cast<char>(below(256));
    return out;
  }

  std::string number(std::int64_t value) { return std::to_string(value); }

  /// A value for a path parameter: real ids mostly, and every kind of bad one. Deleting,
  /// disabling and rotating a webhook secret name only the victims, so that the run keeps
  /// integrations to sync and the webhook integration keeps its secret.
  std::string idFor(const Router::RouteInfo& info) {
    const auto& pattern = info.pattern;
    if (chance(0.45)) {
      if (pattern.find("/jobs/") != std::string::npos) return number(pick(target_.jobs));
      if (pattern.ends_with("/webhook")) return number(target_.webhook_integration);
      if (info.method == "DELETE" || pattern.ends_with("/disable") || pattern.ends_with("/webhook-secret")) {
        return number(pick(target_.victims));
      }
      return number(pick(target_.integrations));
    }
    static const std::vector<std::string> kBad = {
        "0", "-1", "-0", "+1", "%201", "1%20", "01", "1.0", "1e3", "0x10", "abc", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "99999999999999999999999999", "%31", "%2e%2e",
        "..", ".", "%00", "1%00", "%001", "1%2F2", "%2F", "%ZZ", "%", "%%", "1%", "%C0%AF", "%FF%FE",
        "%E2%80%AE1", "{id}", "*", "1;x=y", "1,2", "%20", "~", std::string(300, '9'), std::string(5000, '1')};
    if (chance(0.1)) {
      std::string encoded;
      for (const char c : randomBytes(1 + below(20))) {
        static const char* kHex = "0123456789ABCDEF";
        const auto byte = static_cast<unsigned char>(c);
        encoded += '%';
        encoded += kHex[byte >> 4];
        encoded += kHex[byte & 15];
      }
      return encoded;
    }
    return pick(kBad);
  }

  Router::RouteInfo route() { return pick(target_.routes); }

  /// A path from a route pattern: its parameters filled in, sometimes its literal parts bent.
  std::string pathFor(const Router::RouteInfo& info) {
    const auto& pattern = info.pattern;
    std::string path;
    std::size_t at = 0;
    while (at < pattern.size()) {
      const auto open = pattern.find('{', at);
      if (open == std::string::npos) {
        path += pattern.substr(at);
        break;
      }
      path += pattern.substr(at, open - at);
      path += idFor(info);
      at = pattern.find('}', open) + 1;
    }
    if (chance(0.15)) {
      switch (below(9)) {
        case 0: path += "/"; break;
        case 1: path += "/extra"; break;
        case 2: path.insert(0, "/"); break;
        case 3: path.replace(0, 1, "/./"); break;
        case 4: path += "/.."; break;
        case 5: std::transform(path.begin(), path.end(), path.begin(), [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }); break;
        case 6: path = path.substr(0, below(path.size() + 1)); break;
        case 7: path.insert(below(path.size() + 1), "%2F"); break;
        default: path.insert(below(path.size() + 1), "//"); break;
      }
    }
    if (path.empty() || chance(0.02)) path = pick(std::vector<std::string>{"", "*", "api/v1/jobs", "http://127.0.0.1/healthz", "//", "/%"});
    return path;
  }

  std::string methodFor(const std::string& method) {
    if (chance(0.65)) return method;
    static const std::vector<std::string> kMethods = {
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get", "Post",
        "PROPFIND", "G", "GETT", "X-CUSTOM", std::string(32, 'A'), std::string(33, 'A'), std::string(200, 'P'),
        "G\x01T", "GE\x7fT", "\xc3\xa9T"};
    return pick(kMethods);
  }

  std::string query() {
    static const std::vector<std::string> kQueries = {
        "?limit=1", "?limit=0", "?limit=-1", "?limit=501", "?limit=500", "?limit=abc", "?limit=",
        "?limit=1&limit=2", "?limit=99999999999999999999", "?cursor=1", "?cursor=-5", "?cursor=x",
        "?state=queued", "?state=bogus", "?state=queued&state=running", "?kind=partial", "?kind=",
        "?integration_id=1", "?integration_id=0", "?integration_id=%00", "?unknown=1", "?=", "?&&&",
        "?a", "?%ZZ=1", "?limit=%31", "?limit=1%00", "?limit=1#frag", "#frag", "?limit=1;limit=2",
        "?\xff\xfe=1", "?limit=+1", "?limit= 1"};
    if (chance(0.1)) return "?" + std::string(5000 + below(12000), 'q') + "=1";
    if (chance(0.05)) {
      std::string many = "?";
      for (std::size_t i = 0, n = 50 + below(1000); i < n; ++i) many += "p" + std::to_string(i) + "=" + std::to_string(i) + "&";
      return many;
    }
    return pick(kQueries);
  }

  std::string authorization() {
    const std::string bearer = "Bearer " + (chance(0.7) ? target_.write_token : target_.read_token);
    if (chance(0.75)) return bearer;
    static const std::vector<std::string> kBad = {
        "", "Bearer", "Bearer ", "Bearer  ", "bearer " , "Basic dXNlcjpwYXNz", "Bearer sp_",
        "Bearer sp_" + std::string(43, 'A'), "Bearer " + std::string(7000, 'x'), "Bearer sp_\x01\x02",
        "Token abc", "Bearer \xff\xfe", "Bearer sp_abc, Bearer sp_def"};
    auto value = pick(kBad);
    if (chance(0.2)) value = bearer + pick(std::vector<std::string>{" ", "x", "\t", ","});
    return value;
  }

  /// A request a client could plausibly send to `route`: method, path, token, body shape.
  Request plausible(const Router::RouteInfo& info) {
    Request request;
    request.method = info.method;
    request.target = pathFor(info);
    request.headers.push_back({"Host", "127.0.0.1"});
    if (info.pattern.rfind("/api/", 0) == 0 && chance(0.9)) request.headers.push_back({"Authorization", authorization()});
    if (info.method == "POST" || info.method == "PUT") {
      request.headers.push_back({"Content-Type", "application/json"});
      request.body = jsonText(shapeFor(info), 0.4);
    }
    return request;
  }

  /// A valid body of the route's request shape.
  Json shapeFor(const Router::RouteInfo& info) {
    const auto& pattern = info.pattern;
    if (pattern == "/api/v1/integrations" || (pattern == "/api/v1/integrations/{id}" && info.method == "PUT")) {
      Json body = {{"name", "fz-" + std::to_string(below(1000000))}, {"enabled", chance(0.8)}, {"config", memoryConfig()}};
      if (chance(0.3)) body["webhook_secret"] = "whsec_fuzz_secret_0123456789";
      return body;
    }
    if (pattern.ends_with("/validate")) return {{"config", memoryConfig()}};
    if (pattern.ends_with("/webhook-secret")) {
      Json body = Json::object();
      if (chance(0.5)) body["secret"] = "a-chosen-secret-of-enough-length";
      if (chance(0.5)) body["keep_previous_s"] = static_cast<std::int64_t>(below(100000));
      return body;
    }
    if (pattern.ends_with("/syncs")) {
      switch (below(5)) {
        case 0: return Json::object();
        case 1: return {{"kind", "full"}};
        case 2: return {{"kind", "partial"}, {"keys", {std::to_string(below(100))}}};
        case 3: return {{"kind", "partial"}, {"incremental", true}};
        default: return {{"plan", true}};
      }
    }
    if (pattern.ends_with("/webhook")) {
      Json body = {{"keys", {std::to_string(below(100))}}};
      if (chance(0.5)) body["id"] = "evt-" + std::to_string(below(1000000));
      if (chance(0.3)) body["incremental"] = true;
      return body;
    }
    return Json::object();
  }

  Json randomValue(int depth = 0) {
    switch (below(depth > 2 ? 16 : 18)) {
      case 0: return nullptr;
      case 1: return chance(0.5);
      case 2: return 0;
      case 3: return -1;
      case 4: return std::numeric_limits<std::int64_t>::max();
      case 5: return std::numeric_limits<std::int64_t>::min();
      case 6: return std::numeric_limits<std::uint64_t>::max();
      case 7: return 1.5;
      case 8: return 1e308;
      case 9: return "";
      case 10: return std::string(1 + below(3000), 'x');
      case 11: return std::string("a\0b", 3);
      case 12: return "********";
      case 13: return "\xc3\xa9\xf0\x9f\x98\x80";
      case 14: return std::to_string(below(100));
      case 15: return "whsec_" + std::string(20, 'k');
      case 16: {
        Json array = Json::array();
        for (std::size_t i = 0, n = below(4); i < n; ++i) array.push_back(randomValue(depth + 1));
        return array;
      }
      default: {
        Json object = Json::object();
        for (std::size_t i = 0, n = below(4); i < n; ++i) object["k" + std::to_string(i)] = randomValue(depth + 1);
        return object;
      }
    }
  }

  /// Replaces, removes or adds one member somewhere in `json`.
  void mutate(Json& json) {
    Json* node = &json;
    while ((node->is_object() || node->is_array()) && !node->empty() && chance(0.6)) {
      auto it = node->begin();
      std::advance(it, static_cast<std::ptrdiff_t>(below(node->size())));
      if (!it->is_object() && !it->is_array()) break;
      node = &*it;
    }
    if (node->is_object()) {
      if (!node->empty() && chance(0.5)) {
        auto it = node->begin();
        std::advance(it, static_cast<std::ptrdiff_t>(below(node->size())));
        const auto key = it.key();
        if (chance(0.3)) {
          node->erase(key);
        } else {
          (*node)[key] = randomValue();
        }
      } else {
        static const std::vector<std::string> kNames = {"colour", "", "name ", "Name", "\xc3\xa9", std::string("a\0b", 3), std::string(300, 'n')};
        (*node)[pick(kNames)] = randomValue();
      }
    } else if (node->is_array()) {
      if (!node->empty() && chance(0.5)) {
        (*node)[below(node->size())] = randomValue();
      } else {
        node->push_back(randomValue());
      }
    } else {
      *node = randomValue();
    }
  }

  /// `shape` as JSON text, mutated with probability `p`, sometimes in its text.
  std::string jsonText(Json shape, double p) {
    if (chance(p)) {
      for (std::size_t i = 0, n = 1 + below(3); i < n; ++i) mutate(shape);
    }
    auto text = shape.dump();
    if (chance(p / 2)) {
      static const std::vector<std::string> kNumbers = {
          "1e999", "-1e999", "123456789012345678901234567890", "1.7976931348623159e308", "-0", "1E400",
          "0.0000000000000000000000000000001e-400", "NaN", "Infinity", "01", "1.", ".5", "0x10", "18446744073709551616"};
      const auto digit = text.find_first_of("0123456789");
      if (digit != std::string::npos) {
        text.replace(digit, 1, pick(kNumbers));
      } else {
        text.insert(text.size() - 1, std::string(text.size() > 2 ? "," : "") + "\"n\": " + pick(kNumbers));
      }
    }
    if (chance(p / 3)) {
      switch (below(10)) {
        case 0: text = text.substr(0, below(text.size() + 1)); break;
        case 1: text.insert(below(text.size() + 1), 1, static_cast<char>(below(256))); break;
        case 2: text = "\xEF\xBB\xBF" + text; break;
        case 3: text += text; break;
        case 4: text.insert(text.size() - 1, ","); break;
        case 5: text = pick(std::vector<std::string>{"[]", "1", "\"s\"", "null", "true", " ", "{", "}", "\"\\ud800\""}); break;
        case 6: text.insert(1, "\"name\": \"dup\", "); break;
        case 7: text.insert(1, "/* comment */"); break;
        case 8: text.insert(1, "\"s\": \"\xff\xfe\xc0\xaf\", "); break;
        default: text.insert(1, "\"s\": \"\\u0000\\ud800\\udc00\", "); break;
      }
    }
    return text;
  }

  std::string deepJson() {
    const std::size_t depth = pick(std::vector<std::size_t>{31, 32, 33, 100, 5000, 200000});
    switch (below(4)) {
      case 0: return "{\"a\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
      case 1: {
        std::string text;
        for (std::size_t i = 0; i < depth; ++i) text += "{\"a\":";
        return text + "1" + std::string(depth, '}');
      }
      case 2: return "{\"a\": \"" + std::string(depth, '[') + "\"}";  // brackets in a string are no nesting
      default: return "{\"a\": " + std::string(depth, '[');           // unbalanced
    }
  }

  /// Whether Poco's HTTP layer reads the request line: a method token of at most 32 characters,
  /// a target of at most 16 KiB (Poco's limits).
  static bool readableRequestLine(const Request& request) {
    return !request.method.empty() && request.method.size() < 32 && request.target.size() < 16000 &&
           std::all_of(request.method.begin(), request.method.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  }

  Probe finish(std::string category, const Request& request) {
    Probe probe;
    probe.category = std::move(category);
    probe.well_framed = readableRequestLine(request);
    probe.bytes = request.serialize(&probe.complete_at);
    probe.head = request.method == "HEAD";
    probe.changes = request.method != "GET" && request.method != "HEAD";
    return probe;
  }

  Probe routeProbe() {
    const auto& info = route();
    auto request = plausible(info);
    request.method = methodFor(info.method);
    return finish("route", request);
  }

  Probe queryProbe() {
    auto request = plausible(route());
    request.target += query();
    return finish("query", request);
  }

  Probe headerProbe() {
    auto request = plausible(route());
    bool well_framed = true;
    switch (below(12)) {
      case 0: request.headers.push_back({"X-Long", std::string(9000 + below(20000), 'h')}); well_framed = false; break;
      case 1: request.headers.push_back({std::string(300 + below(1000), 'N'), "v"}); well_framed = false; break;
      case 2:
        for (std::size_t i = 0, n = 90 + below(120); i < n; ++i) request.headers.push_back({"X-Many-" + std::to_string(i), "v"});
        well_framed = false;  // past Poco's 100 headers the request is refused
        break;
      case 3: request.headers.push_back({"X-Nul", std::string("a\0b", 3)}); well_framed = false; break;
      case 4: request.headers.push_back({"Authorization", authorization()}); break;  // twice
      case 5: request.headers.push_back({"Expect", "100-continue"}); break;
      case 6: request.headers.push_back({"Connection", pick(std::vector<std::string>{"close", "keep-alive", "upgrade", "\x01"})}); well_framed = false; break;
      case 7: request.headers.push_back({"X-Syncpod-Timestamp", pick(std::vector<std::string>{"", "-1", "abc", "99999999999999", "1700000000", std::to_string(std::time(nullptr))})}); break;
      case 8: request.headers.push_back({"X-Syncpod-Signature", pick(std::vector<std::string>{"v1=", "v1=zz", "v1=" + std::string(64, 'a'), std::string(5000, ','), "v2=abc,v1=" + std::string(64, '0'), std::string(4000, 'v') + "="})}); break;
      case 9: request.headers.push_back({"Content-Type", pick(std::vector<std::string>{"text/plain", "application/json; charset=latin1", "multipart/form-data; boundary=x", ""})}); break;
      case 10: request.headers.push_back({"Host", "evil.example"}); break;  // two Host headers
      default: request.headers.push_back({"Accept-Encoding", "gzip, br"}); break;
    }
    auto probe = finish("header", request);
    probe.well_framed = probe.well_framed && well_framed;
    return probe;
  }

  /// Content-Length and Transfer-Encoding, right and wrong.
  Probe framingProbe() {
    auto request = plausible(route());
    if (request.body.empty()) request.body = "{}";
    Probe probe;
    probe.category = "framing";
    probe.well_framed = false;
    const auto head = request.method + " " + request.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                      (chance(0.8) ? "Authorization: Bearer " + target_.write_token + "\r\n" : "");
    const auto size = std::to_string(request.body.size());
    switch (below(16)) {
      case 0:  // chunked, correct
        request.framing = Request::Framing::Chunked;
        for (std::size_t i = 0; i < 4; ++i) request.chunks.push_back(1 + below(8));
        probe.bytes = request.serialize(&probe.complete_at);
        probe.well_framed = readableRequestLine(request);
        return probe;
      case 1:  // no length on a request with a body: per RFC 9112 its body is empty
        request.framing = Request::Framing::None;
        request.body.clear();
        probe.bytes = request.serialize(&probe.complete_at);
        probe.well_framed = readableRequestLine(request);
        return probe;
      case 2: probe.bytes = head + "Content-Length: " + size + "\r\nContent-Length: " + size + "\r\n\r\n" + request.body; break;
      case 3: probe.bytes = head + "Content-Length: " + size + "\r\nContent-Length: 1\r\n\r\n" + request.body; break;
      case 4: probe.bytes = head + "Content-Length: " + pick(std::vector<std::string>{"abc", "-1", "-100", "+2", " 2", "0x2", "2 2", "", "99999999999999999999999", "18446744073709551615", "9223372036854775807"}) + "\r\n\r\n" + request.body; break;
      case 5: probe.bytes = head + "Transfer-Encoding: chunked\r\nContent-Length: " + size + "\r\n\r\n" + request.body; break;
      case 6: probe.bytes = head + "Transfer-Encoding: " + pick(std::vector<std::string>{"gzip", "chunked, gzip", "gzip, chunked", "identity", "xchunked", "chunked\x01", "CHUNKED"}) + "\r\n\r\n" + request.body; break;
      case 7: probe.bytes = head + "Transfer-Encoding: chunked\r\n\r\n" + pick(std::vector<std::string>{"zz\r\n{}\r\n0\r\n\r\n", "2\r\n{}0\r\n\r\n", "-2\r\n{}\r\n0\r\n\r\n", "ffffffffff\r\n{}\r\n0\r\n\r\n", "2;ext=1\r\n{}\r\n0\r\n\r\n", "2\r\n{}\r\n0\r\nTrailer: x\r\n\r\n", "10\r\n{}\r\n0\r\n\r\n", "2\n{}\n0\n\n", "\r\n\r\n", "2\r\n{}\r\n"}); break;
      case 8: {  // fewer bytes than announced, then the end of the connection
        const auto missing = 1 + below(50);
        probe.bytes = head + "Content-Length: " + std::to_string(request.body.size() + missing) + "\r\n\r\n" + request.body;
        probe.complete_at = probe.bytes.size() + missing;
        probe.end = Probe::End::ShutWrite;
        break;
      }
      case 9: probe.bytes = head + "Content-Length: 1\r\n\r\n" + request.body; break;  // the rest is another "request"
      case 10: probe.bytes = head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"; break;
      case 11: probe.bytes = head + "Content-Length : " + size + "\r\n\r\n" + request.body; break;
      case 12: probe.bytes = head + " Content-Length: " + size + "\r\n\r\n" + request.body; break;
      case 13: probe.bytes = head + "Content-Length: " + size + "\r\n folded\r\n\r\n" + request.body; break;
      case 14: probe.bytes = head + "Content-Length: " + size + "\n\n" + request.body; break;  // bare LF
      default: probe.bytes = head + "Content-Length\r\n\r\n" + request.body; break;           // no colon
    }
    probe.answers = 1;
    return probe;
  }

  Probe bytesBodyProbe() {
    const auto& info = route();
    auto request = plausible(info);
    switch (below(5)) {
      case 0: request.body = randomBytes(below(4096)); break;
      case 1: request.body = "{\"name\": \"\xff\xfe\xfd\", \"config\": {}}"; break;
      case 2: request.body = std::string("{\"name\": \"a\0b\"}", 15); break;
      case 3: request.body = "{\"name\": \"\xc0\xaf\xed\xa0\x80\"}"; break;
      default: request.body = randomBytes(1 + below(64)) + request.body; break;
    }
    request.framing = chance(0.2) ? Request::Framing::Chunked : Request::Framing::Length;
    return finish("body-bytes", request);
  }

  Probe jsonBodyProbe() {
    const auto& info = route();
    auto request = plausible(info);
    if (chance(0.15)) {
      request.body = deepJson();
    } else {
      request.body = jsonText(shapeFor(info), 0.95);
    }
    if (request.body.size() > target_.max_body_bytes) request.body.resize(target_.max_body_bytes);
    return finish("body-json", request);
  }

  Probe oversizedProbe() {
    const auto& info = route();
    auto request = plausible(info);
    const auto size = target_.max_body_bytes + 1 + below(target_.max_body_bytes);
    request.body = "{\"keys\": [\"" + std::string(size, 'k') + "\"]}";
    Probe probe;
    probe.category = "oversized";
    probe.well_framed = false;  // the service may close before it has read all of it
    switch (below(4)) {
      case 0:
        probe.bytes = request.serialize(&probe.complete_at);
        break;
      case 1:  // announced, not sent: the answer must not wait for it
        probe.bytes = request.method + " " + request.target + " HTTP/1.1\r\nAuthorization: Bearer " + target_.write_token +
                      "\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n";
        probe.end = Probe::End::Read;
        break;
      case 2:
        request.framing = Request::Framing::Chunked;
        request.chunks = {4096, 4096, 65536};
        probe.bytes = request.serialize(&probe.complete_at);
        break;
      default:
        probe.bytes = request.method + " " + request.target + " HTTP/1.1\r\nContent-Length: 99999999999999\r\nExpect: 100-continue\r\n\r\n";
        break;
    }
    return probe;
  }

  Probe truncatedProbe() {
    auto request = plausible(route());
    if (request.body.empty()) request.body = chance(0.5) ? "{}" : "{\"kind\": \"full\"}";
    request.framing = chance(0.3) ? Request::Framing::Chunked : Request::Framing::Length;
    auto probe = finish("truncated", request);
    probe.well_framed = false;
    probe.cut = 1 + below(probe.bytes.size() - 1);
    const auto end = below(20);
    probe.end = end < 8 ? Probe::End::ShutWrite : end < 13 ? Probe::End::Close : end < 19 ? Probe::End::Reset : Probe::End::Stall;
    return probe;
  }

  Probe requestLineProbe() {
    static const std::vector<std::string> kLines = {
        "GET /healthz\r\n\r\n", "GET /healthz HTTP/1.0\r\n\r\n", "GET /healthz HTTP/2.0\r\n\r\n",
        "GET /healthz HTTP/9.9\r\n\r\n", "GET /healthz HTTP/1.1 extra\r\n\r\n", "GET  /healthz  HTTP/1.1\r\n\r\n",
        "GET\t/healthz\tHTTP/1.1\r\n\r\n", "/healthz HTTP/1.1\r\n\r\n", "GET HTTP/1.1\r\n\r\n", " \r\n\r\n",
        "\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\n\n", "GET /healthz FOO/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n", "GET /heal thz HTTP/1.1\r\n\r\n", "GET /he\x00z HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n",
        "GET http://127.0.0.1/api/v1/jobs/1 HTTP/1.1\r\n\r\n", "GET * HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n",
        "GET /healthz?" + std::string(17000, 'a') + " HTTP/1.1\r\n\r\n", "GET /" + std::string(20000, 'x') + " HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1" + std::string(10000, ' ') + "\r\n\r\n", "GET /healthz HTTP/1.1\r\n" + std::string(20000, 'H') + "\r\n\r\n"};
    Probe probe;
    probe.category = "request-line";
    probe.well_framed = false;
    probe.bytes = chance(0.85) ? pick(kLines) : randomBytes(1 + below(400)) + "\r\n\r\n";
    if (probe.bytes.rfind("GET /healthz HTTP/1.1\r\n", 0) == 0 && probe.bytes.size() < 40) probe.end = Probe::End::ShutWrite;
    return probe;
  }

  /// Deliveries signed with the integration's webhook secret, so that the body parsing behind
  /// the signature check is reached too.
  Probe webhookProbe() {
    Request request;
    request.method = "POST";
    request.target = "/api/v1/integrations/" + std::to_string(target_.webhook_integration) + "/webhook";
    request.headers.push_back({"Host", "127.0.0.1"});
    request.headers.push_back({"Content-Type", "application/json"});
    const Router::RouteInfo info{"POST", "/api/v1/integrations/{id}/webhook"};
    request.body = chance(0.1) ? deepJson() : jsonText(shapeFor(info), 0.7);
    if (chance(0.05)) request.body = "{\"keys\": [\"" + std::string(target_.max_body_bytes / 2, 'k') + "\"]}";
    auto at = static_cast<std::int64_t>(std::time(nullptr));
    if (chance(0.1)) at += pick(std::vector<std::int64_t>{-400, -299, 299, 400, -1700000000});
    const auto timestamp = std::to_string(at);
    auto signature = "v1=" + core::webhookSignature(target_.webhook_secret, timestamp, request.body);
    if (chance(0.1)) signature = "v1=" + std::string(64, '0') + "," + signature;
    if (chance(0.05)) signature[3] = signature[3] == 'a' ? 'b' : 'a';
    request.headers.push_back({"X-Syncpod-Timestamp", timestamp});
    request.headers.push_back({"X-Syncpod-Signature", signature});
    if (chance(0.1)) request.target += query();
    if (chance(0.15)) request.framing = Request::Framing::Chunked;
    auto probe = finish("webhook", request);
    // Over the limit the service answers 413 without reading the body and closes: the client
    // may see the reset before the answer.
    probe.well_framed = probe.well_framed && request.body.size() <= target_.max_body_bytes;
    return probe;
  }

  /// Two or three requests in one write on one connection.
  Probe pipelinedProbe() {
    Probe probe;
    probe.category = "pipelined";
    probe.answers = 2 + below(2);
    for (std::size_t i = 0; i < probe.answers; ++i) {
      auto request = plausible(route());
      if (request.method == "HEAD") request.method = "GET";
      if (request.target.size() >= 16000) request.target = "/healthz";
      probe.bytes += request.serialize();
    }
    return probe;
  }

  const Target& target_;
  std::mt19937_64 rng_;
};

// --- running probes -------------------------------------------------------------------------

/// Counts and failures of a run, merged from every client thread.
struct Tally {
  std::map<std::string, long> per_category;
  std::map<std::string, long> statuses;  ///< "200", …, and the outcomes without an answer
  std::map<std::string, std::map<std::string, long>> statuses_per_category;
  std::vector<std::string> failures;
  long requests = 0;

  void count(const std::string& category, const std::string& status) {
    ++statuses[status];
    ++statuses_per_category[category][status];
  }

  void merge(const Tally& other) {
    for (const auto& [name, count] : other.per_category) per_category[name] += count;
    for (const auto& [name, count] : other.statuses) statuses[name] += count;
    for (const auto& [category, counts] : other.statuses_per_category) {
      for (const auto& [status, count] : counts) statuses_per_category[category][status] += count;
    }
    for (const auto& failure : other.failures) {
      if (failures.size() < 20) failures.push_back(failure);
    }
    requests += other.requests;
  }
};

class Runner {
 public:
  Runner(const Target& target, const core::DatabaseTarget& database, milliseconds answer_timeout,
         milliseconds stall_timeout)
      : target_(target), database_(database), answer_timeout_(answer_timeout), stall_timeout_(stall_timeout) {}

  void run(const Probe& probe, Tally& tally) {
    ++tally.per_category[probe.category];
    ++tally.requests;
    RawConnection connection(target_.port);
    if (!connection.connected()) {
      fail(tally, probe, "cannot connect to the service");
      return;
    }
    const auto sent = probe.cut == std::string::npos ? std::string_view(probe.bytes)
                                                      : std::string_view(probe.bytes).substr(0, probe.cut);
    const bool all_sent = connection.send(sent);
    switch (probe.end) {
      case Probe::End::Close: connection.close(); return;
      case Probe::End::Reset: connection.reset(); return;
      case Probe::End::ShutWrite: connection.shutdownWrite(); break;
      case Probe::End::Stall:
      case Probe::End::Read: break;
    }
    const auto timeout = probe.end == Probe::End::Stall ? stall_timeout_ : answer_timeout_;
    for (std::size_t i = 0; i < probe.answers; ++i) {
      const auto answer = connection.receive(timeout, probe.head);
      if (answer.outcome != Answer::Outcome::Answered) {
        tally.count(probe.category, toString(answer.outcome));
        if (answer.outcome == Answer::Outcome::TimedOut) {
          fail(tally, probe, std::string("no answer within ") + std::to_string(timeout.count()) + " ms" +
                                 (answer.why.empty() ? "" : " (" + answer.why + ")"));
        } else if (answer.outcome == Answer::Outcome::Garbled) {
          fail(tally, probe, "garbled answer: " + answer.why);
        } else if (probe.well_framed && all_sent && i == 0) {
          fail(tally, probe, std::string("a complete request was not answered: ") + toString(answer.outcome));
        }
        return;
      }
      tally.count(probe.category, std::to_string(answer.status));
      check(probe, answer, sent.size(), tally);
      if (answer.closes()) return;
    }
  }

 private:
  void check(const Probe& probe, const Answer& answer, std::size_t sent, Tally& tally) {
    if (answer.status >= 500) {
      if (answer.status != 503 || databaseAnswers()) {
        fail(tally, probe, "answered " + std::to_string(answer.status) + ": " + escaped(answer.body, 600));
        return;
      }
    }
    if (answer.status < 100 || answer.status > 599) fail(tally, probe, "status " + std::to_string(answer.status));
    // A request cut before it was complete must not be acted on; a GET cut inside its header
    // may be (Poco ends a header at the end of the connection), it changes nothing.
    if (probe.complete_at != 0 && sent < probe.complete_at && answer.status >= 200 && answer.status < 300 &&
        (probe.changes || probe.bytes.find("\r\n\r\n") < sent)) {
      fail(tally, probe, "a request cut after " + std::to_string(sent) + " of " + std::to_string(probe.complete_at) +
                             " bytes was answered " + std::to_string(answer.status));
    }
    if (answer.body.empty()) {
      // Every refusal has the error shape, a request the HTTP layer cannot read too; only the
      // answer to a HEAD has no body.
      if (answer.status >= 400 && !probe.head) {
        fail(tally, probe, "a " + std::to_string(answer.status) + " without a body");
      }
      return;
    }
    const auto type = answer.headers.find("content-type");
    // /metrics answers in Prometheus' text format; its errors are JSON like any other.
    if (answer.status == 200 && type != answer.headers.end() &&
        type->second.rfind("text/plain; version=0.0.4", 0) == 0 && answer.body.rfind("# HELP ", 0) == 0) {
      return;
    }
    if (type == answer.headers.end() || type->second.rfind("application/json", 0) != 0) {
      fail(tally, probe, "a body that is not JSON: " + escaped(answer.body, 300));
      return;
    }
    const auto json = Json::parse(answer.body, nullptr, false);
    if (json.is_discarded()) {
      fail(tally, probe, "the answer's JSON does not parse: " + escaped(answer.body, 300));
    } else if (answer.status >= 400 && !isErrorShape(json)) {
      fail(tally, probe, "a " + std::to_string(answer.status) + " without the error shape: " + escaped(answer.body, 300));
    }
  }

  /// A 503 is right only while the database is really down.
  bool databaseAnswers() const {
    try {
      return syncpod::testing::queryScalar(database_, "SELECT 1") == "1";
    } catch (const std::exception&) {
      return false;
    }
  }

  static void fail(Tally& tally, const Probe& probe, const std::string& what) {
    if (tally.failures.size() >= 20) return;
    std::string cut;
    if (probe.cut != std::string::npos) cut = ", cut after " + std::to_string(probe.cut) + " bytes";
    tally.failures.push_back(what + "\n    [" + probe.category + cut + "] request: " + escaped(probe.bytes));
  }

  const Target& target_;
  const core::DatabaseTarget& database_;
  milliseconds answer_timeout_;
  milliseconds stall_timeout_;
};

// --- the fixture ------------------------------------------------------------------------------

constexpr const char* kWebhookSecret = "whsec_hostile_requests_0123456789";

class HostileRequestsTest : public testing::ServiceFixture {
 protected:
  HostileRequestsTest() {
    options_.threads = 4;
    options_.max_body_bytes = 64 * 1024;
    options_.webhook_max_body_bytes = 16 * 1024;
    // Short, so that the requests left hanging on purpose are given up on soon.
    options_.read_timeout = std::chrono::milliseconds(1500);
    options_.metrics_scan_interval = ServiceOptions{}.metrics_scan_interval;
  }

  void SetUp() override {
    ServiceFixture::SetUp();
    fuzz_.port = service_->port();
    fuzz_.write_token = secrets_.at(core::TokenScope::Write);
    fuzz_.read_token = secrets_.at(core::TokenScope::Read);
    fuzz_.max_body_bytes = options_.max_body_bytes;
    fuzz_.webhook_secret = kWebhookSecret;

    // The webhook integration last: the bad ids ("01", "%31") name the first ones.
    core::IntegrationStore integrations(target_);
    const auto create = [&](const std::string& name, std::optional<std::string> secret = std::nullopt) {
      auto created = integrations.create(name, true, memoryConfig().dump(), secret);
      EXPECT_TRUE(created) << created.error().message;
      return created ? created->id : 0;
    };
    fuzz_.integrations = {create("fuzz-1"), create("fuzz-2")};
    fuzz_.victims = {create("victim-1"), create("victim-2")};
    fuzz_.webhook_integration = create("webhooks", kWebhookSecret);
    core::JobQueue queue(target_);
    for (const auto id : fuzz_.integrations) {
      core::EnqueueRequest request;
      request.integration_id = id;
      request.merge = false;
      auto job = queue.enqueue(request);
      ASSERT_TRUE(job) << job.error().message;
      fuzz_.jobs.push_back(job->id);
    }
    Router router;
    const HttpMetrics unused;
    addRoutes(router, RouteContext{options_, testing::testPlugins(), unused});
    fuzz_.routes = router.routes();
  }

  /// Restarts the service with options_ as they are now.
  void restartService() {
    startService(target_);
    fuzz_.port = service_->port();
  }

  /// One request on its own connection, answered within 10 s.
  Answer exchange(const std::string& bytes, bool shut_write = false) {
    RawConnection connection(service_->port());
    EXPECT_TRUE(connection.connected());
    EXPECT_TRUE(connection.send(bytes));
    if (shut_write) connection.shutdownWrite();
    return connection.receive(milliseconds(10000));
  }

  std::string get(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + fuzz_.write_token + "\r\n\r\n";
  }

  std::string post(const std::string& path, const std::string& headers, const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + fuzz_.write_token + "\r\n" +
           headers + "\r\n" + body;
  }

  std::string postJson(const std::string& path, const std::string& body) {
    return post(path, "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n", body);
  }

  std::string syncsPath() const { return "/api/v1/integrations/" + std::to_string(fuzz_.integrations[1]) + "/syncs"; }

  std::string jobCount() {
    return syncpod::testing::queryScalar(target_, "SELECT count(*) FROM jobs WHERE integration_id = " +
                                                      std::to_string(fuzz_.integrations[1]));
  }

  static void expectError(const Answer& answer, int status, const std::string& code) {
    ASSERT_EQ(answer.outcome, Answer::Outcome::Answered) << toString(answer.outcome);
    EXPECT_EQ(answer.status, status) << answer.body;
    const auto json = Json::parse(answer.body, nullptr, false);
    EXPECT_TRUE(isErrorShape(json)) << answer.body;
    if (isErrorShape(json)) {
      EXPECT_EQ(json["error"]["code"], code) << answer.body;
    }
  }

  Target fuzz_;
};

TEST_F(HostileRequestsTest, RandomizedHostileRequestsNeverCrashHangOrAnswer500) {
  const auto seconds = envNumber("SYNCPOD_FUZZ_SECONDS", 8);
  const auto seed = static_cast<std::uint64_t>(
      envNumber("SYNCPOD_FUZZ_SEED", static_cast<long long>(std::random_device{}() & 0x7fffffff)));
  constexpr int kClients = 4;
  std::cout << "hostile requests: " << seconds << " s, " << kClients << " clients, seed " << seed
            << " (replay with SYNCPOD_FUZZ_SEED=" << seed << "; client i uses seed + i)\n";

  const auto until = SteadyClock::now() + std::chrono::seconds(seconds);
  Tally total;
  std::mutex mutex;
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      Fuzzer fuzzer(fuzz_, seed + static_cast<std::uint64_t>(i));
      Runner runner(fuzz_, target_, milliseconds(10000), options_.read_timeout + milliseconds(10000));
      Tally tally;
      while (SteadyClock::now() < until) runner.run(fuzzer.next(), tally);
      std::lock_guard lock(mutex);
      total.merge(tally);
    });
  }
  for (auto& client : clients) client.join();

  std::cout << "exchanges: " << total.requests << " ("
            << static_cast<double>(total.requests) / static_cast<double>(seconds) << "/s)\nanswers:";
  for (const auto& [name, count] : total.statuses) std::cout << " " << name << "=" << count;
  std::cout << "\nper category (exchanges: answers):\n";
  for (const auto& [category, count] : total.per_category) {
    std::cout << "  " << category << " " << count << ":";
    for (const auto& [status, answers] : total.statuses_per_category[category]) std::cout << " " << status << "=" << answers;
    std::cout << "\n";
  }
  for (const auto& failure : total.failures) ADD_FAILURE() << failure;

  // Still healthy, and still serving authenticated requests.
  const auto health = exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(health.outcome, Answer::Outcome::Answered);
  EXPECT_EQ(health.status, 200) << health.body;
  // (The run may have deleted any integration and its jobs: a list always answers.)
  const auto jobs = exchange(get("/api/v1/jobs?limit=5"));
  ASSERT_EQ(jobs.outcome, Answer::Outcome::Answered);
  EXPECT_EQ(jobs.status, 200) << jobs.body;
  EXPECT_GT(total.requests, 0);
}

// --- what randomized runs found ------------------------------------------------------------

TEST_F(HostileRequestsTest, ABodyCutShortIsRefusedAndNotActedOn) {
  // Fewer bytes than Content-Length announced, then the client's end of the connection.
  const auto cut = exchange(post(syncsPath(), "Content-Length: 20\r\n", "{}"), true);
  expectError(cut, 400, "bad_request");
  EXPECT_EQ(jobCount(), "1");
  // Cut inside the header, before its Content-Length: it looks like a request without a body.
  expectError(exchange(post(syncsPath(), "", "").substr(0, post(syncsPath(), "", "").size() - 2), true), 400,
              "bad_request");
  EXPECT_EQ(jobCount(), "1");
  // Chunks without the last, empty one.
  const auto chunks = exchange(post(syncsPath(), "Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n"), true);
  expectError(chunks, 400, "bad_request");
  EXPECT_EQ(jobCount(), "1");
  // The same, complete, are accepted.
  EXPECT_EQ(exchange(post(syncsPath(), "Content-Length: 2\r\n", "{}")).status, 202);
  EXPECT_EQ(exchange(post(syncsPath(), "Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n")).status, 202);
}

TEST_F(HostileRequestsTest, ChunkedBodiesAreReadToTheirEndAndNoFurther) {
  // Extensions and trailer fields are allowed, and the request after the body is answered too.
  RawConnection connection(service_->port());
  ASSERT_TRUE(connection.send(post(syncsPath(), "Transfer-Encoding: chunked\r\n", "1;x=y\r\n{\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n\r\n") +
                              "GET /healthz HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(connection.receive(milliseconds(10000)).status, 202);
  EXPECT_EQ(connection.receive(milliseconds(10000)).status, 200);
  const auto jobs = jobCount();
  for (const std::string chunks : {"1\r\n{}\r\n0\r\n\r\n", "zz\r\n{}\r\n0\r\n\r\n", "-2\r\n{}\r\n0\r\n\r\n",
                                   "ffffffffffffffff\r\n{}\r\n0\r\n\r\n", "2\r\n{}0\r\n\r\n"}) {
    SCOPED_TRACE(chunks);
    const auto answer = exchange(post(syncsPath(), "Transfer-Encoding: chunked\r\n", chunks));
    ASSERT_EQ(answer.outcome, Answer::Outcome::Answered);
    EXPECT_TRUE(answer.status == 400 || answer.status == 413) << answer.status << " " << answer.body;
    EXPECT_TRUE(answer.closes());
  }
  EXPECT_EQ(jobCount(), jobs);
}

TEST_F(HostileRequestsTest, ABodyThatStopsArrivingIsATimeout) {
  RawConnection connection(service_->port());
  ASSERT_TRUE(connection.send(post(syncsPath(), "Content-Length: 20\r\n", "{")));
  expectError(connection.receive(milliseconds(10000)), 408, "timeout");
  EXPECT_EQ(jobCount(), "1");
}

TEST_F(HostileRequestsTest, ARequestWithoutContentLengthHasNoBodyAndIsAnsweredAtOnce) {
  // Long enough that waiting for the client to close would show.
  options_.read_timeout = std::chrono::seconds(30);
  restartService();
  RawConnection connection(service_->port());
  ASSERT_TRUE(connection.send(post(syncsPath(), "", "") + get("/api/v1/jobs/" + std::to_string(fuzz_.jobs[1]))));
  const auto start = SteadyClock::now();
  const auto sync = connection.receive(milliseconds(10000));
  ASSERT_EQ(sync.outcome, Answer::Outcome::Answered) << toString(sync.outcome);
  EXPECT_EQ(sync.status, 202) << sync.body;
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(5));
  // The connection stays usable: the next request on it is answered too.
  EXPECT_EQ(connection.receive(milliseconds(10000)).status, 200);
}

TEST_F(HostileRequestsTest, AmbiguousFramingIsRefusedAndTheConnectionClosed) {
  for (const std::string headers : {"Content-Length: 2\r\nContent-Length: 3\r\n", "Content-Length: 2\r\nContent-Length: 2\r\n",
                                    "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
                                    "Transfer-Encoding: gzip\r\n", "Transfer-Encoding: chunked, gzip\r\n",
                                    "Content-Length: +2\r\n", "Content-Length : 2\r\n",
                                    "Content-Length\t: 2\r\n"}) {
    SCOPED_TRACE(headers);
    const auto answer = exchange(post(syncsPath(), headers, "{}"));
    expectError(answer, 400, "bad_request");
    EXPECT_TRUE(answer.closes());
  }
  EXPECT_EQ(jobCount(), "1");
}

TEST_F(HostileRequestsTest, TheRestOfARefusedBodyIsNotReadAsARequest) {
  // Over the limit: refused before it is read, and the connection is closed, so that the
  // request hidden in the body is never answered. The service reads the rest before it closes
  // (a lingering close): the client can send all of it, and the connection ends in an orderly
  // close, not a reset that could destroy the answer.
  const auto hidden = post(syncsPath(), "Content-Length: 2\r\n", "{}");
  const auto body = hidden + std::string(options_.max_body_bytes, ' ');
  RawConnection connection(service_->port());
  ASSERT_TRUE(connection.connected());
  EXPECT_TRUE(connection.send(post(syncsPath(), "Content-Length: " + std::to_string(body.size()) + "\r\n", body)));
  const auto answer = connection.receive(milliseconds(10000));
  expectError(answer, 413, "too_large");
  EXPECT_TRUE(answer.closes());
  EXPECT_EQ(connection.receive(milliseconds(10000)).outcome, Answer::Outcome::Closed);
  EXPECT_EQ(jobCount(), "1");
}

TEST_F(HostileRequestsTest, RequestsTheHttpLayerCannotReadGetTheErrorShapeAndTheConnectionCloses) {
  const std::string start = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  // Poco's limits: field names of 256 bytes, 100 fields.
  std::string fields;
  for (int i = 0; i <= 100; ++i) fields += "X-Field-" + std::to_string(i) + ": 1\r\n";
  struct Unreadable {
    std::string what;
    std::string bytes;
    std::string message;  ///< part of the error's message
  };
  const std::vector<Unreadable> requests = {
      {"a garbage request line", "NOT_HTTP_BUT_A_LINE_WITHOUT_SPACES_LONGER_THAN_A_METHOD\r\n\r\n",
       "the request line could not be read"},
      {"a header line without a colon", start + "Content-Length\r\n\r\n",
       "its line 'Content-Length' has no colon"},
      {"a header field name with a space before its colon", start + "Content-Length : 0\r\n\r\n",
       "the header field name 'Content-Length ' is not a token"},
      {"a header field name over the limit", start + std::string(300, 'N') + ": 1\r\n\r\n",
       "a header field name is longer than 256 bytes"},
      {"more header fields than the limit", start + fields + "\r\n", "more than 100 header fields"},
  };
  for (const auto& request : requests) {
    SCOPED_TRACE(request.what);
    RawConnection connection(service_->port());
    ASSERT_TRUE(connection.send(request.bytes));
    const auto answer = connection.receive(milliseconds(10000));
    expectError(answer, 400, "bad_request");
    EXPECT_TRUE(answer.closes());
    const auto json = Json::parse(answer.body, nullptr, false);
    if (isErrorShape(json)) {
      const auto message = json["error"]["message"].get<std::string>();
      EXPECT_NE(message.find("could not be read"), std::string::npos) << message;
      EXPECT_NE(message.find(request.message), std::string::npos) << message;
    }
    // An orderly close: the service reads what is left before it closes (a lingering close).
    const auto next = connection.receive(milliseconds(10000));
    EXPECT_EQ(next.outcome, Answer::Outcome::Closed) << toString(next.outcome);
  }
  // Counted like any request that matched no route, its method unknown.
  const auto metrics = exchange("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_NE(metrics.body.find("syncpod_http_requests_total{route=\"unmatched\",method=\"other\",status=\"400\"} 5\n"),
            std::string::npos)
      << metrics.body;
}

TEST_F(HostileRequestsTest, AHeaderThatStopsArrivingIsATimeout) {
  // Nothing at all: closed without an answer.
  RawConnection silent(service_->port());
  ASSERT_TRUE(silent.connected());
  EXPECT_EQ(silent.receive(milliseconds(10000)).outcome, Answer::Outcome::Closed);
  for (const std::string cut : {"GET /heal", "GET /healthz HTTP/1.1\r\nHost: 127"}) {
    SCOPED_TRACE(cut);
    const auto answer = exchange(cut);
    expectError(answer, 408, "timeout");
    EXPECT_TRUE(answer.closes());
  }
}

TEST_F(HostileRequestsTest, HugeNumbersAndNulCharactersInJsonAre400s) {
  expectError(exchange(postJson(syncsPath(), R"({"plan": 1e999})")), 400, "invalid_json");
  expectError(exchange(postJson(syncsPath(), R"({"kind": "partial", "keys": ["a\u0000b"]})")), 400, "invalid_json");
  EXPECT_EQ(jobCount(), "1");
}

}  // namespace
}  // namespace syncpod::service
