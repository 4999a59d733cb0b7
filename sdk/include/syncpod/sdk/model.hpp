// The data model shared by plugins and the host: records, fetch requests, changesets, results
// and the manifest, each with its JSON form (the form that crosses the ABI, see
// docs/plugin-abi.md).
//
// Records travel in batches and are never all held at once: a fetch streams them through a
// RecordSink, and the host keeps only a compact index of what it has seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "syncpod/abi.h"

namespace syncpod {

using Json = nlohmann::json;

/// Thrown by plugin code to end a call with a given status; SYNCPOD_PLUGIN turns it into that
/// status and its message. Any other exception becomes SYNCPOD_FAILED.
class PluginError : public std::runtime_error {
 public:
  PluginError(syncpod_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  syncpod_status status() const { return status_; }

 private:
  syncpod_status status_;
};

/// The config or request is wrong; retrying cannot help.
inline PluginError invalid(const std::string& message) { return {SYNCPOD_INVALID, message}; }
/// A temporary failure; the job may be retried later.
inline PluginError retryable(const std::string& message) { return {SYNCPOD_RETRYABLE, message}; }
/// The foreign system refused the credentials.
inline PluginError unauthorized(const std::string& message) {
  return {SYNCPOD_UNAUTHORIZED, message};
}

/// One record of a stream. Its key is not stored: it is the value of the stream's key fields,
/// which the host reads from `fields` (see keyOf).
struct Record {
  Json fields = Json::object();
  /// A change marker of the foreign system (updated_at, etag, sys_mod_count…), if it has one.
  std::optional<std::string> version;
  /// A deletion reported by an incremental fetch (a tombstone): only `fields`' key fields count.
  bool deleted = false;
};

/// The text form of one key field value: strings as they are, numbers and booleans as their
/// JSON text, null as "". Two systems agree on a key when these texts are equal, so 42 and
/// "42" name the same record.
inline std::string keyText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return {};
  return value.dump();
}

/// A record's key: the texts of its key fields, in key-field order. A missing field is "".
inline std::vector<std::string> keyOf(const Json& fields, const std::vector<std::string>& key_fields) {
  std::vector<std::string> key;
  key.reserve(key_fields.size());
  for (const auto& name : key_fields) {
    const auto found = fields.find(name);
    key.push_back(found == fields.end() ? std::string() : keyText(*found));
  }
  return key;
}

enum class FetchMode {
  Full = 1,         ///< every record of the stream
  Incremental = 2,  ///< records changed since `cursor` (all of them when there is no cursor)
  Keys = 3,         ///< the records with the given keys (missing ones are simply not emitted)
};

struct FetchRequest {
  std::string stream;
  FetchMode mode = FetchMode::Full;
  /// The cursor a previous incremental fetch ended with; opaque to the host.
  std::optional<std::string> cursor;
  /// The fields that make up the stream's key, as the integration maps them.
  std::vector<std::string> key_fields;
  /// For FetchMode::Keys: each key's field texts, in key_fields order.
  std::vector<std::vector<std::string>> keys;
  /// How many records the host wants per emitted batch.
  std::size_t batch_size = 1000;
};

enum class ChangeOp { Create = 1, Update = 2, Delete = 3 };

struct Change {
  ChangeOp op = ChangeOp::Create;
  /// The record's key texts, in the changeset's key_fields order.
  std::vector<std::string> key;
  /// Create: every field to write. Update: only the fields to change. Delete: empty.
  Json fields = Json::object();
  /// The version the host last saw, for plugins that detect concurrent edits (optional).
  std::optional<std::string> expected_version;
};

struct Changeset {
  std::string stream;
  std::vector<std::string> key_fields;
  std::vector<Change> changes;
};

enum class ApplyMode {
  Plan = 1,    ///< say what would happen; write nothing
  Commit = 2,  ///< write
};

enum class ChangeStatus {
  Applied = 1,    ///< written (or, in plan mode, would be written)
  Noop = 2,       ///< the system already holds this; nothing to write
  Conflict = 3,   ///< the record changed since it was read (expected_version no longer holds)
  Retryable = 4,  ///< a temporary failure for this change; a later job may succeed
  Rejected = 5,   ///< the system refused the change (validation, permissions); see message
};

struct ChangeResult {
  ChangeStatus status = ChangeStatus::Applied;
  std::string message;
};

struct StreamInfo {
  std::string name;
  std::vector<std::string> key_fields;
  std::string description;
};

struct Capabilities {
  /// Fetch modes the plugin implements; Full is required.
  std::vector<FetchMode> fetch_modes = {FetchMode::Full, FetchMode::Keys};
  /// Operations apply implements; empty for a read-only connector.
  std::vector<ChangeOp> apply_ops = {ChangeOp::Create, ChangeOp::Update, ChangeOp::Delete};
  /// The field an incremental fetch orders and resumes by (e.g. "updated_at"), if any.
  std::optional<std::string> incremental_cursor_field;
  /// Whether an incremental fetch reports deletions (records with deleted = true).
  bool deletion_detection = false;
  /// Whether streams are named by the config (files, tables) rather than fixed by the plugin.
  bool configurable_streams = false;
};

struct Manifest {
  std::string id;           ///< lower-case letters, digits, '-' and '_'; unique per host
  std::string version;      ///< semantic version of the plugin, e.g. "1.2.0"
  std::string description;
  std::vector<StreamInfo> streams;
  Capabilities capabilities;
  /// JSON Schema (the subset json_schema.hpp implements) of the endpoint config; properties
  /// marked "writeOnly": true are secrets and are never shown back.
  Json config_schema = Json::object();
};

// ------------------------------------------------------------------------------------------
// Names and JSON forms.
// ------------------------------------------------------------------------------------------

inline std::string_view toString(FetchMode mode) {
  switch (mode) {
    case FetchMode::Full: return "full";
    case FetchMode::Incremental: return "incremental";
    case FetchMode::Keys: return "keys";
  }
  return "full";
}

inline std::optional<FetchMode> parseFetchMode(std::string_view text) {
  if (text == "full") return FetchMode::Full;
  if (text == "incremental") return FetchMode::Incremental;
  if (text == "keys") return FetchMode::Keys;
  return std::nullopt;
}

inline std::string_view toString(ChangeOp op) {
  switch (op) {
    case ChangeOp::Create: return "create";
    case ChangeOp::Update: return "update";
    case ChangeOp::Delete: return "delete";
  }
  return "create";
}

inline std::optional<ChangeOp> parseChangeOp(std::string_view text) {
  if (text == "create") return ChangeOp::Create;
  if (text == "update") return ChangeOp::Update;
  if (text == "delete") return ChangeOp::Delete;
  return std::nullopt;
}

inline std::string_view toString(ApplyMode mode) {
  return mode == ApplyMode::Plan ? "plan" : "commit";
}

inline std::optional<ApplyMode> parseApplyMode(std::string_view text) {
  if (text == "plan") return ApplyMode::Plan;
  if (text == "commit") return ApplyMode::Commit;
  return std::nullopt;
}

inline std::string_view toString(ChangeStatus status) {
  switch (status) {
    case ChangeStatus::Applied: return "applied";
    case ChangeStatus::Noop: return "noop";
    case ChangeStatus::Conflict: return "conflict";
    case ChangeStatus::Retryable: return "retryable";
    case ChangeStatus::Rejected: return "rejected";
  }
  return "rejected";
}

inline std::optional<ChangeStatus> parseChangeStatus(std::string_view text) {
  if (text == "applied") return ChangeStatus::Applied;
  if (text == "noop") return ChangeStatus::Noop;
  if (text == "conflict") return ChangeStatus::Conflict;
  if (text == "retryable") return ChangeStatus::Retryable;
  if (text == "rejected") return ChangeStatus::Rejected;
  return std::nullopt;
}

namespace detail {

/// The member `name` of `object`, or an invalid() error naming it and what was expected.
inline const Json& member(const Json& object, const char* name, const char* where) {
  const auto found = object.find(name);
  if (found == object.end()) {
    throw invalid(std::string(where) + ": missing \"" + name + "\"");
  }
  return *found;
}

inline std::vector<std::string> stringList(const Json& value, const char* what) {
  if (!value.is_array()) throw invalid(std::string(what) + " must be an array of strings");
  std::vector<std::string> list;
  list.reserve(value.size());
  for (const auto& item : value) {
    if (!item.is_string()) throw invalid(std::string(what) + " must be an array of strings");
    list.push_back(item.get<std::string>());
  }
  return list;
}

}  // namespace detail

inline Json toJson(const Record& record) {
  Json json = {{"fields", record.fields}};
  if (record.version) json["version"] = *record.version;
  if (record.deleted) json["deleted"] = true;
  return json;
}

inline Record recordFromJson(const Json& json) {
  if (!json.is_object()) throw invalid("a record must be a JSON object");
  Record record;
  const auto& fields = detail::member(json, "fields", "record");
  if (!fields.is_object()) throw invalid("record: \"fields\" must be an object");
  record.fields = fields;
  if (const auto v = json.find("version"); v != json.end() && !v->is_null()) {
    record.version = v->is_string() ? v->get<std::string>() : v->dump();
  }
  if (const auto d = json.find("deleted"); d != json.end()) record.deleted = d->is_boolean() && d->get<bool>();
  return record;
}

inline Json toJson(const FetchRequest& request) {
  Json json = {{"stream", request.stream},
               {"mode", toString(request.mode)},
               {"key_fields", request.key_fields},
               {"batch_size", request.batch_size}};
  if (request.cursor) json["cursor"] = *request.cursor;
  if (request.mode == FetchMode::Keys) json["keys"] = request.keys;
  return json;
}

inline FetchRequest fetchRequestFromJson(const Json& json) {
  if (!json.is_object()) throw invalid("fetch request must be a JSON object");
  FetchRequest request;
  const auto& stream = detail::member(json, "stream", "fetch request");
  if (!stream.is_string()) throw invalid("fetch request: \"stream\" must be a string");
  request.stream = stream.get<std::string>();
  const auto& mode = detail::member(json, "mode", "fetch request");
  const auto parsed = mode.is_string() ? parseFetchMode(mode.get<std::string>()) : std::nullopt;
  if (!parsed) throw invalid("fetch request: \"mode\" must be full, incremental or keys");
  request.mode = *parsed;
  if (const auto c = json.find("cursor"); c != json.end() && !c->is_null()) {
    if (!c->is_string()) throw invalid("fetch request: \"cursor\" must be a string");
    request.cursor = c->get<std::string>();
  }
  if (const auto k = json.find("key_fields"); k != json.end()) {
    request.key_fields = detail::stringList(*k, "fetch request: \"key_fields\"");
  }
  if (const auto k = json.find("keys"); k != json.end()) {
    if (!k->is_array()) throw invalid("fetch request: \"keys\" must be an array");
    for (const auto& key : *k) request.keys.push_back(detail::stringList(key, "fetch request: a key"));
  }
  if (const auto b = json.find("batch_size"); b != json.end()) {
    if (!b->is_number_unsigned() || b->get<std::size_t>() == 0) {
      throw invalid("fetch request: \"batch_size\" must be a positive integer");
    }
    request.batch_size = b->get<std::size_t>();
  }
  return request;
}

inline Json toJson(const Change& change) {
  Json json = {{"op", toString(change.op)}, {"key", change.key}};
  if (change.op != ChangeOp::Delete) json["fields"] = change.fields;
  if (change.expected_version) json["expected_version"] = *change.expected_version;
  return json;
}

inline Change changeFromJson(const Json& json) {
  if (!json.is_object()) throw invalid("a change must be a JSON object");
  Change change;
  const auto& op = detail::member(json, "op", "change");
  const auto parsed = op.is_string() ? parseChangeOp(op.get<std::string>()) : std::nullopt;
  if (!parsed) throw invalid("change: \"op\" must be create, update or delete");
  change.op = *parsed;
  change.key = detail::stringList(detail::member(json, "key", "change"), "change: \"key\"");
  if (const auto f = json.find("fields"); f != json.end()) {
    if (!f->is_object()) throw invalid("change: \"fields\" must be an object");
    change.fields = *f;
  }
  if (const auto v = json.find("expected_version"); v != json.end() && v->is_string()) {
    change.expected_version = v->get<std::string>();
  }
  return change;
}

inline Json toJson(const Changeset& changeset, ApplyMode mode) {
  Json changes = Json::array();
  for (const auto& change : changeset.changes) changes.push_back(toJson(change));
  return {{"stream", changeset.stream},
          {"key_fields", changeset.key_fields},
          {"mode", toString(mode)},
          {"changes", std::move(changes)}};
}

inline std::pair<Changeset, ApplyMode> changesetFromJson(const Json& json) {
  if (!json.is_object()) throw invalid("changeset must be a JSON object");
  Changeset changeset;
  const auto& stream = detail::member(json, "stream", "changeset");
  if (!stream.is_string()) throw invalid("changeset: \"stream\" must be a string");
  changeset.stream = stream.get<std::string>();
  changeset.key_fields =
      detail::stringList(detail::member(json, "key_fields", "changeset"), "changeset: \"key_fields\"");
  const auto& mode = detail::member(json, "mode", "changeset");
  const auto parsed = mode.is_string() ? parseApplyMode(mode.get<std::string>()) : std::nullopt;
  if (!parsed) throw invalid("changeset: \"mode\" must be plan or commit");
  const auto& changes = detail::member(json, "changes", "changeset");
  if (!changes.is_array()) throw invalid("changeset: \"changes\" must be an array");
  changeset.changes.reserve(changes.size());
  for (const auto& change : changes) changeset.changes.push_back(changeFromJson(change));
  return {std::move(changeset), *parsed};
}

inline Json toJson(const ChangeResult& result) {
  Json json = {{"status", toString(result.status)}};
  if (!result.message.empty()) json["message"] = result.message;
  return json;
}

inline ChangeResult changeResultFromJson(const Json& json) {
  if (!json.is_object()) throw invalid("a change result must be a JSON object");
  const auto& status = detail::member(json, "status", "change result");
  const auto parsed = status.is_string() ? parseChangeStatus(status.get<std::string>()) : std::nullopt;
  if (!parsed) {
    throw invalid("change result: \"status\" must be applied, noop, conflict, retryable or rejected");
  }
  ChangeResult result{*parsed, {}};
  if (const auto m = json.find("message"); m != json.end() && m->is_string()) {
    result.message = m->get<std::string>();
  }
  return result;
}

inline Json toJson(const Manifest& manifest) {
  Json streams = Json::array();
  for (const auto& stream : manifest.streams) {
    streams.push_back({{"name", stream.name},
                       {"key_fields", stream.key_fields},
                       {"description", stream.description}});
  }
  Json fetch_modes = Json::array();
  for (const auto mode : manifest.capabilities.fetch_modes) fetch_modes.push_back(toString(mode));
  Json apply_ops = Json::array();
  for (const auto op : manifest.capabilities.apply_ops) apply_ops.push_back(toString(op));
  Json capabilities = {{"fetch", std::move(fetch_modes)},
                       {"apply", std::move(apply_ops)},
                       {"deletion_detection", manifest.capabilities.deletion_detection},
                       {"configurable_streams", manifest.capabilities.configurable_streams}};
  capabilities["incremental_cursor_field"] =
      manifest.capabilities.incremental_cursor_field
          ? Json(*manifest.capabilities.incremental_cursor_field)
          : Json(nullptr);
  return {{"id", manifest.id},
          {"version", manifest.version},
          {"abi", std::to_string(SYNCPOD_ABI_MAJOR) + "." + std::to_string(SYNCPOD_ABI_MINOR)},
          {"description", manifest.description},
          {"streams", std::move(streams)},
          {"capabilities", std::move(capabilities)},
          {"config_schema", manifest.config_schema}};
}

}  // namespace syncpod
