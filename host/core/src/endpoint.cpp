// Endpoints: calls into an open plugin instance, and the checks on what comes back. Whatever
// a plugin returns, these functions answer with a Result and never throw.

#include <exception>
#include <utility>

#include <syncpod/sdk/connector.hpp>
#include <syncpod/sdk/json_schema.hpp>

#include "library_plugin.hpp"
#include "plugin_call.hpp"

namespace syncpod::core::detail {
namespace {

/// The JSON text of a document the host sends; invalid UTF-8 is replaced, never thrown.
std::string text(const Json& document) {
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// Parses a document the plugin emitted; throws std::runtime_error saying why it cannot.
Json parse(std::string_view document) {
  try {
    return Json::parse(document.begin(), document.end());
  } catch (const Json::parse_error& error) {
    // Not error.what(): it quotes the input, which may hold record data.
    throw std::runtime_error("not valid JSON (at byte " + std::to_string(error.byte) + ")");
  }
}

std::string plural(std::size_t count, const char* noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

Error unexpected(const std::string& plugin_id, const char* operation, const char* what) {
  return {Error::Code::Internal, plugin_id + ": " + operation + ": unexpected host error: " + what};
}

class LibraryEndpoint final : public Endpoint {
 public:
  LibraryEndpoint(std::shared_ptr<const LibraryPlugin> plugin, void* instance, Redactor redactor)
      : plugin_(std::move(plugin)), instance_(instance), redactor_(std::move(redactor)) {}

  ~LibraryEndpoint() override {
    try {
      plugin_->table().close(instance_);
    } catch (...) {
      // close never fails by contract; a plugin that throws anyway must not end the host.
    }
  }

  LibraryEndpoint(const LibraryEndpoint&) = delete;
  LibraryEndpoint& operator=(const LibraryEndpoint&) = delete;

  const std::string& pluginId() const override { return plugin_->id(); }

  bool hasCustomDiff() const override { return plugin_->hasCustomDiff(); }

  Result<Done> check(const CallHooks& hooks) override {
    try {
      PluginCall call(pluginId(), "check", hooks, redactor_);
      if (auto error = call.run([&] { return plugin_->table().check(instance_, call.host()); })) {
        return *error;
      }
      return Done{};
    } catch (const std::exception& error) {
      return unexpected(pluginId(), "check", error.what());
    }
  }

  Result<Done> fetch(const FetchRequest& request, const BatchHandler& on_batch,
                     const CallHooks& hooks) override {
    try {
      PluginCall call(pluginId(), "fetch", hooks, redactor_);
      std::size_t batches = 0;
      call.setEmitHandler([&](std::string_view document) -> syncpod_status {
        ++batches;
        RecordBatch batch;
        try {
          batch = readBatch(document, request.stream);
        } catch (const std::exception& error) {
          call.outputError("fetch emitted a batch the host cannot read (batch " +
                           std::to_string(batches) + "): " + error.what());
          return SYNCPOD_FAILED;
        }
        bool more = false;
        try {
          more = on_batch(std::move(batch));
        } catch (const std::exception& error) {
          call.outputError(std::string("fetch: the batch handler failed: ") + error.what());
          return SYNCPOD_FAILED;
        }
        if (!more) {
          call.stop();
          return SYNCPOD_CANCELLED;
        }
        return SYNCPOD_OK;
      });
      const std::string request_text = text(toJson(request));
      const syncpod_bytes bytes{request_text.data(), request_text.size()};
      if (auto error =
              call.run([&] { return plugin_->table().fetch(instance_, call.host(), bytes); })) {
        return *error;
      }
      return Done{};
    } catch (const std::exception& error) {
      return unexpected(pluginId(), "fetch", error.what());
    }
  }

  Result<std::vector<std::vector<std::string>>> diff(
      const std::string& stream, const std::vector<std::pair<Json, Json>>& pairs,
      const CallHooks& hooks) override {
    try {
      if (plugin_->table().diff == nullptr) {
        std::vector<std::vector<std::string>> changed;
        changed.reserve(pairs.size());
        for (const auto& [current, desired] : pairs) {
          changed.push_back(Connector::defaultDiff(current, desired));
        }
        return changed;
      }
      if (pairs.empty()) return std::vector<std::vector<std::string>>{};
      PluginCall call(pluginId(), "diff", hooks, redactor_);
      std::optional<std::vector<std::vector<std::string>>> changed;
      call.setEmitHandler([&](std::string_view document) -> syncpod_status {
        try {
          if (changed) throw std::runtime_error("more than one document");
          changed = readChanged(document, pairs.size());
          return SYNCPOD_OK;
        } catch (const std::exception& error) {
          call.outputError(std::string("diff emitted output the host cannot read: ") +
                           error.what());
          return SYNCPOD_FAILED;
        }
      });
      Json list = Json::array();
      for (const auto& [current, desired] : pairs) {
        list.push_back({{"current", current}, {"desired", desired}});
      }
      const std::string request_text = text({{"stream", stream}, {"pairs", std::move(list)}});
      const syncpod_bytes bytes{request_text.data(), request_text.size()};
      if (auto error =
              call.run([&] { return plugin_->table().diff(instance_, call.host(), bytes); })) {
        return *error;
      }
      if (!changed) return call.internal("diff returned SYNCPOD_OK without emitting its result");
      return std::move(*changed);
    } catch (const std::exception& error) {
      return unexpected(pluginId(), "diff", error.what());
    }
  }

  Result<std::vector<ChangeResult>> apply(const Changeset& changeset, ApplyMode mode,
                                          const CallHooks& hooks) override {
    try {
      PluginCall call(pluginId(), "apply", hooks, redactor_);
      std::optional<std::vector<ChangeResult>> results;
      call.setEmitHandler([&](std::string_view document) -> syncpod_status {
        try {
          if (results) throw std::runtime_error("more than one document");
          results = readResults(document, changeset.changes.size());
          return SYNCPOD_OK;
        } catch (const std::exception& error) {
          call.outputError(std::string("apply emitted output the host cannot read: ") +
                           error.what());
          return SYNCPOD_FAILED;
        }
      });
      const std::string request_text = text(toJson(changeset, mode));
      const syncpod_bytes bytes{request_text.data(), request_text.size()};
      if (auto error =
              call.run([&] { return plugin_->table().apply(instance_, call.host(), bytes); })) {
        return *error;
      }
      if (!results) return call.internal("apply returned SYNCPOD_OK without emitting its results");
      return std::move(*results);
    } catch (const std::exception& error) {
      return unexpected(pluginId(), "apply", error.what());
    }
  }

 private:
  static RecordBatch readBatch(std::string_view document, const std::string& requested) {
    const Json json = parse(document);
    if (!json.is_object()) throw std::runtime_error("a batch must be a JSON object");
    RecordBatch batch;
    const auto stream = json.find("stream");
    if (stream == json.end() || !stream->is_string()) {
      throw std::runtime_error("\"stream\" must be a string");
    }
    batch.stream = stream->get<std::string>();
    if (batch.stream != requested) {
      throw std::runtime_error("records of stream \"" + batch.stream + "\", but \"" + requested +
                               "\" was requested");
    }
    const auto records = json.find("records");
    if (records == json.end() || !records->is_array()) {
      throw std::runtime_error("\"records\" must be an array");
    }
    batch.records.reserve(records->size());
    for (std::size_t i = 0; i < records->size(); ++i) {
      try {
        batch.records.push_back(recordFromJson((*records)[i]));
      } catch (const std::exception& error) {
        throw std::runtime_error("records[" + std::to_string(i) + "]: " + error.what());
      }
    }
    if (const auto cursor = json.find("cursor"); cursor != json.end() && !cursor->is_null()) {
      if (!cursor->is_string()) throw std::runtime_error("\"cursor\" must be a string");
      batch.cursor = cursor->get<std::string>();
    }
    return batch;
  }

  static std::vector<std::vector<std::string>> readChanged(std::string_view document,
                                                           std::size_t expected) {
    const Json json = parse(document);
    const auto changed = json.is_object() ? json.find("changed") : json.end();
    if (!json.is_object() || changed == json.end() || !changed->is_array()) {
      throw std::runtime_error("expected an object with a \"changed\" array");
    }
    if (changed->size() != expected) {
      throw std::runtime_error(plural(changed->size(), "answer") + " for " +
                               plural(expected, "pair"));
    }
    std::vector<std::vector<std::string>> lists;
    lists.reserve(expected);
    for (const auto& fields : *changed) {
      if (!fields.is_array())
        throw std::runtime_error("each answer must be an array of field names");
      auto& list = lists.emplace_back();
      for (const auto& field : fields) {
        if (!field.is_string())
          throw std::runtime_error("each answer must be an array of field names");
        list.push_back(field.get<std::string>());
      }
    }
    return lists;
  }

  static std::vector<ChangeResult> readResults(std::string_view document, std::size_t expected) {
    const Json json = parse(document);
    const auto list = json.is_object() ? json.find("results") : json.end();
    if (!json.is_object() || list == json.end() || !list->is_array()) {
      throw std::runtime_error("expected an object with a \"results\" array");
    }
    if (list->size() != expected) {
      throw std::runtime_error(plural(list->size(), "result") + " for " +
                               plural(expected, "change"));
    }
    std::vector<ChangeResult> results;
    results.reserve(expected);
    for (std::size_t i = 0; i < list->size(); ++i) {
      try {
        results.push_back(changeResultFromJson((*list)[i]));
      } catch (const std::exception& error) {
        throw std::runtime_error("results[" + std::to_string(i) + "]: " + error.what());
      }
    }
    return results;
  }

  std::shared_ptr<const LibraryPlugin> plugin_;
  void* instance_;
  Redactor redactor_;
};

}  // namespace

LibraryPlugin::LibraryPlugin(std::shared_ptr<const void> library, const syncpod_plugin& table,
                             std::string path, Json manifest_json, Manifest manifest)
    : library_(std::move(library)),
      table_(table),
      path_(std::move(path)),
      manifest_json_(std::move(manifest_json)),
      manifest_(std::move(manifest)) {}

Redactor LibraryPlugin::redactorFor(const Json& config) const {
  Redactor redactor;
  for (const auto& path : json_schema::secretPointers(manifest_.config_schema, config)) {
    const auto& value = config.at(Json::json_pointer(path));
    redactor.add(value.is_string() ? value.get<std::string>() : value.dump());
  }
  return redactor;
}

Result<EndpointPtr> LibraryPlugin::open(const Json& config, const CallHooks& hooks) const {
  try {
    // Walks the schema and the config: once, for the call and the endpoint.
    const Redactor redactor = redactorFor(config);
    PluginCall call(id(), "open", hooks, redactor);
    const std::string config_text = text(config);
    const syncpod_bytes bytes{config_text.data(), config_text.size()};
    void* instance = nullptr;
    syncpod_status status = SYNCPOD_FAILED;
    const auto error = call.run([&] {
      status = table_.open(call.host(), bytes, &instance);
      return status;
    });
    // From here on the instance is ours: it is closed by the endpoint, or right here.
    std::unique_ptr<void, void (*)(void*)> owned(status == SYNCPOD_OK ? instance : nullptr,
                                                 table_.close);
    if (error) return *error;
    auto endpoint =
        std::make_unique<LibraryEndpoint>(shared_from_this(), instance, redactor);
    owned.release();
    return EndpointPtr(std::move(endpoint));
  } catch (const std::exception& error) {
    return unexpected(id(), "open", error.what());
  }
}

}  // namespace syncpod::core::detail
