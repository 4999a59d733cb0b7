#include "syncpod/core/cron.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

namespace syncpod::core {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

// ---------------------------------------------------------------------------------------
// Time zones: TZif files (RFC 8536), version 2 or later, read with their POSIX TZ footer.
// ---------------------------------------------------------------------------------------

namespace {

/// The day a POSIX rule names in a year: Jn (1-365, no Feb 29), n (0-365), Mm.w.d.
struct RuleDay {
  enum class Kind { JulianNoLeap = 1, ZeroBased, MonthWeekDay } kind = Kind::MonthWeekDay;
  int number = 0;  // Jn / n
  unsigned month = 1, week = 1, weekday = 0;
  long long time_s = 7200;  // local time of day of the change; may be negative or past 24 h

  sys_days in(std::chrono::year year) const {
    using namespace std::chrono;
    switch (kind) {
      case Kind::JulianNoLeap: {
        const int offset = number - 1 + ((year.is_leap() && number >= 60) ? 1 : 0);
        return sys_days(year / January / 1) + days(offset);
      }
      case Kind::ZeroBased: return sys_days(year / January / 1) + days(number);
      case Kind::MonthWeekDay: {
        const auto ym = year / std::chrono::month(month);
        if (week >= 5) return sys_days(ym / std::chrono::weekday(weekday)[last]);
        return sys_days(ym / std::chrono::weekday(weekday)[week]);
      }
    }
    return sys_days(year / January / 1);
  }
};

/// A POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3".
struct PosixRule {
  long long std_offset_s = 0;  // UTC offset (east positive) of standard time
  bool has_dst = false;
  long long dst_offset_s = 0;
  RuleDay start, end;

  long long offsetAt(long long t) const {
    if (!has_dst) return std_offset_s;
    using namespace std::chrono;
    const auto local_day = floor<days>(sys_seconds(seconds(t + std_offset_s)));
    const auto year = year_month_day(local_day).year();
    const long long begins =
        (sys_seconds(start.in(year)) + seconds(start.time_s) - seconds(std_offset_s)).time_since_epoch().count();
    const long long ends =
        (sys_seconds(end.in(year)) + seconds(end.time_s) - seconds(dst_offset_s)).time_since_epoch().count();
    const bool dst = begins < ends ? (t >= begins && t < ends) : !(t >= ends && t < begins);
    return dst ? dst_offset_s : std_offset_s;
  }
};

class PosixParser {
 public:
  explicit PosixParser(std::string_view text) : text_(text) {}

  std::optional<PosixRule> parse() {
    PosixRule rule;
    if (!name()) return std::nullopt;
    auto std_offset = offset();
    if (!std_offset) return std::nullopt;
    rule.std_offset_s = -*std_offset;
    if (at_ == text_.size()) return rule;
    if (!name()) return std::nullopt;
    rule.has_dst = true;
    rule.dst_offset_s = rule.std_offset_s + 3600;
    if (at_ < text_.size() && text_[at_] != ',') {
      auto dst_offset = offset();
      if (!dst_offset) return std::nullopt;
      rule.dst_offset_s = -*dst_offset;
    }
    if (at_ == text_.size()) {
      // No rule given: POSIX leaves it to the implementation; the US rule is the usual one.
      rule.start = {RuleDay::Kind::MonthWeekDay, 0, 3, 2, 0, 7200};
      rule.end = {RuleDay::Kind::MonthWeekDay, 0, 11, 1, 0, 7200};
      return rule;
    }
    if (!consume(',') || !day(rule.start) || !consume(',') || !day(rule.end)) return std::nullopt;
    if (at_ != text_.size()) return std::nullopt;
    return rule;
  }

 private:
  bool consume(char c) {
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }

  bool name() {
    if (consume('<')) {
      const auto close = text_.find('>', at_);
      if (close == std::string_view::npos) return false;
      at_ = close + 1;
      return true;
    }
    const auto begin = at_;
    while (at_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[at_]))) ++at_;
    return at_ - begin >= 3;
  }

