// PluginClient: loads a connector plugin (.so) with dlopen and drives it through its C ABI
// exactly as a host would, so plugin tests exercise the real library, the SYNCPOD_PLUGIN thunks
// and the JSON that crosses the boundary. Header-only; tests only.
#pragma once

#include <cstdint>
#include <dlfcn.h>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <syncpod/abi.h>
#include <syncpod/sdk/model.hpp>

namespace syncpod::plugins::testing {

/// What one plugin call returned and everything it sent to the host while it ran.
struct CallResult {
  syncpod_status status = SYNCPOD_FAILED;
  /// The last message passed to host->fail ("" if none).
  std::string message;
  /// Every emitted document, parsed, in order.
  std::vector<Json> documents;
  /// Every log line, as "<level>: <text>".
  std::vector<std::string> logs;

  bool ok() const { return status == SYNCPOD_OK; }

  /// The fields of every record of every emitted batch, in order (fetch).
  std::vector<Json> records() const {
    std::vector<Json> out;
    for (const auto& document : documents) {
      for (const auto& record : document.value("records", Json::array())) {
        out.push_back(record.at("fields"));
      }
    }
    return out;
  }

  /// The whole record documents ({fields, version, deleted}) of every batch (fetch).
  std::vector<Json> recordDocuments() const {
    std::vector<Json> out;
    for (const auto& document : documents) {
      for (const auto& record : document.value("records", Json::array())) out.push_back(record);
    }
    return out;
  }

  /// The number of records in each emitted batch (fetch).
  std::vector<std::size_t> batchSizes() const {
    std::vector<std::size_t> sizes;
    for (const auto& document : documents)
      sizes.push_back(document.value("records", Json::array()).size());
    return sizes;
  }

  /// The last cursor any batch carried (fetch).
  std::optional<std::string> cursor() const {
    std::optional<std::string> last;
    for (const auto& document : documents) {
      if (const auto c = document.find("cursor"); c != document.end()) last = c->get<std::string>();
    }
    return last;
  }

  /// The status names of the results document, e.g. {"applied", "noop"} (apply).
  std::vector<std::string> statuses() const {
    std::vector<std::string> out;
    for (const auto& result : results()) out.push_back(result.at("status").get<std::string>());
    return out;
  }

  /// The result objects of the results document (apply).
  std::vector<Json> results() const {
    if (documents.empty()) return {};
    const auto& list = documents.back().value("results", Json::array());
    return {list.begin(), list.end()};
  }

  /// Everything the call produced as text: the message, logs and documents, to look for leaks.
  std::string everything() const {
    std::string text = message;
    for (const auto& line : logs) text += "\n" + line;
    for (const auto& document : documents) text += "\n" + document.dump();
    return text;
  }
};

inline std::string_view statusName(syncpod_status status) {
  switch (status) {
    case SYNCPOD_OK: return "ok";
    case SYNCPOD_INVALID: return "invalid";
    case SYNCPOD_RETRYABLE: return "retryable";
    case SYNCPOD_UNAUTHORIZED: return "unauthorized";
    case SYNCPOD_CANCELLED: return "cancelled";
    case SYNCPOD_FAILED: return "failed";
  }
  return "unknown";
}

/// One loaded plugin library and (after open) one instance of it. Not thread-safe.
class PluginClient {
 public:
  /// Loads the library and reads its table; throws std::runtime_error when that fails.
  explicit PluginClient(const std::string& path) {
    library_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library_ == nullptr) throw std::runtime_error(std::string("dlopen: ") + ::dlerror());
    void* symbol = ::dlsym(library_, SYNCPOD_PLUGIN_ENTRY_NAME);
    if (symbol == nullptr) {
      ::dlclose(library_);
      throw std::runtime_error(path + " does not export " SYNCPOD_PLUGIN_ENTRY_NAME);
    }
    // dlsym returns an object pointer; POSIX guarantees it converts to a function pointer.
    auto entry = reinterpret_cast<syncpod_plugin_entry_fn>(symbol);  // NOLINT
    table_ = entry(SYNCPOD_ABI_MAJOR, SYNCPOD_ABI_MINOR);
    if (table_ == nullptr || table_->abi_major != SYNCPOD_ABI_MAJOR) {
      ::dlclose(library_);
      throw std::runtime_error(path + " returned no table or a different ABI major");
    }
  }

