#include "syncpod/sdk/manifest_check.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace syncpod {
namespace {

Json validManifest() {
  Manifest manifest;
  manifest.id = "tickets";
  manifest.version = "1.0.0";
  manifest.streams = {{"tickets", {"number"}, "Tickets"}};
  manifest.config_schema = {{"type", "object"}};
  return toJson(manifest);
}

TEST(ManifestCheckTest, AValidManifestHasNoProblems) {
  EXPECT_TRUE(manifestProblems(validManifest()).empty());
  EXPECT_EQ(manifestFromJson(validManifest()).streams.at(0).key_fields,
            std::vector<std::string>{"number"});
}

// Members that manifestFromJson reads must be checked first, or reading them throws a JSON
// library error instead of saying what is wrong.
TEST(ManifestCheckTest, OptionalMembersOfTheWrongTypeAreProblemsNotExceptions) {
  auto json = validManifest();
  json["description"] = 5;
  json["streams"][0]["description"] = false;
  json["capabilities"]["deletion_detection"] = "yes";
  json["capabilities"]["configurable_streams"] = 1;
  EXPECT_EQ(manifestProblems(json),
            (std::vector<std::string>{
                "\"description\" must be a string", "streams[0]: \"description\" must be a string",
                "\"capabilities.deletion_detection\" must be true or false",
                "\"capabilities.configurable_streams\" must be true or false"}));
  try {
    manifestFromJson(json);
    FAIL() << "an invalid manifest was read";
  } catch (const PluginError& error) {
    EXPECT_EQ(error.status(), SYNCPOD_INVALID);
  }
}

}  // namespace
}  // namespace syncpod
