#include "syncpod/core/job.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <utility>

namespace syncpod::core {
namespace {

template <class Enum, std::size_t N>
std::string_view nameOf(const std::array<std::pair<Enum, std::string_view>, N>& names, Enum value) {
  for (const auto& [candidate, name] : names) {
    if (candidate == value) return name;
  }
  return "unknown";
}

template <class Enum, std::size_t N>
std::optional<Enum> valueOf(const std::array<std::pair<Enum, std::string_view>, N>& names,
                            std::string_view text) {
  for (const auto& [value, name] : names) {
    if (name == text) return value;
  }
  return std::nullopt;
}

constexpr std::array<std::pair<JobKind, std::string_view>, 2> kKinds{{
    {JobKind::Full, "full"},
    {JobKind::Partial, "partial"},
}};

constexpr std::array<std::pair<JobState, std::string_view>, 5> kStates{{
    {JobState::Queued, "queued"},
    {JobState::Running, "running"},
    {JobState::Succeeded, "succeeded"},
    {JobState::Failed, "failed"},
    {JobState::Cancelled, "cancelled"},
}};

constexpr std::array<std::pair<WorkerState, std::string_view>, 5> kWorkerStates{{
    {WorkerState::Inactive, "INACTIVE"},
    {WorkerState::Active, "ACTIVE"},
    {WorkerState::Retired, "RETIRED"},
    {WorkerState::Terminating, "TERMINATING"},
    {WorkerState::Terminated, "TERMINATED"},
}};

constexpr std::array<std::pair<Completion::Outcome, std::string_view>, 5> kOutcomes{{
    {Completion::Outcome::Succeeded, "succeeded"},
    {Completion::Outcome::Failed, "failed"},
    {Completion::Outcome::Retry, "retry"},
    {Completion::Outcome::Cancelled, "cancelled"},
    {Completion::Outcome::Released, "released"},
}};

}  // namespace

std::string isoTime(TimePoint time) {
  const auto millis = std::chrono::floor<std::chrono::milliseconds>(time);
  const auto day = std::chrono::floor<std::chrono::days>(millis);
  const std::chrono::year_month_day date(day);
  const std::chrono::hh_mm_ss clock(millis - day);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02ld:%02ld:%02ld.%03ldZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), long(clock.hours().count()),
                long(clock.minutes().count()), long(clock.seconds().count()),
                long(clock.subseconds().count()));
  return text;
}

std::string_view toString(Completion::Outcome outcome) { return nameOf(kOutcomes, outcome); }
std::optional<Completion::Outcome> parseOutcome(std::string_view text) {
  return valueOf(kOutcomes, text);
}
std::string_view toString(JobKind kind) { return nameOf(kKinds, kind); }
std::string_view toString(JobState state) { return nameOf(kStates, state); }
std::string_view toString(WorkerState state) { return nameOf(kWorkerStates, state); }
std::optional<JobKind> parseJobKind(std::string_view text) { return valueOf(kKinds, text); }
std::optional<JobState> parseJobState(std::string_view text) { return valueOf(kStates, text); }
std::optional<WorkerState> parseWorkerState(std::string_view text) {
  return valueOf(kWorkerStates, text);
}

}  // namespace syncpod::core
