#pragma once

// In-memory implementations of Endpoint and SyncState for engine unit tests. The engine's
// behaviour against real plugins is tested end to end in tests/e2e with the jsonl and postgres
// connectors; these let each rule be tested alone and fast.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/sync_engine.hpp"

namespace syncpod::core::testing {

/// A system holding records per stream, keyed by the texts of the requested key fields.
/// Incremental fetches order records by their "updated" field (a number); the cursor is the
/// largest one seen.
class MemoryEndpoint : public Endpoint {
 public:
  explicit MemoryEndpoint(std::string id = "memory") : id_(std::move(id)) {}

  /// stream -> records (whole field objects); tests edit this directly.
  std::map<std::string, std::vector<Json>> streams;
  /// Every changeset applied in commit mode, in order.
  std::vector<Changeset> committed;
  /// Keys (joined) whose changes answer Retryable; others are applied.
  std::set<std::string> retryable_keys;
  /// When set, diff treats strings case-insensitively (a "custom diff").
  bool case_insensitive_diff = false;
  int fetch_calls = 0;

  const std::string& pluginId() const override { return id_; }
  Result<Done> check(const CallHooks&) override { return Done{}; }

  Result<Done> fetch(const FetchRequest& request, const BatchHandler& on_batch, const CallHooks&) override {
    ++fetch_calls;
    std::vector<Json> selected;
    std::optional<std::string> cursor;
    auto& records = streams[request.stream];
    if (request.mode == FetchMode::Keys) {
      std::set<std::vector<std::string>> wanted(request.keys.begin(), request.keys.end());
      for (const auto& fields : records) {
        if (wanted.count(keyOf(fields, request.key_fields))) selected.push_back(fields);
      }
    } else if (request.mode == FetchMode::Incremental) {
      const long long after = request.cursor ? std::stoll(*request.cursor) : -1;
      long long last = after;
      for (const auto& fields : records) {
        const long long updated = fields.value("updated", 0LL);
        if (updated > after) {
          selected.push_back(fields);
          last = std::max(last, updated);
        }
      }
      cursor = std::to_string(last);
    } else {
      selected = records;
    }
    RecordBatch batch{request.stream, {}, std::nullopt};
    for (std::size_t i = 0; i < selected.size(); ++i) {
      batch.records.push_back({selected[i], std::nullopt, false});
      const bool last = i + 1 == selected.size();
      if (batch.records.size() == request.batch_size || last) {
        if (last) batch.cursor = cursor;
        if (!on_batch(std::move(batch))) return Error{Error::Code::Cancelled, "fetch stopped"};
        batch = RecordBatch{request.stream, {}, std::nullopt};
      }
    }
    if (selected.empty() && cursor) {
      if (!on_batch(RecordBatch{request.stream, {}, cursor})) return Error{Error::Code::Cancelled, "fetch stopped"};
    }
    return Done{};
  }

  bool hasCustomDiff() const override { return case_insensitive_diff; }

  Result<std::vector<std::vector<std::string>>> diff(const std::string&, const std::vector<std::pair<Json, Json>>& pairs,
                                                     const CallHooks&) override {
    std::vector<std::vector<std::string>> changed;
    for (const auto& [current, desired] : pairs) {
      std::vector<std::string> fields;
      for (const auto& [name, value] : desired.items()) {
        const auto found = current.find(name);
        if (found != current.end() && equal(*found, value)) continue;
        fields.push_back(name);
      }
      changed.push_back(std::move(fields));
    }
    return changed;
  }

  Result<std::vector<ChangeResult>> apply(const Changeset& changeset, ApplyMode mode, const CallHooks&) override {
    auto& records = streams[changeset.stream];
    std::vector<ChangeResult> results;
    for (const auto& change : changeset.changes) {
      if (retryable_keys.count(joinKey(change.key))) {
        results.push_back({ChangeStatus::Retryable, "try later"});
        continue;
      }
      auto found = std::find_if(records.begin(), records.end(), [&](const Json& fields) {
        return keyOf(fields, changeset.key_fields) == change.key;
      });
      ChangeStatus status = ChangeStatus::Applied;
      switch (change.op) {
        case ChangeOp::Create:
          if (found != records.end() && *found == change.fields) status = ChangeStatus::Noop;
          else if (mode == ApplyMode::Commit) {
            if (found != records.end()) *found = change.fields;
            else records.push_back(change.fields);
          }
          break;
        case ChangeOp::Update:
          if (found == records.end()) {
            status = ChangeStatus::Rejected;
          } else {
            Json merged = *found;
            merged.update(change.fields);
            if (merged == *found) status = ChangeStatus::Noop;
            else if (mode == ApplyMode::Commit) *found = merged;
          }
          break;
        case ChangeOp::Delete:
          if (found == records.end()) status = ChangeStatus::Noop;
          else if (mode == ApplyMode::Commit) records.erase(found);
          break;
      }
      results.push_back({status, status == ChangeStatus::Rejected ? "no such record" : ""});
    }
    if (mode == ApplyMode::Commit) committed.push_back(changeset);
    return results;
  }

 private:
  bool equal(const Json& a, const Json& b) const {
    if (!case_insensitive_diff || !a.is_string() || !b.is_string()) return a == b;
    auto lower = [](std::string s) {
      for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return s;
    };
    return lower(a.get<std::string>()) == lower(b.get<std::string>());
  }

  std::string id_;
};

class MemorySyncState : public SyncState {
 public:
  std::map<std::pair<std::string, Side>, std::string> cursors;
  std::set<std::tuple<std::string, Side, std::string>> created;

  Result<std::optional<std::string>> cursor(const std::string& stream, Side side) override {
    const auto found = cursors.find({stream, side});
    if (found == cursors.end()) return std::optional<std::string>{};
    return std::optional<std::string>{found->second};
  }
  Result<Done> saveCursor(const std::string& stream, Side side, const std::string& value) override {
    cursors[{stream, side}] = value;
    return Done{};
  }
  Result<std::vector<std::string>> createdAmong(const std::string& stream, Side side,
                                                const std::vector<std::string>& keys) override {
    std::vector<std::string> found;
    for (const auto& key : keys) {
      if (created.count({stream, side, key})) found.push_back(key);
    }
    return found;
  }
  Result<Done> recordCreated(const std::string& stream, Side side, const std::vector<std::string>& keys) override {
    for (const auto& key : keys) created.insert({stream, side, key});
    return Done{};
  }
  Result<Done> recordDeleted(const std::string& stream, Side side, const std::vector<std::string>& keys) override {
    for (const auto& key : keys) created.erase({stream, side, key});
    return Done{};
  }
};

}  // namespace syncpod::core::testing
