#include "jsonl_connector.hpp"

#include <algorithm>
#include <string_view>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "jsonl_file.hpp"

namespace syncpod::plugins::jsonl {
namespace {

// Lines being rewritten keep their members in file order; nlohmann::json would sort them.
using OrderedJson = nlohmann::ordered_json;

/// A key as one string usable in hash maps: each part length-prefixed, so no two keys collide.
std::string encodeKey(const std::vector<std::string>& key) {
  std::string encoded;
  for (const auto& part : key) {
    encoded += std::to_string(part.size());
    encoded += ':';
    encoded += part;
  }
  return encoded;
}

std::string describeKey(const std::vector<std::string>& key) {
  return Json(key).dump();
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

Json configSchema() {
  const Json field_list = {
      {"type", "array"}, {"items", {{"type", "string"}, {"minLength", 1}}}, {"minItems", 1}};
  Json key_fields = field_list;
  key_fields["description"] =
      "Fields that make up a record's key, used when a request names none (fetch by keys and "
      "apply need a key).";
  const Json stream = {
      {"type", "object"},
      {"additionalProperties", false},
      {"properties",
       {{"file",
         {{"type", "string"},
          {"minLength", 1},
          {"description",
           "File of the stream, relative to directory (no \"..\"). Default: <stream>.jsonl."}}},
        {"key_fields", key_fields},
        {"updated_field",
         {{"type", "string"},
          {"minLength", 1},
          {"description",
           "Field holding when a record last changed, e.g. \"updated_at\". Values are compared "
           "as text, so use a sortable form such as ISO-8601 UTC timestamps. Enables "
           "incremental fetch: records whose value is greater than the cursor, in order of "
           "it."}}}}}};
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
          {"title", "jsonl connector"},
          {"type", "object"},
          {"additionalProperties", false},
          {"required", {"directory", "streams"}},
          {"properties",
           {{"directory",
             {{"type", "string"},
              {"minLength", 1},
              {"description", "Absolute path of the directory that holds the stream files."}}},
            {"streams",
             {{"type", "object"},
              {"description", "The streams, by name. A request for any other stream is refused."},
              {"additionalProperties", stream}}},
            {"create_missing",
             {{"type", "boolean"},
              {"default", true},
              {"description",
               "Whether a stream whose file does not exist reads as empty and is created by the "
               "first apply that writes to it (true), or is an error (false)."}}}}}};
}

/// The file of one stream held in memory while apply edits it: its lines as they were, and
/// where each key is.
class FileEdit {
 public:
  FileEdit(const StreamConfig& stream, std::vector<std::string> key_fields)
      : stream_(stream), key_fields_(std::move(key_fields)) {}

  void load() {
    LineReader reader(stream_.file);
    while (const auto line = reader.next()) {
      lines_.push_back({*line, false});
      if (isBlank(*line)) continue;
      const Json fields = parseLine(*line, stream_.file, reader.lineNumber());
      index_[encodeKey(keyOf(fields, key_fields_))].push_back(lines_.size() - 1);
    }
  }

  ChangeResult apply(const Change& change) {
    if (change.key.size() != key_fields_.size()) {
      return rejected("the key " + describeKey(change.key) + " has " +
                      std::to_string(change.key.size()) + " values but key_fields names " +
                      std::to_string(key_fields_.size()) + " fields (" + joinNames(key_fields_) +
                      ")");
    }
    const std::string key = encodeKey(change.key);
    const auto found = index_.find(key);
    if (found != index_.end() && found->second.size() > 1) {
      std::string numbers;
      for (const auto line : found->second)
        numbers += (numbers.empty() ? "" : ", ") + std::to_string(line + 1);
      return rejected("key " + describeKey(change.key) + " is on lines " + numbers + " of " +
                      stream_.file.string() + "; keys must be unique, fix the file");
    }
    const std::optional<std::size_t> line = found == index_.end() || found->second.empty()
                                                ? std::nullopt
                                                : std::optional(found->second.front());
    switch (change.op) {
      case ChangeOp::Create: return create(change, key, line);
      case ChangeOp::Update: return update(change, line);
      case ChangeOp::Delete: return remove(change, key, line);
    }
    return rejected("unknown operation");
  }

  bool dirty() const { return dirty_; }

  /// The file's new content: the lines in their order, without deleted ones.
  std::string content() const {
    std::string text;
    for (const auto& line : lines_) {
      if (line.removed) continue;
      text += line.text;
      text += '\n';
    }
    return text;
  }

 private:
  struct Line {
    std::string text;
    bool removed = false;
  };

  static ChangeResult rejected(std::string message) {
    return {ChangeStatus::Rejected, std::move(message)};
  }

