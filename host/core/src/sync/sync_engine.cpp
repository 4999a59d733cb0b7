#include "syncpod/core/sync/sync_engine.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
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

/// The finaliser of splitmix64: spreads every input bit over the whole result.
inline std::uint64_t finalise(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint64_t mix(std::uint64_t seed, std::uint64_t value) {
  return finalise(seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

/// A 64-bit hash of bytes, 8 at a time, inline: most field values and keys are short, and for
/// them a call to std::hash costs more than the hashing. Each step is a bijection of the word,
/// so two texts of one length that differ in one word never collide. Its low bits are not
/// spread yet: callers pass it through mix() or finalise(). Not for hashes that outlive the
/// process: the words are read in the machine's byte order.
inline std::uint64_t hashBytes(std::string_view bytes) {
  constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ULL;
  constexpr std::uint64_t k2 = 0xc2b2ae3d27d4eb4fULL;
  std::uint64_t h = bytes.size() * k1;
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, p, 8);
    h = std::rotl(h ^ (word * k2), 29) * k1;
  }
  if (n > 0) {
    std::uint64_t word = 0;
    for (std::size_t i = 0; i < n; ++i) {
      word |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    h = std::rotl(h ^ (word * k2), 29) * k1;
  }
  return h;
}

enum Tag : std::uint64_t { kNull = 1, kFalse, kTrue, kInteger, kFloat, kString, kArray, kObject, kBinary };

std::uint64_t hashOther(const Json& value);

/// hashValue, with the common scalar types inline (a full sync hashes every field it reads).
inline std::uint64_t hashJson(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded: return kNull;
    case Json::value_t::boolean: return *value.get_ptr<const Json::boolean_t*>() ? kTrue : kFalse;
    case Json::value_t::number_integer:
      return mix(kInteger,
                 static_cast<std::uint64_t>(*value.get_ptr<const Json::number_integer_t*>()));
    case Json::value_t::number_unsigned:
      // An unsigned that fits int64 equals the signed integer of the same value.
      return mix(kInteger, *value.get_ptr<const Json::number_unsigned_t*>());
    case Json::value_t::string:
      return mix(kString, hashBytes(*value.get_ptr<const Json::string_t*>()));
    default: return hashOther(value);
  }
}

/// hashValue of floats, arrays, objects and binary values.
std::uint64_t hashOther(const Json& value) {
  switch (value.type()) {
    case Json::value_t::number_float: {
      const double number = *value.get_ptr<const Json::number_float_t*>();
      // 1.0 == 1 in JSON comparison: integral floats hash as integers.
      if (std::isfinite(number) && std::trunc(number) == number &&
          number >= -9.2e18 && number <= 9.2e18) {
        return mix(kInteger, static_cast<std::uint64_t>(static_cast<std::int64_t>(number)));
      }
      return mix(kFloat, std::bit_cast<std::uint64_t>(number));
    }
    case Json::value_t::array: {
      std::uint64_t h = kArray;
      for (const auto& item : value) h = mix(h, hashJson(item));
      return h;
    }
    case Json::value_t::object: {
      std::uint64_t h = kObject;
      for (const auto& [name, item] : value.items()) {
        h = mix(mix(h, hashBytes(name)), hashJson(item));
      }
      return h;
    }
    case Json::value_t::binary: {
      const auto& bytes = value.get_binary();
      return mix(kBinary, hashBytes(std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                                     bytes.size())));
    }
    default: return hashJson(value);  // null, booleans, integers, strings
  }
}

}  // namespace

std::uint64_t hashValue(const Json& value) { return hashJson(value); }

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

/// Writes into `out` the joined key of a record whose key field values are values[0..count)
/// (nullptr for a missing field): what joinKey(keyOf(…)) returns.
void buildKey(std::string& out, const Json* const* values, std::size_t count) {
  out.clear();
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out += kKeySeparator;
    if (values[i] != nullptr) appendKeyText(out, *values[i]);
  }
}

