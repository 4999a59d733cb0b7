#include "api.hpp"

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "handlers.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

ApiError errorOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return {};
}

TEST(ParseJsonObject, AcceptsAnObjectWithinTheDepth) {
  EXPECT_EQ(parseJsonObject(R"({"a": {"b": [1, "]]]"]}})", 3)["a"]["b"][1], "]]]");
}

TEST(ParseJsonObject, SaysWhatIsWrong) {
  EXPECT_EQ(errorOf([] { parseJsonObject("", 8); }).message, "the request needs a JSON object body");
  const auto malformed = errorOf([] { parseJsonObject(R"({"a": )", 8); });
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.code, "invalid_json");
  EXPECT_NE(malformed.message.find("not valid JSON"), std::string::npos) << malformed.message;
  EXPECT_EQ(malformed.details["byte"], 7);
  EXPECT_EQ(errorOf([] { parseJsonObject("[1]", 8); }).message, "the body must be a JSON object, not array");
}

TEST(ParseJsonObject, NumbersBeyondADoubleAreInvalidJson) {
  for (const char* body : {R"({"a": 1e999})", R"({"a": -1E400})", R"({"a": [1.8e308]})"}) {
    const auto error = errorOf([&] { parseJsonObject(body, 8); });
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_EQ(error.code, "invalid_json") << body;
    EXPECT_NE(error.message.find("number overflow"), std::string::npos) << error.message;
  }
  // Integers beyond 64 bits are read as doubles, which is fine.
  EXPECT_TRUE(parseJsonObject(R"({"a": 123456789012345678901234567890})", 8)["a"].is_number_float());
}

TEST(ParseJsonObject, RefusesNulCharactersAndSaysWhere) {
  const auto value = errorOf([] { parseJsonObject(R"({"keys": ["1", "a\u0000b"]})", 8); });
  EXPECT_EQ(value.code, "invalid_json");
  EXPECT_EQ(value.details["pointer"], "/keys/1");
  EXPECT_NE(value.message.find("NUL"), std::string::npos) << value.message;
  const auto name = errorOf([] { parseJsonObject(R"({"a/b": {"x\u0000": 1}})", 8); });
  EXPECT_EQ(name.details["pointer"], std::string("/a~1b/x\0", 8));
  EXPECT_EQ(parseJsonObject(R"({"a": "\u0001"})", 8)["a"], "\x01");
}

TEST(ParseJsonObject, RefusesDeepNestingBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto error = errorOf([&] { parseJsonObject("{\"a\": " + deep + "}", 32); });
  EXPECT_EQ(error.message, "the JSON body is nested deeper than 32 levels");
}

TEST(ParseId, AcceptsPositiveIntegersOnly) {
  EXPECT_EQ(parseId("17", "job id"), 17);
  for (const char* bad : {"", "0", "-1", "1e3", "12a", "99999999999999999999"}) {
    const auto error = errorOf([&] { (void)parseId(bad, "job id"); });
    EXPECT_EQ(error.code, "invalid_id") << bad;
    EXPECT_EQ(error.details["parameter"], "job id") << bad;
  }
}

/// "GET /api/v1/jobs/{id}" for every operation in docs/openapi.yaml, read from its layout: paths
/// at two spaces of indentation, methods at four.
std::set<std::string> documentedOperations() {
  std::ifstream file(SYNCPOD_OPENAPI_FILE);
  EXPECT_TRUE(file) << SYNCPOD_OPENAPI_FILE;
  std::set<std::string> operations;
  std::string line;
  std::string path;
  bool in_paths = false;
  while (std::getline(file, line)) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (!line.empty() && line[0] != ' ') in_paths = false;
    if (!in_paths) continue;
    if (line.rfind("  /", 0) == 0 && line.back() == ':') {
      path = line.substr(2, line.size() - 3);
    } else if (line.size() > 5 && line.rfind("    ", 0) == 0 && line[4] != ' ' && line.back() == ':') {
      std::string method = line.substr(4, line.size() - 5);
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      operations.insert(method + " " + path);
    }
  }
  return operations;
}

TEST(OpenApi, DescribesEveryRouteAndNothingElse) {
  Router router;
  const ServiceOptions options;
  const auto plugins = core::PluginRegistry::load({});
  addRoutes(router, RouteContext{options, plugins});
  std::set<std::string> served;
  for (const auto& route : router.routes()) served.insert(route.method + " " + route.pattern);
  EXPECT_EQ(served, documentedOperations());
  EXPECT_FALSE(served.empty());
}

}  // namespace
}  // namespace syncpod::service
