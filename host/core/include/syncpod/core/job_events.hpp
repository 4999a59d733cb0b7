#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "syncpod/core/job.hpp"

namespace syncpod::core {

/// The id of a job event: increasing, the cursor of a job's event list.
using JobEventId = std::int64_t;

/// One entry of a job's event log (table job_events). JSON travels as UTF-8 text.
struct JobEvent {
  JobEventId id = 0;
  int attempt = 0;
  TimePoint at;
  std::string kind;       ///< state (an attempt started or ended), progress or log
  std::string level;      ///< info, warn or error
  std::string message;    ///< one line for people; secrets were replaced before it was stored
  std::string data_json;  ///< "" when the event has no data; progress: the four totals
};

/// How a job's runner records its events.
struct JobEventOptions {
  /// Log lines (info and above) stored per attempt. Lines past it are only counted, and the
  /// count is stored as one event when the attempt ends: a plugin that logs every record
  /// must not fill the database.
  int max_log_lines = 1000;
  /// How often buffered events and the job's progress totals are written: one statement per
  /// interval, never one per line.
  std::chrono::milliseconds flush_interval{500};
};

}  // namespace syncpod::core