  std::optional<long long> number() {
    const auto begin = at_;
    long long value = 0;
    while (at_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[at_])) && at_ - begin < 4) {
      value = value * 10 + (text_[at_] - '0');
      ++at_;
    }
    if (at_ == begin) return std::nullopt;
    return value;
  }

  /// [+-]hh[:mm[:ss]] in seconds, sign as written.
  std::optional<long long> offset() {
    long long sign = 1;
    if (consume('-')) sign = -1;
    else consume('+');
    auto h = number();
    if (!h) return std::nullopt;
    long long total = *h * 3600;
    if (consume(':')) {
      auto m = number();
      if (!m) return std::nullopt;
      total += *m * 60;
      if (consume(':')) {
        auto s = number();
        if (!s) return std::nullopt;
        total += *s;
      }
    }
    return sign * total;
  }

  bool day(RuleDay& rule) {
    if (consume('M')) {
      auto m = number();
      if (!m || !consume('.')) return false;
      auto w = number();
      if (!w || !consume('.')) return false;
      auto d = number();
      if (!d || *m < 1 || *m > 12 || *w < 1 || *w > 5 || *d > 6) return false;
      rule.kind = RuleDay::Kind::MonthWeekDay;
      rule.month = static_cast<unsigned>(*m);
      rule.week = static_cast<unsigned>(*w);
      rule.weekday = static_cast<unsigned>(*d);
    } else if (consume('J')) {
      auto n = number();
      if (!n || *n < 1 || *n > 365) return false;
      rule.kind = RuleDay::Kind::JulianNoLeap;
      rule.number = static_cast<int>(*n);
    } else {
      auto n = number();
      if (!n || *n > 365) return false;
      rule.kind = RuleDay::Kind::ZeroBased;
      rule.number = static_cast<int>(*n);
    }
    rule.time_s = 7200;
    if (consume('/')) {
      auto time = offset();
      if (!time) return false;
      rule.time_s = *time;
    }
    return true;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

long long bigEndian(const unsigned char* bytes, std::size_t size) {
  unsigned long long value = 0;
  for (std::size_t i = 0; i < size; ++i) value = (value << 8) | bytes[i];
  if (size < 8 && (value >> (size * 8 - 1)) != 0) value -= 1ULL << (size * 8);  // sign
  return static_cast<long long>(value);
}

bool plainZoneName(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.size() > 128) return false;
  if (name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+';
  });
}

}  // namespace

struct TimeZone::Data {
  std::string name;
  std::vector<long long> transitions;   // UTC seconds, ascending
  std::vector<long long> offsets;       // offset in effect from transitions[i]
  long long initial_offset = 0;         // before the first transition
  std::optional<PosixRule> rule;        // after the last transition

  long long offsetAt(long long t) const {
    if (transitions.empty() || t >= transitions.back()) {
      if (rule) return rule->offsetAt(t);
      return transitions.empty() ? initial_offset : offsets.back();
    }
    const auto it = std::upper_bound(transitions.begin(), transitions.end(), t);
    if (it == transitions.begin()) return initial_offset;
    return offsets[static_cast<std::size_t>(std::distance(transitions.begin(), it) - 1)];
  }
};

