// hello-connector: a complete syncpod connector plugin. It keeps the records of one stream,
// "greetings" (key "id"), in a JSON file, greetings.json, in the directory its config names.
//
// It shows what a real connector does: a manifest with a config schema, config checks the
// schema cannot express, check, fetch in all three modes (full, incremental with a cursor and
// deletions, by keys) streamed through the RecordSink, and apply with one result per change,
// plan mode, noop detection and optimistic concurrency (expected_version).
//
// The file is the "foreign system". Each write takes a lock, and replaces the file atomically
// (temporary file, fsync, rename), so readers never see half a file and two writers never lose
// each other's changes.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include <syncpod/sdk.hpp>
#include <sys/file.h>

namespace hello {
namespace {

namespace fs = std::filesystem;
using syncpod::Json;

constexpr const char* kStream = "greetings";
constexpr const char* kKeyField = "id";
constexpr const char* kFileName = "greetings.json";
constexpr const char* kLockName = "greetings.lock";

/// A failed system call on `path`, as one line with the system's reason.
std::runtime_error ioError(const std::string& what, const fs::path& path) {
  return std::runtime_error("cannot " + what + " " + path.string() + ": " + std::strerror(errno));
}

/// One greeting as stored. A deleted greeting stays as a tombstone so that an incremental fetch
/// can report the deletion; every write takes the next revision of the store.
struct Entry {
  Json fields = Json::object();
  std::uint64_t revision = 0;
  bool deleted = false;
};

/// The contents of greetings.json:
///   {"revision": 7, "greetings": {"<id>": {"fields": {...}, "revision": 3, "deleted": false}}}
struct Store {
  std::uint64_t revision = 0;  ///< the last revision handed out
  std::map<std::string, Entry> entries;

  bool has(const std::string& id) const {
    const auto found = entries.find(id);
    return found != entries.end() && !found->second.deleted;
  }
};

Json toJson(const Store& store) {
  Json greetings = Json::object();
  for (const auto& [id, entry] : store.entries) {
    greetings[id] = {
        {"fields", entry.fields}, {"revision", entry.revision}, {"deleted", entry.deleted}};
  }
  return {{"revision", store.revision}, {"greetings", std::move(greetings)}};
}

Store storeFromJson(const Json& json, const fs::path& file) {
  const auto corrupt = [&](const std::string& why) {
    return std::runtime_error(file.string() + " is not a greetings file: " + why);
  };
  if (!json.is_object() || !json.contains("revision") || !json["revision"].is_number_unsigned() ||
      !json.contains("greetings") || !json["greetings"].is_object()) {
    throw corrupt("it needs \"revision\" (a number) and \"greetings\" (an object)");
  }
  Store store;
  store.revision = json["revision"].get<std::uint64_t>();
  for (const auto& [id, item] : json["greetings"].items()) {
    if (!item.is_object() || !item.contains("fields") || !item["fields"].is_object() ||
        !item.contains("revision") || !item["revision"].is_number_unsigned()) {
      throw corrupt("greeting \"" + id +
                    "\" needs \"fields\" (an object) and \"revision\" (a number)");
    }
    store.entries[id] = {item["fields"], item["revision"].get<std::uint64_t>(),
                         item.value("deleted", false)};
  }
  return store;
}

/// An exclusive lock on the directory's lock file, held while it lives.
class WriteLock {
 public:
  explicit WriteLock(const fs::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw ioError("open the lock file", path);
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const auto error = ioError("lock", path);
        ::close(fd_);
        throw error;
      }
    }
  }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;
  ~WriteLock() { ::close(fd_); }  // closing releases the lock

 private:
  int fd_;
};

