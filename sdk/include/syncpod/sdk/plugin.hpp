// SYNCPOD_PLUGIN(MyConnector): generates the C entry point and the thunks that connect the C ABI
// (abi.h) to a syncpod::Connector. The thunks parse and check what the host sends, validate the
// config against the manifest's schema before the connector sees it, and turn every exception
// into a status and message: nothing thrown ever crosses the boundary.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "syncpod/abi.h"
#include "syncpod/sdk/connector.hpp"
#include "syncpod/sdk/json_schema.hpp"
#include "syncpod/sdk/model.hpp"

namespace syncpod::detail {

inline void fail(const syncpod_host* host, const std::string& message) {
  host->fail(host->context, Context::bytes(message));
}

/// Runs `body`, turning whatever it throws into a status and a message for the host.
template <class Body>
syncpod_status guarded(const syncpod_host* host, const char* call, Body&& body) noexcept {
  try {
    body();
    return SYNCPOD_OK;
  } catch (const PluginError& error) {
    fail(host, error.what());
    return error.status();
  } catch (const std::exception& error) {
    fail(host, std::string(call) + " failed: " + error.what());
    return SYNCPOD_FAILED;
  } catch (...) {
    fail(host, std::string(call) + " failed with an exception that is not a std::exception");
    return SYNCPOD_FAILED;
  }
}

inline Json parseDocument(syncpod_bytes bytes, const char* what) {
  auto json = Json::parse(bytes.data, bytes.data + bytes.size, nullptr, false);
  if (json.is_discarded()) throw invalid(std::string(what) + " is not valid JSON");
  return json;
}

inline void emit(const Context& context, const Json& document) {
  const std::string text = document.dump(-1, ' ', false, Json::error_handler_t::replace);
  const auto status = context.host()->emit(context.host()->context, Context::bytes(text));
  if (status != SYNCPOD_OK) throw PluginError(status, "the host refused the result");
}

/// The manifest's JSON text, built once. A manifest() that throws yields {"error": …}, which
/// the host reports as an invalid manifest.
template <class T>
const std::string& manifestText() noexcept {
  static const std::string text = []() -> std::string {
    try {
      return toJson(T::manifest()).dump();
    } catch (const std::exception& error) {
      return Json{{"error", std::string("manifest() threw: ") + error.what()}}.dump();
    } catch (...) {
      return R"({"error":"manifest() threw"})";
    }
  }();
  return text;
}

template <class T>
const Json& configSchema() {
  static const Json schema = T::manifest().config_schema;
  return schema;
}

template <class T>
syncpod_status open(const syncpod_host* host, syncpod_bytes config, void** instance) noexcept {
  return guarded(host, "open", [&] {
    const Json json = parseDocument(config, "the config");
    const auto violations = json_schema::validate(configSchema<T>(), json);
    if (!violations.empty()) {
      std::string message = "invalid config: ";
      for (std::size_t i = 0; i < violations.size(); ++i) {
        message += (i == 0 ? "" : "; ") + violations[i].text();
      }
      throw invalid(message);
    }
    Context context(host);
    Connector* connector = nullptr;
    if constexpr (std::is_constructible_v<T, const Json&, Context&>) {
      connector = new T(json, context);
    } else {
      connector = new T(json);
    }
    *instance = connector;
  });
}

inline void close(void* instance) noexcept { delete static_cast<Connector*>(instance); }

inline syncpod_status check(void* instance, const syncpod_host* host) noexcept {
  return guarded(host, "check", [&] {
    Context context(host);
    static_cast<Connector*>(instance)->check(context);
  });
}

inline syncpod_status fetch(void* instance, const syncpod_host* host, syncpod_bytes request) noexcept {
  return guarded(host, "fetch", [&] {
    Context context(host);
    const auto parsed = fetchRequestFromJson(parseDocument(request, "the fetch request"));
    RecordSink sink(context, parsed.stream, parsed.batch_size);
    static_cast<Connector*>(instance)->fetch(parsed, sink, context);
    sink.flush();
  });
}

inline syncpod_status diff(void* instance, const syncpod_host* host, syncpod_bytes pairs) noexcept {
  return guarded(host, "diff", [&] {
    Context context(host);
    const Json json = parseDocument(pairs, "the diff request");
    const auto& stream = member(json, "stream", "diff request");
    const auto& list = member(json, "pairs", "diff request");
    if (!stream.is_string() || !list.is_array()) {
      throw invalid("diff request: \"stream\" must be a string and \"pairs\" an array");
    }
    Json changed = Json::array();
    for (const auto& pair : list) {
      changed.push_back(static_cast<Connector*>(instance)->diff(
          stream.get<std::string>(), member(pair, "current", "diff pair"),
          member(pair, "desired", "diff pair"), context));
    }
    emit(context, {{"changed", std::move(changed)}});
  });
}

inline syncpod_status apply(void* instance, const syncpod_host* host, syncpod_bytes changeset) noexcept {
  return guarded(host, "apply", [&] {
    Context context(host);
    const auto [parsed, mode] = changesetFromJson(parseDocument(changeset, "the changeset"));
    const auto results = static_cast<Connector*>(instance)->apply(parsed, mode, context);
    if (results.size() != parsed.changes.size()) {
      throw std::runtime_error("the connector returned " + std::to_string(results.size()) +
                               " results for " + std::to_string(parsed.changes.size()) + " changes");
    }
    Json list = Json::array();
    for (const auto& result : results) list.push_back(toJson(result));
    emit(context, {{"results", std::move(list)}});
  });
}

/// Whether T overrides Connector::diff; if not, the table leaves diff NULL and the host compares
/// values itself, without a round trip through JSON.
template <class T>
constexpr bool overridesDiff =
    !std::is_same_v<decltype(&T::diff), decltype(&Connector::diff)>;

template <class T>
const syncpod_plugin* pluginTable() noexcept {
  static_assert(std::is_base_of_v<Connector, T>, "SYNCPOD_PLUGIN needs a class derived from syncpod::Connector");
  static_assert(std::is_same_v<decltype(T::manifest()), Manifest>,
                "the connector needs `static syncpod::Manifest manifest();`");
  static_assert(std::is_constructible_v<T, const Json&> || std::is_constructible_v<T, const Json&, Context&>,
                "the connector needs a constructor taking (const syncpod::Json& config) or "
                "(const syncpod::Json& config, syncpod::Context& context)");
  static const syncpod_plugin table = [] {
    syncpod_plugin t{};
    t.abi_major = SYNCPOD_ABI_MAJOR;
    t.abi_minor = SYNCPOD_ABI_MINOR;
    t.struct_size = sizeof(syncpod_plugin);
    const std::string& manifest = manifestText<T>();
    t.manifest = {manifest.data(), manifest.size()};
    t.open = &open<T>;
    t.close = &close;
    t.check = &check;
    t.fetch = &fetch;
    t.diff = overridesDiff<T> ? &diff : nullptr;
    t.apply = &apply;
    return t;
  }();
  return &table;
}

}  // namespace syncpod::detail

/// Makes ConnectorClass the plugin of this shared library. Use it once, in one source file.
#define SYNCPOD_PLUGIN(ConnectorClass)                                                        \
  extern "C" __attribute__((visibility("default"))) const syncpod_plugin* SYNCPOD_PLUGIN_ENTRY( \
      uint32_t host_abi_major, uint32_t host_abi_minor) {                                       \
    (void)host_abi_major;                                                                       \
    (void)host_abi_minor;                                                                       \
    return ::syncpod::detail::pluginTable<ConnectorClass>();                                    \
  }