/// Equality of two short names, inline: field names are a few bytes, where a call to memcmp
/// costs more than the comparison.
bool sameName(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

/// Finds the values of a stream's mapped fields in a record in one pass over its members. A JSON
/// object keeps its members sorted by name, so the mapped names are sorted once per stream and
/// matched against the members in step: about one name comparison per member, where a lookup
/// per name costs a walk down the member tree each.
class FieldReader {
 public:
  explicit FieldReader(const std::vector<std::string>& names) : count_(names.size()) {
    std::vector<std::size_t> order(names.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return less_(names[a], names[b]); });
    for (const auto index : order) {
      // A name mapped twice (two fields read from one member) matches the same member again.
      const bool again = !sorted_.empty() && sorted_.back().name == names[index];
      sorted_.push_back({names[index], index, again});
    }
  }

  std::size_t size() const { return count_; }

  /// Sets values[i] (size() of them) to the value of the i-th name in `fields`, or to nullptr
  /// when `fields` has no such member. The pointers live as long as `fields` is unchanged.
  void read(const Json& fields, const Json** values) const {
    std::fill_n(values, count_, nullptr);
    if (!fields.is_object()) return;
    const auto& members = fields.get_ref<const Json::object_t&>();
    auto member = members.begin();
    auto name = sorted_.begin();
    while (member != members.end() && name != sorted_.end()) {
      if (sameName(member->first, name->name)) {
        values[name->index] = &member->second;
        ++name;
        if (name == sorted_.end() || !name->again) ++member;
      } else if (less_(member->first, name->name)) {
        ++member;
      } else {
        ++name;
      }
    }
  }

 private:
  struct Name {
    std::string name;
    std::size_t index;  // in the names given to the constructor
    bool again;         // the same name as the one before
  };

  // The order the members are kept in: the merge above relies on it.
  Json::object_t::key_compare less_;
  std::size_t count_;
  std::vector<Name> sorted_;
};

/// The allocator of a full sync's large arrays (the key table, the field hashes): it asks the
/// kernel to back them with huge pages (Linux transparent huge pages, when set to "madvise" or
/// "always"). Those arrays are read at random, a million records' worth, and with 4 KiB pages
/// nearly every lookup also misses the TLB; on a virtual machine the page walk then costs more
/// than the lookup. Arrays smaller than a huge page are allocated as usual.
template <class T>
class LargeArrayAllocator {
 public:
  using value_type = T;

  LargeArrayAllocator() = default;
  template <class U>
  explicit LargeArrayAllocator(const LargeArrayAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n * sizeof(T) < kHugePage) return std::allocator<T>().allocate(n);
    const std::size_t bytes = roundUp(n * sizeof(T));
    void* memory = std::aligned_alloc(kHugePage, bytes);
    if (memory == nullptr) throw std::bad_alloc();
    (void)madvise(memory, bytes, MADV_HUGEPAGE);  // advice: when refused, the pages are small
    return static_cast<T*>(memory);
  }

  void deallocate(T* memory, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePage) {
      std::allocator<T>().deallocate(memory, n);
    } else {
      std::free(memory);
    }
  }

  friend bool operator==(const LargeArrayAllocator&, const LargeArrayAllocator&) { return true; }

 private:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;
  static std::size_t roundUp(std::size_t bytes) {
    return (bytes + kHugePage - 1) / kHugePage * kHugePage;
  }
};

template <class T>
using LargeArray = std::vector<T, LargeArrayAllocator<T>>;

/// A set of keys, each numbered in the order it was added (its slot): an open-addressing table
/// of 8-byte entries (a 32-bit hash and the slot) over one block of key text. A million keys
/// take about 30 MB, and a lookup touches one entry, then the key's text only when the hashes
/// agree; a std::unordered_map<std::string, …> takes three times that and chases pointers.
/// Callers hash the key first (hashOf) so that they can prefetch the entries (entryOf) of
/// several keys before they look any up.
class KeyTable {
 public:
  static constexpr std::uint32_t kAbsent = std::numeric_limits<std::uint32_t>::max();

  KeyTable() : entries_(1024) {}

  static std::uint64_t hashOf(std::string_view key) { return finalise(hashBytes(key)); }

  std::uint32_t size() const { return size_; }

  /// Where the lookup of a key of this hash starts, for the caller to prefetch. (A function
  /// that only prefetches counts as free of side effects, and GCC drops calls to it.)
  const void* entryOf(std::uint64_t hash) const {
    return &entries_[tag(hash) & (entries_.size() - 1)];
  }

  /// Adds `key` (whose hashOf is `hash`) as slot size(); false, and nothing added, when the
  /// key is already there. Throws std::length_error past 4 GiB of key text.
  bool insert(std::string_view key, std::uint64_t hash) {
    if ((static_cast<std::size_t>(size_) + 1) * 2 > entries_.size()) grow();
    auto& entry = entries_[probe(key, hash)];
    if (entry.slot != kAbsent) return false;
    if (text_.size() + key.size() > std::numeric_limits<std::uint32_t>::max()) {
      throw std::length_error("more than 4 GiB of keys in one stream");
    }
    entry = {tag(hash), size_};
    text_.append(key);
    ends_.push_back(static_cast<std::uint32_t>(text_.size()));
    ++size_;
    return true;
  }

