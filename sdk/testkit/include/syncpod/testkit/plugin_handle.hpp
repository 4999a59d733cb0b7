// PluginHandle loads a connector plugin file the way the host does (dlopen, the C entry point,
// the version handshake) and calls it through the C ABI, playing the host's part with a
// TestHost that records what the plugin did. Tests use it to drive a plugin exactly as syncpod
// will, without the host:
//
//   auto plugin = syncpod::testkit::PluginHandle::load("/path/to/libmy-connector.so");
//   auto opened = plugin.open({{"base_url", "http://localhost:8080"}});
//   ASSERT_TRUE(opened.ok()) << opened.describe();
//   auto fetched = opened.instance.fetch({.stream = "incidents", .key_fields = {"sys_id"}});
//   ASSERT_TRUE(fetched.ok()) << fetched.describe();
//   EXPECT_EQ(fetched.records.size(), 3u);
//
// Besides the plugin's own status, every call checks what the ABI requires of the plugin (a
// message with every failure, documents of the documented shapes, batches no larger than asked,
// one result per change, host functions used only during a call) and lists what it broke in
// CallOutcome::problems; ok() is false when there is any.
//
// Header-only; needs only the SDK headers, nlohmann_json and libdl. Not thread-safe: make one
// call at a time (TestHost::setCancelled may be called from another thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <dlfcn.h>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "syncpod/abi.h"
#include "syncpod/sdk/connector.hpp"
#include "syncpod/sdk/model.hpp"

namespace syncpod::testkit {

/// The name abi.h gives a status ("SYNCPOD_INVALID"), or "status <n>" for a value it does not
/// define.
inline std::string statusName(syncpod_status status) {
  switch (status) {
    case SYNCPOD_OK: return "SYNCPOD_OK";
    case SYNCPOD_INVALID: return "SYNCPOD_INVALID";
    case SYNCPOD_RETRYABLE: return "SYNCPOD_RETRYABLE";
    case SYNCPOD_UNAUTHORIZED: return "SYNCPOD_UNAUTHORIZED";
    case SYNCPOD_CANCELLED: return "SYNCPOD_CANCELLED";
    case SYNCPOD_FAILED: return "SYNCPOD_FAILED";
  }
  return "status " + std::to_string(static_cast<int>(status));
}

/// One line the plugin logged through the host.
struct LogLine {
  syncpod_log_level level = SYNCPOD_LOG_INFO;
  std::string message;
};

/// How one plugin call ended.
struct CallOutcome {
  /// What the plugin returned.
  syncpod_status status = SYNCPOD_FAILED;
  /// The last message it set with host->fail during the call ("" if none).
  std::string message;
  /// Ways the call broke the ABI contract, each a sentence; empty for a well-behaved plugin.
  std::vector<std::string> problems;

  /// The plugin returned SYNCPOD_OK and broke nothing.
  bool ok() const { return status == SYNCPOD_OK && problems.empty(); }

