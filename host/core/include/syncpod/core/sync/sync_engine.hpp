#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncpod/sdk/model.hpp>

#include "syncpod/core/result.hpp"
#include "syncpod/core/sync/integration_spec.hpp"

namespace syncpod::core {

class Endpoint;

/// What one sync job asks for.
struct SyncRequest {
  enum class Scope {
    Full = 1,         ///< both sides completely
    Keys = 2,         ///< the records named in `keys`
    Incremental = 3,  ///< what the source changed since the stored cursor, per stream
  };
  Scope scope = Scope::Full;
  /// Scope::Keys: "<stream>/<key>", or just "<key>" when the integration has one stream. A
  /// composite key joins its field texts with '\x1f' (unit separator), in key order.
  std::vector<std::string> keys;
  /// Plan runs everything up to apply, which the plugins only plan: nothing is written.
  ApplyMode mode = ApplyMode::Commit;
};

/// Changes sent to one side of one stream, by operation and by what the plugin answered.
struct ChangeCounts {
  std::int64_t create = 0;
  std::int64_t update = 0;
  std::int64_t remove = 0;
  std::int64_t applied = 0;
  std::int64_t noop = 0;
  std::int64_t conflict = 0;
  std::int64_t retryable = 0;
  std::int64_t rejected = 0;
};

struct StreamReport {
  std::string stream;
  std::int64_t fetched_source = 0;
  std::int64_t fetched_target = 0;
  /// Records found on both sides with equal values.
  std::int64_t unchanged = 0;
  ChangeCounts to_source;
  ChangeCounts to_target;
  /// The source cursor stored at the end (incremental syncs).
  std::optional<std::string> cursor;
};

/// A change a plugin did not apply (conflict, retryable, rejected), or one a plan lists.
struct ReportedChange {
  std::string stream;
  Side side = Side::Target;
  ChangeOp op = ChangeOp::Create;
  std::string key;  ///< key texts joined by '\x1f'
  ChangeStatus status = ChangeStatus::Applied;
  std::string message;
  Json fields;  ///< plan only: the fields the change writes
};

struct SyncReport {
  std::vector<StreamReport> streams;
  /// Changes that failed, the first kMaxListed of them.
  std::vector<ReportedChange> failures;
  /// Plan mode: the planned changes, the first kMaxListed of them.
  std::vector<ReportedChange> planned;
  std::int64_t failures_not_listed = 0;
  std::int64_t planned_not_listed = 0;

  static constexpr std::size_t kMaxListed = 1000;

  /// Whether some change may succeed if the job runs again (retryable or conflict).
  bool worthRetrying() const;
  /// The report as the job's result document (docs/sync.md describes it).
  Json toJson() const;
};

/// Running totals published while a job runs.
struct SyncProgress {
  std::int64_t fetched = 0;  ///< records read from either side
  std::int64_t diffed = 0;   ///< records compared
  std::int64_t applied = 0;  ///< changes applied (or planned), noop included
  std::int64_t failed = 0;   ///< changes a plugin did not apply
};

/// What an integration remembers between jobs: incremental cursors, and which records it
/// created on each side (the conservative deletion policy deletes only those).
class SyncState {
 public:
  virtual ~SyncState() = default;
  virtual Result<std::optional<std::string>> cursor(const std::string& stream, Side side) = 0;
  virtual Result<Done> saveCursor(const std::string& stream, Side side, const std::string& cursor) = 0;
  /// The keys among `keys` that this integration created on `side` and has not deleted since.
  virtual Result<std::vector<std::string>> createdAmong(const std::string& stream, Side side,
                                                        const std::vector<std::string>& keys) = 0;
  virtual Result<Done> recordCreated(const std::string& stream, Side side,
                                     const std::vector<std::string>& keys) = 0;
  virtual Result<Done> recordDeleted(const std::string& stream, Side side,
                                     const std::vector<std::string>& keys) = 0;
};

struct SyncHooks {
  /// Checked between batches; when it turns true the sync stops with Error::Code::Cancelled.
  std::function<bool()> cancelled;
  /// Called after every batch with the totals so far.
  std::function<void(const SyncProgress&)> progress;
  std::function<void(syncpod_log_level level, std::string_view message)> log;
};

/// Runs syncs of one integration: fetch both sides (streamed, in batches), compare keyed
/// records field by field, send each side the changes the ownership rules and the deletion
/// policy call for, in batches, and keep the cursor only once what it covers was applied.
///
/// Memory: a full sync keeps an index of the target side (each key and one 64-bit hash per
/// mapped non-key field), never whole records of both sides; everything else moves in batches.
class SyncEngine {
 public:
  SyncEngine(const IntegrationSpec& spec, Endpoint& source, Endpoint& target, SyncState& state,
             SyncHooks hooks);
  ~SyncEngine();
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  /// Errors: a plugin failure (Invalid, Unavailable, Unauthorized, Internal), a state failure,
  /// Cancelled. Changes a plugin refused are not errors: they are in the report.
  Result<SyncReport> run(const SyncRequest& request);

 private:
  class Run;
  const IntegrationSpec& spec_;
  Endpoint& source_;
  Endpoint& target_;
  SyncState& state_;
  SyncHooks hooks_;
};

/// A key's text form: its field texts joined by '\x1f'.
std::string joinKey(const std::vector<std::string>& parts);
std::vector<std::string> splitKey(std::string_view key);

/// A 64-bit hash of a JSON value that agrees with JSON equality as the diff uses it: equal
/// values hash equal (numbers by value, so 1 and 1.0 agree; objects whatever their order).
std::uint64_t hashValue(const Json& value);

}  // namespace syncpod::core