  PluginClient(const PluginClient&) = delete;
  PluginClient& operator=(const PluginClient&) = delete;

  ~PluginClient() {
    close();
    ::dlclose(library_);
  }

  const syncpod_plugin& table() const { return *table_; }

  Json manifest() const {
    return Json::parse(table_->manifest.data, table_->manifest.data + table_->manifest.size);
  }

  /// Opens an instance with `config`; an instance opened before is closed first.
  CallResult open(const Json& config) { return openText(config.dump()); }

  /// open() with config text as it is (for malformed documents).
  CallResult openText(const std::string& config) {
    close();
    return call(
        [&](const syncpod_host* host) { return table_->open(host, bytes(config), &instance_); });
  }

  void close() {
    if (instance_ != nullptr) table_->close(instance_);
    instance_ = nullptr;
  }

  CallResult check() {
    requireInstance();
    return call([&](const syncpod_host* host) { return table_->check(instance_, host); });
  }

  CallResult fetch(const Json& request) {
    requireInstance();
    const std::string text = request.dump();
    return call(
        [&](const syncpod_host* host) { return table_->fetch(instance_, host, bytes(text)); });
  }

  CallResult apply(const Json& changeset) {
    requireInstance();
    const std::string text = changeset.dump();
    return call(
        [&](const syncpod_host* host) { return table_->apply(instance_, host, bytes(text)); });
  }

  /// From now on, the host reports "cancelled" once `emits` documents have been emitted.
  void cancelAfterEmits(std::optional<std::size_t> emits) { cancel_after_emits_ = emits; }

  /// Secrets the host's secret store answers with.
  std::map<std::string, std::string> secrets;

 private:
  struct CallState {
    PluginClient* client = nullptr;
    CallResult result;
    std::size_t emits = 0;
  };

  static syncpod_bytes bytes(const std::string& text) { return {text.data(), text.size()}; }
  static std::string text(syncpod_bytes value) { return {value.data, value.size}; }
  static CallState& state(void* context) { return *static_cast<CallState*>(context); }

  void requireInstance() const {
    if (instance_ == nullptr)
      throw std::logic_error("PluginClient: call open() successfully first");
  }

  template <class Body>
  CallResult call(Body&& body) {
    CallState call_state;
    call_state.client = this;
    syncpod_host host{};
    host.abi_major = SYNCPOD_ABI_MAJOR;
    host.abi_minor = SYNCPOD_ABI_MINOR;
    host.struct_size = sizeof(syncpod_host);
    host.context = &call_state;
    host.log = [](void* context, syncpod_log_level level, syncpod_bytes message) {
      static constexpr const char* kNames[] = {"?", "debug", "info", "warn", "error"};
      const auto index = static_cast<std::size_t>(level);
      state(context).result.logs.push_back(std::string(index < 5 ? kNames[index] : "?") + ": " +
                                           text(message));
    };
    host.progress = [](void*, syncpod_bytes, std::int64_t) {};
    host.cancelled = [](void* context) -> int {
      const auto& s = state(context);
      return s.client->cancel_after_emits_ && s.emits >= *s.client->cancel_after_emits_ ? 1 : 0;
    };
    host.secret = [](void* context, syncpod_bytes name, syncpod_bytes* value) {
      const auto& store = state(context).client->secrets;
      const auto found = store.find(text(name));
      if (found == store.end()) return SYNCPOD_INVALID;
      *value = bytes(found->second);
      return SYNCPOD_OK;
    };
    host.emit = [](void* context, syncpod_bytes document) {
      auto& s = state(context);
      auto parsed = Json::parse(document.data, document.data + document.size, nullptr, false);
      if (parsed.is_discarded()) {
        s.result.message = "the plugin emitted a document that is not JSON";
        return SYNCPOD_FAILED;
      }
      s.result.documents.push_back(std::move(parsed));
      ++s.emits;
      return SYNCPOD_OK;
    };
    host.fail = [](void* context, syncpod_bytes message) {
      state(context).result.message = text(message);
    };
    call_state.result.status = body(&host);
    return std::move(call_state.result);
  }

  void* library_ = nullptr;
  const syncpod_plugin* table_ = nullptr;
  void* instance_ = nullptr;
  std::optional<std::size_t> cancel_after_emits_;
};

}  // namespace syncpod::plugins::testing