class HelloConnector : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
    syncpod::Manifest manifest;
    manifest.id = "hello";
    manifest.version = "1.0.0";
    manifest.description = "Greetings in a JSON file: the example connector of the syncpod SDK";
    manifest.streams = {{kStream, {kKeyField}, "Greetings: an \"id\" and any other fields"}};
    manifest.capabilities.fetch_modes = {syncpod::FetchMode::Full, syncpod::FetchMode::Incremental,
                                         syncpod::FetchMode::Keys};
    manifest.capabilities.apply_ops = {syncpod::ChangeOp::Create, syncpod::ChangeOp::Update,
                                       syncpod::ChangeOp::Delete};
    manifest.capabilities.deletion_detection = true;
    manifest.config_schema = {
        {"type", "object"},
        {"properties",
         {{"directory",
           {{"type", "string"},
            {"minLength", 1},
            {"description",
             "Absolute path of an existing directory; greetings.json is kept there"}}}}},
        {"required", {"directory"}},
        {"additionalProperties", false}};
    return manifest;
  }

  /// The schema has checked the config's shape; what it cannot say is checked here. No file is
  /// touched: open must not reach the foreign system (check does).
  explicit HelloConnector(const Json& config)
      : directory_(config.at("directory").get<std::string>()) {
    if (!directory_.is_absolute()) {
      throw syncpod::invalid("directory must be an absolute path, not \"" + directory_.string() +
                             "\"");
    }
  }

  void check(syncpod::Context& context) override {
    std::error_code error;
    if (!fs::is_directory(directory_, error)) {
      throw syncpod::invalid("directory " + directory_.string() + " does not exist");
    }
    if (::access(directory_.c_str(), R_OK | W_OK | X_OK) != 0) {
      throw syncpod::invalid("directory " + directory_.string() +
                             " is not writable: " + std::strerror(errno));
    }
    const Store store = read();
    context.debug("greetings.json holds revision " + std::to_string(store.revision));
  }

  void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
             syncpod::Context& context) override {
    (void)context;  // cancellation reaches us through the sink, which throws Cancelled
    requireStream(request.stream);
    requireKeyFields(request.key_fields);
    const Store store = read();
    switch (request.mode) {
      case syncpod::FetchMode::Full:
        for (const auto& [id, entry] : store.entries) {
          if (!entry.deleted) sink.push(record(id, entry));
        }
        break;
      case syncpod::FetchMode::Keys: {
        // A set: a key asked for twice is returned once; keys without a greeting are skipped.
        std::set<std::string> ids;
        for (const auto& key : request.keys) {
          if (key.size() != 1) throw syncpod::invalid("a greeting's key is one id");
          ids.insert(key.front());
        }
        for (const auto& id : ids) {
          if (store.has(id)) sink.push(record(id, store.entries.at(id)));
        }
        break;
      }
      case syncpod::FetchMode::Incremental: fetchChanges(store, request.cursor, sink); break;
    }
  }

  std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset,
                                           syncpod::ApplyMode mode,
                                           syncpod::Context& context) override {
    requireStream(changeset.stream);
    requireKeyFields(changeset.key_fields);
    const bool commit = mode == syncpod::ApplyMode::Commit;
    // Plan mode only reads; a commit holds the lock from reading to writing.
    std::optional<WriteLock> lock;
    if (commit) lock.emplace(directory_ / kLockName);
    Store store = read();
    const std::uint64_t read_revision = store.revision;

    std::vector<syncpod::ChangeResult> results;
    results.reserve(changeset.changes.size());
    std::map<syncpod::ChangeStatus, std::size_t> counts;
    for (const auto& change : changeset.changes) {
      results.push_back(applyOne(store, change));
      ++counts[results.back().status];
    }
    if (commit && store.revision != read_revision) {
      context.throwIfCancelled();  // the last moment at which stopping leaves nothing half done
      write(store);
    }
    context.info(std::string(commit ? "applied" : "planned") + " " +
                 std::to_string(results.size()) +
                 " changes: " + std::to_string(counts[syncpod::ChangeStatus::Applied]) +
                 " applied, " + std::to_string(counts[syncpod::ChangeStatus::Noop]) + " noop, " +
                 std::to_string(results.size() - counts[syncpod::ChangeStatus::Applied] -
                                counts[syncpod::ChangeStatus::Noop]) +
                 " refused");
    return results;
  }

 private:
  static void requireStream(const std::string& stream) {
    if (stream != kStream)
      throw syncpod::invalid("hello has no stream \"" + stream + "\"; its stream is greetings");
  }

  static void requireKeyFields(const std::vector<std::string>& key_fields) {
    if (!key_fields.empty() && key_fields != std::vector<std::string>{kKeyField}) {
      throw syncpod::invalid("greetings are keyed by \"id\", not " + Json(key_fields).dump());
    }
  }

  static syncpod::Record record(const std::string& id, const Entry& entry) {
    syncpod::Record record;
    record.version = std::to_string(entry.revision);
    if (entry.deleted) {
      record.fields = {{kKeyField, id}};
      record.deleted = true;
    } else {
      record.fields = entry.fields;
    }
    return record;
  }

  /// Greetings written after `cursor` (all live ones without a cursor), oldest first, with the
  /// deletions since the cursor. The cursor is the store revision reached: each record's own
  /// revision while they stream, so a fetch cut short resumes where it stopped.
  static void fetchChanges(const Store& store, const std::optional<std::string>& cursor,
                           syncpod::RecordSink& sink) {
    std::uint64_t since = 0;
    if (cursor) {
      const char* end = cursor->data() + cursor->size();
      const auto [parsed_end, error] = std::from_chars(cursor->data(), end, since);
      if (error != std::errc() || parsed_end != end || cursor->empty()) {
        throw syncpod::invalid("cursor \"" + *cursor + "\" is not a hello revision");
      }
      if (since > store.revision) {
        throw syncpod::invalid("cursor " + *cursor + " is ahead of greetings.json (revision " +
                               std::to_string(store.revision) + "); was the file replaced?");
      }
    }
    std::vector<std::pair<std::string, const Entry*>> changed;
    for (const auto& [id, entry] : store.entries) {
      // Without a cursor there is nothing to delete from, so tombstones are left out.
      if (entry.revision > since && (cursor || !entry.deleted)) changed.emplace_back(id, &entry);
    }
    std::sort(changed.begin(), changed.end(),
              [](const auto& a, const auto& b) { return a.second->revision < b.second->revision; });
    for (const auto& [id, entry] : changed) {
      sink.push(record(id, *entry));
      sink.setCursor(std::to_string(entry->revision));
    }
    sink.setCursor(std::to_string(store.revision));
  }

  /// One change against the store (a copy in plan mode): its result, and the store as it would
  /// be after it.
  static syncpod::ChangeResult applyOne(Store& store, const syncpod::Change& change) {
    using syncpod::ChangeStatus;
    if (change.key.size() != 1 || change.key.front().empty()) {
      return {ChangeStatus::Rejected, "a greeting's key is one non-empty id"};
    }
    const std::string& id = change.key.front();
    const bool exists = store.has(id);
    if (change.expected_version && exists &&
        *change.expected_version != std::to_string(store.entries.at(id).revision)) {
      return {ChangeStatus::Conflict, "greeting " + id +
                                          " changed since it was read (now revision " +
                                          std::to_string(store.entries.at(id).revision) + ")"};
    }
    if (change.op == syncpod::ChangeOp::Delete) {
      if (!exists) return {ChangeStatus::Noop, ""};
      store.entries[id] = {Json::object(), ++store.revision, true};
      return {ChangeStatus::Applied, ""};
    }
    if (const auto given = change.fields.find(kKeyField);
        given != change.fields.end() && syncpod::keyText(*given) != id) {
      return {ChangeStatus::Rejected,
              "the id of greeting " + id + " cannot change to " + given->dump()};
    }
    Json fields;
    if (change.op == syncpod::ChangeOp::Update) {
      if (!exists)
        return {ChangeStatus::Conflict,
                "greeting " + id + " does not exist (deleted since it was read?)"};
      fields = store.entries.at(id).fields;
      fields.update(change.fields);
    } else {
      // A create of a greeting that exists replaces it: the host creates what it did not see.
      fields = change.fields;
      if (!fields.contains(kKeyField)) fields[kKeyField] = id;
    }
    if (exists && fields == store.entries.at(id).fields) return {ChangeStatus::Noop, ""};
    store.entries[id] = {std::move(fields), ++store.revision, false};
    return {ChangeStatus::Applied, ""};
  }

  fs::path file() const { return directory_ / kFileName; }

  /// The store; empty if greetings.json does not exist yet.
  Store read() const {
    const fs::path path = file();
    std::error_code error;
    if (!fs::exists(path, error)) {
      if (error) throw std::runtime_error("cannot read " + path.string() + ": " + error.message());
      return {};
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ioError("read", path);
    std::ostringstream text;
    text << in.rdbuf();
    const auto json = Json::parse(text.str(), nullptr, false);
    if (json.is_discarded()) throw std::runtime_error(path.string() + " is not valid JSON");
    return storeFromJson(json, path);
  }

  /// Replaces greetings.json with `store`: readers see the old file or the new one, never a
  /// mix, and after a crash the file is whole.
  void write(const Store& store) const {
    const fs::path target = file();
    const fs::path temporary = directory_ / (std::string(kFileName) + ".tmp");  // the lock is ours
    const std::string text = toJson(store).dump(2) + "\n";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw ioError("create", temporary);
    std::size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const auto error = ioError("write", temporary);
        ::close(fd);
        throw error;
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
      const auto error = ioError("flush", temporary);
      ::close(fd);
      throw error;
    }
    if (::close(fd) != 0) throw ioError("close", temporary);
    if (::rename(temporary.c_str(), target.c_str()) != 0) throw ioError("replace", target);
  }

  fs::path directory_;
};

}  // namespace
}  // namespace hello

SYNCPOD_PLUGIN(hello::HelloConnector)