  /// One line for a test failure: "SYNCPOD_INVALID: <message>; ABI problems: <a>; <b>".
  std::string describe() const {
    std::string text = statusName(status);
    if (!message.empty()) text += ": " + message;
    if (!problems.empty()) {
      text += "; ABI problems: ";
      for (std::size_t i = 0; i < problems.size(); ++i) text += (i == 0 ? "" : "; ") + problems[i];
    }
    return text;
  }
};

/// A call's outcome with every document the plugin emitted, unparsed (the *Raw calls).
struct RawOutcome : CallOutcome {
  std::vector<std::string> documents;
};

/// One batch a fetch emitted.
struct Batch {
  std::vector<Record> records;
  /// The cursor the plugin sent with this batch, if any.
  std::optional<std::string> cursor;
};

/// Receives each batch of a fetch as it arrives; returning false makes the host's emit answer
/// SYNCPOD_CANCELLED, which asks the plugin to stop.
using BatchHandler = std::function<bool(Batch&& batch)>;

struct FetchOutcome : CallOutcome {
  /// Every record of every batch, in the order emitted (empty when a BatchHandler took them).
  std::vector<Record> records;
  /// The last cursor any batch carried: where the next incremental fetch resumes.
  std::optional<std::string> cursor;
  /// How many documents (batches) the plugin emitted.
  std::size_t batches = 0;
};

struct ApplyOutcome : CallOutcome {
  /// One result per change, in order (empty unless the call succeeded).
  std::vector<ChangeResult> results;
};

struct DiffOutcome : CallOutcome {
  /// For each pair, the fields of `desired` that differ from `current`.
  std::vector<std::vector<std::string>> changed;
};

class Instance;
class PluginHandle;

/// The host's side of the ABI during tests: the syncpod_host table handed to every call. It
/// answers like syncpod's host (secrets from a map, a cancel flag) and records what the plugin
/// did with it (log lines, progress counters, failure messages). One TestHost serves a
/// PluginHandle and every Instance opened from it; records accumulate until clearRecords().
class TestHost {
 public:
  TestHost() {
    table_.abi_major = SYNCPOD_ABI_MAJOR;
    table_.abi_minor = SYNCPOD_ABI_MINOR;
    table_.struct_size = sizeof(syncpod_host);
    table_.context = this;
    table_.log = &TestHost::onLog;
    table_.progress = &TestHost::onProgress;
    table_.cancelled = &TestHost::onCancelled;
    table_.secret = &TestHost::onSecret;
    table_.emit = &TestHost::onEmit;
    table_.fail = &TestHost::onFail;
  }
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  /// A secret host->secret hands out under `name`.
  void setSecret(std::string name, std::string value) {
    secrets_[std::move(name)] = std::move(value);
  }
  void removeSecret(std::string_view name) {
    if (const auto found = secrets_.find(name); found != secrets_.end()) secrets_.erase(found);
  }

  /// Makes host->cancelled answer non-zero (or zero again). Safe from any thread.
  void setCancelled(bool cancelled) { cancelled_.store(cancelled); }
  /// Makes host->cancelled answer non-zero once the running call emitted `documents` documents,
  /// e.g. 1 to let the first batch of a fetch through and cancel the rest. Applies to every
  /// later call until clearCancellation().
  void cancelAfterDocuments(std::size_t documents) { cancel_after_documents_ = documents; }
  /// Neither flag nor document count cancels any more.
  void clearCancellation() {
    cancelled_.store(false);
    cancel_after_documents_.reset();
  }

  /// Every line logged so far, in order.
  const std::vector<LogLine>& logs() const { return logs_; }
  /// The total the plugin added to a progress counter (0 if it never touched it).
  std::int64_t progress(std::string_view counter) const {
    const auto found = progress_.find(counter);
    return found == progress_.end() ? 0 : found->second;
  }
  const std::map<std::string, std::int64_t, std::less<>>& progressCounters() const {
    return progress_;
  }
  /// Every message the plugin passed to host->fail, across calls.
  const std::vector<std::string>& failMessages() const { return fail_messages_; }
  /// Host functions the plugin called while no call of it was running (after it returned, or
  /// from a thread of its own), e.g. "log was called outside a plugin call".
  const std::vector<std::string>& misuses() const { return misuses_; }
  /// Forgets logs, progress, failure messages and misuses (not secrets or cancellation).
  void clearRecords() {
    logs_.clear();
    progress_.clear();
    fail_messages_.clear();
    misuses_.clear();
  }

  /// The table passed to the plugin. Valid while this TestHost lives.
  const syncpod_host* table() const { return &table_; }

 private:
  friend class Instance;
  friend class PluginHandle;

  static constexpr std::size_t kMaxProblems = 20;

  /// The plugin call in progress.
  struct Call {
    std::string name;
    /// Receives each emitted document; its answer is what emit returns.
    std::function<syncpod_status(std::string_view document)> on_emit;
    std::size_t documents = 0;
    std::optional<std::string> fail_message;
    std::vector<std::string> problems;
    std::size_t dropped_problems = 0;

