#pragma once
// The simulator's clock: a queue of events in simulated time.

#include <cstdint>
#include <queue>
#include <vector>

#include "syncpod/simulator/workload.hpp"

namespace syncpod::simulator {

/// Events ordered by time, then by `rank` (what happens first at one instant), then by the
/// order they were scheduled in: the same inputs always give the same order. Not thread-safe.
template <typename Event>
class EventQueue {
 public:
  struct Entry {
    SimTime time;
    int rank = 0;
    std::uint64_t sequence = 0;
    Event event;
  };

  void schedule(SimTime time, int rank, Event event) {
    entries_.push(Entry{time, rank, next_sequence_++, std::move(event)});
  }
  bool empty() const { return entries_.empty(); }
  /// The next entry; the queue must not be empty.
  const Entry& top() const { return entries_.top(); }
  Entry pop() {
    Entry entry = entries_.top();
    entries_.pop();
    return entry;
  }

 private:
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.time != b.time) return a.time > b.time;
      if (a.rank != b.rank) return a.rank > b.rank;
      return a.sequence > b.sequence;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> entries_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace syncpod::simulator
