// The SDK's conformance suite against the jsonl connector: the real library through the C ABI,
// each test in a fresh scratch directory.
#include <optional>
#include <string>
#include <vector>

#include <syncpod/testkit/conformance.hpp>
#include <syncpod/testkit/scratch_directory.hpp>

namespace syncpod::plugins::jsonl {
namespace {

Change create(int id, const std::string& name, const std::string& updated_at) {
  return {ChangeOp::Create,
          {std::to_string(id)},
          {{"id", id}, {"name", name}, {"updated_at", updated_at}},
          {}};
}

/// One stream, "users", keyed by "id" and with an updated_field, so that every fetch mode is
/// tested. jsonl does not stamp records itself: the changes carry later updated_at values, as
/// the system that writes such files would.
class Jsonl : public testkit::Subject {
 public:
  std::string pluginPath() const override { return SYNCPOD_TESTKIT_PLUGIN_FILE; }
  void prepare() override { directory_.emplace("syncpod-jsonl-conformance"); }
  Json goodConfig() const override {
    return {{"directory", directory_->string()},
            {"streams", {{"users", {{"key_fields", {"id"}}, {"updated_field", "updated_at"}}}}}};
  }
  // The schema accepts it; the connector's constructor refuses a relative directory.
  Json badConfig() const override {
    return {{"directory", "relative/exports"}, {"streams", Json::object()}};
  }
  std::string stream() const override { return "users"; }
  std::vector<std::string> keyFields() const override { return {"id"}; }
  std::vector<Change> seedChanges() const override {
    return {create(1, "Ada", "2024-05-01T10:00:01Z"), create(2, "Bob", "2024-05-01T10:00:02Z"),
            create(3, "Cy", "2024-05-01T10:00:03Z")};
  }
  std::vector<Change> secondChanges() const override {
    return {
        {ChangeOp::Update, {"1"}, {{"name", "Ada L."}, {"updated_at", "2024-05-02T09:00:00Z"}}, {}},
        create(4, "Dee", "2024-05-02T09:00:01Z"),
        {ChangeOp::Delete, {"2"}, Json::object(), {}}};
  }

 private:
  std::optional<testkit::ScratchDirectory> directory_;
};

SYNCPOD_CONFORMANCE_TESTS(Jsonl);

}  // namespace
}  // namespace syncpod::plugins::jsonl
