// A plugin written straight against abi.h (no SDK C++ layer) that breaks the ABI contract in
// every call, for PluginHandle's tests. Built in variants that fail the load handshake:
// RUDE_NO_ENTRY (no entry point), RUDE_NULL_TABLE, RUDE_ABI_MAJOR=<n>, RUDE_ABI_MINOR=<n>.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "syncpod/abi.h"

#ifndef RUDE_ABI_MAJOR
#define RUDE_ABI_MAJOR SYNCPOD_ABI_MAJOR
#endif
#ifndef RUDE_ABI_MINOR
#define RUDE_ABI_MINOR SYNCPOD_ABI_MINOR
#endif

namespace {

// Kept from open so that close can (wrongly) use it after the call returned.
const syncpod_host* saved_host = nullptr;
int the_instance = 0;

constexpr std::string_view kManifest =
    R"({"id":"rude","version":"0.0.1","abi":"1.0","streams":[{"name":"things","key_fields":["id"]}],)"
    R"("capabilities":{"fetch":["full"],"apply":[]},"config_schema":{"type":"object"}})";

syncpod_bytes bytes(std::string_view text) {
  return {text.data(), text.size()};
}

void emit(const syncpod_host* host, std::string_view document) {
  host->emit(host->context, bytes(document));
}

syncpod_status open(const syncpod_host* host, syncpod_bytes config, void** instance) {
  (void)config;
  saved_host = host;
  *instance = &the_instance;
  return SYNCPOD_OK;
}

void close(void* instance) {
  (void)instance;
  if (saved_host != nullptr)
    saved_host->log(saved_host->context, SYNCPOD_LOG_INFO, bytes("closed"));
}

// A failure without a message, a log level abi.h does not define, a line that is not UTF-8.
syncpod_status check(void* instance, const syncpod_host* host) {
  (void)instance;
  host->log(host->context, static_cast<syncpod_log_level>(0), bytes("\xff\xfe"));
  return SYNCPOD_RETRYABLE;
}

// Batches of every wrong kind; a stream named "status" gets a status abi.h does not define.
syncpod_status fetch(void* instance, const syncpod_host* host, syncpod_bytes request) {
  (void)instance;
  if (std::string_view(request.data, request.size).find("\"stream\":\"status\"") !=
      std::string_view::npos) {
    return static_cast<syncpod_status>(7);
  }
  emit(host, "not json");
  emit(host, R"({"stream":"other","records":[]})");
  emit(
      host,
      R"({"stream":"things","records":[{"fields":{"id":1}},{"fields":{"id":2}},{"fields":{"id":3}}]})");
  emit(host, R"({"stream":"things","records":[{"nofields":true}],"cursor":5})");
  return SYNCPOD_OK;
}

// Success without the results document.
syncpod_status apply(void* instance, const syncpod_host* host, syncpod_bytes changeset) {
  (void)instance;
  (void)host;
  (void)changeset;
  return SYNCPOD_OK;
}

// Fewer lists than pairs.
syncpod_status diff(void* instance, const syncpod_host* host, syncpod_bytes pairs) {
  (void)instance;
  (void)pairs;
  emit(host, R"({"changed":[]})");
  return SYNCPOD_OK;
}

}  // namespace

// Without the entry point the same function is exported under another name.
#ifdef RUDE_NO_ENTRY
#define RUDE_ENTRY rude_plugin_entry_by_another_name
#else
#define RUDE_ENTRY SYNCPOD_PLUGIN_ENTRY
#endif

extern "C" __attribute__((visibility("default"))) const syncpod_plugin* RUDE_ENTRY(
    uint32_t host_abi_major, uint32_t host_abi_minor) {
  (void)host_abi_major;
  (void)host_abi_minor;
  static const syncpod_plugin table = {RUDE_ABI_MAJOR,
                                       RUDE_ABI_MINOR,
                                       sizeof(syncpod_plugin),
                                       {kManifest.data(), kManifest.size()},
                                       &open,
                                       &close,
                                       &check,
                                       &fetch,
                                       &diff,
                                       &apply};
#ifdef RUDE_NULL_TABLE
  (void)table;
  return nullptr;
#else
  return &table;
#endif
}
