#pragma once
// Runs the syncpod binary as a child process for tests, with output captured to a file.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace syncpod::testing {

/// A started child process; its stdout and stderr go to one log file.
class ChildProcess {
 public:
  /// `separate_errors`: stderr goes to its own file (errors()) instead of joining stdout.
  ChildProcess(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
               bool separate_errors = false);
  ~ChildProcess();  ///< kills the child if it still runs
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string output() const;
  /// What the child wrote to stderr, when started with separate_errors.
  std::string errors() const;
  /// Waits until output() contains `text` or the timeout passes; false on timeout or exit.
  bool waitForOutput(const std::string& text, std::chrono::milliseconds timeout);
  /// Sends a signal.
  void signal(int number) const;
  /// Waits for exit; returns the exit code, 128+signal if killed, -1 on timeout.
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string log_path_;
  std::string error_path_;
};

struct RunResult {
  int exit_code = -1;
  std::string output;
};

/// Runs to completion (at most 60 s).
RunResult run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

struct SplitRunResult {
  int exit_code = -1;
  std::string output;  ///< stdout
  std::string errors;  ///< stderr
};

/// Runs to completion (at most 60 s), keeping stdout and stderr apart.
SplitRunResult runSplit(const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& env = {});

}  // namespace syncpod::testing