  /// A message if `fields` give a key field a value whose text differs from the change's key.
  std::optional<std::string> keyMismatch(const Change& change) const {
    for (std::size_t i = 0; i < key_fields_.size(); ++i) {
      const auto value = change.fields.find(key_fields_[i]);
      if (value != change.fields.end() && keyText(*value) != change.key[i]) {
        return "field \"" + key_fields_[i] + "\" is " + value->dump() +
               " but the change's key is " + describeKey(change.key) +
               "; a key cannot change (delete and create instead)";
      }
    }
    return std::nullopt;
  }

  /// Conflict if the change expects a version and the record has another.
  std::optional<ChangeResult> versionConflict(const Change& change,
                                              const OrderedJson& record) const {
    if (!change.expected_version || !stream_.updated_field) return std::nullopt;
    const auto value = record.find(*stream_.updated_field);
    const std::string current = value == record.end() ? std::string() : keyText(Json(*value));
    if (current == *change.expected_version) return std::nullopt;
    return ChangeResult{ChangeStatus::Conflict, "record " + describeKey(change.key) + " has " +
                                                    *stream_.updated_field + " \"" + current +
                                                    "\", the change expected \"" +
                                                    *change.expected_version + "\""};
  }

  /// Writes `fields` into the record on `line`; applied if any value changed, noop otherwise.
  ChangeResult merge(const Json& fields, std::size_t line) {
    OrderedJson record = OrderedJson::parse(lines_[line].text);
    bool changed = false;
    for (const auto& [name, value] : fields.items()) {
      const auto current = record.find(name);
      // Compared as nlohmann::json so that member order inside objects does not matter.
      if (current != record.end() && Json(*current) == value) continue;
      record[name] = OrderedJson(value);
      changed = true;
    }
    if (!changed) return {ChangeStatus::Noop, {}};
    lines_[line].text = record.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
    dirty_ = true;
    return {ChangeStatus::Applied, {}};
  }

  ChangeResult create(const Change& change, const std::string& key,
                      std::optional<std::size_t> line) {
    if (auto mismatch = keyMismatch(change)) return rejected(std::move(*mismatch));
    // An existing record takes the given fields and keeps the others: create is an upsert.
    if (line) return merge(change.fields, *line);
    OrderedJson record = OrderedJson::object();
    // Key fields first, so new lines read like the usual hand-written ones.
    for (std::size_t i = 0; i < key_fields_.size(); ++i) {
      const auto value = change.fields.find(key_fields_[i]);
      record[key_fields_[i]] =
          value != change.fields.end() ? OrderedJson(*value) : OrderedJson(change.key[i]);
    }
    for (const auto& [name, value] : change.fields.items()) {
      if (!record.contains(name)) record[name] = OrderedJson(value);
    }
    lines_.push_back({record.dump(-1, ' ', false, OrderedJson::error_handler_t::replace), false});
    index_[key] = {lines_.size() - 1};
    dirty_ = true;
    return {ChangeStatus::Applied, {}};
  }

  ChangeResult update(const Change& change, std::optional<std::size_t> line) {
    if (auto mismatch = keyMismatch(change)) return rejected(std::move(*mismatch));
    if (!line) {
      return {ChangeStatus::Conflict, "no record with key " + describeKey(change.key) + " in " +
                                          stream_.file.string() + " (deleted since it was read?)"};
    }
    if (auto conflict = versionConflict(change, OrderedJson::parse(lines_[*line].text)))
      return *conflict;
    return merge(change.fields, *line);
  }

  ChangeResult remove(const Change& change, const std::string& key,
                      std::optional<std::size_t> line) {
    if (!line) return {ChangeStatus::Noop, {}};
    if (auto conflict = versionConflict(change, OrderedJson::parse(lines_[*line].text)))
      return *conflict;
    lines_[*line].removed = true;
    index_.erase(key);
    dirty_ = true;
    return {ChangeStatus::Applied, {}};
  }

