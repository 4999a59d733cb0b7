// REST API benchmark: requests/s and latency of GET /api/v1/jobs/{id} and
// POST /api/v1/integrations/{id}/syncs with concurrent keep-alive clients on loopback. Prints a
// table; see docs/performance.md.
//
//   syncpod_api_bench --database-url=URL [--clients=8] [--seconds=10] [--warmup=2]
//                     [--http-threads=8] [--integrations=100] [--jobs=1000] [--keys=100]
//                     [--schema=bench_api]
//
// It drops and recreates the schema, creates the integrations (enabled; their plugins are never
// loaded, as neither endpoint runs them), a write token and --jobs queued jobs, then starts
// `syncpod serve --role=service` as a process of its own on a free loopback port, so that the
// clients' CPU time is not the service's. Each endpoint in turn: every client holds one
// keep-alive connection with one request in flight; --warmup seconds unmeasured, then
// --seconds measured.
//
// POST …/syncs sends partial syncs of one key out of --keys to a random integration: after
// the first request per integration, each one merges its key into that integration's queued
// partial job (an update of the job's payload) instead of inserting a job.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "bench_support.hpp"
#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/integrations.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"

extern char** environ;

namespace {

using namespace syncpod::core;
using namespace syncpod::bench;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string url;
  std::string schema = "bench_api";
  int clients = 8;
  int seconds = 10;
  int warmup = 2;
  int http_threads = 8;
  int integrations = 100;
  int jobs = 1000;
  int keys = 100;
};

Options parse(int argc, char** argv) {
  Options options;
  if (const char* url = std::getenv("SYNCPOD_TEST_DATABASE_URL")) options.url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    const std::string value = equals == std::string::npos ? "" : arg.substr(equals + 1);
    if (name == "--database-url") options.url = value;
    else if (name == "--schema") options.schema = value;
    else if (name == "--clients") options.clients = std::max(1, std::stoi(value));
    else if (name == "--seconds") options.seconds = std::max(1, std::stoi(value));
    else if (name == "--warmup") options.warmup = std::max(0, std::stoi(value));
    else if (name == "--http-threads") options.http_threads = std::max(1, std::stoi(value));
    else if (name == "--integrations") options.integrations = std::max(1, std::stoi(value));
    else if (name == "--jobs") options.jobs = std::max(1, std::stoi(value));
    else if (name == "--keys") options.keys = std::max(1, std::stoi(value));
    else {
      std::cerr << "unknown option " << arg << "\n";
      std::exit(64);
    }
  }
  if (options.url.empty()) {
    std::cerr << "give --database-url=URL (or SYNCPOD_TEST_DATABASE_URL)\n";
    std::exit(64);
  }
  return options;
}

// --- the service under test ------------------------------------------------------------------

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    std::perror("cannot find a free port");
    std::exit(1);
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

pid_t startService(const Options& options, int port) {
  const std::vector<std::string> arguments = {
      SYNCPOD_BINARY, "serve", "--role=service", "--database-url=" + options.url, "--schema=" + options.schema,
      "--http-host=127.0.0.1", "--http-port=" + std::to_string(port),
      "--http-threads=" + std::to_string(options.http_threads), "--log-level=warn"};
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, SYNCPOD_BINARY, nullptr, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::exit(1);
  }
  return pid;
}

// --- a keep-alive HTTP/1.1 client --------------------------------------------------------------

/// One connection, one request at a time; reconnects after an error.
class Client {
 public:
  explicit Client(int port) : port_(port) {}
  ~Client() { disconnect(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends `request` and reads the answer; its status, or 0 when the connection failed.
  int roundTrip(const std::string& request) {
    if (fd_ < 0 && !connect()) return 0;
    if (!sendAll(request)) return fail();
    // Header, then Content-Length bytes of body (the service always sends one).
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!readMore()) return fail();
    }
    const int status = std::atoi(buffer_.c_str() + buffer_.find(' ') + 1);
    std::size_t length = 0;
    const auto header = buffer_.find("Content-Length: ");
    if (header != std::string::npos && header < end) length = std::strtoull(buffer_.c_str() + header + 16, nullptr, 10);
    while (buffer_.size() < end + 4 + length) {
      if (!readMore()) return fail();
    }
    // Poco writes "Connection: Close".
    const bool closes = buffer_.find("Connection: Close") < end || buffer_.find("Connection: close") < end;
    buffer_.erase(0, end + 4 + length);
    if (closes) disconnect();
    return status;
  }

