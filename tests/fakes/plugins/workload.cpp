// A connector whose fetch is a configurable amount of work, for the worker tests: it takes a
// given time (checking for cancellation as a well-behaved plugin does, unless told not to),
// or crashes the process in a chosen way. Its one stream, "items" (key "id"), holds `records`
// generated records; apply accepts every change. Before its work a fetch logs `log_lines`
// lines at info ("workload: line <n> of <log_lines>"), a debug line, and, given a token (a
// secret), a warning that quotes it, so tests can see the host redact it. It also fetches
// "incrementally" (ignoring the cursor), so that change detection can poll a slow source.
//
// "exit_7_at_exit" does its work, then makes the process exit with status 7 as it ends.
//
// Config: {"records": 3, "fetch_ms": 0, "crash": "" | "segv" | "abort" | "oom" | "exit_7_at_exit",
//          "ignore_cancel": false, "log_lines": 0, "token": ""}

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <syncpod/sdk.hpp>

namespace {

using syncpod::Json;

class WorkloadConnector final : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
    syncpod::Manifest manifest;
    manifest.id = "workload";
    manifest.version = "1.0.0";
    manifest.description = "Fetches that take a given time or crash, for worker tests";
    manifest.streams = {{"items", {"id"}, "generated records"}};
    manifest.capabilities.fetch_modes = {syncpod::FetchMode::Full, syncpod::FetchMode::Incremental,
                                         syncpod::FetchMode::Keys};
    manifest.config_schema = {
        {"type", "object"},
        {"properties",
         {{"records", {{"type", "integer"}, {"minimum", 0}}},
          {"fetch_ms", {{"type", "integer"}, {"minimum", 0}}},
          {"crash", {{"type", "string"}, {"enum", {"", "segv", "abort", "oom", "exit_7_at_exit"}}}},
          {"ignore_cancel", {{"type", "boolean"}}},
          {"log_lines", {{"type", "integer"}, {"minimum", 0}}},
          {"token", {{"type", "string"}, {"writeOnly", true}}}}},
        {"additionalProperties", false}};
    return manifest;
  }

  WorkloadConnector(const Json& config, syncpod::Context&)
      : records_(config.value("records", 3)),
        fetch_ms_(config.value("fetch_ms", 0)),
        crash_(config.value("crash", "")),
        ignore_cancel_(config.value("ignore_cancel", false)),
        log_lines_(config.value("log_lines", 0)),
        token_(config.value("token", "")) {}

  void check(syncpod::Context&) override {}

  void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
             syncpod::Context& context) override {
    crash();
    for (int i = 1; i <= log_lines_; ++i) {
      context.info("workload: line " + std::to_string(i) + " of " + std::to_string(log_lines_));
    }
    if (log_lines_ > 0) context.debug("workload: a debug line");
    if (!token_.empty()) context.warn("workload: using token " + token_);
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::milliseconds(fetch_ms_);
    while (std::chrono::steady_clock::now() < end) {
      if (context.cancelled() && !ignore_cancel_) {
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
        context.info("workload: stopping, cancelled after " + std::to_string(elapsed.count()) + " ms");
        throw syncpod::Cancelled();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the work itself
    }
    for (int i = 0; i < records_; ++i) {
      syncpod::Record record;
      record.fields = {{"id", i}, {"value", "item " + std::to_string(i)}};
      if (request.mode == syncpod::FetchMode::Keys &&
          std::find(request.keys.begin(), request.keys.end(),
                    syncpod::keyOf(record.fields, request.key_fields)) == request.keys.end()) {
        continue;
      }
      sink.push(std::move(record));
    }
  }

  std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset, syncpod::ApplyMode,
                                           syncpod::Context&) override {
    return std::vector<syncpod::ChangeResult>(changeset.changes.size(),
                                              {syncpod::ChangeStatus::Applied, ""});
  }

 private:
  void crash() const {
    if (crash_ == "exit_7_at_exit") std::atexit([] { std::_Exit(7); });
    if (crash_ == "segv") std::raise(SIGSEGV);
    if (crash_ == "abort") std::abort();
    if (crash_ == "oom") {
      // Grows until allocation fails; under a job memory limit that happens inside this
      // process alone. Stops at 3 GiB so that a run without a limit cannot exhaust the machine.
      std::vector<std::unique_ptr<char[]>> blocks;
      for (int i = 0; i < 48; ++i) {
        blocks.push_back(std::make_unique<char[]>(std::size_t{64} << 20));
        for (std::size_t at = 0; at < (std::size_t{64} << 20); at += 4096) blocks.back()[at] = 1;
      }
      throw syncpod::invalid("allocated 3 GiB without reaching a memory limit");
    }
  }

  int records_;
  int fetch_ms_;
  std::string crash_;
  bool ignore_cancel_;
  int log_lines_;
  std::string token_;
};

}  // namespace

SYNCPOD_PLUGIN(WorkloadConnector)
