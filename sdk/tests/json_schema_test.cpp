#include "syncpod/sdk/json_schema.hpp"

#include <gtest/gtest.h>

namespace syncpod::json_schema {
namespace {

TEST(JsonSchemaTest, AnIntegerIsANumberWithoutAFractionalPartHoweverLarge) {
  const Json schema = {{"type", "integer"}};
  EXPECT_TRUE(validate(schema, Json::parse("42")).empty());
  EXPECT_TRUE(validate(schema, Json::parse("42.0")).empty());
  EXPECT_TRUE(validate(schema, Json::parse("1e300")).empty());
  EXPECT_TRUE(validate(schema, Json::parse("-1e300")).empty());
  ASSERT_EQ(validate(schema, Json::parse("1.5")).size(), 1u);
  EXPECT_EQ(validate(schema, Json::parse("1.5")).front().text(),
            "(config): must be integer, not number");
}

TEST(JsonSchemaTest, SecretsAreRedacted) {
  const Json schema = {
      {"type", "object"},
      {"properties",
       {{"user", {{"type", "string"}}}, {"password", {{"type", "string"}, {"writeOnly", true}}}}}};
  EXPECT_EQ(secretPaths(schema), std::vector<std::string>{"/password"});
  EXPECT_EQ(redactSecrets(schema, {{"user", "ann"}, {"password", "hunter2"}}),
            Json({{"user", "ann"}, {"password", "********"}}));
}

}  // namespace
}  // namespace syncpod::json_schema