    void problem(std::string text) {
      if (problems.size() < kMaxProblems) {
        problems.push_back(std::move(text));
      } else {
        ++dropped_problems;
      }
    }
  };

  /// Marks a call as running for as long as it lives, so host functions know where they are.
  class CallScope {
   public:
    CallScope(TestHost& host, std::string name,
              std::function<syncpod_status(std::string_view)> on_emit)
        : host_(host) {
      call_.name = std::move(name);
      call_.on_emit = std::move(on_emit);
      host_.call_ = &call_;
    }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;
    ~CallScope() { host_.call_ = nullptr; }

    Call& call() { return call_; }

    /// Ends the call: checks the status against the ABI and fills the outcome's common part.
    void finish(syncpod_status status, CallOutcome& outcome) {
      host_.call_ = nullptr;
      const int value = static_cast<int>(status);
      if (value < static_cast<int>(SYNCPOD_OK) || value > static_cast<int>(SYNCPOD_FAILED)) {
        call_.problem(call_.name + " returned " + statusName(status) +
                      ", which abi.h does not define");
      } else if (status != SYNCPOD_OK && (!call_.fail_message || call_.fail_message->empty())) {
        call_.problem(call_.name + " returned " + statusName(status) +
                      " without a message (host->fail)");
      }
      if (call_.dropped_problems > 0) {
        call_.problems.push_back("and " + std::to_string(call_.dropped_problems) + " more");
      }
      outcome.status = status;
      outcome.message = call_.fail_message.value_or("");
      outcome.problems = std::move(call_.problems);
    }

   private:
    TestHost& host_;
    Call call_;
  };

  static TestHost& self(void* context) { return *static_cast<TestHost*>(context); }

  static std::string text(syncpod_bytes bytes) {
    return bytes.data == nullptr ? std::string() : std::string(bytes.data, bytes.size);
  }

  /// Whether `text` is well-formed UTF-8, the only encoding that may cross the ABI.
  static bool validUtf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
      const auto lead = static_cast<unsigned char>(text[i]);
      std::size_t length = 0;
      if (lead < 0x80)
        length = 1;
      else if (lead >= 0xC2 && lead <= 0xDF)
        length = 2;
      else if (lead >= 0xE0 && lead <= 0xEF)
        length = 3;
      else if (lead >= 0xF0 && lead <= 0xF4)
        length = 4;
      else
        return false;
      if (i + length > text.size()) return false;
      for (std::size_t k = 1; k < length; ++k) {
        if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
      }
      i += length;
    }
    return true;
  }

  /// Records that the plugin used `function` while none of its calls was running; false then.
  bool inCall(const char* function) {
    if (call_ != nullptr) return true;
    misuses_.push_back(std::string(function) + " was called outside a plugin call");
    return false;
  }

  static void onLog(void* context, syncpod_log_level level, syncpod_bytes message) {
    auto& host = self(context);
    std::string line = text(message);
    if (host.inCall("log")) {
      const int value = static_cast<int>(level);
      if (value < static_cast<int>(SYNCPOD_LOG_DEBUG) ||
          value > static_cast<int>(SYNCPOD_LOG_ERROR)) {
        host.call_->problem("log was called with level " + std::to_string(value) +
                            ", which abi.h does not define");
      }
      if (!validUtf8(line)) host.call_->problem("a log line is not valid UTF-8");
    }
    host.logs_.push_back({level, std::move(line)});
  }

  static void onProgress(void* context, syncpod_bytes counter, std::int64_t delta) {
    auto& host = self(context);
    if (!host.inCall("progress")) return;
    host.progress_[text(counter)] += delta;
  }

  static int onCancelled(void* context) {
    auto& host = self(context);
    if (!host.inCall("cancelled")) return 1;
    if (host.cancelled_.load()) return 1;
    return host.cancel_after_documents_ && host.call_->documents >= *host.cancel_after_documents_
               ? 1
               : 0;
  }

  static syncpod_status onSecret(void* context, syncpod_bytes name, syncpod_bytes* value) {
    auto& host = self(context);
    if (!host.inCall("secret")) return SYNCPOD_INVALID;
    if (value == nullptr) {
      host.call_->problem("secret was called with a NULL value pointer");
      return SYNCPOD_INVALID;
    }
    const auto found = host.secrets_.find(text(name));
    if (found == host.secrets_.end()) return SYNCPOD_INVALID;
    *value = {found->second.data(), found->second.size()};
    return SYNCPOD_OK;
  }

  static syncpod_status onEmit(void* context, syncpod_bytes document) {
    auto& host = self(context);
    if (!host.inCall("emit")) return SYNCPOD_INVALID;
    ++host.call_->documents;
    const std::string_view view = document.data == nullptr
                                      ? std::string_view()
                                      : std::string_view(document.data, document.size);
    if (!host.call_->on_emit) {
      host.call_->problem(host.call_->name + " emitted a document; it has no output");
      return SYNCPOD_INVALID;
    }
    return host.call_->on_emit(view);
  }

  static void onFail(void* context, syncpod_bytes message) {
    auto& host = self(context);
    std::string line = text(message);
    host.fail_messages_.push_back(line);
    if (!host.inCall("fail")) return;
    if (!validUtf8(line)) host.call_->problem("a failure message is not valid UTF-8");
    host.call_->fail_message = std::move(line);
  }

  syncpod_host table_{};
  Call* call_ = nullptr;
  std::map<std::string, std::string, std::less<>> secrets_;
  std::atomic<bool> cancelled_{false};
  std::optional<std::size_t> cancel_after_documents_;
  std::vector<LogLine> logs_;
  std::map<std::string, std::int64_t, std::less<>> progress_;
  std::vector<std::string> fail_messages_;
  std::vector<std::string> misuses_;
};

