// A connector for the kit's own tests: correct with {"fault": "none"}, and breaking exactly one
// rule the conformance suite checks with any other fault, so each check is shown to fail for
// the plugin it is meant to catch. Stream "items", key "id"; records live in memory, in a store
// per config "name" shared by the library's instances (the foreign system of these tests).
//
// Built three times: as is; with FAULTY_BAD_MANIFEST (an invalid manifest); with
// FAULTY_CHANGING_MANIFEST (a manifest that differs on every load).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <syncpod/sdk.hpp>

namespace faulty {

using syncpod::Json;

struct Entry {
  Json fields;
  std::uint64_t revision = 0;
  bool deleted = false;
};

struct Store {
  std::uint64_t revision = 0;
  std::map<std::string, Entry> entries;
};

/// The stores of every config name. Plugin-global on purpose: it is the foreign system, and a
/// reload starts it afresh.
struct Stores {
  std::mutex mutex;
  std::map<std::string, Store> by_name;
};

Stores& stores() {
  static Stores instance;
  return instance;
}

const std::vector<std::string>& faults() {
  static const std::vector<std::string> names = {"none",
                                                 "unstable_fetch",
                                                 "plan_writes",
                                                 "no_noop",
                                                 "keys_returns_all",
                                                 "no_cursor",
                                                 "cursor_ignored",
                                                 "misses_deletes",
                                                 "accepts_anything",
                                                 "leaks_secret",
                                                 "batch_too_big",
                                                 "ignores_cancel",
                                                 "memory_only",
                                                 "unknown_stream_ok",
                                                 "host_after_call",
                                                 "wrong_result_count"};
  return names;
}

class Faulty : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
    syncpod::Manifest manifest;
    manifest.id = "faulty";
    manifest.version = "1.0.0";
    manifest.description = "A connector that breaks one rule on request (testkit tests)";
#ifdef FAULTY_CHANGING_MANIFEST
    // Counts loads in the environment, which outlives the library: every load differs.
    const char* loads = std::getenv("SYNCPOD_FAULTY_LOADS");
    const std::string next = std::to_string((loads ? std::atoi(loads) : 0) + 1);
    ::setenv("SYNCPOD_FAULTY_LOADS", next.c_str(), 1);
    manifest.description += " (load " + next + ")";
#endif
    manifest.streams = {{"items", {"id"}, "Items"}};
    manifest.capabilities.fetch_modes = {syncpod::FetchMode::Full, syncpod::FetchMode::Incremental,
                                         syncpod::FetchMode::Keys};
    manifest.capabilities.deletion_detection = true;
    manifest.config_schema = {{"type", "object"},
                              {"properties",
                               {{"name", {{"type", "string"}, {"minLength", 1}}},
                                {"fault", {{"type", "string"}, {"enum", faults()}}},
                                {"token", {{"type", "string"}, {"writeOnly", true}}}}},
                              {"required", {"name"}},
                              {"additionalProperties", false}};
#ifdef FAULTY_BAD_MANIFEST
    manifest.id = "Faulty Connector!";
    manifest.config_schema["properties"]["name"]["oneOf"] = Json::array();
#endif
    return manifest;
  }

  Faulty(const Json& config, syncpod::Context& context)
      : name_(config.at("name").get<std::string>()),
        fault_(config.value("fault", "none")),
        token_(config.value("token", "")) {
    if (fault_ != "accepts_anything" && name_.find('/') != std::string::npos) {
      throw syncpod::invalid("name must not contain '/'");
    }
    if (is("host_after_call")) saved_host_ = context.host();
  }

  ~Faulty() override {
    // The host table is valid only during the call it was passed to.
    if (saved_host_ != nullptr) {
      saved_host_->log(saved_host_->context, SYNCPOD_LOG_INFO, syncpod::Context::bytes("closing"));
    }
  }

  void check(syncpod::Context& context) override {
    if (!context.secret("faulty-token")) throw syncpod::unauthorized("no secret faulty-token");
    if (is("leaks_secret")) context.info("connecting with token " + token_);
  }

  void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
             syncpod::Context& context) override {
    requireStream(request.stream);
    Store store = snapshot();
    std::vector<std::pair<std::string, const Entry*>> selected;
    switch (request.mode) {
      case syncpod::FetchMode::Full:
        for (const auto& [id, entry] : store.entries) {
          if (!entry.deleted) selected.emplace_back(id, &entry);
        }
        break;
      case syncpod::FetchMode::Keys: {
        std::set<std::string> wanted;
        for (const auto& key : request.keys) wanted.insert(key.at(0));
        for (const auto& [id, entry] : store.entries) {
          if (!entry.deleted && (is("keys_returns_all") || wanted.count(id) != 0)) {
            selected.emplace_back(id, &entry);
          }
        }
        break;
      }
      case syncpod::FetchMode::Incremental: {
        std::uint64_t since = 0;
        if (request.cursor && !is("cursor_ignored")) since = std::stoull(*request.cursor);
        for (const auto& [id, entry] : store.entries) {
          const bool tombstone_wanted = since > 0 && !is("misses_deletes");
          if (entry.revision > since && (!entry.deleted || tombstone_wanted)) {
            selected.emplace_back(id, &entry);
          }
        }
        std::sort(selected.begin(), selected.end(), [](const auto& a, const auto& b) {
          return a.second->revision < b.second->revision;
        });
        break;
      }
    }
    if (is("batch_too_big") || is("ignores_cancel")) {
      emitDirectly(selected, request, context);
      return;
    }
    static std::int64_t fetches = 0;
    ++fetches;
    for (const auto& [id, entry] : selected) {
      syncpod::Record record{entry->fields, std::to_string(entry->revision), entry->deleted};
      if (entry->deleted) record.fields = {{"id", id}};
      if (is("unstable_fetch")) record.fields["fetch_number"] = fetches;
      sink.push(std::move(record));
      if (request.mode == syncpod::FetchMode::Incremental && !is("no_cursor")) {
        sink.setCursor(std::to_string(entry->revision));
      }
    }
    if (request.mode == syncpod::FetchMode::Incremental && !is("no_cursor")) {
      sink.setCursor(std::to_string(store.revision));
    }
    context.progress("fetched", static_cast<std::int64_t>(selected.size()));
  }

  std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset,
                                           syncpod::ApplyMode mode,
                                           syncpod::Context& context) override {
    requireStream(changeset.stream);
    Store store = snapshot();
    std::vector<syncpod::ChangeResult> results;
    for (const auto& change : changeset.changes) results.push_back(applyOne(store, change));
    if (mode == syncpod::ApplyMode::Commit || is("plan_writes")) save(std::move(store));
    context.debug("applied " + std::to_string(results.size()) + " changes");
    if (is("wrong_result_count")) results.pop_back();
    return results;
  }

 private:
  bool is(const char* fault) const {
    return fault_ == fault;
  }

  void requireStream(const std::string& stream) const {
    if (stream != "items" && !is("unknown_stream_ok"))
      throw syncpod::invalid("no stream \"" + stream + "\"");
  }

  Store snapshot() {
    if (is("memory_only")) return own_;
    std::lock_guard lock(stores().mutex);
    return stores().by_name[name_];
  }

  void save(Store&& store) {
    if (is("memory_only")) {
      own_ = std::move(store);
      return;
    }
    std::lock_guard lock(stores().mutex);
    stores().by_name[name_] = std::move(store);
  }

  syncpod::ChangeResult applyOne(Store& store, const syncpod::Change& change) const {
    const std::string& id = change.key.at(0);
    const auto found = store.entries.find(id);
    const bool exists = found != store.entries.end() && !found->second.deleted;
    const syncpod::ChangeResult noop{
        is("no_noop") ? syncpod::ChangeStatus::Applied : syncpod::ChangeStatus::Noop, ""};
    switch (change.op) {
      case syncpod::ChangeOp::Create:
      case syncpod::ChangeOp::Update: {
        if (change.op == syncpod::ChangeOp::Update && !exists) {
          return {syncpod::ChangeStatus::Conflict, "no item " + id};
        }
        Json fields =
            change.op == syncpod::ChangeOp::Update ? found->second.fields : Json::object();
        fields.update(change.fields);
        fields["id"] = id;
        if (exists && fields == found->second.fields) return noop;
        store.entries[id] = {std::move(fields), ++store.revision, false};
        return {syncpod::ChangeStatus::Applied, ""};
      }
      case syncpod::ChangeOp::Delete:
        if (!exists) return noop;
        found->second = {Json{{"id", id}}, ++store.revision, true};
        return {syncpod::ChangeStatus::Applied, ""};
    }
    return {syncpod::ChangeStatus::Rejected, "unknown operation"};
  }

  /// Emits the records straight to the host: all in one batch ("batch_too_big"), or one batch
  /// each without ever asking whether to stop ("ignores_cancel").
  void emitDirectly(const std::vector<std::pair<std::string, const Entry*>>& selected,
                    const syncpod::FetchRequest& request, syncpod::Context& context) const {
    const auto emit = [&](Json records) {
      const std::string text =
          Json{{"stream", request.stream}, {"records", std::move(records)}}.dump();
      context.host()->emit(context.host()->context, syncpod::Context::bytes(text));
    };
    Json all = Json::array();
    for (const auto& [id, entry] : selected) {
      Json record =
          syncpod::toJson(syncpod::Record{entry->fields, std::to_string(entry->revision), false});
      if (is("ignores_cancel")) {
        emit(Json::array({record}));
      } else {
        all.push_back(std::move(record));
      }
    }
    if (is("batch_too_big")) emit(std::move(all));
  }

  std::string name_;
  std::string fault_;
  std::string token_;
  const syncpod_host* saved_host_ = nullptr;
  Store own_;
};

}  // namespace faulty

SYNCPOD_PLUGIN(faulty::Faulty)
