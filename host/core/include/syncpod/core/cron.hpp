#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// A time zone of the system's tz database: the TZif file <tz dir>/<name>, where the tz dir is
/// $TZDIR or /usr/share/zoneinfo. Transitions past the file's last one follow its POSIX TZ
/// rule, so far dates are right with "slim" files too. Cheap to copy; immutable.
class TimeZone {
 public:
  /// "UTC" (also "Etc/UTC") needs no file. Invalid, naming the zone, when the name is not a
  /// plain zone path or no readable TZif file has it.
  static Result<TimeZone> load(std::string_view name);
  static TimeZone utc();

  const std::string& name() const;
  /// UTC offset in effect at `instant`.
  std::chrono::seconds offsetAt(std::chrono::sys_seconds instant) const;
  /// The instant a local wall-clock time names (local time written as if it were UTC). A time
  /// that occurs twice (clocks set back) is its first occurrence; a time that does not occur
  /// (clocks set forward) is the instant the clocks jumped.
  std::chrono::sys_seconds toInstant(std::chrono::sys_seconds local) const;

  struct Data;

 private:
  explicit TimeZone(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
  std::shared_ptr<const Data> data_;
};

/// A cron schedule: five fields (minute hour day-of-month month day-of-week) or a macro
/// (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly), evaluated in a time
/// zone. Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; months
/// and weekdays also take names (JAN, MON); weekday 0 and 7 are Sunday. When both day fields
/// are restricted (neither starts with `*`), a day matches if either matches (as Vixie cron).
class CronSchedule {
 public:
  /// Invalid with a message naming the field at fault, e.g.
  /// `hour field "25": 25 is out of range 0-23`; also for a schedule that can never fire
  /// (`0 0 30 2 *`) and for an unknown time zone.
  static Result<CronSchedule> parse(std::string_view expression, std::string_view time_zone = "UTC");

  /// The first fire time strictly after `after`; nullopt if there is none within 10 years.
  std::optional<TimePoint> next(TimePoint after) const;

  /// The latest fire time in (after, now], or nullopt when none is due: what is due after a
  /// downtime, however many slots it missed.
  std::optional<TimePoint> latestDue(TimePoint after, TimePoint now) const;

  const std::string& expression() const { return expression_; }
  const TimeZone& zone() const { return zone_; }

 private:
  CronSchedule(std::string expression, TimeZone zone) : expression_(std::move(expression)), zone_(std::move(zone)) {}
  bool dayMatches(std::chrono::year_month_day day) const;

  std::string expression_;
  TimeZone zone_;
  std::uint64_t minutes_ = 0;  ///< bit n: minute n
  std::uint32_t hours_ = 0;
  std::uint32_t days_ = 0;     ///< bit n: day of month n (1-31)
  std::uint16_t months_ = 0;   ///< bit n: month n (1-12)
  std::uint8_t weekdays_ = 0;  ///< bit n: weekday n (0 = Sunday)
  bool days_restricted_ = false;
  bool weekdays_restricted_ = false;
};

}  // namespace syncpod::core
