// The C++ side of a connector: the base class authors derive from, the Context through which
// they reach the host, and the RecordSink that streams fetched records to it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "syncpod/abi.h"
#include "syncpod/sdk/model.hpp"

namespace syncpod {

/// Thrown out of a RecordSink (and by Context::throwIfCancelled) when the host asked the call
/// to stop; SYNCPOD_PLUGIN turns it into SYNCPOD_CANCELLED. Connectors let it pass.
class Cancelled : public PluginError {
 public:
  Cancelled() : PluginError(SYNCPOD_CANCELLED, "cancelled") {}
};

/// The host's services during one call. Valid only during the call it was passed to.
class Context {
 public:
  explicit Context(const syncpod_host* host) : host_(host) {}

  void log(syncpod_log_level level, std::string_view message) const {
    host_->log(host_->context, level, bytes(message));
  }
  void debug(std::string_view message) const { log(SYNCPOD_LOG_DEBUG, message); }
  void info(std::string_view message) const { log(SYNCPOD_LOG_INFO, message); }
  void warn(std::string_view message) const { log(SYNCPOD_LOG_WARN, message); }
  void error(std::string_view message) const { log(SYNCPOD_LOG_ERROR, message); }

  /// Adds to a named progress counter of the running job.
  void progress(std::string_view counter, std::int64_t delta) const {
    host_->progress(host_->context, bytes(counter), delta);
  }

  /// Whether the host asked the call to stop (job cancelled, worker shutting down).
  bool cancelled() const { return host_->cancelled(host_->context) != 0; }
  void throwIfCancelled() const {
    if (cancelled()) throw Cancelled();
  }

  /// A named secret from the host's secret store, if it has one.
  std::optional<std::string> secret(std::string_view name) const {
    syncpod_bytes value{nullptr, 0};
    if (host_->secret(host_->context, bytes(name), &value) != SYNCPOD_OK) return std::nullopt;
    return std::string(value.data, value.size);
  }

  /// The raw host table, for the generated thunks.
  const syncpod_host* host() const { return host_; }

  static syncpod_bytes bytes(std::string_view text) { return {text.data(), text.size()}; }

 private:
  const syncpod_host* host_;
};

/// Where a fetch puts its records. It hands them to the host in batches of the size the host
/// asked for, so a connector may push millions without holding them.
class RecordSink {
 public:
  RecordSink(const Context& context, std::string stream, std::size_t batch_size)
      : context_(context), stream_(std::move(stream)), batch_size_(batch_size == 0 ? 1 : batch_size) {
    batch_.reserve(batch_size_);
  }

  /// Adds one record; may emit a batch. Throws Cancelled when the host wants the fetch to stop.
  void push(Record&& record) {
    batch_.push_back(std::move(record));
    if (batch_.size() >= batch_size_) flush();
  }

  /// The cursor to resume an incremental fetch from, valid once every record pushed so far is
  /// processed. It travels with the next batch, so the host stores it only after those records.
  void setCursor(std::string cursor) { cursor_ = std::move(cursor); }

  /// Emits the records pushed since the last batch (and the cursor, if it changed). Called by
  /// the generated code when fetch returns; connectors may call it at page boundaries.
  void flush() {
    if (batch_.empty() && !cursor_) return;
    Json records = Json::array();
    for (auto& record : batch_) records.push_back(toJson(record));
    Json document = {{"stream", stream_}, {"records", std::move(records)}};
    if (cursor_) document["cursor"] = *cursor_;
    const std::string text = document.dump(-1, ' ', false, Json::error_handler_t::replace);
    const auto status = context_.host()->emit(context_.host()->context, Context::bytes(text));
    emitted_ += batch_.size();
    batch_.clear();
    cursor_.reset();
    if (status == SYNCPOD_CANCELLED) throw Cancelled();
    if (status != SYNCPOD_OK) throw PluginError(status, "the host refused a batch of records");
    context_.throwIfCancelled();
  }

  /// Records emitted so far.
  std::size_t emitted() const { return emitted_; }

 private:
  const Context& context_;
  std::string stream_;
  std::size_t batch_size_;
  std::vector<Record> batch_;
  std::optional<std::string> cursor_;
  std::size_t emitted_ = 0;
};

/// The base class of every connector. A connector class also provides:
///   static syncpod::Manifest manifest();
///   explicit MyConnector(const syncpod::Json& config);            // or
///   MyConnector(const syncpod::Json& config, syncpod::Context& context);
/// The constructor receives a config that already passed the manifest's config_schema; it
/// throws syncpod::invalid(...) for what the schema cannot express, and must not contact the
/// foreign system (check does that).
///
/// Any method may throw: PluginError (invalid, retryable, unauthorized, Cancelled) ends the call
/// with its status; any other exception ends it as SYNCPOD_FAILED with its what(). The host
/// never calls one instance from two threads at once.
class Connector {
 public:
  virtual ~Connector() = default;

  /// Verifies that the foreign system is reachable and accepts the credentials.
  virtual void check(Context& context) = 0;

  /// Streams the records the request asks for into `sink`. Incremental fetches set the cursor
  /// they reached with sink.setCursor; a fetch by keys skips keys it does not find.
  virtual void fetch(const FetchRequest& request, RecordSink& sink, Context& context) = 0;

  /// Which fields of `desired` differ from `current` (records of `stream`). The default compares
  /// JSON values exactly; a connector overrides it when its system has looser equality (e.g.
  /// "1" and 1, or case-insensitive codes), so that syncs stop rewriting equal values.
  virtual std::vector<std::string> diff(const std::string& stream, const Json& current,
                                        const Json& desired, Context& context) {
    (void)stream;
    (void)context;
    return defaultDiff(current, desired);
  }

  /// Applies the changes in order and returns one result per change. In ApplyMode::Plan it
  /// writes nothing and says what it would do. A change that is already true is a Noop, so
  /// applying the same changeset twice makes the second pass all Noop.
  virtual std::vector<ChangeResult> apply(const Changeset& changeset, ApplyMode mode,
                                          Context& context) = 0;

  /// The fields of `desired` whose value differs from (or is absent in) `current`.
  static std::vector<std::string> defaultDiff(const Json& current, const Json& desired) {
    std::vector<std::string> changed;
    for (const auto& [name, value] : desired.items()) {
      const auto found = current.find(name);
      if (found == current.end() || *found != value) changed.push_back(name);
    }
    return changed;
  }
};

}  // namespace syncpod
