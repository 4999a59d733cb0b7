#include "syncpod/core/cron.hpp"

#include <gtest/gtest.h>

#include "syncpod/core/sync/integration_spec.hpp"

namespace syncpod::core {
namespace {

using namespace std::chrono;

/// "2024-02-28T23:59:00Z" → a time point (UTC).
TimePoint at(int y, unsigned mo, unsigned d, int h, int mi, int s = 0) {
  return TimePoint(sys_days(year(y) / month(mo) / day(d)) + hours(h) + minutes(mi) + seconds(s));
}

struct NextCase {
  const char* expression;
  const char* zone;
  TimePoint after;
  TimePoint expected;
};

TEST(Cron, NextFireTable) {
  const NextCase cases[] = {
      {"* * * * *", "UTC", at(2025, 1, 1, 0, 0, 30), at(2025, 1, 1, 0, 1)},
      {"*/15 * * * *", "UTC", at(2025, 1, 1, 10, 15), at(2025, 1, 1, 10, 30)},
      {"0 5 * * *", "UTC", at(2025, 1, 1, 5, 0), at(2025, 1, 2, 5, 0)},
      {"@hourly", "UTC", at(2025, 1, 1, 10, 0, 1), at(2025, 1, 1, 11, 0)},
      {"@daily", "UTC", at(2025, 12, 31, 23, 0), at(2026, 1, 1, 0, 0)},
      {"@yearly", "UTC", at(2025, 6, 1, 0, 0), at(2026, 1, 1, 0, 0)},
      {"@weekly", "UTC", at(2025, 1, 1, 0, 0), at(2025, 1, 5, 0, 0)},  // Sunday
      // Month ends: the 31st skips months without one; Feb 29 waits for a leap year.
      {"0 0 31 * *", "UTC", at(2025, 4, 1, 0, 0), at(2025, 5, 31, 0, 0)},
      {"0 0 29 2 *", "UTC", at(2025, 3, 1, 0, 0), at(2028, 2, 29, 0, 0)},
      {"0 0 30 * *", "UTC", at(2025, 1, 30, 0, 0), at(2025, 3, 30, 0, 0)},
      // Day-of-month and day-of-week both restricted: either matches (1st of month or Monday).
      {"0 12 1 * MON", "UTC", at(2025, 1, 1, 12, 0), at(2025, 1, 6, 12, 0)},
      {"0 12 1 * 1", "UTC", at(2025, 1, 27, 12, 0), at(2025, 2, 1, 12, 0)},
      // One of them `*`: the other decides.
      {"0 0 * * FRI", "UTC", at(2025, 6, 13, 0, 0), at(2025, 6, 20, 0, 0)},
      // "*/7" starts with `*`, so it counts as unrestricted (Vixie cron): the 13th AND a Sunday.
      {"0 0 13 * */7", "UTC", at(2025, 1, 1, 0, 0), at(2025, 4, 13, 0, 0)},
      {"0 9 * * 1-5", "UTC", at(2025, 1, 3, 9, 0), at(2025, 1, 6, 9, 0)},  // Fri → Mon
      {"0 0 * * 7", "UTC", at(2025, 1, 1, 0, 0), at(2025, 1, 5, 0, 0)},   // 7 is Sunday
      {"30 4 1,15 jan-mar *", "UTC", at(2025, 3, 15, 4, 30), at(2026, 1, 1, 4, 30)},
      // Named zone: 05:00 Berlin is 04:00 UTC in winter, 03:00 UTC in summer.
      {"0 5 * * *", "Europe/Berlin", at(2025, 1, 10, 0, 0), at(2025, 1, 10, 4, 0)},
      {"0 5 * * *", "Europe/Berlin", at(2025, 7, 10, 0, 0), at(2025, 7, 10, 3, 0)},
      // DST starts 2025-03-30 02:00 → 03:00 in Berlin: 02:30 does not exist and fires when
      // the clocks jump (01:00 UTC), once.
      {"30 2 * * *", "Europe/Berlin", at(2025, 3, 29, 12, 0), at(2025, 3, 30, 1, 0)},
      {"30 2 * * *", "Europe/Berlin", at(2025, 3, 30, 1, 0), at(2025, 3, 31, 0, 30)},
      // DST ends 2025-10-26 03:00 → 02:00: 02:30 happens twice and fires at the first.
      {"30 2 * * *", "Europe/Berlin", at(2025, 10, 25, 12, 0), at(2025, 10, 26, 0, 30)},
      {"30 2 * * *", "Europe/Berlin", at(2025, 10, 26, 0, 30), at(2025, 10, 27, 1, 30)},
      // Every 30 minutes through the repeated hour: 02:00 and 02:30 CEST, then 03:00 CET.
      {"*/30 * * * *", "Europe/Berlin", at(2025, 10, 26, 0, 30), at(2025, 10, 26, 2, 0)},
      // New York, spring forward 2025-03-09 02:00 EST → 03:00 EDT.
      {"0 3 * * *", "America/New_York", at(2025, 3, 9, 0, 0), at(2025, 3, 9, 7, 0)},
      {"0 3 * * *", "America/New_York", at(2025, 3, 8, 0, 0), at(2025, 3, 8, 8, 0)},
      // Past the file's transitions the zone's rule still applies (summer time in 2045).
      {"0 5 * * *", "Europe/Berlin", at(2045, 7, 10, 0, 0), at(2045, 7, 10, 3, 0)},
      // A half-hour zone.
      {"0 0 * * *", "Asia/Kolkata", at(2025, 1, 1, 0, 0), at(2025, 1, 1, 18, 30)},
  };
  for (const auto& c : cases) {
    auto schedule = CronSchedule::parse(c.expression, c.zone);
    ASSERT_TRUE(schedule) << c.expression << ": " << schedule.error().message;
    const auto next = schedule->next(c.after);
    ASSERT_TRUE(next) << c.expression;
    EXPECT_EQ(*next, c.expected) << c.expression << " in " << c.zone << " after "
                                 << duration_cast<seconds>(c.after.time_since_epoch()).count();
  }
}

TEST(Cron, InvalidExpressionsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"61 * * * *", "minute field '61': 61 is out of range 0-59"},
      {"0 25 * * *", "hour field '25': 25 is out of range 0-23"},
      {"0 0 0 * *", "day-of-month field '0': 0 is out of range 1-31"},
      {"0 0 * 13 *", "month field '13': 13 is out of range 1-12"},
      {"0 0 * * 8", "day-of-week field '8': 8 is out of range 0-7"},
      {"0 0 * * FUNDAY", "day-of-week field 'FUNDAY': 'FUNDAY' is not a number or name"},
      {"*/0 * * * *", "minute field '*/0': step '0' must be a number from 1 to 59"},
      {"5-1 * * * *", "minute field '5-1': range 5-1 runs backwards"},
      {"0 0 * *", "a cron expression has 5 fields"},
      {"0 0 * * * *", "a cron expression has 5 fields"},
      {"@reboot", "unknown macro '@reboot'"},
      {"0 0 30 2 *", "day-of-month field '30': no such day in the months of month field '2'"},
      {"1,,2 * * * *", "minute field '1,,2': an empty list item"},
  };
  for (const auto& [expression, message] : cases) {
    auto schedule = CronSchedule::parse(expression);
    ASSERT_FALSE(schedule) << expression;
    EXPECT_EQ(schedule.error().code, Error::Code::Invalid);
    EXPECT_NE(schedule.error().message.find(message), std::string::npos)
        << expression << ": " << schedule.error().message;
  }
  // Feb 30 is fine when a weekday may match instead.
  EXPECT_TRUE(CronSchedule::parse("0 0 30 2 MON"));
}

