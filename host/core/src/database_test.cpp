#include "syncpod/core/database.hpp"

#include <gtest/gtest.h>

#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

TEST(DatabaseTarget, RedactsPasswordInUri) {
  DatabaseTarget target{"postgresql://alice:s3cret@db.example:5432/app", "syncpod"};
  EXPECT_EQ(target.redactedUrl(), "postgresql://alice:***@db.example:5432/app");
}

TEST(DatabaseTarget, RedactsPasswordInQueryAndKeywordForms) {
  DatabaseTarget query{"postgresql://db/app?sslmode=require&password=s3cret", "syncpod"};
  EXPECT_EQ(query.redactedUrl().find("s3cret"), std::string::npos) << query.redactedUrl();
  DatabaseTarget keywords{"host=db user=alice password='s3 cret' dbname=app", "syncpod"};
  EXPECT_EQ(keywords.redactedUrl(), "host=db user=alice password=*** dbname=app");
}

TEST(DatabaseTarget, KeepsUrlWithoutPassword) {
  DatabaseTarget target{"postgresql://alice@127.0.0.1:5432/app", "syncpod"};
  EXPECT_EQ(target.redactedUrl(), target.url);
}

TEST(DatabaseTarget, ValidateRefusesEmptyUrlAndBadSchema) {
  EXPECT_THROW((DatabaseTarget{"", "syncpod"}.validate()), ConfigError);
  EXPECT_THROW((DatabaseTarget{"postgresql://x/y", "Bad-Name"}.validate()), ConfigError);
  EXPECT_THROW((DatabaseTarget{"postgresql://x/y", "1abc"}.validate()), ConfigError);
  EXPECT_THROW((DatabaseTarget{"postgresql://x/y", std::string(64, 'a')}.validate()), ConfigError);
  EXPECT_NO_THROW((DatabaseTarget{"postgresql://x/y", "syncpod_prod"}.validate()));
}

TEST(DatabaseTarget, UnreachableServerGivesOneLineErrorWithoutPassword) {
  // Port 1 on loopback: nothing listens there, so libpq fails at once.
  DatabaseTarget target{"postgresql://alice:s3cret@127.0.0.1:1/app?connect_timeout=2", "syncpod"};
  try {
    checkDatabaseReachable(target);
    FAIL() << "expected DatabaseUnavailable";
  } catch (const DatabaseUnavailable& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
    EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
  }
}

TEST(DatabaseTarget, MalformedUrlGivesOneLineError) {
  DatabaseTarget target{"postgresql://[::1", "syncpod"};
  try {
    checkDatabaseReachable(target);
    FAIL() << "expected DatabaseUnavailable";
  } catch (const DatabaseUnavailable& error) {
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace syncpod::core
