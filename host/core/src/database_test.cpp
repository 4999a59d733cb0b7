#include "syncpod/core/database.hpp"

#include <gtest/gtest.h>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

TEST(DatabaseTarget, ConnectionsGetTimeoutsAndKeepalivesTheUrlDoesNotSet) {
  const auto conninfo = pg::withConnectionLimits("postgresql://alice:it's%20me@db.example:6543/app?keepalives_idle=5");
  EXPECT_NE(conninfo.find("host='db.example'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("port='6543'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("dbname='app'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("password='it\\'s me'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("keepalives_idle='5'"), std::string::npos) << "the URL's own value stays: " << conninfo;
  EXPECT_NE(conninfo.find("connect_timeout='10'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("keepalives_count='3'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("tcp_user_timeout='60000'"), std::string::npos) << conninfo;

  const auto keywords = pg::withConnectionLimits("host=/run/x dbname=app connect_timeout=3");
  EXPECT_NE(keywords.find("connect_timeout='3'"), std::string::npos) << keywords;
  EXPECT_NE(keywords.find("keepalives_interval='10'"), std::string::npos) << keywords;

  // A connection service's file sets what the string leaves unset: nothing is added then.
  const auto service = pg::withConnectionLimits("service=crm dbname=app");
  EXPECT_EQ(service.find("keepalives"), std::string::npos) << service;
  EXPECT_EQ(service.find("connect_timeout"), std::string::npos) << service;

  // libpq quotes what it could not read, a badly encoded password included: not repeated.
  for (const auto* bad : {"postgresql://alice:s3cret@db/app?nonsense=1", "postgresql://alice:s3%zzcret@db/app"}) {
    try {
      pg::withConnectionLimits(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const DatabaseUnavailable& error) {
      EXPECT_NE(std::string(error.what()).find("cannot read the database URL"), std::string::npos) << error.what();
      EXPECT_EQ(std::string(error.what()).find("s3"), std::string::npos) << error.what();
    }
  }
}

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