namespace {

Result<std::shared_ptr<const TimeZone::Data>> readTzif(const std::string& name) {
  const char* configured = std::getenv("TZDIR");
  const std::string directory = configured != nullptr && *configured != '\0' ? configured : "/usr/share/zoneinfo";
  const std::string path = directory + "/" + name;
  const auto unknown = [&](const std::string& why) -> Error {
    return {Error::Code::Invalid, "unknown time zone '" + name + "' (" + why + ")"};
  };
  std::ifstream file(path, std::ios::binary);
  if (!file) return unknown("no file " + path);
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(file)),
                                         std::istreambuf_iterator<char>());
  // Header: "TZif", version, 15 reserved bytes, six 32-bit counts.
  const auto header = [&](std::size_t at, std::array<std::size_t, 6>& counts) {
    if (bytes.size() < at + 44 || bytes[at] != 'T' || bytes[at + 1] != 'Z' || bytes[at + 2] != 'i' ||
        bytes[at + 3] != 'f') {
      return false;
    }
    for (std::size_t i = 0; i < 6; ++i) counts[i] = static_cast<std::size_t>(bigEndian(&bytes[at + 20 + 4 * i], 4));
    return true;
  };
  std::array<std::size_t, 6> c{};  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  if (!header(0, c)) return unknown(path + " is not a TZif file");
  if (bytes[4] < '2') return unknown(path + " is a version 1 TZif file; version 2 or later is needed");
  const std::size_t v1_size = c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
  const std::size_t at = 44 + v1_size;
  if (!header(at, c)) return unknown(path + " has no 64-bit data block");
  const std::size_t times = at + 44;
  const std::size_t indices = times + c[3] * 8;
  const std::size_t types = indices + c[3];
  const std::size_t end = types + c[4] * 6 + c[5] + c[2] * 12 + c[1] + c[0];
  if (c[4] == 0 || bytes.size() < end) return unknown(path + " is truncated");

  auto data = std::make_shared<TimeZone::Data>();
  data->name = name;
  const auto typeOffset = [&](std::size_t type) { return bigEndian(&bytes[types + type * 6], 4); };
  data->initial_offset = typeOffset(0);
  for (std::size_t i = 0; i < c[3]; ++i) {
    const std::size_t type = bytes[indices + i];
    if (type >= c[4]) return unknown(path + " names a local time type it does not have");
    data->transitions.push_back(bigEndian(&bytes[times + i * 8], 8));
    data->offsets.push_back(typeOffset(type));
  }
  // The footer: "\n<POSIX TZ string>\n".
  if (end < bytes.size() && bytes[end] == '\n') {
    const auto close = std::find(bytes.begin() + static_cast<std::ptrdiff_t>(end) + 1, bytes.end(), '\n');
    const std::string footer(bytes.begin() + static_cast<std::ptrdiff_t>(end) + 1, close);
    if (!footer.empty()) {
      data->rule = PosixParser(footer).parse();
      if (!data->rule) return unknown(path + " has a TZ rule this reader does not understand: " + footer);
    }
  }
  return std::shared_ptr<const TimeZone::Data>(std::move(data));
}

}  // namespace

TimeZone TimeZone::utc() {
  static const auto kUtc = [] {
    auto data = std::make_shared<Data>();
    data->name = "UTC";
    return std::shared_ptr<const Data>(std::move(data));
  }();
  return TimeZone(kUtc);
}

Result<TimeZone> TimeZone::load(std::string_view name) {
  if (name == "UTC" || name == "Etc/UTC") return utc();
  if (!plainZoneName(name)) {
    return Error{Error::Code::Invalid, "invalid time zone name '" + std::string(name) +
                                           "': use an IANA name such as Europe/Berlin"};
  }
  auto data = readTzif(std::string(name));
  if (!data) return data.error();
  return TimeZone(std::move(data).value());
}

const std::string& TimeZone::name() const { return data_->name; }

seconds TimeZone::offsetAt(sys_seconds instant) const {
  return seconds(data_->offsetAt(instant.time_since_epoch().count()));
}

sys_seconds TimeZone::toInstant(sys_seconds local) const {
  // The instant lies within a day of the local time; the offsets in effect around it are
  // the candidates (a zone changes its offset at most a few times a year).
  std::set<long long> offsets;
  for (int day = -2; day <= 2; ++day) offsets.insert(offsetAt(local + days(day)).count());
  std::optional<sys_seconds> first;
  for (const long long offset : offsets) {
    const sys_seconds candidate = local - seconds(offset);
    if (offsetAt(candidate).count() == offset && (!first || candidate < *first)) first = candidate;
  }
  if (first) return *first;
  // In a gap: the clocks jumped over `local`. The jump happened between local read with the
  // larger offset (still before it) and local read with the smaller one (already after).
  auto before = local - seconds(*offsets.rbegin());
  auto after = local - seconds(*offsets.begin());
  const auto offset_before = offsetAt(before);
  while (after - before > seconds(1)) {
    const auto middle = before + (after - before) / 2;
    if (offsetAt(middle) == offset_before) before = middle;
    else after = middle;
  }
  return after;
}

// ---------------------------------------------------------------------------------------
// Cron expressions
// ---------------------------------------------------------------------------------------

namespace {

struct FieldSpec {
  const char* name;
  int min;
  int max;
  std::array<const char*, 12> names;  // for months (1..12) and weekdays (0..6)
  int names_from;
  int name_count;
};

const std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, {}, 0, 0},
    {"hour", 0, 23, {}, 0, 0},
    {"day-of-month", 1, 31, {}, 0, 0},
    {"month", 1, 12, {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}, 1, 12},
    {"day-of-week", 0, 7, {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}, 0, 7},
}};