/// Thrown by PluginHandle::load when a file is not a plugin this kit can load; the message is
/// one line naming the file and what is wrong.
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

/// A loaded library and its plugin table; dlclose'd when the last owner lets go.
class Library {
 public:
  Library(std::string path, void* handle, const syncpod_plugin* table)
      : path_(std::move(path)),
        handle_(handle),
        table_(table),
        manifest_(table->manifest.data, table->manifest.size) {}
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() {
    if (handle_ != nullptr) ::dlclose(handle_);
  }

  /// dlclose now; throws LoadError with dlerror's text if it fails.
  void close() {
    void* handle = std::exchange(handle_, nullptr);
    if (handle != nullptr && ::dlclose(handle) != 0) {
      const char* error = ::dlerror();
      throw LoadError("cannot unload " + path_ + ": " + (error ? error : "dlclose failed"));
    }
  }

  const std::string& path() const { return path_; }
  const syncpod_plugin& table() const { return *table_; }
  const std::string& manifest() const { return manifest_; }

 private:
  std::string path_;
  void* handle_;
  const syncpod_plugin* table_;
  std::string manifest_;
};

inline std::string keyText(const std::vector<std::string>& key) {
  return Json(key).dump();
}

}  // namespace detail

/// One open plugin instance (an endpoint: the plugin plus one config). Closes it when destroyed.
/// It keeps the library loaded while it lives, as the host does, so it may outlive the
/// PluginHandle it came from. Move-only.
class Instance {
 public:
  /// An instance that is not open (e.g. the one a failed open leaves).
  Instance() = default;
  Instance(Instance&& other) noexcept
      : library_(std::move(other.library_)),
        host_(std::move(other.host_)),
        instance_(std::exchange(other.instance_, nullptr)) {}
  Instance& operator=(Instance&& other) noexcept {
    if (this != &other) {
      close();
      library_ = std::move(other.library_);
      host_ = std::move(other.host_);
      instance_ = std::exchange(other.instance_, nullptr);
    }
    return *this;
  }
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  ~Instance() { close(); }

  bool isOpen() const { return instance_ != nullptr; }

  /// The host table this instance's calls use.
  TestHost& host() const {
    requireOpen();
    return *host_;
  }

