// Sync engine benchmark: a full sync of N records × 10 fields between two generated systems,
// where the source deleted 1 %, added 1 % and changed one field of 10 % of the target's
// records. Prints records/s and the process's peak RSS.
//
// The systems are endpoints that generate their records batch by batch as a plugin's fetch
// would deliver them (already parsed), and count the changes applied to them, so the figures
// are those of the engine: indexing, hashing, comparing and batching. The generators time
// themselves during the sync (what they spend in fetch outside the engine's batch handler), and
// the engine's figures are the sync's times less theirs, in wall time and in CPU time (on a
// shared machine the CPU time varies less). The generators are also run alone once, as a check
// of their own cost.
//
//   syncpod_sync_bench [--records=1000000] [--batch=1000]

#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <syncpod/sdk/connector.hpp>

#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/integration_spec.hpp"
#include "syncpod/core/sync/sync_engine.hpp"

namespace {

using namespace syncpod;
using namespace syncpod::core;

/// Seconds of wall time (steady) or of the calling thread's CPU time.
double clockSeconds(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

/// A duration in wall time and in CPU time.
struct Times {
  double wall_s = 0;
  double cpu_s = 0;

  static Times now() { return {clockSeconds(CLOCK_MONOTONIC), clockSeconds(CLOCK_THREAD_CPUTIME_ID)}; }
  Times operator-(const Times& other) const { return {wall_s - other.wall_s, cpu_s - other.cpu_s}; }
  Times& operator+=(const Times& other) {
    wall_s += other.wall_s;
    cpu_s += other.cpu_s;
    return *this;
  }
};

/// Records of a generated system: ids [0, records) minus the deleted, plus `added` new ones.
class GeneratedEndpoint : public Endpoint {
 public:
  GeneratedEndpoint(std::string id, long long records, bool is_source)
      : id_(std::move(id)), records_(records), is_source_(is_source) {}

  const std::string& pluginId() const override { return id_; }
  Result<Done> check(const CallHooks&) override { return Done{}; }

  Result<Done> fetch(const FetchRequest& request, const BatchHandler& on_batch, const CallHooks&) override {
    if (request.mode != FetchMode::Full) return Error{Error::Code::Invalid, "the generator fetches in full only"};
    // Everything but the handler's calls is the generator's own time.
    Times started = Times::now();
    const auto hand_over = [&](RecordBatch&& batch) {
      generating += Times::now() - started;
      const bool more = on_batch(std::move(batch));
      started = Times::now();
      return more;
    };
    RecordBatch batch{request.stream, {}, std::nullopt};
    batch.records.reserve(request.batch_size);
    const long long last = is_source_ ? records_ + records_ / 100 : records_;
    for (long long i = 0; i < last; ++i) {
      if (is_source_ && i < records_ && i % 100 == 0) continue;  // 1 % deleted at the source
      batch.records.push_back({record(i), std::nullopt, false});
      if (batch.records.size() == request.batch_size) {
        if (!hand_over(std::move(batch))) return Error{Error::Code::Cancelled, "stopped"};
        batch = RecordBatch{request.stream, {}, std::nullopt};
        batch.records.reserve(request.batch_size);
      }
    }
    if (!batch.records.empty() && !hand_over(std::move(batch))) return Error{Error::Code::Cancelled, "stopped"};
    batch = RecordBatch{};
    generating += Times::now() - started;
    return Done{};
  }

  bool hasCustomDiff() const override { return false; }
  Result<std::vector<std::vector<std::string>>> diff(const std::string&, const std::vector<std::pair<Json, Json>>& pairs,
                                                     const CallHooks&) override {
    std::vector<std::vector<std::string>> changed;
    for (const auto& [current, desired] : pairs) changed.push_back(Connector::defaultDiff(current, desired));
    return changed;
  }

  Result<std::vector<ChangeResult>> apply(const Changeset& changeset, ApplyMode, const CallHooks&) override {
    for (const auto& change : changeset.changes) ++applied[static_cast<int>(change.op)];
    return std::vector<ChangeResult>(changeset.changes.size());
  }

  long long applied[4] = {0, 0, 0, 0};
  /// Time spent generating records (and freeing the batches the engine handed back).
  Times generating;

 private:
  Json record(long long i) const {
    const bool changed = is_source_ && i % 10 == 1;  // 10 % changed in one field
    Json fields = Json::object();
    fields["id"] = i;
    fields["name"] = "name " + std::to_string(i);
    fields["email"] = "user" + std::to_string(i) + "@example.com";
    fields["city"] = changed ? "Lyon" : "Paris";
    fields["age"] = 20 + i % 50;
    fields["score"] = static_cast<double>(i % 1000) / 10.0;
    fields["active"] = i % 3 != 0;
    fields["team"] = "team " + std::to_string(i % 97);
    fields["phone"] = "+33 1 " + std::to_string(10000000 + i);
    fields["note"] = "record number " + std::to_string(i);
    return fields;
  }

  std::string id_;
  long long records_;
  bool is_source_;
};

class NoState : public SyncState {
 public:
  Result<std::optional<std::string>> cursor(const std::string&, Side) override { return std::optional<std::string>{}; }
  Result<Done> saveCursor(const std::string&, Side, const std::string&) override { return Done{}; }
  Result<std::vector<std::string>> createdAmong(const std::string&, Side, const std::vector<std::string>& keys) override {
    return keys;
  }
  Result<Done> recordCreated(const std::string&, Side, const std::vector<std::string>&) override { return Done{}; }
  Result<Done> recordDeleted(const std::string&, Side, const std::vector<std::string>&) override { return Done{}; }
};

long long option(int argc, char** argv, std::string_view name, long long fallback) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, name.size()) == name && arg.size() > name.size() && arg[name.size()] == '=') {
      return std::atoll(arg.data() + name.size() + 1);
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const long long records = option(argc, argv, "--records", 1000000);
  const long long batch = option(argc, argv, "--batch", 1000);

  const Json config = {
      {"source", {{"plugin", "generated"}}},
      {"target", {{"plugin", "generated"}}},
      {"deletion_policy", "overwrite"},
      {"batch_size", batch},
      {"streams",
       {{{"name", "people"},
         {"key", {"id"}},
         {"fields", {{"id", "id"}, {"name", "name"}, {"email", "email"}, {"city", "city"}, {"age", "age"},
                     {"score", "score"}, {"active", "active"}, {"team", "team"}, {"phone", "phone"},
                     {"note", "note"}}}}}}};
  const auto spec = parseIntegrationSpec(config);
  if (!spec) {
    std::fprintf(stderr, "%s\n", spec.error().message.c_str());
    return 1;
  }

  // The generators alone: both sides fetched, nothing else.
  Times generate_alone;
  for (const bool is_source : {false, true}) {
    GeneratedEndpoint endpoint("generated", records, is_source);
    FetchRequest request;
    request.stream = "people";
    request.batch_size = static_cast<std::size_t>(batch);
    (void)endpoint.fetch(request, [](RecordBatch&&) { return true; }, {});
    generate_alone += endpoint.generating;
  }

  GeneratedEndpoint source("generated", records, true);
  GeneratedEndpoint target("generated", records, false);
  NoState state;
  SyncEngine engine(*spec, source, target, state, {});
  const Times start = Times::now();
  const auto report = engine.run({});
  const Times sync = Times::now() - start;
  if (!report) {
    std::fprintf(stderr, "sync failed: %s\n", report.error().message.c_str());
    return 1;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto& people = report->streams.at(0);
  Times generating = source.generating;
  generating += target.generating;
  const Times engine_times = sync - generating;

  std::printf("records (target)                     %12lld\n", records);
  std::printf("records (source)                     %12lld\n", static_cast<long long>(people.fetched_source));
  std::printf("fields per record                    %12d\n", 10);
  std::printf("batch                                %12lld\n", batch);
  std::printf("creates / updates / deletes          %6lld / %lld / %lld\n", target.applied[1], target.applied[2],
              target.applied[3]);
  std::printf("unchanged                            %12lld\n", static_cast<long long>(people.unchanged));
  std::printf("                                         wall (s)     CPU (s)\n");
  std::printf("full sync                            %12.3f%12.3f\n", sync.wall_s, sync.cpu_s);
  std::printf("  generating records                 %12.3f%12.3f\n", generating.wall_s, generating.cpu_s);
  std::printf("  engine: index, diff, batch         %12.3f%12.3f\n", engine_times.wall_s, engine_times.cpu_s);
  std::printf("generating records alone             %12.3f%12.3f\n", generate_alone.wall_s, generate_alone.cpu_s);
  std::printf("records compared per s (engine, CPU) %12.0f\n", static_cast<double>(records) / engine_times.cpu_s);
  std::printf("peak RSS (MB)                        %12.1f\n", static_cast<double>(usage.ru_maxrss) / 1024.0);

  // The generated difference is exact: the run is wrong if the engine found another one.
  if (target.applied[1] != records / 100 || target.applied[2] != records / 10 || target.applied[3] != records / 100) {
    std::fprintf(stderr, "wrong changes: expected %lld creates, %lld updates, %lld deletes\n", records / 100,
                 records / 10, records / 100);
    return 1;
  }
  return 0;
}
