#include "syncpod/core/job_waiter.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pg_test_support.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/migrator.hpp"

namespace syncpod::core {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Reason = JobWaiter::Reason;

/// Readable failure messages: gtest would print the enum's bytes.
std::string name(Reason reason) {
  switch (reason) {
    case Reason::Notified: return "Notified";
    case Reason::Woken: return "Woken";
    case Reason::Timeout: return "Timeout";
  }
  return "unknown";
}

/// A wait() run on its own thread, with the moment it returned.
struct Waited {
  Reason reason = Reason::Timeout;
  SteadyClock::time_point returned;
};

std::future<Waited> waitAsync(JobWaiter& waiter, std::chrono::milliseconds timeout) {
  return std::async(std::launch::async, [&waiter, timeout] {
    const auto reason = waiter.wait(timeout);
    return Waited{reason, SteadyClock::now()};
  });
}

double secondsBetween(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// A TCP relay in front of PostgreSQL that can cut every relayed connection at once without
/// a word to either side, as a network failure or a failover does (pg_terminate_backend, by
/// contrast, lets the server say goodbye first).
class Relay {
 public:
  Relay(const std::string& host, int port)
      : listen_fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)),
        doorbell_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (listen_fd_ < 0 || doorbell_ < 0) throw std::runtime_error("relay: no socket");
    upstream_.sin_family = AF_INET;
    upstream_.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &upstream_.sin_addr) != 1) {
      throw std::runtime_error("relay: bad upstream address " + host);
    }
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(local);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      throw std::runtime_error("relay: cannot listen");
    }
    port_ = ntohs(local.sin_port);
    thread_ = std::thread([this] { run(); });
  }

  ~Relay() {
    stop_ = true;
    ring();
    thread_.join();
    ::close(listen_fd_);
    ::close(doorbell_);
  }

  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_; }

  /// Closes every relayed connection; returns once they are closed.
  void dropAll() {
    std::unique_lock lock(mutex_);
    const auto generation = drops_done_;
    drop_requested_ = true;
    ring();
    done_.wait(lock, [&] { return drops_done_ != generation; });
  }

 private:
  struct Pair {
    int client = -1;
    int server = -1;
  };

  void ring() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(doorbell_, &one, sizeof(one));
  }

  static bool forward(int from, int to) {
    char buffer[16384];
    const auto got = ::read(from, buffer, sizeof(buffer));
    if (got <= 0) return false;
    for (ssize_t sent = 0; sent < got;) {
      const auto n = ::write(to, buffer + sent, static_cast<std::size_t>(got - sent));
      if (n <= 0) return false;
      sent += n;
    }
    return true;
  }

  static void close(Pair& pair) {
    ::close(pair.client);
    ::close(pair.server);
  }

  void run() {
    std::vector<Pair> pairs;
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {doorbell_, POLLIN, 0}};
      for (const auto& pair : pairs) {
        fds.push_back({pair.client, POLLIN, 0});
        fds.push_back({pair.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[1].revents != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto read = ::read(doorbell_, &count, sizeof(count));
        std::lock_guard lock(mutex_);
        if (drop_requested_) {
          for (auto& pair : pairs) close(pair);
          pairs.clear();
          drop_requested_ = false;
          ++drops_done_;
          done_.notify_all();
          continue;
        }
      }
      std::vector<Pair> alive;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto& client = fds[2 + 2 * i];
        const auto& server = fds[3 + 2 * i];
        const bool ok = (client.revents == 0 || forward(pairs[i].client, pairs[i].server)) &&
                        (server.revents == 0 || forward(pairs[i].server, pairs[i].client));
        if (ok) {
          alive.push_back(pairs[i]);
        } else {
          close(pairs[i]);
        }
      }
      pairs = std::move(alive);
      if (fds[0].revents != 0) {
        Pair pair{::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC),
                  ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        if (::connect(pair.server, reinterpret_cast<const sockaddr*>(&upstream_),
                      sizeof(upstream_)) == 0) {
          pairs.push_back(pair);
          ++accepted_;
        } else {
          close(pair);
        }
      }
    }
    for (auto& pair : pairs) close(pair);
  }

  int listen_fd_ = -1;
  int doorbell_ = -1;
  int port_ = 0;
  sockaddr_in upstream_{};
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable done_;
  bool drop_requested_ = false;
  int drops_done_ = 0;
  std::thread thread_;
};

