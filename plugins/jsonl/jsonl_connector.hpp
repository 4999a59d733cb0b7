// The jsonl connector: each stream is a JSON Lines file (one JSON object per line, one record
// per object) in one directory. Fetch streams the file; apply rewrites it atomically.
// README.md beside this file is the user-facing reference.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <syncpod/sdk.hpp>

namespace syncpod::plugins::jsonl {

/// One configured stream: its file and the defaults for requests that do not say otherwise.
struct StreamConfig {
  std::string name;
  std::filesystem::path file;  ///< absolute: the directory joined with the configured file
  std::vector<std::string> key_fields;
  /// The field incremental fetches order and resume by; none means no incremental fetch.
  std::optional<std::string> updated_field;
};

class JsonlConnector final : public Connector {
 public:
  static Manifest manifest();

  /// Reads a config that passed the manifest's schema; throws invalid() for what the schema
  /// cannot say (a relative directory, a file outside it). Touches no file.
  explicit JsonlConnector(const Json& config);

  void check(Context& context) override;
  void fetch(const FetchRequest& request, RecordSink& sink, Context& context) override;
  std::vector<ChangeResult> apply(const Changeset& changeset, ApplyMode mode,
                                  Context& context) override;

 private:
  const StreamConfig& stream(const std::string& name) const;
  /// The request's key fields, else the stream's; invalid() if both are empty.
  std::vector<std::string> keyFields(const StreamConfig& stream,
                                     const std::vector<std::string>& requested) const;
  void requireDirectory() const;
  /// Whether the stream's file exists; invalid() if it does not and create_missing is off.
  bool fileExists(const StreamConfig& stream) const;

  void fetchAll(const StreamConfig& stream, RecordSink& sink) const;
  void fetchKeys(const StreamConfig& stream, const FetchRequest& request, RecordSink& sink) const;
  void fetchIncremental(const StreamConfig& stream, const FetchRequest& request,
                        RecordSink& sink) const;
  Record makeRecord(const StreamConfig& stream, Json&& fields) const;

  std::filesystem::path directory_;
  bool create_missing_ = true;
  std::map<std::string, StreamConfig> streams_;
};

}  // namespace syncpod::plugins::jsonl
