#include "syncpod/core/sync/integration_spec.hpp"

#include <gtest/gtest.h>

namespace syncpod::core {
namespace {

Json valid() {
  return Json::parse(R"({
    "source": {"plugin": "jsonl", "config": {"directory": "/data"}},
    "target": {"plugin": "postgres", "config": {}},
    "deletion_policy": "conservative",
    "streams": [{
      "name": "users", "target_stream": "people", "key": ["id"], "owner": "source",
      "fields": {"id": "id", "name": "full_name", "email": {"target": "mail", "owner": "target"}}
    }]
  })");
}

std::vector<std::string> problems(const Json& config) {
  std::vector<std::string> texts;
  for (const auto& problem : integrationSpecProblems(config)) texts.push_back(problem.text());
  return texts;
}

TEST(IntegrationSpec, ParsesStreamsFieldsAndOwnership) {
  const auto spec = parseIntegrationSpec(valid());
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->source.plugin, "jsonl");
  EXPECT_EQ(spec->source.config["directory"], "/data");
  EXPECT_EQ(spec->deletion_policy, DeletionPolicy::Conservative);
  EXPECT_EQ(spec->batch_size, 500U);
  ASSERT_EQ(spec->streams.size(), 1U);
  const auto& users = spec->streams[0];
  EXPECT_EQ(users.source_stream, "users");
  EXPECT_EQ(users.target_stream, "people");
  EXPECT_EQ(users.key_count, 1U);
  EXPECT_EQ(users.keyFields(Side::Target), std::vector<std::string>{"id"});
  EXPECT_EQ(users.fieldNames(Side::Target), (std::vector<std::string>{"id", "mail", "full_name"}));
  EXPECT_EQ(users.fields[1].owner, Side::Target);
  EXPECT_EQ(users.fields[2].owner, Side::Source);
}

TEST(IntegrationSpec, NamesEveryProblemByItsPath) {
  Json config = valid();
  config["deletion_policy"] = "sometimes";
  config["streams"][0]["key"] = {"uid"};
  config["streams"][0]["fields"]["email"]["owner"] = "both";
  config["streams"][0]["colour"] = "red";
  config.erase("target");
  EXPECT_EQ(problems(config), (std::vector<std::string>{
                                  "/target: is required",
                                  "/deletion_policy: must be additive, conservative or overwrite",
                                  "/streams/0/colour: is not a known setting",
                                  "/streams/0/fields/email/owner: must be source or target",
                                  "/streams/0/key/0: \"uid\" is not one of the mapped fields"}));
  const auto spec = parseIntegrationSpec(config);
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().code, Error::Code::Invalid);
  EXPECT_NE(spec.error().message.find("/streams/0/colour"), std::string::npos);
}

TEST(IntegrationSpec, RefusesDuplicateStreamsAndTargets) {
  Json config = valid();
  config["streams"][0]["fields"]["name"] = "mail";
  config["streams"].push_back(config["streams"][0]);
  const auto found = problems(config);
  EXPECT_NE(std::find(found.begin(), found.end(), "/streams/1/name: \"users\" is used by another stream"), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(),
                      "/streams/0/fields/name: maps to target field \"mail\", which another field maps to"),
            found.end());
}

TEST(IntegrationSpec, OverwriteRefusesTwoMappingsDeletingInOneStream) {
  // users_eu and users_us into one target stream: with overwrite, each full sync would delete
  // the other's records there.
  Json config = valid();
  config["deletion_policy"] = "overwrite";
  Json us = config["streams"][0];
  us["name"] = "users_us";
  config["streams"].push_back(us);
  EXPECT_EQ(problems(config), std::vector<std::string>{
                                  "/streams/1: with deletion_policy overwrite, it and \"users\" would delete "
                                  "each other's records in target stream \"people\"; use conservative, or map "
                                  "them to different streams"});
  // Conservative deletes only what each mapping created; other streams, or the other side
  // owning one of them, do not delete in the same stream.
  config["deletion_policy"] = "conservative";
  EXPECT_TRUE(problems(config).empty());
  config["deletion_policy"] = "overwrite";
  config["streams"][1]["target_stream"] = "people_us";
  EXPECT_TRUE(problems(config).empty());
  config["streams"][1]["target_stream"] = "people";
  config["streams"][1]["owner"] = "target";
  config["streams"][1]["source_stream"] = "users_us";
  EXPECT_TRUE(problems(config).empty());
}

TEST(IntegrationSpec, RefusesWhatIsNotAnObject) {
  EXPECT_EQ(problems(Json::array()), std::vector<std::string>{"(config): an integration config must be a JSON object"});
  EXPECT_EQ(problems(Json::parse(R"({"source": 1, "target": {"plugin": ""}, "streams": []})")),
            (std::vector<std::string>{"/source: must be an object with \"plugin\" and \"config\"",
                                      "/target/plugin: must be a non-empty string",
                                      "/streams: must be a non-empty array of stream mappings"}));
}

}  // namespace
}  // namespace syncpod::core
