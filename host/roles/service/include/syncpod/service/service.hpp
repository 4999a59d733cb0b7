#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "syncpod/core/database.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::service {

/// Limits and where to listen. The defaults are safe for a service exposed inside a cluster.
struct ServiceOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  ///< 0: any free port (tests); port() says which
  /// Requests with a larger body are refused with 413 before it is read.
  std::size_t max_body_bytes = 1 << 20;
  /// JSON nested deeper than this is refused with 400.
  int max_json_depth = 32;
  /// Request-handling threads; also the number of database connections.
  int threads = 8;
  /// Connections waiting for a thread beyond this are refused.
  int max_queued = 64;
  /// How long a client may take to send a request's headers and body.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
  /// A webhook delivery whose signed timestamp is further than this from the service's clock,
  /// in either direction, is refused: a captured delivery cannot be replayed later.
  std::chrono::seconds webhook_tolerance{300};
  /// Webhook deliveries with a larger body are refused with 413 (max_body_bytes still applies).
  std::size_t webhook_max_body_bytes = 256 * 1024;
  /// /metrics reads the whole `jobs` and `job_attempts` tables (finished jobs, attempt
  /// durations) at most this often; in between it shows the figures of the last read.
  std::chrono::milliseconds metrics_scan_interval{std::chrono::seconds(30)};
};

/// The REST API (docs/api.md): an HTTP server on its own threads. start() returns once it
/// listens; stop() waits for requests in flight.
class Service {
 public:
  /// Connects the database connections at once; throws core::DatabaseUnavailable. `plugins`
  /// (used to validate configs and to know which fields are secrets) must outlive the service.
  Service(core::DatabaseTarget target, ServiceOptions options, const core::PluginRegistry& plugins);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Binds and starts serving; throws core::StartupError when the address cannot be bound.
  void start();
  void stop();
  /// The port it listens on (the real one when options.port was 0).
  int port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::service
