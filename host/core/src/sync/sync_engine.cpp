#include "syncpod/core/sync/sync_engine.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "syncpod/core/plugins.hpp"

namespace syncpod::core {

constexpr char kKeySeparator = '\x1f';

std::string joinKey(const std::vector<std::string>& parts) {
  std::string key;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) key += kKeySeparator;
    key += parts[i];
  }
  return key;
}

std::vector<std::string> splitKey(std::string_view key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = key.find(kKeySeparator, start);
    parts.emplace_back(key.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

namespace {

std::uint64_t mix(std::uint64_t seed, std::uint64_t value) {
  // The finaliser of splitmix64 over the combination: cheap, and spreads small integers.
  std::uint64_t x = seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

enum Tag : std::uint64_t { kNull = 1, kFalse, kTrue, kInteger, kFloat, kString, kArray, kObject, kBinary };

}  // namespace

std::uint64_t hashValue(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded: return kNull;
    case Json::value_t::boolean: return value.get<bool>() ? kTrue : kFalse;
    case Json::value_t::number_integer:
      return mix(kInteger, static_cast<std::uint64_t>(value.get<std::int64_t>()));
    case Json::value_t::number_unsigned: {
      const auto number = value.get<std::uint64_t>();
      // An unsigned that fits int64 equals the signed integer of the same value.
      return mix(kInteger, number);
    }
    case Json::value_t::number_float: {
      const double number = value.get<double>();
      // 1.0 == 1 in JSON comparison: integral floats hash as integers.
      if (std::isfinite(number) && std::trunc(number) == number &&
          number >= -9.2e18 && number <= 9.2e18) {
        return mix(kInteger, static_cast<std::uint64_t>(static_cast<std::int64_t>(number)));
      }
      return mix(kFloat, std::bit_cast<std::uint64_t>(number));
    }
    case Json::value_t::string:
      return mix(kString, std::hash<std::string_view>{}(value.get_ref<const std::string&>()));
    case Json::value_t::array: {
      std::uint64_t h = kArray;
      for (const auto& item : value) h = mix(h, hashValue(item));
      return h;
    }
    case Json::value_t::object: {
      std::uint64_t h = kObject;
      for (const auto& [name, item] : value.items()) {
        h = mix(mix(h, std::hash<std::string_view>{}(name)), hashValue(item));
      }
      return h;
    }
    case Json::value_t::binary: {
      const auto& bytes = value.get_binary();
      return mix(kBinary, std::hash<std::string_view>{}(
                              std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
    }
  }
  return kNull;
}

namespace {

/// Appends keyText(value) to `out` without building a temporary for the common key types.
void appendKeyText(std::string& out, const Json& value) {
  char digits[24];
  switch (value.type()) {
    case Json::value_t::string: out += value.get_ref<const std::string&>(); return;
    case Json::value_t::null: return;
    case Json::value_t::number_integer: {
      const auto end = std::to_chars(digits, digits + sizeof(digits), value.get<std::int64_t>()).ptr;
      out.append(digits, end);
      return;
    }
    case Json::value_t::number_unsigned: {
      const auto end = std::to_chars(digits, digits + sizeof(digits), value.get<std::uint64_t>()).ptr;
      out.append(digits, end);
      return;
    }
    default: out += keyText(value); return;
  }
}

/// Writes the joined key of `fields` into `out` (what joinKey(keyOf(fields, names)) returns).
void buildKey(std::string& out, const Json& fields, const std::vector<std::string>& names) {
  out.clear();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += kKeySeparator;
    const auto found = fields.find(names[i]);
    if (found != fields.end()) appendKeyText(out, *found);
  }
}

std::uint64_t hashKey(std::string_view key) { return mix(0x6b6579, std::hash<std::string_view>{}(key)); }

/// A set of keys, each with a number (its slot), in one open-addressing table over one block of
/// key text: a million keys take about 30 MB and a lookup touches one or two cache lines,
/// where a std::unordered_map<std::string, …> takes three times that and chases pointers.
class KeyTable {
 public:
  /// Adds `key` with `slot`; false (and nothing added) when the key is already there.
  bool insert(std::string_view key, std::uint32_t slot) {
    if ((size_ + 1) * 2 > entries_.size()) grow();
    const auto hash = hashKey(key);
    auto& entry = entries_[probe(key, hash)];
    if (entry.used) return false;
    entry = {hash, static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(key.size()), slot, true};
    text_.append(key);
    ++size_;
    return true;
  }

  std::optional<std::uint32_t> find(std::string_view key) const {
    if (entries_.empty()) return std::nullopt;
    const auto& entry = entries_[probe(key, hashKey(key))];
    if (!entry.used) return std::nullopt;
    return entry.slot;
  }

  /// Calls fn(key, slot) for every key, in no particular order.
  template <class Fn>
  void forEach(Fn&& fn) const {
    for (const auto& entry : entries_) {
      if (entry.used) fn(std::string_view(text_).substr(entry.offset, entry.length), entry.slot);
    }
  }

 private:
  struct Entry {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    std::uint32_t slot = 0;
    bool used = false;
  };

  /// The entry holding `key`, or the free entry where it would go.
  std::size_t probe(std::string_view key, std::uint64_t hash) const {
    const std::size_t mask = entries_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const auto& entry = entries_[i];
      if (!entry.used) return i;
      if (entry.hash == hash && std::string_view(text_).substr(entry.offset, entry.length) == key) return i;
    }
  }

  void grow() {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(old.empty() ? 1024 : old.size() * 2, Entry{});
    const std::size_t mask = entries_.size() - 1;
    for (const auto& entry : old) {
      if (!entry.used) continue;
      std::size_t i = entry.hash & mask;
      while (entries_[i].used) i = (i + 1) & mask;
      entries_[i] = entry;
    }
  }

  std::vector<Entry> entries_;
  std::string text_;
  std::size_t size_ = 0;
};

}  // namespace

bool SyncReport::worthRetrying() const {
  for (const auto& stream : streams) {
    for (const auto* counts : {&stream.to_source, &stream.to_target}) {
      if (counts->retryable > 0 || counts->conflict > 0) return true;
    }
  }
  return false;
}

namespace {

Json countsJson(const ChangeCounts& counts) {
  return {{"create", counts.create},   {"update", counts.update},       {"delete", counts.remove},
          {"applied", counts.applied}, {"noop", counts.noop},           {"conflict", counts.conflict},
          {"retryable", counts.retryable}, {"rejected", counts.rejected}};
}

Json changeJson(const ReportedChange& change, bool with_fields) {
  Json json = {{"stream", change.stream},
               {"side", toString(change.side)},
               {"op", syncpod::toString(change.op)},
               {"key", splitKey(change.key)},
               {"status", syncpod::toString(change.status)}};
  if (!change.message.empty()) json["message"] = change.message;
  if (with_fields && change.op != ChangeOp::Delete) json["fields"] = change.fields;
  return json;
}

}  // namespace

Json SyncReport::toJson() const {
  Json json = {{"streams", Json::array()}};
  for (const auto& stream : streams) {
    Json entry = {{"stream", stream.stream},
                  {"fetched", {{"source", stream.fetched_source}, {"target", stream.fetched_target}}},
                  {"unchanged", stream.unchanged},
                  {"source", countsJson(stream.to_source)},
                  {"target", countsJson(stream.to_target)}};
    if (stream.cursor) entry["cursor"] = *stream.cursor;
    json["streams"].push_back(std::move(entry));
  }
  if (!failures.empty()) {
    json["failures"] = Json::array();
    for (const auto& change : failures) json["failures"].push_back(changeJson(change, false));
    if (failures_not_listed > 0) json["failures_not_listed"] = failures_not_listed;
  }
  if (!planned.empty() || planned_not_listed > 0) {
    json["planned"] = Json::array();
    for (const auto& change : planned) json["planned"].push_back(changeJson(change, true));
    if (planned_not_listed > 0) json["planned_not_listed"] = planned_not_listed;
  }
  return json;
}

// ------------------------------------------------------------------------------------------
// One run of the engine.
// ------------------------------------------------------------------------------------------

/// Ends a run with an error from deep inside it; caught in SyncEngine::run. Never thrown
/// through a plugin: fetch handlers store it and stop the fetch instead.
struct RunAborted {
  Error error;
};

class SyncEngine::Run {
 public:
  Run(SyncEngine& engine, const SyncRequest& request)
      : engine_(engine), spec_(engine.spec_), request_(request) {
    call_hooks_.cancelled = engine.hooks_.cancelled;
    call_hooks_.log = engine.hooks_.log;
  }

  SyncReport run() {
    if (request_.scope == SyncRequest::Scope::Keys) {
      const auto keys = keysByStream();
      for (const auto& mapping : spec_.streams) {
        const auto found = keys.find(mapping.name);
        if (found == keys.end()) continue;
        StreamRun stream(*this, mapping);
        stream.syncKeys(found->second);
        stream.finish();
      }
    } else {
      for (const auto& mapping : spec_.streams) {
        StreamRun stream(*this, mapping);
        if (request_.scope == SyncRequest::Scope::Full) {
          stream.syncFull();
        } else {
          stream.syncIncremental();
        }
        stream.finish();
      }
    }
    return std::move(report_);
  }

 private:
  /// Sends changes of one stream to one side, a batch at a time, and counts the answers.
  class Outbox {
   public:
    Outbox(Run& run, const StreamMapping& mapping, Side side, ChangeCounts& counts)
        : run_(run), mapping_(mapping), side_(side), counts_(counts),
          changeset_{side == Side::Source ? mapping.source_stream : mapping.target_stream,
                     mapping.keyFields(side), {}} {}

    void add(Change&& change) {
      switch (change.op) {
        case ChangeOp::Create: ++counts_.create; break;
        case ChangeOp::Update: ++counts_.update; break;
        case ChangeOp::Delete: ++counts_.remove; break;
      }
      changeset_.changes.push_back(std::move(change));
      if (changeset_.changes.size() >= run_.spec_.batch_size) flush();
    }

    void flush() {
      if (changeset_.changes.empty()) return;
      run_.checkCancelled();
      const auto mode = run_.request_.mode;
      auto results = run_.endpoint(side_).apply(changeset_, mode, run_.call_hooks_);
      if (!results) throw RunAborted{results.error()};
      std::vector<std::string> created;
      std::vector<std::string> deleted;
      for (std::size_t i = 0; i < changeset_.changes.size(); ++i) {
        auto& change = changeset_.changes[i];
        const auto& result = (*results)[i];
        const std::string key = joinKey(change.key);
        switch (result.status) {
          case ChangeStatus::Applied: ++counts_.applied; break;
          case ChangeStatus::Noop: ++counts_.noop; break;
          case ChangeStatus::Conflict: ++counts_.conflict; break;
          case ChangeStatus::Retryable: ++counts_.retryable; break;
          case ChangeStatus::Rejected: ++counts_.rejected; break;
        }
        const bool done = result.status == ChangeStatus::Applied || result.status == ChangeStatus::Noop;
        if (done) {
          ++run_.progress_.applied;
        } else {
          ++run_.progress_.failed;
          run_.list(run_.report_.failures, run_.report_.failures_not_listed,
                    {mapping_.name, side_, change.op, key, result.status, result.message, {}});
        }
        if (mode == ApplyMode::Plan) {
          run_.list(run_.report_.planned, run_.report_.planned_not_listed,
                    {mapping_.name, side_, change.op, key, result.status, result.message,
                     std::move(change.fields)});
        } else if (result.status == ChangeStatus::Applied) {
          if (change.op == ChangeOp::Create) created.push_back(key);
          if (change.op == ChangeOp::Delete) deleted.push_back(key);
        }
      }
      changeset_.changes.clear();
      auto& state = run_.engine_.state_;
      if (!created.empty()) run_.need(state.recordCreated(mapping_.name, side_, created));
      if (!deleted.empty()) run_.need(state.recordDeleted(mapping_.name, side_, deleted));
      run_.publishProgress();
    }

   private:
    Run& run_;
    const StreamMapping& mapping_;
    Side side_;
    ChangeCounts& counts_;
    Changeset changeset_;
  };

  /// The target side of a full sync, reduced to what the diff needs: each key, one hash per
  /// mapped field, and whether the source had the key too.
  class TargetIndex {
   public:
    explicit TargetIndex(std::size_t width) : width_(width) {}

    /// Adds a record; false if its key was already there (the first one stays).
    bool add(std::string_view key, const Json& fields, const std::vector<std::string>& names) {
      const auto slot = static_cast<std::uint32_t>(seen_.size());
      if (!keys_.insert(key, slot)) return false;
      for (const auto& name : names) {
        const auto found = fields.find(name);
        hashes_.push_back(found == fields.end() ? kNull : hashValue(*found));
      }
      seen_.push_back(false);
      return true;
    }

    /// The slot of `key`, marking it seen; nullopt when the target does not have it.
    std::optional<std::uint32_t> visit(std::string_view key) {
      const auto slot = keys_.find(key);
      if (slot) seen_[*slot] = true;
      return slot;
    }

    std::uint64_t hash(std::uint32_t slot, std::size_t field) const { return hashes_[slot * width_ + field]; }

    /// Calls `unseen(key)` for every key the source did not have.
    template <class Fn>
    void forEachUnseen(Fn&& unseen) const {
      keys_.forEach([&](std::string_view key, std::uint32_t slot) {
        if (!seen_[slot]) unseen(std::string(key));
      });
    }

   private:
    std::size_t width_;
    KeyTable keys_;
    std::vector<std::uint64_t> hashes_;
    std::vector<bool> seen_;
  };

  /// The sync of one stream mapping.
  class StreamRun {
   public:
    StreamRun(Run& run, const StreamMapping& mapping)
        : run_(run), mapping_(mapping), report_(run.report_.streams.emplace_back()),
          source_keys_(mapping.keyFields(Side::Source)), target_keys_(mapping.keyFields(Side::Target)),
          source_names_(mapping.fieldNames(Side::Source)), target_names_(mapping.fieldNames(Side::Target)),
          to_source_(run, mapping, Side::Source, report_.to_source),
          to_target_(run, mapping, Side::Target, report_.to_target) {
      report_.stream = mapping.name;
    }

    /// Full: index the target, stream the source against the index, then settle what only one
    /// side has and what needs both sides' values (keys collected on the way).
    void syncFull() {
      TargetIndex index(mapping_.fields.size());
      std::int64_t duplicates = 0;
      std::string key;
      run_.fetch(Side::Target, request(Side::Target, FetchMode::Full), [&](RecordBatch& batch) {
        report_.fetched_target += static_cast<std::int64_t>(batch.records.size());
        for (const auto& record : batch.records) {
          buildKey(key, record.fields, target_keys_);
          if (!index.add(key, record.fields, target_names_)) ++duplicates;
        }
      });
      if (duplicates > 0) {
        run_.log(SYNCPOD_LOG_WARN, "stream " + mapping_.name + ": the target has " +
                                       std::to_string(duplicates) + " records with a key seen before; the first one counts");
      }

      std::vector<std::string> keyed;               // need both sides' values
      std::vector<std::string> missing_on_target;   // the source has them, the target does not
      const bool target_compares_itself = run_.engine_.target_.hasCustomDiff();
      run_.fetch(Side::Source, request(Side::Source, FetchMode::Full), [&](RecordBatch& batch) {
        report_.fetched_source += static_cast<std::int64_t>(batch.records.size());
        for (auto& record : batch.records) {
          ++run_.progress_.diffed;
          buildKey(key, record.fields, source_keys_);
          const auto slot = index.visit(key);
          if (!slot) {
            if (mapping_.record_owner == Side::Source) {
              to_target_.add(create(record.fields, Side::Source, key));
            } else {
              missing_on_target.push_back(key);
            }
            continue;
          }
          Json update = Json::object();
          bool needs_target_values = false;
          for (std::size_t i = mapping_.key_count; i < mapping_.fields.size(); ++i) {
            const auto found = record.fields.find(source_names_[i]);
            const auto hash = found == record.fields.end() ? kNull : hashValue(*found);
            if (hash == index.hash(*slot, i)) continue;
            if (mapping_.fields[i].owner == Side::Target || target_compares_itself) {
              needs_target_values = true;
            } else {
              update[target_names_[i]] = found == record.fields.end() ? Json() : *found;
            }
          }
          if (needs_target_values) {
            keyed.push_back(key);
          } else if (update.empty()) {
            ++report_.unchanged;
          } else {
            to_target_.add({ChangeOp::Update, splitKey(key), std::move(update), std::nullopt});
          }
        }
      });

      std::vector<std::string> missing_on_source;
      index.forEachUnseen([&](std::string&& unseen) {
        if (mapping_.record_owner == Side::Source) {
          missing_on_source.push_back(std::move(unseen));
        } else {
          keyed.push_back(std::move(unseen));  // the source must get it: its values come from the keyed pass
        }
      });
      // Records only the non-owner has: the deletion policy decides.
      deleteOnly(Side::Target, missing_on_source);
      deleteOnly(Side::Source, missing_on_target);
      syncKeys(keyed);
    }

    /// Incremental: the keys the source changed since its stored cursor, then a keyed sync of
    /// them; the cursor is stored only when every change went through.
    void syncIncremental() {
      auto& state = run_.engine_.state_;
      auto fetch = request(Side::Source, FetchMode::Incremental);
      fetch.cursor = run_.need(state.cursor(mapping_.name, Side::Source));
      std::vector<std::string> keys;
      std::optional<std::string> cursor;
      std::unordered_set<std::string> seen;
      run_.fetch(Side::Source, fetch, [&](RecordBatch& batch) {
        report_.fetched_source += static_cast<std::int64_t>(batch.records.size());
        for (const auto& record : batch.records) {
          auto key = joinKey(keyOf(record.fields, source_keys_));
          if (seen.insert(key).second) keys.push_back(std::move(key));
        }
        if (batch.cursor) cursor = std::move(batch.cursor);
      });
      syncKeys(keys);
      to_source_.flush();
      to_target_.flush();
      if (!cursor || run_.request_.mode == ApplyMode::Plan) return;
      if (report_.to_source.retryable + report_.to_source.conflict + report_.to_target.retryable +
              report_.to_target.conflict > 0) {
        run_.log(SYNCPOD_LOG_WARN, "stream " + mapping_.name +
                                       ": some changes can be retried; the cursor stays where it was");
        return;
      }
      run_.need(state.saveCursor(mapping_.name, Side::Source, *cursor));
      report_.cursor = cursor;
    }

    /// Compares the records with these keys on both sides, a batch at a time.
    void syncKeys(const std::vector<std::string>& keys) {
      forEachBatch(keys, [&](const std::vector<std::string>& chunk) {
        auto source = fetchKeys(Side::Source, chunk);
        auto target = fetchKeys(Side::Target, chunk);
        reconcile(chunk, source, target);
      });
    }

    void finish() {
      to_source_.flush();
      to_target_.flush();
    }

   private:
    /// Calls fn with consecutive slices of `keys`, batch_size keys each.
    template <class Fn>
    void forEachBatch(const std::vector<std::string>& keys, Fn&& fn) const {
      const std::size_t batch = run_.spec_.batch_size;
      for (std::size_t start = 0; start < keys.size(); start += batch) {
        const auto end = std::min(keys.size(), start + batch);
        fn(std::vector<std::string>(keys.begin() + static_cast<std::ptrdiff_t>(start),
                                    keys.begin() + static_cast<std::ptrdiff_t>(end)));
      }
    }

    FetchRequest request(Side side, FetchMode mode) const {
      FetchRequest fetch;
      fetch.stream = side == Side::Source ? mapping_.source_stream : mapping_.target_stream;
      fetch.mode = mode;
      fetch.key_fields = side == Side::Source ? source_keys_ : target_keys_;
      fetch.batch_size = run_.spec_.batch_size;
      return fetch;
    }

    std::unordered_map<std::string, Record> fetchKeys(Side side, const std::vector<std::string>& keys) {
      auto fetch = request(side, FetchMode::Keys);
      for (const auto& key : keys) fetch.keys.push_back(splitKey(key));
      const auto& key_fields = side == Side::Source ? source_keys_ : target_keys_;
      std::unordered_map<std::string, Record> records;
      run_.fetch(side, fetch, [&](RecordBatch& batch) {
        (side == Side::Source ? report_.fetched_source : report_.fetched_target) +=
            static_cast<std::int64_t>(batch.records.size());
        for (auto& record : batch.records) {
          if (record.deleted) continue;
          auto key = joinKey(keyOf(record.fields, key_fields));
          records.try_emplace(std::move(key), std::move(record));
        }
      });
      return records;
    }

    /// A create for the side opposite `from`, carrying every mapped field of `fields`.
    Change create(const Json& fields, Side from, const std::string& key) const {
      const auto& from_names = from == Side::Source ? source_names_ : target_names_;
      const auto& to_names = from == Side::Source ? target_names_ : source_names_;
      Json values = Json::object();
      for (std::size_t i = 0; i < from_names.size(); ++i) {
        const auto found = fields.find(from_names[i]);
        values[to_names[i]] = found == fields.end() ? Json() : *found;
      }
      return {ChangeOp::Create, splitKey(key), std::move(values), std::nullopt};
    }

    /// The values the owner of each non-key field wants `side` to hold, in `side`'s names.
    Json desired(Side side, const Json& owner_fields) const {
      const auto& from_names = side == Side::Source ? target_names_ : source_names_;
      const auto& to_names = side == Side::Source ? source_names_ : target_names_;
      Json values = Json::object();
      for (std::size_t i = mapping_.key_count; i < mapping_.fields.size(); ++i) {
        if (mapping_.fields[i].owner == side) continue;
        const auto found = owner_fields.find(from_names[i]);
        values[to_names[i]] = found == owner_fields.end() ? Json() : *found;
      }
      return values;
    }

    void reconcile(const std::vector<std::string>& keys, std::unordered_map<std::string, Record>& source,
                   std::unordered_map<std::string, Record>& target) {
      std::vector<std::string> missing_on_source;
      std::vector<std::string> missing_on_target;
      std::vector<std::string> both;
      for (const auto& key : keys) {
        ++run_.progress_.diffed;
        const bool in_source = source.count(key) > 0;
        const bool in_target = target.count(key) > 0;
        if (in_source && in_target) {
          both.push_back(key);
        } else if (in_source) {
          if (mapping_.record_owner == Side::Source) {
            to_target_.add(create(source[key].fields, Side::Source, key));
          } else {
            missing_on_target.push_back(key);
          }
        } else if (in_target) {
          if (mapping_.record_owner == Side::Target) {
            to_source_.add(create(target[key].fields, Side::Target, key));
          } else {
            missing_on_source.push_back(key);
          }
        }
      }
      deleteOnly(Side::Target, missing_on_source);
      deleteOnly(Side::Source, missing_on_target);
      if (both.empty()) return;

      // Each side compares what the other side's owned fields want it to hold with what it has.
      std::vector<Json> changes_for_target = changedFields(Side::Target, both, source, target);
      std::vector<Json> changes_for_source = changedFields(Side::Source, both, source, target);
      for (std::size_t i = 0; i < both.size(); ++i) {
        if (changes_for_target[i].empty() && changes_for_source[i].empty()) ++report_.unchanged;
        if (!changes_for_target[i].empty()) {
          to_target_.add({ChangeOp::Update, splitKey(both[i]), std::move(changes_for_target[i]), std::nullopt});
        }
        if (!changes_for_source[i].empty()) {
          to_source_.add({ChangeOp::Update, splitKey(both[i]), std::move(changes_for_source[i]), std::nullopt});
        }
      }
    }

    /// For each key, the fields `side` must change (name → new value), by its plugin's diff.
    std::vector<Json> changedFields(Side side, const std::vector<std::string>& keys,
                                    std::unordered_map<std::string, Record>& source,
                                    std::unordered_map<std::string, Record>& target) {
      std::vector<std::pair<Json, Json>> pairs;
      pairs.reserve(keys.size());
      bool any = false;
      for (const auto& key : keys) {
        const Json& current = (side == Side::Source ? source : target)[key].fields;
        Json wanted = desired(side, (side == Side::Source ? target : source)[key].fields);
        any = any || !wanted.empty();
        pairs.emplace_back(current, std::move(wanted));
      }
      std::vector<Json> changes(keys.size(), Json::object());
      if (!any) return changes;
      auto diffs = run_.endpoint(side).diff(side == Side::Source ? mapping_.source_stream : mapping_.target_stream,
                                            pairs, run_.call_hooks_);
      if (!diffs) throw RunAborted{diffs.error()};
      for (std::size_t i = 0; i < keys.size(); ++i) {
        for (const auto& name : (*diffs)[i]) {
          const auto found = pairs[i].second.find(name);
          if (found != pairs[i].second.end()) changes[i][name] = *found;
        }
      }
      return changes;
    }

    /// Deletes on `side` the records of `keys` (which only `side` has) as the policy allows.
    void deleteOnly(Side side, const std::vector<std::string>& keys) {
      if (keys.empty() || run_.spec_.deletion_policy == DeletionPolicy::Additive) return;
      auto& outbox = side == Side::Source ? to_source_ : to_target_;
      if (run_.spec_.deletion_policy == DeletionPolicy::Overwrite) {
        for (const auto& key : keys) outbox.add({ChangeOp::Delete, splitKey(key), Json::object(), std::nullopt});
        return;
      }
      forEachBatch(keys, [&](const std::vector<std::string>& chunk) {
        for (const auto& key : run_.need(run_.engine_.state_.createdAmong(mapping_.name, side, chunk))) {
          outbox.add({ChangeOp::Delete, splitKey(key), Json::object(), std::nullopt});
        }
      });
    }

    Run& run_;
    const StreamMapping& mapping_;
    StreamReport& report_;
    std::vector<std::string> source_keys_;
    std::vector<std::string> target_keys_;
    std::vector<std::string> source_names_;
    std::vector<std::string> target_names_;
    Outbox to_source_;
    Outbox to_target_;
  };

  Endpoint& endpoint(Side side) { return side == Side::Source ? engine_.source_ : engine_.target_; }

  /// Runs a fetch, handing each batch to `on_batch`. What on_batch throws is kept, the fetch
  /// is stopped (nothing is thrown through the plugin), and it is rethrown afterwards.
  template <class OnBatch>
  void fetch(Side side, const FetchRequest& request, OnBatch&& on_batch) {
    std::optional<RunAborted> aborted;
    const auto result = endpoint(side).fetch(
        request,
        [&](RecordBatch&& batch) {
          try {
            progress_.fetched += static_cast<std::int64_t>(batch.records.size());
            on_batch(batch);
            publishProgress();
            checkCancelled();
            return true;
          } catch (RunAborted& error) {
            aborted = std::move(error);
          } catch (const std::exception& error) {
            aborted = RunAborted{{Error::Code::Internal, error.what()}};
          }
          return false;
        },
        call_hooks_);
    if (aborted) throw std::move(*aborted);
    if (!result) throw RunAborted{result.error()};
  }

  template <class T>
  T need(Result<T>&& result) {
    if (!result) throw RunAborted{result.error()};
    return std::move(result).value();
  }

  void checkCancelled() {
    if (engine_.hooks_.cancelled && engine_.hooks_.cancelled()) {
      throw RunAborted{{Error::Code::Cancelled, "the sync was cancelled"}};
    }
  }

  void publishProgress() {
    if (engine_.hooks_.progress) engine_.hooks_.progress(progress_);
  }

  void log(syncpod_log_level level, const std::string& message) {
    if (engine_.hooks_.log) engine_.hooks_.log(level, message);
  }

  void list(std::vector<ReportedChange>& listed, std::int64_t& not_listed, ReportedChange&& change) {
    if (listed.size() < SyncReport::kMaxListed) {
      listed.push_back(std::move(change));
    } else {
      ++not_listed;
    }
  }

  /// Partial keys by stream: "<stream>/<key>", or "<key>" with a single stream.
  std::unordered_map<std::string, std::vector<std::string>> keysByStream() {
    std::unordered_map<std::string, std::vector<std::string>> keys;
    std::unordered_set<std::string> seen;
    for (const auto& text : request_.keys) {
      if (!seen.insert(text).second) continue;
      const auto slash = text.find('/');
      const bool names_stream = slash != std::string::npos && spec_.stream(text.substr(0, slash)) != nullptr;
      if (!names_stream && spec_.streams.size() == 1) {
        keys[spec_.streams.front().name].push_back(text);
        continue;
      }
      if (slash == std::string::npos) {
        throw RunAborted{{Error::Code::Invalid, "key \"" + text +
                                                    "\" names no stream; this integration has several: "
                                                    "write <stream>/<key>"}};
      }
      const std::string stream = text.substr(0, slash);
      if (spec_.stream(stream) == nullptr) {
        throw RunAborted{{Error::Code::Invalid, "key \"" + text + "\" names stream \"" + stream +
                                                    "\", which this integration does not map"}};
      }
      keys[stream].push_back(text.substr(slash + 1));
    }
    return keys;
  }

  SyncEngine& engine_;
  const IntegrationSpec& spec_;
  const SyncRequest& request_;
  CallHooks call_hooks_;
  SyncReport report_;
  SyncProgress progress_;
};

SyncEngine::SyncEngine(const IntegrationSpec& spec, Endpoint& source, Endpoint& target, SyncState& state,
                       SyncHooks hooks)
    : spec_(spec), source_(source), target_(target), state_(state), hooks_(std::move(hooks)) {}

SyncEngine::~SyncEngine() = default;

Result<SyncReport> SyncEngine::run(const SyncRequest& request) {
  try {
    Run run(*this, request);
    return run.run();
  } catch (RunAborted& aborted) {
    return std::move(aborted.error);
  }
}

}  // namespace syncpod::core
