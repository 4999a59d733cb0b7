#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job_queue.hpp"
#include "syncpod/core/scaling.hpp"

namespace syncpod::core {
class PluginRegistry;
}

namespace syncpod::singleton {

struct SingletonOptions {
  /// How often the leader computes desired_pod_count and fires due cron schedules.
  std::chrono::milliseconds scale_interval{std::chrono::seconds(5)};
  /// The leader lease lasts this long past each renewal.
  std::chrono::milliseconds lease_ttl{std::chrono::seconds(15)};
  /// How often the leader renews, and a standby tries to take the lease.
  std::chrono::milliseconds renew_interval{std::chrono::seconds(5)};
  /// How often jobs of silent workers are rescued, and pending webhook events enqueued.
  std::chrono::milliseconds rescue_interval{std::chrono::seconds(10)};
  /// How often old rows are deleted and silent workers marked gone.
  std::chrono::milliseconds cleanup_interval{std::chrono::minutes(1)};
  /// How often sources of integrations with detect_changes are asked for changes.
  std::chrono::milliseconds change_poll_interval{std::chrono::minutes(1)};
  /// A worker whose heartbeat is older than this is not alive (rescue_lease).
  std::chrono::milliseconds worker_stale_after{std::chrono::seconds(30)};
  core::ScalingSettings scaling;
  core::CleanupOptions cleanup;
  core::JobQueueOptions queue;
  /// This process in the lease row; empty: LeaderLease::makeHolderId().
  std::string holder;
};

/// The singleton role (docs/singleton.md): of all instances, the one holding the leader lease
/// computes desired_pod_count, fires cron schedules, enqueues partial jobs for detected changes
/// and for webhook events still pending, rescues orphaned jobs and cleans up; the others wait as
/// standbys. Every write of the leader
/// is fenced by its lease term.
class Singleton {
 public:
  /// Connects at once; throws core::DatabaseUnavailable. `plugins` (may be null: no change
  /// detection) must outlive the singleton.
  Singleton(core::DatabaseTarget target, SingletonOptions options,
            const core::PluginRegistry* plugins);
  ~Singleton();
  Singleton(const Singleton&) = delete;
  Singleton& operator=(const Singleton&) = delete;

  /// Runs until stop(); then releases the lease if it holds it, so a standby takes over at once.
  void run();
  /// Makes run() return soon; callable from any thread.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using SingletonPtr = std::unique_ptr<Singleton>;

}  // namespace syncpod::singleton
