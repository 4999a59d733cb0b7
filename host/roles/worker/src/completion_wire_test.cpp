#include "completion_wire.hpp"

#include <gtest/gtest.h>

namespace syncpod::worker {
namespace {

using Outcome = core::Completion::Outcome;

TEST(CompletionWire, RoundTripsEveryOutcome) {
  for (const auto outcome : {Outcome::Succeeded, Outcome::Failed, Outcome::Retry,
                             Outcome::Cancelled, Outcome::Released}) {
    core::Completion sent;
    sent.outcome = outcome;
    sent.result_json = R"({"streams": []})";
    sent.error = "line one\nline \"two\"";
    core::Completion received;
    EXPECT_EQ(fromWire(toWire(sent), received), std::nullopt);
    EXPECT_EQ(received.outcome, outcome);
    EXPECT_EQ(received.result_json, sent.result_json);
    EXPECT_EQ(received.error, sent.error);
  }
}

TEST(CompletionWire, SaysWhatIsWrongWithAGarbledResult) {
  core::Completion completion;
  EXPECT_EQ(fromWire("", completion), "not a JSON object");
  EXPECT_EQ(fromWire(R"({"outcome": "succeeded"})", completion),
            R"(needs the strings "outcome", "result" and "error")");
  EXPECT_EQ(fromWire(R"({"outcome": "won", "result": "", "error": ""})", completion),
            R"(unknown outcome "won")");
  EXPECT_EQ(fromWire(R"({"outcome": "succeeded", "result": "{\"records\": ", "error": ""})", completion),
            "its result is not JSON");
  EXPECT_FALSE(fromWire(R"({"outcome": "succeeded", "result": "{\"records\": 1}", "error": ""})", completion));
  EXPECT_EQ(completion.result_json, R"({"records": 1})");
}

}  // namespace
}  // namespace syncpod::worker