  /// The slot of `key` (whose hashOf is `hash`), or kAbsent.
  std::uint32_t find(std::string_view key, std::uint64_t hash) const {
    return entries_[probe(key, hash)].slot;
  }

  /// The key in `slot`.
  std::string_view key(std::uint32_t slot) const {
    const std::uint32_t begin = slot == 0 ? 0 : ends_[slot - 1];
    return {text_.data() + begin, ends_[slot] - begin};
  }

 private:
  struct Entry {
    std::uint32_t tag = 0;  // the hash, folded to 32 bits: it also gives the position
    std::uint32_t slot = kAbsent;
  };

  static std::uint32_t tag(std::uint64_t hash) {
    return static_cast<std::uint32_t>(hash ^ (hash >> 32));
  }

  /// The entry holding `key`, or the free entry where it would go.
  std::size_t probe(std::string_view key, std::uint64_t hash) const {
    const std::size_t mask = entries_.size() - 1;
    const std::uint32_t wanted = tag(hash);
    for (std::size_t i = wanted & mask;; i = (i + 1) & mask) {
      const auto& entry = entries_[i];
      if (entry.slot == kAbsent) return i;
      if (entry.tag == wanted && this->key(entry.slot) == key) return i;
    }
  }

  void grow() {
    LargeArray<Entry> old = std::move(entries_);
    entries_.assign(old.size() * 2, Entry{});
    const std::size_t mask = entries_.size() - 1;
    for (const auto& entry : old) {
      if (entry.slot == kAbsent) continue;
      std::size_t i = entry.tag & mask;
      while (entries_[i].slot != kAbsent) i = (i + 1) & mask;
      entries_[i] = entry;
    }
  }

  LargeArray<Entry> entries_;
  std::basic_string<char, std::char_traits<char>, LargeArrayAllocator<char>> text_;
  LargeArray<std::uint32_t> ends_;  // by slot: where its key ends in text_
  std::uint32_t size_ = 0;
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
  /// mapped non-key field, and whether the source had the key too. The hashes are kept in
  /// blocks of about 4 MiB, so that growing never copies them nor needs twice their memory for
  /// a moment.
  class TargetIndex {
   public:
    /// `width`: the number of hashes each record has.
    explicit TargetIndex(std::size_t width)
        : width_(width),
          block_records_(std::max<std::size_t>(1, kBlockBytes / (sizeof(std::uint64_t) * std::max<std::size_t>(1, width)))) {}

    /// Where the lookup of a key of this hash starts, for the caller to prefetch.
    const void* entryOf(std::uint64_t key_hash) const { return keys_.entryOf(key_hash); }

    /// Adds a record: its key (key_hash = KeyTable::hashOf(key)) and its field hashes, width of
    /// them. False if the key was already there (the first one stays).
    bool add(std::string_view key, std::uint64_t key_hash, const std::uint64_t* hashes) {
      const auto slot = keys_.size();
      if (!keys_.insert(key, key_hash)) return false;
      if (slot % block_records_ == 0) blocks_.emplace_back().reserve(block_records_ * width_);
      blocks_.back().insert(blocks_.back().end(), hashes, hashes + width_);
      seen_.push_back(false);
      return true;
    }

    /// The slot of `key`, marking it seen; nullopt when the target does not have it.
    std::optional<std::uint32_t> visit(std::string_view key, std::uint64_t key_hash) {
      const auto slot = keys_.find(key, key_hash);
      if (slot == KeyTable::kAbsent) return std::nullopt;
      seen_[slot] = true;
      return slot;
    }

    /// The field hashes of the record in `slot`, width of them.
    const std::uint64_t* hashes(std::uint32_t slot) const {
      return blocks_[slot / block_records_].data() + (slot % block_records_) * width_;
    }

    /// Calls `unseen(key)` for every key the source did not have, in the target's order.
    template <class Fn>
    void forEachUnseen(Fn&& unseen) const {
      for (std::uint32_t slot = 0; slot < keys_.size(); ++slot) {
        if (!seen_[slot]) unseen(std::string(keys_.key(slot)));
      }
    }

   private:
    static constexpr std::size_t kBlockBytes = std::size_t{4} << 20;
    std::size_t width_;
    std::size_t block_records_;
    KeyTable keys_;
    std::vector<LargeArray<std::uint64_t>> blocks_;
    std::vector<bool> seen_;
  };

  /// What a full sync reads from records before it looks them up in the index, for a group of
  /// them at a time: each record's mapped values, its key and key hash, and its non-key field
  /// hashes. The index entries of the whole group are prefetched meanwhile, so that their
  /// lookups wait for memory once per group rather than once per record.
  class GroupScan {
   public:
    static constexpr std::size_t kRecords = 64;

