// A well-behaved connector over records held in memory, for tests of the host's plugin plumbing:
// fetch (full, incremental by "seq", keys), apply, check, logs, progress, secrets and
// cancellation. Built twice: `memory` compares records with the SDK's default diff,
// `memory-loose` (MEMORY_LOOSE_DIFF) overrides diff and treats 1 and "1" as equal.
//
// Config: {"records": {"<stream>": [{fields}...]}, "token": "<secret>", "secret_name": "<name>"}.
// check refuses the token "wrong" (quoting it, so tests can see the host redact it); fetch reads
// the host secret named by secret_name and logs it (likewise).

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <syncpod/sdk.hpp>

namespace {

using syncpod::ChangeOp;
using syncpod::ChangeResult;
using syncpod::ChangeStatus;
using syncpod::Json;

#ifdef MEMORY_LOOSE_DIFF
constexpr const char* kId = "memory-loose";
#else
constexpr const char* kId = "memory";
#endif

class MemoryConnector final : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
    syncpod::Manifest manifest;
    manifest.id = kId;
    manifest.version = "1.2.3";
    manifest.description = "Records held in memory, for tests";
    manifest.streams = {{"items", {"id"}, "Items given in the config"}};
    manifest.capabilities.fetch_modes = {syncpod::FetchMode::Full, syncpod::FetchMode::Incremental,
                                         syncpod::FetchMode::Keys};
    manifest.capabilities.incremental_cursor_field = "seq";
    manifest.capabilities.configurable_streams = true;
    manifest.config_schema = {
        {"type", "object"},
        {"properties",
         {{"records",
           {{"type", "object"},
            {"description", "the records of each stream"},
            {"additionalProperties", {{"type", "array"}, {"items", {{"type", "object"}}}}}}},
          {"token",
           {{"type", "string"},
            {"writeOnly", true},
            {"description", "access token; check refuses \"wrong\""}}},
          {"secret_name", {{"type", "string"}, {"description", "a host secret fetch reads"}}}}},
        {"required", {"records"}},
        {"additionalProperties", false}};
    return manifest;
  }

  MemoryConnector(const Json& config, syncpod::Context& context)
      : records_(config.at("records").get<std::map<std::string, std::vector<Json>>>()),
        token_(config.value("token", "")),
        secret_name_(config.value("secret_name", "")) {
    context.debug("opened with " + std::to_string(records_.size()) + " stream(s)");
  }

  void check(syncpod::Context& context) override {
    context.info("checking");
    if (token_ == "wrong") throw syncpod::unauthorized("the token " + token_ + " was refused");
  }

  void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
             syncpod::Context& context) override {
    context.info("fetching " + request.stream + " (" +
                 std::string(syncpod::toString(request.mode)) + ")");
    if (!secret_name_.empty()) {
      const auto secret = context.secret(secret_name_);
      if (!secret) throw syncpod::invalid("no secret named " + secret_name_);
      context.info("secret has " + std::to_string(secret->size()) + " characters");
      context.info("using secret " + *secret);
    }
    const auto stream = records_.find(request.stream);
    if (stream == records_.end()) throw syncpod::invalid("unknown stream " + request.stream);

    long long cursor = request.cursor ? std::stoll(*request.cursor) : -1;
    long long reached = cursor;
    for (const auto& fields : stream->second) {
      if (request.mode == syncpod::FetchMode::Incremental) {
        const long long seq = fields.value("seq", 0LL);
        if (seq <= cursor) continue;
        reached = std::max(reached, seq);
      }
      if (request.mode == syncpod::FetchMode::Keys) {
        const auto key = syncpod::keyOf(fields, request.key_fields);
        if (std::find(request.keys.begin(), request.keys.end(), key) == request.keys.end())
          continue;
      }
      syncpod::Record record;
      record.fields = fields;
      if (const auto seq = fields.find("seq"); seq != fields.end()) record.version = seq->dump();
      sink.push(std::move(record));
      context.progress("fetched", 1);
    }
    if (request.mode == syncpod::FetchMode::Incremental && reached >= 0) {
      sink.setCursor(std::to_string(reached));
    }
  }

#ifdef MEMORY_LOOSE_DIFF
  std::vector<std::string> diff(const std::string& stream, const Json& current, const Json& desired,
                                syncpod::Context& context) override {
    (void)stream;
    (void)context;
    std::vector<std::string> changed;
    for (const auto& [name, value] : desired.items()) {
      const auto found = current.find(name);
      if (found == current.end() || syncpod::keyText(*found) != syncpod::keyText(value)) {
        changed.push_back(name);
      }
    }
    return changed;
  }
#endif

  std::vector<ChangeResult> apply(const syncpod::Changeset& changeset, syncpod::ApplyMode mode,
                                  syncpod::Context& context) override {
    auto& records = records_[changeset.stream];
    std::vector<ChangeResult> results;
    for (const auto& change : changeset.changes) {
      const auto found = std::find_if(records.begin(), records.end(), [&](const Json& fields) {
        return syncpod::keyOf(fields, changeset.key_fields) == change.key;
      });
      const bool commit = mode == syncpod::ApplyMode::Commit;
      switch (change.op) {
        case ChangeOp::Create:
          if (found != records.end()) {
            results.push_back({ChangeStatus::Rejected, "already exists"});
            break;
          }
          if (commit) records.push_back(change.fields);
          results.push_back({ChangeStatus::Applied, ""});
          break;
        case ChangeOp::Update:
          if (found == records.end()) {
            results.push_back({ChangeStatus::Rejected, "no such record"});
          } else if (Connector::defaultDiff(*found, change.fields).empty()) {
            results.push_back({ChangeStatus::Noop, ""});
          } else {
            if (commit) found->update(change.fields);
            results.push_back({ChangeStatus::Applied, ""});
          }
          break;
        case ChangeOp::Delete:
          if (found == records.end()) {
            results.push_back({ChangeStatus::Noop, ""});
          } else {
            if (commit) records.erase(found);
            results.push_back({ChangeStatus::Applied, ""});
          }
          break;
      }
      context.progress("applied", 1);
    }
    return results;
  }

 private:
  std::map<std::string, std::vector<Json>> records_;
  std::string token_;
  std::string secret_name_;
};

}  // namespace

SYNCPOD_PLUGIN(MemoryConnector)
