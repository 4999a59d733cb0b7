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
  EXPECT_EQ(secretPointers(schema, {{"user", "ann"}, {"password", "hunter2"}}), std::vector<std::string>{"/password"});
  EXPECT_EQ(redactSecrets(schema, {{"user", "ann"}, {"password", "hunter2"}}),
            Json({{"user", "ann"}, {"password", "********"}}));
}

TEST(JsonSchemaTest, SecretsInMapsAndListsAreFoundWhereTheyAre) {
  // A token per stream (a map of named settings) and a list of accounts with passwords.
  const Json schema = Json::parse(R"({
    "type": "object",
    "properties": {
      "streams": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "table": {"type": "string"}, "token": {"type": "string", "writeOnly": true}}}},
      "accounts": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "password": {"type": "string", "writeOnly": true}}}},
      "extra": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}}
    }
  })");
  const Json config = {{"streams", {{"users", {{"table", "u"}, {"token", "tok-1"}}}, {"a/b", {{"token", "tok-2"}}}}},
                       {"accounts", {{{"name", "ann"}, {"password", "pw-1"}}, {{"name", "bob"}}}},
                       {"extra", {{"k", "v"}}}};
  EXPECT_EQ(secretPointers(schema, config),
            (std::vector<std::string>{"/accounts/0/password", "/extra/k", "/streams/a~1b/token", "/streams/users/token"}));
  const auto hidden = redactSecrets(schema, config);
  EXPECT_EQ(hidden["streams"]["users"], Json({{"table", "u"}, {"token", "********"}}));
  EXPECT_EQ(hidden["streams"]["a/b"]["token"], "********");
  EXPECT_EQ(hidden["accounts"][0]["password"], "********");
  EXPECT_EQ(hidden["accounts"][1], Json({{"name", "bob"}}));
  EXPECT_EQ(hidden["extra"]["k"], "********");
  EXPECT_EQ(hidden.dump().find("tok-"), std::string::npos);
}

}  // namespace
}  // namespace syncpod::json_schema
