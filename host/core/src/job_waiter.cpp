#include "syncpod/core/job_waiter.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include <spdlog/spdlog.h>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/job_queue.hpp"

namespace syncpod::core {

class JobWaiter::Impl {
 public:
  explicit Impl(DatabaseTarget target) : target_(std::move(target)) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw StartupError("cannot create an eventfd for the job waiter");
    listen();
  }

  ~Impl() { ::close(wake_fd_); }

  Reason wait(std::chrono::milliseconds timeout) {
    if ((!connection_ || !connection_->is_open()) && !tryListen()) {
      // Still no database: behave like a timeout so the caller polls (and reports) once.
      waitForWake(timeout);
      return Reason::Timeout;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (consumeNotifications()) return Reason::Notified;
      if (!connection_ || !connection_->is_open()) {
        connection_.reset();
        return listenAgain();
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Reason::Timeout;
      pollfd fds[2] = {{connection_->sock(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR) return Reason::Timeout;
      if (fds[1].revents & POLLIN) {
        drainWake();
        return Reason::Woken;
      }
      // Readable without a notification (a server message such as the error sent before a
      // backend is terminated) loops: reading the end of a closed connection then fails,
      // which consumeNotifications() reports by dropping the connection.
    }
  }

  void wake() {
    const std::uint64_t one = 1;
    // A full counter still wakes the waiter; nothing to do on EAGAIN.
    [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof(one));
  }

 private:
  void listen() {
    connection_ = pg::connect(target_);
    pqxx::nontransaction tx(*connection_);
    tx.exec("LISTEN " + connection_->quote_name(JobQueue::wakeChannel(target_.schema)));
  }

  /// The connection broke: LISTEN again before the caller polls, so that a job enqueued after
  /// that poll is heard; if the database is still away, the next wait() keeps trying.
  Reason listenAgain() {
    tryListen();
    return Reason::Timeout;
  }

  bool tryListen() {
    try {
      listen();
      spdlog::info("job waiter listening again");
      return true;
    } catch (const std::exception& error) {
      connection_.reset();
      spdlog::warn("job waiter cannot listen: {}", pg::oneLine(error.what()));
      return false;
    }
  }

  /// Reads pending notifications; drops the connection when it broke.
  bool consumeNotifications() {
    try {
      return connection_->get_notifs() > 0;
    } catch (const std::exception& error) {
      spdlog::warn("job waiter lost its connection: {}", pg::oneLine(error.what()));
      connection_.reset();
      return false;
    }
  }

  void waitForWake(std::chrono::milliseconds timeout) {
    pollfd fd{wake_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(timeout.count())) > 0) drainWake();
  }

  void drainWake() {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto read = ::read(wake_fd_, &count, sizeof(count));
  }

  DatabaseTarget target_;
  int wake_fd_ = -1;
  std::unique_ptr<pqxx::connection> connection_;
};

JobWaiter::JobWaiter(DatabaseTarget target) : impl_(std::make_unique<Impl>(std::move(target))) {}
JobWaiter::~JobWaiter() = default;

JobWaiter::Reason JobWaiter::wait(std::chrono::milliseconds timeout) { return impl_->wait(timeout); }
void JobWaiter::wake() { impl_->wake(); }

}  // namespace syncpod::core
