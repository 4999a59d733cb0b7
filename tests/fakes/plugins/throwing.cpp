// Connectors that throw where the SDK catches: THROWING_MANIFEST builds one whose manifest()
// throws (the host must refuse it at load), THROWING_CONSTRUCTOR one whose constructor throws
// (it loads; open must fail with Internal and the message).

#include <stdexcept>

#include <syncpod/sdk.hpp>

namespace {

class ThrowingConnector final : public syncpod::Connector {
 public:
  static syncpod::Manifest manifest() {
#ifdef THROWING_MANIFEST
    throw std::runtime_error("no manifest today");
#else
    syncpod::Manifest manifest;
    manifest.id = "ctor-throws";
    manifest.version = "1.0.0";
    manifest.description = "Its constructor throws";
    manifest.streams = {{"items", {"id"}, ""}};
    manifest.config_schema = {{"type", "object"}};
    return manifest;
#endif
  }

  explicit ThrowingConnector(const syncpod::Json& config) {
    (void)config;
#ifdef THROWING_CONSTRUCTOR
    throw std::runtime_error("cannot reach the frobnicator");
#endif
  }

  void check(syncpod::Context&) override {}
  void fetch(const syncpod::FetchRequest&, syncpod::RecordSink&, syncpod::Context&) override {}
  std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset, syncpod::ApplyMode,
                                           syncpod::Context&) override {
    return std::vector<syncpod::ChangeResult>(changeset.changes.size());
  }
};

}  // namespace

SYNCPOD_PLUGIN(ThrowingConnector)