  const StreamConfig& stream_;
  std::vector<std::string> key_fields_;
  std::vector<Line> lines_;
  std::unordered_map<std::string, std::vector<std::size_t>> index_;
  bool dirty_ = false;
};

}  // namespace

Manifest JsonlConnector::manifest() {
  Manifest manifest;
  manifest.id = "jsonl";
  manifest.version = "1.0.0";
  manifest.description =
      "JSON Lines files in one directory, one file per stream and one record per line. Fetch "
      "full, by keys, and incremental for streams that name an updated_field; apply rewrites "
      "the file atomically.";
  manifest.capabilities.fetch_modes = {FetchMode::Full, FetchMode::Incremental, FetchMode::Keys};
  // No incremental_cursor_field: it is set per stream (its updated_field), not by the plugin.
  manifest.capabilities.configurable_streams = true;
  manifest.config_schema = configSchema();
  return manifest;
}

JsonlConnector::JsonlConnector(const Json& config) {
  directory_ = config.at("directory").get<std::string>();
  if (!directory_.is_absolute()) {
    throw invalid("directory \"" + directory_.string() + "\" must be an absolute path");
  }
  create_missing_ = config.value("create_missing", true);
  for (const auto& [name, settings] : config.at("streams").items()) {
    if (name.empty()) throw invalid("streams: a stream name must not be empty");
    StreamConfig stream;
    stream.name = name;
    const std::filesystem::path file = settings.value("file", name + ".jsonl");
    const bool escapes =
        std::any_of(file.begin(), file.end(), [](const auto& part) { return part == ".."; });
    if (file.is_absolute() || escapes || file.filename().empty()) {
      throw invalid("streams." + name + ".file \"" + file.string() +
                    "\" must be a file name or relative path inside directory (no \"..\")");
    }
    stream.file = (directory_ / file).lexically_normal();
    if (const auto keys = settings.find("key_fields"); keys != settings.end()) {
      stream.key_fields = keys->get<std::vector<std::string>>();
    }
    if (const auto updated = settings.find("updated_field"); updated != settings.end()) {
      stream.updated_field = updated->get<std::string>();
    }
    streams_.emplace(name, std::move(stream));
  }
}

const StreamConfig& JsonlConnector::stream(const std::string& name) const {
  const auto found = streams_.find(name);
  if (found != streams_.end()) return found->second;
  std::vector<std::string> names;
  for (const auto& entry : streams_) names.push_back(entry.first);
  throw invalid("stream \"" + name + "\" is not configured (configured: " +
                (names.empty() ? std::string("none") : joinNames(names)) + ")");
}

std::vector<std::string> JsonlConnector::keyFields(
    const StreamConfig& stream, const std::vector<std::string>& requested) const {
  if (!requested.empty()) return requested;
  if (!stream.key_fields.empty()) return stream.key_fields;
  throw invalid("stream \"" + stream.name +
                "\" has no key fields: the request names none and the config sets no key_fields");
}

void JsonlConnector::requireDirectory() const {
  std::error_code error;
  if (!std::filesystem::is_directory(directory_, error)) {
    throw invalid("directory " + directory_.string() + " does not exist or is not a directory");
  }
}

bool JsonlConnector::fileExists(const StreamConfig& stream) const {
  std::error_code error;
  const auto status = std::filesystem::status(stream.file, error);
  if (std::filesystem::exists(status)) {
    if (!std::filesystem::is_regular_file(status)) {
      throw invalid("stream \"" + stream.name + "\": " + stream.file.string() +
                    " is not a regular file");
    }
    return true;
  }
  if (!create_missing_) {
    throw invalid("stream \"" + stream.name + "\": " + stream.file.string() +
                  " does not exist (create_missing is false)");
  }
  return false;
}

void JsonlConnector::check(Context& context) {
  requireDirectory();
  if (::access(directory_.c_str(), R_OK | X_OK) != 0) {
    throw invalid("directory " + directory_.string() + " is not readable by this process");
  }
  if (::access(directory_.c_str(), W_OK) != 0) {
    context.warn("directory " + directory_.string() + " is not writable: apply will fail");
  }
  std::vector<std::string> problems;
  for (const auto& [name, stream] : streams_) {
    try {
      if (fileExists(stream)) {
        LineReader reader(stream.file);  // throws if the file cannot be read
      }
    } catch (const PluginError& error) {
      problems.emplace_back(error.what());
    }
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& problem : problems) message += (message.empty() ? "" : "; ") + problem;
    throw invalid(message);
  }
}

Record JsonlConnector::makeRecord(const StreamConfig& stream, Json&& fields) const {
  Record record;
  if (stream.updated_field) {
    if (const auto value = fields.find(*stream.updated_field);
        value != fields.end() && !value->is_null()) {
      record.version = keyText(*value);
    }
  }
  record.fields = std::move(fields);
  return record;
}

void JsonlConnector::fetch(const FetchRequest& request, RecordSink& sink, Context& context) {
  (void)context;  // the sink checks for cancellation at every batch
  const auto& config = stream(request.stream);
  requireDirectory();
  switch (request.mode) {
    case FetchMode::Full: fetchAll(config, sink); return;
    case FetchMode::Keys: fetchKeys(config, request, sink); return;
    case FetchMode::Incremental: fetchIncremental(config, request, sink); return;
  }
}

void JsonlConnector::fetchAll(const StreamConfig& stream, RecordSink& sink) const {
  if (!fileExists(stream)) return;
  LineReader reader(stream.file);
  while (const auto line = reader.next()) {
    if (isBlank(*line)) continue;
    sink.push(makeRecord(stream, parseLine(*line, stream.file, reader.lineNumber())));
  }
}

