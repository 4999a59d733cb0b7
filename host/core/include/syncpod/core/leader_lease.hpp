#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// The lease the singleton role holds: its row of leader_lease is created by the migrations.
inline constexpr const char* kSingletonLease = "singleton";

/// Proof of leadership: a lease name, its holder and the term it holds. Every write a leader
/// makes passes it, and is applied only while the lease row still names this holder and term
/// and has not expired, checked in the same transaction (the row locked FOR SHARE).
struct LeaseToken {
  std::string name;
  std::string holder;
  std::int64_t term = 0;
};

/// A lease row as it stands.
struct LeaseState {
  std::string holder;
  std::int64_t term = 0;
  std::optional<TimePoint> acquired_at;
  TimePoint expires_at;
  bool valid = false;  ///< expires_at is after the database's now()
};

/// A lease in table `leader_lease`, held by at most one holder at a time, for a TTL that the
/// holder renews. Times are the database's clock, never the caller's. One instance owns one
/// connection and is not thread-safe. Only the constructor throws.
class LeaderLease {
 public:
  /// Connects at once; throws DatabaseUnavailable. `holder` identifies this process
  /// (makeHolderId()); `ttl` is how long one acquire() holds the lease.
  LeaderLease(DatabaseTarget target, std::string name, std::string holder,
              std::chrono::milliseconds ttl);
  ~LeaderLease();
  LeaderLease(const LeaderLease&) = delete;
  LeaderLease& operator=(const LeaderLease&) = delete;

  /// One statement: extends the lease while this holder's term is valid (same term), takes it
  /// with term + 1 when it expired or was released, and otherwise changes nothing and returns
  /// nullopt (another holder leads). A holder whose own lease lapsed gets a new term, so work
  /// it started under the old one stays fenced.
  Result<std::optional<LeaseToken>> acquire();

  /// Ends `token`'s term now (expires_at = now()), so a standby takes over at its next
  /// acquire(). A token that no longer holds changes nothing.
  Result<Done> release(const LeaseToken& token);

  /// The lease as it stands.
  Result<LeaseState> read();

  const std::string& holder() const;

  /// "<host>:<pid>:<random hex>": unique per process, readable by operators.
  static std::string makeHolderId();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