const std::array<std::pair<const char*, const char*>, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

/// A number or a name of the field; nullopt when it is neither.
std::optional<int> value(const FieldSpec& field, std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (text.size() > 3) return 1000;  // out of every range, reported as such
    int number = 0;
    for (char c : text) number = number * 10 + (c - '0');
    return number;
  }
  for (int i = 0; i < field.name_count; ++i) {
    const std::string_view name = field.names[static_cast<std::size_t>(i)];
    if (text.size() == name.size() &&
        std::equal(text.begin(), text.end(), name.begin(), [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == b;
        })) {
      return field.names_from + i;
    }
  }
  return std::nullopt;
}

/// Parses one field into a bit set; returns the problem, or "" when it parsed.
std::string parseField(const FieldSpec& field, std::string_view text, std::uint64_t& bits) {
  const std::string range = std::to_string(field.min) + "-" + std::to_string(field.max);
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const auto comma = std::min(text.find(',', begin), text.size());
    const std::string_view item = text.substr(begin, comma - begin);
    begin = comma + 1;
    if (item.empty()) return "an empty list item";
    std::string_view span = item;
    int step = 1;
    if (const auto slash = item.find('/'); slash != std::string_view::npos) {
      span = item.substr(0, slash);
      const auto step_value = value(FieldSpec{"step", 0, 0, {}, 0, 0}, item.substr(slash + 1));
      if (!step_value || *step_value < 1 || *step_value > field.max) {
        return "step '" + std::string(item.substr(slash + 1)) + "' must be a number from 1 to " +
               std::to_string(field.max);
      }
      step = *step_value;
    }
    int low = field.min;
    int high = field.max;
    if (span != "*") {
      const auto dash = span.find('-');
      const auto first = value(field, span.substr(0, dash));
      if (!first) return "'" + std::string(span.substr(0, dash)) + "' is not a number" + (field.name_count ? " or name" : "");
      low = *first;
      high = *first;
      if (dash != std::string_view::npos) {
        const auto last = value(field, span.substr(dash + 1));
        if (!last) return "'" + std::string(span.substr(dash + 1)) + "' is not a number" + (field.name_count ? " or name" : "");
        high = *last;
      } else if (step > 1) {
        high = field.max;  // "a/n": from a to the end of the range
      }
      for (const int v : {low, high}) {
        if (v < field.min || v > field.max) return std::to_string(v) + " is out of range " + range;
      }
      if (low > high) return "range " + std::string(span) + " runs backwards";
    }
    for (int v = low; v <= high; v += step) bits |= 1ULL << v;
    if (comma == text.size()) break;
  }
  return {};
}

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view expression, std::string_view time_zone) {
  const auto invalid = [&](const std::string& message) -> Error {
    return {Error::Code::Invalid, message};
  };
  std::string text(expression);
  // Trim; then replace a macro by its fields.
  const auto first = text.find_first_not_of(" \t");
  const auto last = text.find_last_not_of(" \t");
  text = first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
  if (!text.empty() && text.front() == '@') {
    std::string lower = text;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto macro = std::find_if(kMacros.begin(), kMacros.end(), [&](const auto& m) { return lower == m.first; });
    if (macro == kMacros.end()) {
      return invalid("unknown macro '" + text + "': use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly");
    }
    text = macro->second;
  }
  std::vector<std::string> fields;
  for (std::size_t at = 0; at < text.size();) {
    const auto begin = text.find_first_not_of(" \t", at);
    if (begin == std::string::npos) break;
    const auto end = std::min(text.find_first_of(" \t", begin), text.size());
    fields.push_back(text.substr(begin, end - begin));
    at = end;
  }
  if (fields.size() != 5) {
    return invalid("a cron expression has 5 fields (minute hour day-of-month month day-of-week) or is a macro such as "
                   "@hourly; '" + std::string(expression) + "' has " + std::to_string(fields.size()));
  }
  auto zone = TimeZone::load(time_zone);
  if (!zone) return zone.error();
  CronSchedule schedule(std::string(expression), std::move(zone).value());
  std::array<std::uint64_t, 5> bits{};
  for (std::size_t i = 0; i < 5; ++i) {
    if (auto problem = parseField(kFields[i], fields[i], bits[i]); !problem.empty()) {
      return invalid(std::string(kFields[i].name) + " field '" + fields[i] + "': " + problem);
    }
  }
  schedule.minutes_ = bits[0];
  schedule.hours_ = static_cast<std::uint32_t>(bits[1]);
  schedule.days_ = static_cast<std::uint32_t>(bits[2]);
  schedule.months_ = static_cast<std::uint16_t>(bits[3]);
  const auto weekdays = bits[4] | ((bits[4] >> 7) & 1U);  // 7 is Sunday too
  schedule.weekdays_ = static_cast<std::uint8_t>(weekdays & 0x7FU);
  schedule.days_restricted_ = fields[2].front() != '*';
  schedule.weekdays_restricted_ = fields[4].front() != '*';
  // A day-of-month that no chosen month has never fires (unless weekdays may match instead).
  if (!(schedule.days_restricted_ && schedule.weekdays_restricted_)) {
    static constexpr std::array<int, 13> kLongest = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool possible = false;
    for (int month = 1; month <= 12 && !possible; ++month) {
      if ((schedule.months_ & (1U << month)) == 0) continue;
      for (int day = 1; day <= kLongest[static_cast<std::size_t>(month)]; ++day) {
        if ((schedule.days_ & (1U << day)) != 0) possible = true;
      }
    }
    if (!possible) {
      return invalid("day-of-month field '" + fields[2] + "': no such day in the months of month field '" + fields[3] +
                     "', so the schedule never fires");
    }
  }
  return schedule;
}