void JsonlConnector::fetchKeys(const StreamConfig& stream, const FetchRequest& request,
                               RecordSink& sink) const {
  const auto key_fields = keyFields(stream, request.key_fields);
  std::unordered_set<std::string> wanted;
  for (std::size_t i = 0; i < request.keys.size(); ++i) {
    if (request.keys[i].size() != key_fields.size()) {
      throw invalid("fetch request: key " + std::to_string(i + 1) + " " +
                    describeKey(request.keys[i]) + " has " +
                    std::to_string(request.keys[i].size()) + " values but key_fields names " +
                    std::to_string(key_fields.size()) + " fields (" + joinNames(key_fields) + ")");
    }
    wanted.insert(encodeKey(request.keys[i]));
  }
  if (wanted.empty() || !fileExists(stream)) return;
  LineReader reader(stream.file);
  while (const auto line = reader.next()) {
    if (isBlank(*line)) continue;
    Json fields = parseLine(*line, stream.file, reader.lineNumber());
    if (wanted.count(encodeKey(keyOf(fields, key_fields))) != 0)
      sink.push(makeRecord(stream, std::move(fields)));
  }
}

void JsonlConnector::fetchIncremental(const StreamConfig& stream, const FetchRequest& request,
                                      RecordSink& sink) const {
  if (!stream.updated_field) {
    throw invalid("stream \"" + stream.name +
                  "\": incremental fetch needs \"updated_field\" in the stream's config");
  }
  if (!fileExists(stream)) return;
  const std::string& field = *stream.updated_field;

  // Pass 1 keeps only where each newer record is, not the record, so memory grows with the
  // number of changed records times the size of their updated_field value.
  struct Position {
    std::string value;
    std::streamoff offset;
    std::size_t line_number;
  };
  std::vector<Position> changed;
  LineReader reader(stream.file);
  while (const auto line = reader.next()) {
    if (isBlank(*line)) continue;
    const Json fields = parseLine(*line, stream.file, reader.lineNumber());
    const auto value = fields.find(field);
    if (value == fields.end() || value->is_null()) continue;
    std::string text = keyText(*value);
    if (request.cursor && text <= *request.cursor) continue;
    changed.push_back({std::move(text), reader.lineOffset(), reader.lineNumber()});
  }
  std::stable_sort(changed.begin(), changed.end(),
                   [](const Position& a, const Position& b) { return a.value < b.value; });

  // Pass 2 reads the same open file again (a concurrent apply replaces the directory entry,
  // not this file). The cursor moves to a value only once every record with that value has
  // been pushed, so a resumed fetch never skips the rest of a group of equal values.
  for (std::size_t i = 0; i < changed.size(); ++i) {
    if (i > 0 && changed[i].value != changed[i - 1].value) sink.setCursor(changed[i - 1].value);
    reader.seek(changed[i].offset, changed[i].line_number);
    const auto line = reader.next();
    if (!line) throw retryable(stream.file.string() + " became shorter while it was read");
    sink.push(makeRecord(stream, parseLine(*line, stream.file, changed[i].line_number)));
  }
  if (!changed.empty()) sink.setCursor(changed.back().value);
}

std::vector<ChangeResult> JsonlConnector::apply(const Changeset& changeset, ApplyMode mode,
                                                Context& context) {
  const auto& config = stream(changeset.stream);
  const auto key_fields = keyFields(config, changeset.key_fields);
  requireDirectory();
  // Only a commit writes; the lock keeps another writer from changing the file between our
  // read and our rename (which would lose its changes).
  std::optional<DirectoryLock> lock;
  if (mode == ApplyMode::Commit) lock.emplace(directory_);

  FileEdit edit(config, key_fields);
  if (fileExists(config)) edit.load();
  std::vector<ChangeResult> results;
  results.reserve(changeset.changes.size());
  for (const auto& change : changeset.changes) results.push_back(edit.apply(change));
  context.throwIfCancelled();

  if (mode == ApplyMode::Commit && edit.dirty()) {
    std::error_code error;
    std::filesystem::create_directories(config.file.parent_path(), error);
    replaceFile(config.file, edit.content());
    const auto applied = std::count_if(results.begin(), results.end(), [](const ChangeResult& r) {
      return r.status == ChangeStatus::Applied;
    });
    context.debug("stream \"" + config.name + "\": " + std::to_string(applied) +
                  " changes written to " + config.file.string());
  }
  return results;
}

}  // namespace syncpod::plugins::jsonl

SYNCPOD_PLUGIN(syncpod::plugins::jsonl::JsonlConnector)