class JobWaiterTest : public testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    integration_ = createIntegration("crm");
    queue_ = std::make_unique<JobQueue>(target_);
  }

  void TearDown() override {
    queue_.reset();
    for (const auto& schema : extra_schemas_) {
      testing::execute(target_, "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
    }
    PgTest::TearDown();
  }

  /// A second installation on the same database, migrated, dropped afterwards.
  DatabaseTarget otherInstallation(const std::string& suffix = "_other") {
    DatabaseTarget other = target_;
    other.schema = target_.schema + suffix;
    extra_schemas_.push_back(other.schema);
    Migrator(other, embeddedMigrations()).apply();
    return other;
  }

  /// Enqueues one job on `queue` (another connection than the waiter's).
  static void enqueue(JobQueue& queue, IntegrationId integration) {
    EnqueueRequest request;
    request.integration_id = integration;
    request.merge = false;
    const auto result = queue.enqueue(request);
    if (!result.ok()) throw std::runtime_error("enqueue failed: " + result.error().message);
  }
  void enqueue() { enqueue(*queue_, integration_); }

  std::string listenQuery() const {
    return "LISTEN \"" + JobQueue::wakeChannel(target_.schema) + "\"";
  }

  /// Terminates the backends LISTENing on this test's channel; returns how many there were.
  int terminateListeners() {
    return std::stoi(testing::queryScalar(
        target_, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = '" +
                     listenQuery() + "' AND pid <> pg_backend_pid()"));
  }

  /// Waits (with a deadline) until `count` idle backends listen on this test's channel.
  bool awaitListeners(int count) {
    const auto deadline = SteadyClock::now() + 10s;
    while (SteadyClock::now() < deadline) {
      if (testing::queryScalar(target_,
                               "SELECT count(*) FROM pg_stat_activity WHERE state = "
                               "'idle' AND query = '" +
                                   listenQuery() + "'") == std::to_string(count)) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  /// After a broken connection: wait() must notice within a bounded time, and then hear an
  /// enqueue made right after it returned — the caller's single poll covers only what came
  /// before, so the waiter must be listening again by then.
  void expectRecovery(JobWaiter& waiter) {
    const auto started = SteadyClock::now();
    const auto first = waiter.wait(10s);
    EXPECT_EQ(name(first), "Timeout") << "a broken connection is reported as a timeout";
    EXPECT_LT(secondsBetween(started, SteadyClock::now()), 5.0)
        << "the break went unnoticed until the timeout";

    enqueue();
    const auto enqueued = SteadyClock::now();
    const auto second = waiter.wait(10s);
    EXPECT_EQ(name(second), "Notified");
    EXPECT_LT(secondsBetween(enqueued, SteadyClock::now()), 1.0);

    // And it keeps working for notifications that arrive while it waits.
    auto later = waitAsync(waiter, 10s);
    ASSERT_TRUE(awaitListeners(1));
    enqueue();
    const auto again = SteadyClock::now();
    const auto waited = later.get();
    EXPECT_EQ(name(waited.reason), "Notified");
    EXPECT_LT(secondsBetween(again, waited.returned), 1.0);
  }

  IntegrationId integration_ = 0;
  JobQueuePtr queue_;
  std::vector<std::string> extra_schemas_;
};

TEST_F(JobWaiterTest, EnqueueOnAnotherConnectionWakesWaiterPromptly) {
  JobWaiter waiter(target_);
  auto pending = waitAsync(waiter, 10s);
  // It blocks while nothing happens...
  EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
  enqueue();
  const auto enqueued = SteadyClock::now();
  // ...and returns on the notification, long before its timeout.
  const auto waited = pending.get();
  EXPECT_EQ(name(waited.reason), "Notified");
  EXPECT_LT(secondsBetween(enqueued, waited.returned), 1.0);

  // The notification was consumed: nothing more to report.
  EXPECT_EQ(name(waiter.wait(200ms)), "Timeout");
}

TEST_F(JobWaiterTest, NotificationBeforeWaitIsNotLost) {
  JobWaiter waiter(target_);
  enqueue();
  const auto started = SteadyClock::now();
  EXPECT_EQ(name(waiter.wait(10s)), "Notified");
  EXPECT_LT(secondsBetween(started, SteadyClock::now()), 1.0);
}

TEST_F(JobWaiterTest, WakeFromAnotherThreadReturnsWoken) {
  JobWaiter waiter(target_);
  auto pending = waitAsync(waiter, 10s);
  EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
  const auto woken = SteadyClock::now();
  std::thread([&waiter] { waiter.wake(); }).join();
  const auto waited = pending.get();
  EXPECT_EQ(name(waited.reason), "Woken");
  EXPECT_LT(secondsBetween(woken, waited.returned), 1.0);

  // A wake before wait() is kept for it, and consumed by it.
  waiter.wake();
  waiter.wake();
  const auto started = SteadyClock::now();
  EXPECT_EQ(name(waiter.wait(10s)), "Woken");
  EXPECT_LT(secondsBetween(started, SteadyClock::now()), 1.0);
  EXPECT_EQ(name(waiter.wait(200ms)), "Timeout");
}

TEST_F(JobWaiterTest, TimesOutWhenNothingHappens) {
  JobWaiter waiter(target_);
  const auto started = SteadyClock::now();
  EXPECT_EQ(name(waiter.wait(300ms)), "Timeout");
  const double elapsed = secondsBetween(started, SteadyClock::now());
  EXPECT_GE(elapsed, 0.25);
  EXPECT_LT(elapsed, 3.0);
}

TEST_F(JobWaiterTest, NotificationOfAnotherInstallationDoesNotWake) {
  const auto other = otherInstallation();
  ASSERT_NE(JobQueue::wakeChannel(other.schema), JobQueue::wakeChannel(target_.schema));
  JobQueue other_queue(other);
  const auto other_integration = std::stoll(
      testing::queryScalar(other, "INSERT INTO integrations (name) VALUES ('crm') RETURNING id"));

  JobWaiter waiter(target_);
  JobWaiter other_waiter(other);
  enqueue(other_queue, other_integration);
  // Delivery is immediate when it happens (see above); half a second is plenty to notice one.
  EXPECT_EQ(name(waiter.wait(500ms)), "Timeout");
  EXPECT_EQ(name(other_waiter.wait(10s)), "Notified") << "the other installation's waiter hears it";

  // This installation's waiter still hears its own queue.
  enqueue();
  EXPECT_EQ(name(waiter.wait(10s)), "Notified");
  EXPECT_EQ(name(other_waiter.wait(200ms)), "Timeout");
}

TEST_F(JobWaiterTest, InstallationWithLongestSchemaNameIsNotified) {
  // 63 bytes, the longest schema name allowed; its channel must still work.
  const auto longest = otherInstallation(std::string(63 - target_.schema.size(), 'x'));
  ASSERT_EQ(longest.schema.size(), 63u);
  JobQueue queue(longest);
  const auto integration = std::stoll(
      testing::queryScalar(longest, "INSERT INTO integrations (name) VALUES ('crm') RETURNING id"));
  JobWaiter waiter(longest);
  auto pending = waitAsync(waiter, 10s);
  enqueue(queue, integration);
  const auto enqueued = SteadyClock::now();
  const auto waited = pending.get();
  EXPECT_EQ(name(waited.reason), "Notified");
  EXPECT_LT(secondsBetween(enqueued, waited.returned), 1.0);
}

TEST_F(JobWaiterTest, RecoversAfterItsBackendIsTerminated) {
  JobWaiter waiter(target_);
  ASSERT_TRUE(awaitListeners(1));
  ASSERT_EQ(terminateListeners(), 1);
  expectRecovery(waiter);
}

TEST_F(JobWaiterTest, RecoversAfterBackendIsTerminatedWhileWaiting) {
  JobWaiter waiter(target_);
  auto pending = waitAsync(waiter, 10s);
  ASSERT_TRUE(awaitListeners(1));
  ASSERT_EQ(pending.wait_for(100ms), std::future_status::timeout);
  const auto killed = SteadyClock::now();
  ASSERT_EQ(terminateListeners(), 1);
  const auto waited = pending.get();
  EXPECT_EQ(name(waited.reason), "Timeout");
  EXPECT_LT(secondsBetween(killed, waited.returned), 5.0) << "the break went unnoticed";

  enqueue();
  const auto enqueued = SteadyClock::now();
  EXPECT_EQ(name(waiter.wait(10s)), "Notified");
  EXPECT_LT(secondsBetween(enqueued, SteadyClock::now()), 1.0);
}

TEST_F(JobWaiterTest, RecoversAfterConnectionDropsWithoutGoodbye) {
  const auto host = testing::queryScalar(target_, "SELECT host(inet_server_addr())");
  if (host.empty()) GTEST_SKIP() << "the test database is reached over a Unix socket";
  const int port = std::stoi(testing::queryScalar(target_, "SELECT inet_server_port()"));
  Relay relay(host, port);
  DatabaseTarget relayed = target_;
  const bool uri = relayed.url.find("://") != std::string::npos;
  relayed.url += uri ? (relayed.url.find('?') == std::string::npos ? "?" : "&") : " ";
  relayed.url += uri ? "host=127.0.0.1&port=" + std::to_string(relay.port())
                     : "host=127.0.0.1 port=" + std::to_string(relay.port());

  JobWaiter waiter(relayed);
  ASSERT_EQ(relay.accepted(), 1) << "the waiter did not connect through the relay";
  relay.dropAll();
  expectRecovery(waiter);
  EXPECT_GE(relay.accepted(), 2) << "it reconnected";
}

}  // namespace
}  // namespace syncpod::core