TEST(Cron, TimeZonesAreChecked) {
  auto unknown = CronSchedule::parse("0 5 * * *", "Mars/Olympus_Mons");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown time zone 'Mars/Olympus_Mons'"), std::string::npos);
  auto escape = TimeZone::load("../../etc/passwd");
  ASSERT_FALSE(escape);
  EXPECT_NE(escape.error().message.find("invalid time zone name"), std::string::npos);
  EXPECT_TRUE(TimeZone::load("UTC"));
  auto berlin = TimeZone::load("Europe/Berlin");
  ASSERT_TRUE(berlin);
  EXPECT_EQ(berlin->offsetAt(floor<seconds>(at(2025, 1, 1, 0, 0))), hours(1));
  EXPECT_EQ(berlin->offsetAt(floor<seconds>(at(2025, 7, 1, 0, 0))), hours(2));
}

TEST(Cron, AMissedFireRunsOnceAfterDowntime) {
  auto schedule = CronSchedule::parse("*/5 * * * *");
  ASSERT_TRUE(schedule);
  // Down from 10:02 to 13:07: of the 37 missed slots only the latest is due.
  EXPECT_EQ(schedule->latestDue(at(2025, 1, 1, 10, 0), at(2025, 1, 1, 13, 7)), at(2025, 1, 1, 13, 5));
  // Nothing due yet.
  EXPECT_FALSE(schedule->latestDue(at(2025, 1, 1, 13, 5), at(2025, 1, 1, 13, 9, 59)));
  auto monthly = CronSchedule::parse("@monthly");
  ASSERT_TRUE(monthly);
  EXPECT_EQ(monthly->latestDue(at(2024, 1, 1, 0, 0), at(2025, 3, 20, 0, 0)), at(2025, 3, 1, 0, 0));
}

TEST(Cron, IntegrationConfigRefusesABadScheduleNamingTheField) {
  const Json base = Json::parse(R"({
    "source": {"plugin": "a"}, "target": {"plugin": "b"},
    "streams": [{"name": "s", "key": ["id"], "fields": {"id": "id"}}]})");
  auto config = base;
  config["schedule"] = {{"cron", "0 24 * * *"}};
  auto problems = integrationSpecProblems(config);
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0].text(), "/schedule/cron: hour field '24': 24 is out of range 0-23");

  config["schedule"] = {{"cron", "0 5 * * *"}, {"time_zone", "Nowhere/Town"}};
  problems = integrationSpecProblems(config);
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_EQ(problems[0].path, "/schedule/time_zone");

  config["schedule"] = {{"cron", "0 5 * * *"}, {"time_zone", "Europe/Berlin"}};
  config["detect_changes"] = true;
  auto spec = parseIntegrationSpec(config);
  ASSERT_TRUE(spec) << spec.error().message;
  ASSERT_TRUE(spec->schedule);
  EXPECT_EQ(spec->schedule->time_zone, "Europe/Berlin");
  EXPECT_TRUE(spec->detect_changes);
  auto schedule = parseSchedule(config);
  ASSERT_TRUE(schedule);
  ASSERT_TRUE(*schedule);
  EXPECT_EQ((*schedule)->zone().name(), "Europe/Berlin");
  EXPECT_FALSE(*parseSchedule(base));
}

}  // namespace
}  // namespace syncpod::core