  /// Calls check.
  CallOutcome check() {
    requireOpen();
    CallOutcome outcome;
    TestHost::CallScope scope(*host_, "check", {});
    const auto status = library_->table().check(instance_, host_->table());
    scope.finish(status, outcome);
    return outcome;
  }

  /// Calls fetch with `request` (batch_size included) and checks every batch it emits: a JSON
  /// object naming the requested stream, records of the documented shape, at most batch_size of
  /// them, a string cursor if any. Without `on_batch` the records are collected in the outcome.
  FetchOutcome fetch(const FetchRequest& request, const BatchHandler& on_batch = {}) {
    requireOpen();
    FetchOutcome outcome;
    const std::string text = toJson(request).dump();
    TestHost::CallScope scope(*host_, "fetch", {});
    auto& call = scope.call();
    call.on_emit = [&](std::string_view document) -> syncpod_status {
      const std::size_t number = ++outcome.batches;
      auto batch = parseBatch(document, request, number, call);
      if (!batch) return SYNCPOD_OK;
      if (batch->cursor) outcome.cursor = batch->cursor;
      if (on_batch) return on_batch(std::move(*batch)) ? SYNCPOD_OK : SYNCPOD_CANCELLED;
      for (auto& record : batch->records) outcome.records.push_back(std::move(record));
      return SYNCPOD_OK;
    };
    const auto status =
        library_->table().fetch(instance_, host_->table(), {text.data(), text.size()});
    scope.finish(status, outcome);
    return outcome;
  }

