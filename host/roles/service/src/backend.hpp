#pragma once
// Private to the service role: the database objects one request uses, pooled per thread.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/database.hpp"
#include "syncpod/core/integrations.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/leader_lease.hpp"

namespace syncpod::service {

/// One set of connections; used by one request at a time.
class Backend {
 public:
  explicit Backend(const core::DatabaseTarget& target)
      : target_(target), tokens_(target), queue_(target), integrations_(target) {}
  const core::DatabaseTarget& target() const { return target_; }
  core::TokenStore& tokens() { return tokens_; }
  core::JobQueue& queue() { return queue_; }
  core::IntegrationStore& integrations() { return integrations_; }
  /// The singleton's lease, for reading: connected on first use, since few requests need it
  /// (throws core::DatabaseUnavailable then).
  core::LeaderLease& lease() {
    if (!lease_) {
      lease_ = std::make_unique<core::LeaderLease>(target_, core::kSingletonLease, "",
                                                   std::chrono::seconds(1));
    }
    return *lease_;
  }

 private:
  core::DatabaseTarget target_;
  core::TokenStore tokens_;
  core::JobQueue queue_;
  core::IntegrationStore integrations_;
  std::unique_ptr<core::LeaderLease> lease_;
};

/// A fixed set of Backends, one per request thread, so a request never waits for another's
/// connection and the database sees a bounded number of sessions.
class BackendPool {
 public:
  /// Connects `size` backends at once; throws core::DatabaseUnavailable.
  BackendPool(const core::DatabaseTarget& target, int size) {
    for (int i = 0; i < size; ++i) free_.push_back(std::make_unique<Backend>(target));
  }

  /// A Backend until the lease ends.
  class Lease {
   public:
    Lease(BackendPool& pool, std::unique_ptr<Backend> backend) : pool_(pool), backend_(std::move(backend)) {}
    ~Lease() { pool_.release(std::move(backend_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Backend& operator*() { return *backend_; }

   private:
    BackendPool& pool_;
    std::unique_ptr<Backend> backend_;
  };

  Lease acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !free_.empty(); });
    auto backend = std::move(free_.back());
    free_.pop_back();
    return Lease(*this, std::move(backend));
  }

 private:
  void release(std::unique_ptr<Backend> backend) {
    {
      std::lock_guard lock(mutex_);
      free_.push_back(std::move(backend));
    }
    available_.notify_one();
  }

  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Backend>> free_;
};

}  // namespace syncpod::service
