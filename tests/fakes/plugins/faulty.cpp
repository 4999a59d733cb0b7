// A connector that misbehaves on request, for tests of how the host survives plugins: its
// config {"fault": "<name>"} picks the fault. Faults the SDK would prevent (a wrong number of
// apply results, no results, an exception crossing the boundary) are produced by replacing
// table entries, as a plugin written without the SDK could.
//
//   malformed_batch     fetch emits a batch that is not JSON
//   bad_record          fetch emits a batch whose record is not an object
//   wrong_stream        fetch emits a batch of another stream
//   ignore_cancel       fetch emits three batches whatever the host answers, then returns OK
//   throw               fetch throws std::runtime_error
//   retryable           fetch throws syncpod::retryable(...)
//   unauthorized        check throws syncpod::unauthorized(...)
//   wrong_result_count  apply emits one result whatever the number of changes
//   no_results          apply returns OK without emitting
//   bad_result          apply emits results with an unknown status
//   silent_failure      apply returns SYNCPOD_FAILED without a message
//   escape              apply lets a C++ exception out of the C function
//   diff_wrong_count    diff emits no answers whatever the number of pairs

#include <stdexcept>
#include <string>

#include <syncpod/sdk.hpp>

namespace {

using syncpod::Json;

void emitRaw(syncpod::Context& context, const std::string& text) {
  const auto status = context.host()->emit(context.host()->context, syncpod::Context::bytes(text));
  if (status != SYNCPOD_OK) throw syncpod::PluginError(status, "the host refused the output");
}

class FaultyConnector final : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
    syncpod::Manifest manifest;
    manifest.id = "faulty";
    manifest.version = "0.0.1";
    manifest.description = "Misbehaves as its config says";
    manifest.streams = {{"items", {"id"}, ""}};
    manifest.config_schema = {{"type", "object"},
                              {"properties", {{"fault", {{"type", "string"}}}}},
                              {"additionalProperties", false}};
    return manifest;
  }

  explicit FaultyConnector(const Json& config) : fault_(config.value("fault", "")) {}

  const std::string& fault() const { return fault_; }

  void check(syncpod::Context& context) override {
    (void)context;
    if (fault_ == "unauthorized") throw syncpod::unauthorized("the API key expired");
  }

  void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
             syncpod::Context& context) override {
    if (fault_ == "malformed_batch") emitRaw(context, R"({"stream": "items", "records": [)");
    if (fault_ == "bad_record") emitRaw(context, R"({"stream": "items", "records": [42]})");
    if (fault_ == "wrong_stream") emitRaw(context, R"({"stream": "other", "records": []})");
    if (fault_ == "ignore_cancel") {
      for (int i = 0; i < 3; ++i) {
        const std::string batch =
            R"({"stream": "items", "records": [{"fields": {"id": )" + std::to_string(i) + "}}]}";
        (void)context.host()->emit(context.host()->context, syncpod::Context::bytes(batch));
      }
      return;
    }
    if (fault_ == "throw") throw std::runtime_error("the disk is on fire");
    if (fault_ == "retryable") throw syncpod::retryable("rate limited; retry after 30 s");
    syncpod::Record record;
    record.fields = {{"id", 1}};
    (void)request;
    sink.push(std::move(record));
  }

  std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset, syncpod::ApplyMode,
                                           syncpod::Context&) override {
    return std::vector<syncpod::ChangeResult>(changeset.changes.size());
  }

 private:
  std::string fault_;
};

const std::string& faultOf(void* instance) {
  return static_cast<FaultyConnector*>(static_cast<syncpod::Connector*>(instance))->fault();
}

// Not noexcept: the "escape" fault throws out of it on purpose.
syncpod_status faultyApply(void* instance, const syncpod_host* host, syncpod_bytes changeset) {
  const auto& fault = faultOf(instance);
  syncpod::Context context(host);
  if (fault == "wrong_result_count") {
    emitRaw(context, R"({"results": [{"status": "applied"}]})");
    return SYNCPOD_OK;
  }
  if (fault == "no_results") return SYNCPOD_OK;
  if (fault == "bad_result") {
    emitRaw(context, R"({"results": [{"status": "maybe"}, {"status": "maybe"}]})");
    return SYNCPOD_OK;
  }
  if (fault == "silent_failure") return SYNCPOD_FAILED;
  if (fault == "escape") throw std::runtime_error("escaped from apply");
  return syncpod::detail::apply(instance, host, changeset);
}

syncpod_status faultyDiff(void* instance, const syncpod_host* host, syncpod_bytes pairs) noexcept {
  if (faultOf(instance) == "diff_wrong_count") {
    const std::string empty = R"({"changed": []})";
    return host->emit(host->context, syncpod::Context::bytes(empty));
  }
  return syncpod::detail::diff(instance, host, pairs);
}

}  // namespace

// The SDK's table with apply and diff replaced.
extern "C" __attribute__((visibility("default"))) const syncpod_plugin* SYNCPOD_PLUGIN_ENTRY(
    uint32_t host_abi_major, uint32_t host_abi_minor) {
  (void)host_abi_major;
  (void)host_abi_minor;
  static const syncpod_plugin table = [] {
    syncpod_plugin t = *syncpod::detail::pluginTable<FaultyConnector>();
    t.apply = &faultyApply;
    t.diff = &faultyDiff;
    return t;
  }();
  return &table;
}