bool CronSchedule::dayMatches(std::chrono::year_month_day day) const {
  if ((months_ & (1U << static_cast<unsigned>(day.month()))) == 0) return false;
  const bool by_day = (days_ & (1U << static_cast<unsigned>(day.day()))) != 0;
  const bool by_weekday = (weekdays_ & (1U << std::chrono::weekday(sys_days(day)).c_encoding())) != 0;
  if (days_restricted_ && weekdays_restricted_) return by_day || by_weekday;
  return by_day && by_weekday;
}

std::optional<TimePoint> CronSchedule::next(TimePoint after) const {
  const auto after_s = std::chrono::floor<seconds>(after);
  // Start three hours early in local time: a fire before `after` on the wall clock may still be
  // after it as an instant across a change of offset; such candidates are checked, not assumed.
  const sys_seconds start = std::chrono::floor<minutes>(after_s + zone_.offsetAt(after_s) - hours(3));
  sys_days day = std::chrono::floor<days>(start);
  for (int i = 0; i < 366 * 10 + 3; ++i, day += days(1)) {
    const std::chrono::year_month_day date(day);
    if (!dayMatches(date)) continue;
    for (int hour = 0; hour < 24; ++hour) {
      if ((hours_ & (1U << hour)) == 0) continue;
      const sys_seconds hour_start = sys_seconds(day) + hours(hour);
      if (hour_start + hours(1) <= start) continue;
      for (int minute = 0; minute < 60; ++minute) {
        if ((minutes_ & (1ULL << minute)) == 0) continue;
        const sys_seconds local = hour_start + minutes(minute);
        if (local < start) continue;
        const auto instant = zone_.toInstant(local);
        if (instant > after) return TimePoint(std::chrono::duration_cast<Clock::duration>(instant.time_since_epoch()));
      }
    }
  }
  return std::nullopt;
}

std::optional<TimePoint> CronSchedule::latestDue(TimePoint after, TimePoint now) const {
  const auto first = next(after);
  if (!first || *first > now) return std::nullopt;
  // Look back from now over growing windows, so that a long downtime of a frequent schedule
  // costs the fires of one window rather than all it missed.
  for (const auto window : {hours(1), hours(24), hours(24 * 32), hours(24 * 400)}) {
    const auto from = std::max(after, now - window);
    auto fire = next(from);
    if (!fire || *fire > now) continue;
    for (auto later = next(*fire); later && *later <= now; later = next(*fire)) fire = later;
    return fire;
  }
  auto fire = first;
  for (auto later = next(*fire); later && *later <= now; later = next(*fire)) fire = later;
  return fire;
}

}  // namespace syncpod::core
