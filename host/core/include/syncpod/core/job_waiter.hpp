#pragma once

#include <chrono>
#include <memory>

#include "syncpod/core/database.hpp"

namespace syncpod::core {

/// Blocks an idle worker until there may be work: a NOTIFY from an enqueue on a dedicated
/// LISTEN connection, a local wake() (a slot freed, shutdown), or the poll interval passing
/// (the fallback when notifications are lost, e.g. across a reconnect).
///
/// wait() is called from one thread; wake() from any thread.
class JobWaiter {
 public:
  enum class Reason { Notified = 1, Woken, Timeout };

  /// Connects and LISTENs at once; throws DatabaseUnavailable.
  explicit JobWaiter(DatabaseTarget target);
  ~JobWaiter();
  JobWaiter(const JobWaiter&) = delete;
  JobWaiter& operator=(const JobWaiter&) = delete;

  /// Returns as soon as a notification or wake() arrives, or after `timeout`. Pending
  /// notifications and wakes are consumed. If the LISTEN connection broke, it reconnects
  /// and returns Timeout so the caller polls once.
  Reason wait(std::chrono::milliseconds timeout);

  /// Makes the current or next wait() return Woken.
  void wake();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
