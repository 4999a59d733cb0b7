#include "pg_text.hpp"

#include <gtest/gtest.h>

namespace syncpod::plugins::postgres {
namespace {

TEST(RedactUrl, HidesThePasswordAndNothingElse) {
  EXPECT_EQ(redactUrl("postgresql://sync:s3cret@db.example:5432/crm"),
            "postgresql://sync:***@db.example:5432/crm");
  EXPECT_EQ(redactUrl("postgres://sync@db/crm"), "postgres://sync@db/crm");
  EXPECT_EQ(redactUrl("postgresql://db:5432/crm"), "postgresql://db:5432/crm");
  EXPECT_EQ(redactUrl("postgresql://sync:p@ss:w0rd@db/crm?sslmode=require"),
            "postgresql://sync:***@db/crm?sslmode=require");
  EXPECT_EQ(redactUrl("postgresql://db/crm?user=a&password=s3cret&sslmode=require"),
            "postgresql://db/crm?user=a&password=***&sslmode=require");
  EXPECT_EQ(redactUrl("postgresql://u:one@db/crm?password=two"),
            "postgresql://u:***@db/crm?password=***");
  EXPECT_EQ(redactUrl("host=db password=x"), "(connection string, redacted)");
}

TEST(UrlSecrets, AreRawAndDecoded) {
  EXPECT_EQ(urlSecrets("postgresql://u:a%40b%2Fc@db/x"),
            (std::vector<std::string>{"a%40b%2Fc", "a@b/c"}));
  EXPECT_EQ(urlSecrets("postgresql://u@db/x?password=zz%20top"),
            (std::vector<std::string>{"zz%20top", "zz top"}));
  EXPECT_TRUE(urlSecrets("postgresql://u@db/x").empty());
}

TEST(Scrub, ReplacesEveryOccurrence) {
  EXPECT_EQ(scrub("failed for s3cret and s3cret", {"s3cret"}), "failed for *** and ***");
  EXPECT_EQ(scrub("nothing here", {"s3cret"}), "nothing here");
  EXPECT_EQ(scrub("pw is short", {"pw"}), "pw is short");  // too short to scrub safely
}

TEST(OneLine, JoinsLines) {
  EXPECT_EQ(oneLine("connection failed\nFATAL:  role \"x\" does not exist\n"),
            "connection failed; FATAL:  role \"x\" does not exist");
}

TEST(ParameterText, SendsValuesAsPostgreSQLParsesThem) {
  EXPECT_EQ(parameterText(Json(nullptr), false), std::nullopt);
  EXPECT_EQ(parameterText(Json("a'b"), false), "a'b");
  EXPECT_EQ(parameterText(Json(true), false), "true");
  EXPECT_EQ(parameterText(Json(42), false), "42");
  EXPECT_EQ(parameterText(Json(-7), false), "-7");
  EXPECT_EQ(parameterText(Json(3.0), false), "3");
  EXPECT_EQ(parameterText(Json(1.5), false), "1.5");
  EXPECT_EQ(parameterText(Json::parse(R"({"a":[1,"x"]})"), false), R"({"a":[1,"x"]})");
  EXPECT_EQ(parameterText(Json::parse("[1,2]"), false), "[1,2]");
  EXPECT_EQ(parameterText(Json::parse(R"([1,null,"a\"b,c"])"), true), R"({"1",NULL,"a\"b,c"})");
  EXPECT_EQ(parameterText(Json::parse("[[1,2],[3,4]]"), true), R"({{"1","2"},{"3","4"}})");
  EXPECT_EQ(parameterText(Json::parse(R"([{"k":1}])"), true), R"({"{\"k\":1}"})");
}

TEST(TextArrayLiteral, QuotesEveryItem) {
  EXPECT_EQ(textArrayLiteral({"a", "b c", "d\"e", "f\\g", "NULL", ""}),
            R"({"a","b c","d\"e","f\\g","NULL",""})");
  EXPECT_EQ(textArrayLiteral({}), "{}");
  // A missing item is NULL; the text "NULL" is quoted, so it stays a text.
  EXPECT_EQ(textArrayLiteralWithNulls({"a", std::nullopt, "NULL", "{1,2}"}), R"({"a",NULL,"NULL","{1,2}"})");
}

}  // namespace
}  // namespace syncpod::plugins::postgres
