#include "signals.hpp"

#include <csignal>
#include <ctime>

namespace syncpod::app {
namespace {

sigset_t terminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void blockTerminationSignals() {
  const sigset_t set = terminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::optional<int> waitForTermination(std::chrono::milliseconds timeout) {
  const sigset_t set = terminationSignals();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timespec wait{};
  wait.tv_sec = seconds.count();
  wait.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout - seconds).count();
  const int signal = sigtimedwait(&set, nullptr, &wait);
  if (signal < 0) return std::nullopt;
  return signal;
}

}  // namespace syncpod::app