 private:
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) return true;
    disconnect();
    return false;
  }

  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
  }

  int fail() {
    disconnect();
    return 0;
  }

  bool sendAll(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
  }

  bool readMore() {
    char chunk[16384];
    const auto got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(got));
    return true;
  }

  int port_;
  int fd_ = -1;
  std::string buffer_;
};

bool healthy(int port) {
  Client client(port);
  return client.roundTrip("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == 200;
}

// --- measuring ---------------------------------------------------------------------------------

struct Figures {
  std::string endpoint;
  long long requests = 0;
  long long errors = 0;
  double per_second = 0;
  std::vector<double> latencies_ms;  ///< sorted
  double service_cpu_us = 0;         ///< per request
  double postgres_cpu_us = 0;
  double client_cpu_us = 0;
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1))];
}

/// `request(rng)` builds each request; an answer other than `expected` counts as an error.
template <class MakeRequest>
Figures measure(const Options& options, const DatabaseTarget& target, int port, pid_t service, std::string endpoint,
                int expected, MakeRequest request) {
  enum Phase { kWarmup, kMeasure, kStop };
  std::atomic<int> phase{kWarmup};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(options.clients));
  std::vector<long long> errors(static_cast<std::size_t>(options.clients), 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < options.clients; ++c) {
    threads.emplace_back([&, c] {
      Client client(port);
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) * 7919 + 1);
      auto& mine = latencies[static_cast<std::size_t>(c)];
      mine.reserve(200000);
      while (phase.load(std::memory_order_relaxed) != kStop) {
        const auto text = request(rng);
        const bool counted = phase.load(std::memory_order_relaxed) == kMeasure;
        const auto start = SteadyClock::now();
        const int status = client.roundTrip(text);
        const auto took = std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
        if (!counted) continue;
        mine.push_back(took);
        if (status != expected) ++errors[static_cast<std::size_t>(c)];
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(options.warmup));
  const double service_before = processCpuSeconds(service);
  const double postgres_before = postgresCpuSeconds(target);
  const double client_before = ownCpuSeconds();
  const auto start = SteadyClock::now();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::seconds(options.seconds));
  phase = kStop;
  const auto elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const double service_cpu = processCpuSeconds(service) - service_before;
  const double postgres_cpu = postgresCpuSeconds(target) - postgres_before;
  const double client_cpu = ownCpuSeconds() - client_before;
  for (auto& thread : threads) thread.join();

  Figures figures;
  figures.endpoint = std::move(endpoint);
  for (std::size_t c = 0; c < latencies.size(); ++c) {
    figures.latencies_ms.insert(figures.latencies_ms.end(), latencies[c].begin(), latencies[c].end());
    figures.errors += errors[c];
  }
  std::sort(figures.latencies_ms.begin(), figures.latencies_ms.end());
  figures.requests = static_cast<long long>(figures.latencies_ms.size());
  figures.per_second = static_cast<double>(figures.requests) / elapsed;
  const auto per_request = [&](double cpu) { return figures.requests > 0 ? cpu * 1e6 / static_cast<double>(figures.requests) : 0; };
  figures.service_cpu_us = per_request(service_cpu);
  figures.postgres_cpu_us = per_request(postgres_cpu);
  figures.client_cpu_us = per_request(client_cpu);
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const DatabaseTarget target{options.url, options.schema};
  {
    pqxx::connection connection(options.url);
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA IF EXISTS " + connection.quote_name(options.schema) + " CASCADE");
  }
  Migrator(target, embeddedMigrations()).apply();

  // Enabled integrations with a config of the documented shape; nothing loads their plugins.
  const std::string config = R"({"source": {"plugin": "memory", "config": {}},
    "target": {"plugin": "memory", "config": {}}, "deletion_policy": "additive",
    "streams": [{"name": "items", "source_stream": "items", "target_stream": "items",
                 "key": ["id"], "fields": {"id": "id"}}]})";
  IntegrationStore store(target);
  std::vector<IntegrationId> integrations;
  for (int i = 0; i < options.integrations; ++i) {
    integrations.push_back(orDie(store.create("bench-" + std::to_string(i), true, config, std::nullopt), "create integration").id);
  }
  JobQueue queue(target);
  std::vector<EnqueueRequest> batch;
  for (int i = 0; i < options.jobs; ++i) {
    EnqueueRequest request;
    request.integration_id = integrations[static_cast<std::size_t>(i) % integrations.size()];
    request.merge = false;
    batch.push_back(request);
  }
  std::vector<JobId> jobs;
  for (const auto& result : orDie(queue.enqueue(batch), "enqueue")) jobs.push_back(result.id);
  const auto token = orDie(TokenStore(target).create("bench", TokenScope::Write), "create token").secret;

  const int port = freePort();
  const pid_t service = startService(options, port);
  const auto ready_by = SteadyClock::now() + std::chrono::seconds(30);
  while (!healthy(port)) {
    int status = 0;
    if (waitpid(service, &status, WNOHANG) == service) {
      std::cerr << "syncpod serve --role=service exited before it answered\n";
      return 1;
    }
    if (SteadyClock::now() > ready_by) {
      std::cerr << "the service did not answer /healthz within 30 s\n";
      kill(service, SIGTERM);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  utsname machine{};
  uname(&machine);
  std::printf("machine: %s %s, %u cores; %s\n", machine.sysname, machine.machine,
              std::thread::hardware_concurrency(), scalar(target, "SELECT version()").substr(0, 40).c_str());
  std::printf("postgres: fsync=%s synchronous_commit=%s shared_buffers=%s\n", scalar(target, "SHOW fsync").c_str(),
              scalar(target, "SHOW synchronous_commit").c_str(), scalar(target, "SHOW shared_buffers").c_str());
  std::printf("service: its own process, %d http threads; clients: %d keep-alive connections, one request in "
              "flight each; warm-up %d s, measured %d s per endpoint\n",
              options.http_threads, options.clients, options.warmup, options.seconds);
  std::printf("GET: %d queued jobs; POST syncs: partial, 1 key of %d, %d integrations (merged into one queued "
              "job per integration)\n\n",
              options.jobs, options.keys, options.integrations);

  const auto auth = "Authorization: Bearer " + token + "\r\n";
  std::vector<Figures> results;
  results.push_back(measure(options, target, port, service, "GET /api/v1/jobs/{id}", 200, [&](std::mt19937_64& rng) {
    const auto id = jobs[std::uniform_int_distribution<std::size_t>(0, jobs.size() - 1)(rng)];
    return "GET /api/v1/jobs/" + std::to_string(id) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n";
  }));
  results.push_back(measure(options, target, port, service, "POST /api/v1/integrations/{id}/syncs", 202, [&](std::mt19937_64& rng) {
    const auto id = integrations[std::uniform_int_distribution<std::size_t>(0, integrations.size() - 1)(rng)];
    const auto key = std::uniform_int_distribution<int>(0, options.keys - 1)(rng);
    const auto body = R"({"kind": "partial", "keys": [")" + std::to_string(key) + R"("]})";
    return "POST /api/v1/integrations/" + std::to_string(id) + "/syncs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }));

  std::printf("%-38s %9s %9s %8s %8s %8s %8s %7s\n", "endpoint (latencies in ms)", "requests", "req/s", "p50",
              "p95", "p99", "max", "errors");
  for (const auto& figures : results) {
    const auto& l = figures.latencies_ms;
    std::printf("%-38s %9lld %9.0f %8.2f %8.2f %8.2f %8.2f %7lld\n", figures.endpoint.c_str(), figures.requests,
                figures.per_second, percentile(l, 50), percentile(l, 95), percentile(l, 99),
                l.empty() ? 0.0 : l.back(), figures.errors);
  }
  std::printf("\n%-38s %9s %9s %9s\n", "CPU per request (us)", "service", "postgres", "clients");
  for (const auto& figures : results) {
    std::printf("%-38s %9.0f %9.0f %9.0f\n", figures.endpoint.c_str(), figures.service_cpu_us,
                figures.postgres_cpu_us, figures.client_cpu_us);
  }
  std::printf("\nqueued partial jobs after the POST run: %s\n",
              scalar(target, "SELECT count(*) FROM jobs WHERE kind = 'partial' AND state = 'queued'").c_str());

  kill(service, SIGTERM);
  int status = 0;
  waitpid(service, &status, 0);
  {
    pqxx::connection connection(options.url);
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA " + connection.quote_name(options.schema) + " CASCADE");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "the service did not exit 0 after SIGTERM\n";
    return 1;
  }
  long long errors = 0;
  for (const auto& figures : results) errors += figures.errors;
  return errors == 0 ? 0 : 1;
}
