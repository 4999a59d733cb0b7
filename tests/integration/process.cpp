#include "process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace syncpod::testing {
namespace {

std::string newLogPath() {
  static std::atomic<int> counter{0};
  return "/tmp/syncpod_child_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
         ".log";
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env, bool separate_errors)
    : log_path_(newLogPath()), error_path_(separate_errors ? newLogPath() : std::string()) {
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDOUT_FILENO);
    if (error_path_.empty()) {
      ::dup2(fd, STDERR_FILENO);
    } else {
      const int error_fd = ::open(error_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(error_fd, STDERR_FILENO);
    }
    // The test runner may block signals; the child must get default behaviour.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& [key, value] : env) ::setenv(key.c_str(), value.c_str(), 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::remove(log_path_.c_str());
  if (!error_path_.empty()) std::remove(error_path_.c_str());
}

namespace {

std::string readFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

std::string ChildProcess::output() const { return readFile(log_path_); }

std::string ChildProcess::errors() const {
  return error_path_.empty() ? std::string() : readFile(error_path_);
}

bool ChildProcess::waitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (output().find(text) != std::string::npos) return true;
    if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    if (exited_) return output().find(text) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void ChildProcess::signal(int number) const { ::kill(pid_, number); }

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited_) {
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return decode(status_);
}

RunResult run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  ChildProcess child(args, env);
  RunResult result;
  result.exit_code = child.wait(std::chrono::seconds(60));
  result.output = child.output();
  return result;
}

SplitRunResult runSplit(const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& env) {
  ChildProcess child(args, env, true);
  SplitRunResult result;
  result.exit_code = child.wait(std::chrono::seconds(60));
  result.output = child.output();
  result.errors = child.errors();
  return result;
}

}  // namespace syncpod::testing
