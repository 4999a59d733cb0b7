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