    GroupScan(const std::vector<std::string>& names, std::size_t key_count)
        : reader_(names), key_count_(key_count), width_(reader_.size() - key_count),
          values_(kRecords * reader_.size()), keys_(kRecords), key_hashes_(kRecords),
          hashes_(kRecords * width_) {}

    /// Scans records[begin, min(begin + kRecords, size)) and returns the end of the group.
    std::size_t scan(const std::vector<Record>& records, std::size_t begin,
                     const TargetIndex& index) {
      const std::size_t end = std::min(records.size(), begin + kRecords);
      for (std::size_t i = begin; i < end; ++i) {
        const std::size_t r = i - begin;
        const Json** values = &values_[r * reader_.size()];
        reader_.read(records[i].fields, values);
        buildKey(keys_[r], values, key_count_);
        key_hashes_[r] = KeyTable::hashOf(keys_[r]);
        __builtin_prefetch(index.entryOf(key_hashes_[r]));
        for (std::size_t f = 0; f < width_; ++f) {
          const Json* value = values[key_count_ + f];
          hashes_[r * width_ + f] = value == nullptr ? kNull : hashJson(*value);
        }
      }
      return end;
    }

    // Of the r-th record of the group scanned last:
    const std::string& key(std::size_t r) const { return keys_[r]; }
    std::uint64_t keyHash(std::size_t r) const { return key_hashes_[r]; }
    /// The values of all mapped fields (nullptr when missing), in mapping order.
    const Json* const* values(std::size_t r) const { return &values_[r * reader_.size()]; }
    /// The hashes of the non-key fields, in mapping order.
    const std::uint64_t* hashes(std::size_t r) const { return &hashes_[r * width_]; }

   private:
    FieldReader reader_;
    std::size_t key_count_;
    std::size_t width_;
    std::vector<const Json*> values_;
    std::vector<std::string> keys_;
    std::vector<std::uint64_t> key_hashes_;
    std::vector<std::uint64_t> hashes_;
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
      const std::size_t width = mapping_.fields.size() - mapping_.key_count;
      TargetIndex index(width);
      std::int64_t duplicates = 0;
      GroupScan target_scan(target_names_, mapping_.key_count);
      run_.fetch(Side::Target, request(Side::Target, FetchMode::Full), [&](RecordBatch& batch) {
        report_.fetched_target += static_cast<std::int64_t>(batch.records.size());
        for (std::size_t begin = 0; begin < batch.records.size();) {
          const std::size_t end = target_scan.scan(batch.records, begin, index);
          for (std::size_t r = 0; r < end - begin; ++r) {
            const bool added = index.add(target_scan.key(r), target_scan.keyHash(r), target_scan.hashes(r));
            if (!added) ++duplicates;
          }
          begin = end;
        }
      });
      if (duplicates > 0) {
        run_.log(SYNCPOD_LOG_WARN, "stream " + mapping_.name + ": the target has " +
                                       std::to_string(duplicates) + " records with a key seen before; the first one counts");
      }

      std::vector<std::string> keyed;               // need both sides' values
      std::vector<std::string> missing_on_target;   // the source has them, the target does not
      const bool target_compares_itself = run_.engine_.target_.hasCustomDiff();
      GroupScan source_scan(source_names_, mapping_.key_count);
      run_.fetch(Side::Source, request(Side::Source, FetchMode::Full), [&](RecordBatch& batch) {
        report_.fetched_source += static_cast<std::int64_t>(batch.records.size());
        for (std::size_t begin = 0; begin < batch.records.size();) {
          const std::size_t end = source_scan.scan(batch.records, begin, index);
          for (std::size_t r = 0; r < end - begin; ++r) {
            ++run_.progress_.diffed;
            const std::string& key = source_scan.key(r);
            const auto slot = index.visit(key, source_scan.keyHash(r));
            if (!slot) {
              if (mapping_.record_owner == Side::Source) {
                to_target_.add(create(batch.records[begin + r].fields, Side::Source, key));
              } else {
                missing_on_target.push_back(key);
              }
              continue;
            }
            const std::uint64_t* target_hashes = index.hashes(*slot);
            const std::uint64_t* source_hashes = source_scan.hashes(r);
            const Json* const* values = source_scan.values(r);
            Json update;  // null until a field goes in: most records have none
            bool needs_target_values = false;
            for (std::size_t f = 0; f < width; ++f) {
              if (source_hashes[f] == target_hashes[f]) continue;
              const std::size_t i = mapping_.key_count + f;
              if (mapping_.fields[i].owner == Side::Target || target_compares_itself) {
                needs_target_values = true;
              } else {
                update[target_names_[i]] = values[i] == nullptr ? Json() : *values[i];
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
          begin = end;
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