  /// Calls apply with `changeset` in `mode` and checks that a successful call emitted exactly
  /// one {"results": [...]} document with one well-formed result per change.
  ApplyOutcome apply(const Changeset& changeset, ApplyMode mode) {
    requireOpen();
    ApplyOutcome outcome;
    const std::string text = toJson(changeset, mode).dump();
    std::vector<std::string> documents;
    TestHost::CallScope scope(*host_, "apply", collector(documents));
    const auto status =
        library_->table().apply(instance_, host_->table(), {text.data(), text.size()});
    if (status == SYNCPOD_OK) {
      if (const auto list = singleList(documents, "results", scope.call())) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          try {
            outcome.results.push_back(changeResultFromJson((*list)[i]));
          } catch (const PluginError& error) {
            scope.call().problem("apply result " + std::to_string(i) + ": " + error.what());
          }
        }
        if (list->size() != changeset.changes.size()) {
          scope.call().problem("apply returned " + std::to_string(list->size()) + " results for " +
                               std::to_string(changeset.changes.size()) + " changes");
        }
      }
    }
    scope.finish(status, outcome);
    if (!outcome.problems.empty()) outcome.results.clear();
    return outcome;
  }

  /// Compares (current, desired) pairs of `stream` with the plugin's diff, and checks that it
  /// emitted one {"changed": [[...]]} document with one list per pair. A plugin without a diff
  /// (the table's diff is NULL) gets what the host does then: Connector::defaultDiff.
  DiffOutcome diff(const std::string& stream, const std::vector<std::pair<Json, Json>>& pairs) {
    requireOpen();
    DiffOutcome outcome;
    if (library_->table().diff == nullptr) {
      for (const auto& [current, desired] : pairs) {
        outcome.changed.push_back(Connector::defaultDiff(current, desired));
      }
      outcome.status = SYNCPOD_OK;
      return outcome;
    }
    Json list = Json::array();
    for (const auto& [current, desired] : pairs) {
      list.push_back({{"current", current}, {"desired", desired}});
    }
    const std::string text = Json{{"stream", stream}, {"pairs", std::move(list)}}.dump();
    std::vector<std::string> documents;
    TestHost::CallScope scope(*host_, "diff", collector(documents));
    const auto status =
        library_->table().diff(instance_, host_->table(), {text.data(), text.size()});
    if (status == SYNCPOD_OK) {
      if (const auto changed = singleList(documents, "changed", scope.call())) {
        for (const auto& fields : *changed) {
          const bool names =
              fields.is_array() && std::all_of(fields.begin(), fields.end(),
                                               [](const Json& f) { return f.is_string(); });
          if (!names) {
            scope.call().problem("diff: each item of \"changed\" must be an array of field names");
            break;
          }
          outcome.changed.push_back(fields.get<std::vector<std::string>>());
        }
        if (changed->size() != pairs.size()) {
          scope.call().problem("diff returned " + std::to_string(changed->size()) + " lists for " +
                               std::to_string(pairs.size()) + " pairs");
        }
      }
    }
    scope.finish(status, outcome);
    if (!outcome.problems.empty()) outcome.changed.clear();
    return outcome;
  }

  /// Calls fetch with any text as the request (to test how the plugin handles bad input).
  RawOutcome fetchRaw(std::string_view request) {
    return raw("fetch", request, library_ ? library_->table().fetch : nullptr);
  }
  /// Calls apply with any text as the changeset.
  RawOutcome applyRaw(std::string_view changeset) {
    return raw("apply", changeset, library_ ? library_->table().apply : nullptr);
  }
  /// Calls diff with any text as the pairs document; SYNCPOD_FAILED with a problem if the
  /// plugin has no diff.
  RawOutcome diffRaw(std::string_view pairs) {
    requireOpen();
    if (library_->table().diff == nullptr) {
      RawOutcome outcome;
      outcome.problems.push_back("the plugin has no diff function");
      return outcome;
    }
    return raw("diff", pairs, library_->table().diff);
  }

  /// Closes the instance (the plugin's close); nothing if it is not open.
  void close() {
    if (instance_ != nullptr) library_->table().close(std::exchange(instance_, nullptr));
    library_.reset();
    host_.reset();
  }

 private:
  friend class PluginHandle;
  using RawCall = syncpod_status (*)(void*, const syncpod_host*, syncpod_bytes);

  Instance(std::shared_ptr<detail::Library> library, std::shared_ptr<TestHost> host, void* instance)
      : library_(std::move(library)), host_(std::move(host)), instance_(instance) {}

  void requireOpen() const {
    if (instance_ == nullptr) throw std::logic_error("the plugin instance is not open");
  }

  static std::function<syncpod_status(std::string_view)> collector(std::vector<std::string>& into) {
    return [&into](std::string_view document) {
      into.emplace_back(document);
      return SYNCPOD_OK;
    };
  }

  RawOutcome raw(const char* name, std::string_view input, RawCall function) {
    requireOpen();
    RawOutcome outcome;
    TestHost::CallScope scope(*host_, name, collector(outcome.documents));
    const auto status = function(instance_, host_->table(), {input.data(), input.size()});
    scope.finish(status, outcome);
    return outcome;
  }

  /// The array `member` of the one document a call emitted, or nullopt after noting a problem.
  static std::optional<Json> singleList(const std::vector<std::string>& documents,
                                        const char* member, TestHost::Call& call) {
    if (documents.size() != 1) {
      call.problem(call.name + " emitted " + std::to_string(documents.size()) +
                   " documents; it must emit exactly one");
      return std::nullopt;
    }
    auto json = Json::parse(documents.front(), nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      call.problem(call.name + " emitted a document that is not a JSON object");
      return std::nullopt;
    }
    const auto found = json.find(member);
    if (found == json.end() || !found->is_array()) {
      call.problem(call.name + "'s document needs \"" + member + "\": an array");
      return std::nullopt;
    }
    return std::move(*found);
  }

  static std::optional<Batch> parseBatch(std::string_view document, const FetchRequest& request,
                                         std::size_t number, TestHost::Call& call) {
    const std::string where = "fetch batch " + std::to_string(number);
    auto json = Json::parse(document.begin(), document.end(), nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      call.problem(where + " is not a JSON object");
      return std::nullopt;
    }
    const auto stream = json.find("stream");
    if (stream == json.end() || !stream->is_string()) {
      call.problem(where + " needs \"stream\": a string");
    } else if (stream->get<std::string>() != request.stream) {
      call.problem(where + " names stream \"" + stream->get<std::string>() +
                   "\"; the request asked for \"" + request.stream + "\"");
    }
    Batch batch;
    const auto records = json.find("records");
    if (records == json.end() || !records->is_array()) {
      call.problem(where + " needs \"records\": an array");
      return std::nullopt;
    }
    if (records->size() > request.batch_size) {
      call.problem(where + " holds " + std::to_string(records->size()) +
                   " records; the request allowed at most " + std::to_string(request.batch_size));
    }
    for (auto& item : *records) {
      try {
        batch.records.push_back(recordFromJson(item));
      } catch (const PluginError& error) {
        call.problem(where + ": " + error.what());
      }
    }
    if (const auto cursor = json.find("cursor"); cursor != json.end() && !cursor->is_null()) {
      if (cursor->is_string()) {
        batch.cursor = cursor->get<std::string>();
      } else {
        call.problem(where + ": \"cursor\" must be a string");
      }
    }
    return batch;
  }

  // Declared first, destroyed last: the table (and the code of close) lives in the library.
  std::shared_ptr<detail::Library> library_;
  std::shared_ptr<TestHost> host_;
  void* instance_ = nullptr;
};

