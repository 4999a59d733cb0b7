#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// An integrations row. The config is the JSON document sync/integration_spec.hpp parses,
/// secrets included: callers that show it redact it first.
struct Integration {
  IntegrationId id = 0;
  std::string name;
  bool enabled = true;
  std::string config_json = "{}";
  TimePoint created_at;
  TimePoint updated_at;
};

/// What a page of integrations ends with: the id to pass as `after` for the next page.
struct IntegrationPage {
  std::vector<Integration> items;
  std::optional<IntegrationId> next_after;
};

/// The integrations table. One instance owns one connection; not thread-safe.
class IntegrationStore {
 public:
  /// Connects at once; throws DatabaseUnavailable.
  explicit IntegrationStore(DatabaseTarget target);
  ~IntegrationStore();
  IntegrationStore(const IntegrationStore&) = delete;
  IntegrationStore& operator=(const IntegrationStore&) = delete;

  /// Up to `limit` integrations with ids above `after`, in id order.
  Result<IntegrationPage> list(IntegrationId after, int limit);
  Result<std::optional<Integration>> find(IntegrationId id);
  /// Conflict when the name is taken.
  Result<Integration> create(const std::string& name, bool enabled, const std::string& config_json);
  /// Replaces name, enabled and config; nullopt when there is no such integration; Conflict
  /// when the name is taken by another.
  Result<std::optional<Integration>> update(const Integration& integration);
  /// Conflict while one of its jobs runs (cancel it first); false when there was none.
  Result<bool> remove(IntegrationId id);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
