// Plugins written against abi.h alone, each wrong in one way the SDK would never produce.
// One definition picks the variant:
//
//   RAW_ABI_MAJOR       the table says ABI major 2
//   RAW_ABI_MINOR       the table says a minor newer than the host's
//   RAW_SMALL_TABLE     struct_size is smaller than the ABI 1.0 table
//   RAW_NULL_FUNCTION   fetch is NULL
//   RAW_BAD_MANIFEST    the id is not a valid id and config_schema is missing
//   RAW_TWIN            a valid plugin with id "twin" (built twice, to clash)
//
// Their functions do nothing useful: these plugins only need to load (or fail to).

#include <syncpod/abi.h>

namespace {

#if defined(RAW_BAD_MANIFEST)
constexpr char kManifest[] =
    R"({"id": "Not An Id!", "version": "1.0.0", "abi": "1.0", "streams": [],)"
    R"( "capabilities": {"fetch": ["full"], "apply": []}})";
#else
constexpr char kManifest[] =
    R"({"id": "twin", "version": "0.1.0", "abi": "1.0", "description": "Built against abi.h alone",)"
    R"( "streams": [{"name": "items", "key_fields": ["id"]}],)"
    R"( "capabilities": {"fetch": ["full"], "apply": []}, "config_schema": {"type": "object"}})";
#endif

syncpod_status fail(const syncpod_host* host) {
  constexpr char kMessage[] = "this plugin does nothing";
  host->fail(host->context, {kMessage, sizeof(kMessage) - 1});
  return SYNCPOD_FAILED;
}

int instance_storage = 0;

syncpod_status open(const syncpod_host* host, syncpod_bytes config, void** instance) {
  (void)host;
  (void)config;
  *instance = &instance_storage;
  return SYNCPOD_OK;
}

void close(void* instance) {
  (void)instance;
}

syncpod_status check(void* instance, const syncpod_host* host) {
  (void)instance;
  (void)host;
  return SYNCPOD_OK;
}

syncpod_status fetch(void* instance, const syncpod_host* host, syncpod_bytes request) {
  (void)instance;
  (void)request;
  return fail(host);
}

syncpod_status apply(void* instance, const syncpod_host* host, syncpod_bytes changeset) {
  (void)instance;
  (void)changeset;
  return fail(host);
}

syncpod_plugin makeTable() {
  syncpod_plugin table{};
  table.abi_major = SYNCPOD_ABI_MAJOR;
  table.abi_minor = SYNCPOD_ABI_MINOR;
  table.struct_size = sizeof(syncpod_plugin);
  table.manifest = {kManifest, sizeof(kManifest) - 1};
  table.open = &open;
  table.close = &close;
  table.check = &check;
  table.fetch = &fetch;
  table.diff = nullptr;
  table.apply = &apply;
#if defined(RAW_ABI_MAJOR)
  table.abi_major = SYNCPOD_ABI_MAJOR + 1;
#elif defined(RAW_ABI_MINOR)
  table.abi_minor = SYNCPOD_ABI_MINOR + 1;
#elif defined(RAW_SMALL_TABLE)
  table.struct_size = 3 * sizeof(uint32_t);
#elif defined(RAW_NULL_FUNCTION)
  table.fetch = nullptr;
#endif
  return table;
}

const syncpod_plugin kTable = makeTable();

}  // namespace

extern "C" __attribute__((visibility("default"))) const syncpod_plugin* SYNCPOD_PLUGIN_ENTRY(
    uint32_t host_abi_major, uint32_t host_abi_minor) {
  (void)host_abi_major;
  (void)host_abi_minor;
  return &kTable;
}