struct OpenOutcome : CallOutcome {
  /// The open instance when the call succeeded; not open otherwise.
  Instance instance;
};

/// A plugin file loaded with dlopen(RTLD_NOW | RTLD_LOCAL), as the host loads it. Move-only.
class PluginHandle {
 public:
  /// Loads `path` and performs the host's handshake: the entry point must exist and return a
  /// table of this kit's ABI major, of a minor no newer than the kit's, large enough for that
  /// minor, with every required function and a manifest. Throws LoadError otherwise.
  static PluginHandle load(const std::string& path) {
    ::dlerror();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* error = ::dlerror();
      throw LoadError("cannot load plugin " + path + ": " + (error ? error : "dlopen failed"));
    }
    // From here on the library is closed again if anything below throws.
    std::unique_ptr<void, int (*)(void*)> guard(handle, &::dlclose);
    void* symbol = ::dlsym(handle, SYNCPOD_PLUGIN_ENTRY_NAME);
    if (symbol == nullptr) {
      throw LoadError(path + " is not a syncpod plugin: it does not export " +
                      SYNCPOD_PLUGIN_ENTRY_NAME);
    }
    // POSIX guarantees that dlsym's result converts to a function pointer.
    const auto entry = reinterpret_cast<syncpod_plugin_entry_fn>(symbol);
    const syncpod_plugin* table = entry(SYNCPOD_ABI_MAJOR, SYNCPOD_ABI_MINOR);
    if (table == nullptr) throw LoadError(path + ": " SYNCPOD_PLUGIN_ENTRY_NAME " returned NULL");
    const std::string built_for =
        std::to_string(table->abi_major) + "." + std::to_string(table->abi_minor);
    if (table->abi_major != SYNCPOD_ABI_MAJOR) {
      throw LoadError(path + " was built for plugin ABI " + built_for + "; this kit speaks " +
                      std::to_string(SYNCPOD_ABI_MAJOR) + ".x");
    }
    if (table->abi_minor > SYNCPOD_ABI_MINOR) {
      throw LoadError(path + " needs plugin ABI " + built_for + "; this kit has " +
                      std::to_string(SYNCPOD_ABI_MAJOR) + "." + std::to_string(SYNCPOD_ABI_MINOR) +
                      " (build the tests against a newer SDK)");
    }
    // Every minor only appends, so the 1.0 members must all be there.
    constexpr std::size_t kTableSize_1_0 = offsetof(syncpod_plugin, apply) + sizeof(table->apply);
    if (table->struct_size < kTableSize_1_0) {
      throw LoadError(path + ": its plugin table is " + std::to_string(table->struct_size) +
                      " bytes, too small for ABI " + built_for);
    }
    const char* missing = table->open == nullptr    ? "open"
                          : table->close == nullptr ? "close"
                          : table->check == nullptr ? "check"
                          : table->fetch == nullptr ? "fetch"
                          : table->apply == nullptr ? "apply"
                                                    : nullptr;
    if (missing != nullptr) {
      throw LoadError(path + ": its plugin table has no " + missing + " function");
    }
    if (table->manifest.data == nullptr || table->manifest.size == 0) {
      throw LoadError(path + ": its plugin table has an empty manifest");
    }
    PluginHandle plugin;
    plugin.library_ = std::make_shared<detail::Library>(path, guard.release(), table);
    plugin.host_ = std::make_shared<TestHost>();
    return plugin;
  }

  /// Whether the file is mapped in this process now (dlopen with RTLD_NOLOAD). After unload()
  /// it normally is not; a library with STB_GNU_UNIQUE symbols (GCC emits them for statics of
  /// inline functions in namespace std unless built with -fno-gnu-unique, as
  /// syncpod_add_plugin does) or with live thread_local objects that have destructors stays.
  static bool isLoaded(const std::string& path) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    ::dlclose(handle);
    return true;
  }

  PluginHandle(PluginHandle&&) noexcept = default;
  PluginHandle& operator=(PluginHandle&&) noexcept = default;
  PluginHandle(const PluginHandle&) = delete;
  PluginHandle& operator=(const PluginHandle&) = delete;
  ~PluginHandle() = default;

  const std::string& path() const { return library().path(); }
  /// The plugin's table (ABI version, struct size, function pointers).
  const syncpod_plugin& table() const { return library().table(); }
  /// The manifest exactly as the plugin reported it.
  const std::string& manifestText() const { return library().manifest(); }
  /// The manifest parsed; a discarded value (is_discarded()) if it is not JSON.
  Json manifestJson() const { return Json::parse(manifestText(), nullptr, false); }
  /// Whether the plugin has its own diff (the table's diff is not NULL).
  bool hasCustomDiff() const { return table().diff != nullptr; }

  /// The host of every call through this handle and the instances it opens. It stays
  /// readable after unload().
  TestHost& host() const {
    if (host_ == nullptr) throw std::logic_error("the plugin handle was moved from");
    return *host_;
  }

  /// Calls open with `config` (serialised as JSON).
  OpenOutcome open(const Json& config) const { return openRaw(config.dump()); }

  /// Calls open with any text as the config (to test how the plugin handles bad input).
  OpenOutcome openRaw(std::string_view config) const {
    const auto& lib = library();
    OpenOutcome outcome;
    void* instance = nullptr;
    TestHost::CallScope scope(*host_, "open", {});
    const auto status = lib.table().open(host_->table(), {config.data(), config.size()}, &instance);
    if (status == SYNCPOD_OK && instance == nullptr) {
      scope.call().problem("open returned SYNCPOD_OK without an instance");
    }
    if (status != SYNCPOD_OK && instance != nullptr) {
      // Not closed: close is only for instances a successful open made.
      scope.call().problem("open returned " + statusName(status) + " but stored an instance");
    }
    scope.finish(status, outcome);
    if (status == SYNCPOD_OK && instance != nullptr) {
      outcome.instance = Instance(library_, host_, instance);
    }
    return outcome;
  }

  /// Lets go of the library: dlclose now if no Instance holds it (true), else when the last one
  /// closes (false). Throws LoadError if dlclose fails. Only host() works afterwards.
  bool unload() {
    if (library_ == nullptr) return false;
    const bool last = library_.use_count() == 1;
    if (last) library_->close();
    library_.reset();
    return last;
  }

 private:
  PluginHandle() = default;

  const detail::Library& library() const {
    if (library_ == nullptr)
      throw std::logic_error("the plugin handle is empty (unloaded or moved from)");
    return *library_;
  }

  std::shared_ptr<detail::Library> library_;
  std::shared_ptr<TestHost> host_;
};

}  // namespace syncpod::testkit
