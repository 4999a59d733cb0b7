#include "syncpod/scaler/local_scaler.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

namespace syncpod::scaler {
namespace {

using namespace std::chrono_literals;

/// A worker that runs `script` in /bin/sh.
WorkerCommand shell(const std::string& script) { return {"/bin/sh", {"-c", script}, {}}; }

LocalScaler::ValueSource fixed(const double* value) {
  return [value]() -> core::Result<std::optional<double>> { return std::optional<double>(*value); };
}

ScalerOptions options(int max_replicas) {
  ScalerOptions result;
  result.scaled_job.min_replicas = 0;
  result.scaled_job.max_replicas = max_replicas;
  result.termination_grace = 300ms;
  return result;
}

/// Calls reap() until `done` holds; false after 10 s.
bool awaitReaped(LocalScaler& scaler, const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < give_up) {
    scaler.reap();
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(LocalScaler, StartsWhatTheDecisionSaysAndCountsTheUnfinished) {
  double value = 7;
  LocalScaler scaler(options(3), shell("sleep 30"), fixed(&value));
  const auto first = scaler.tick();
  EXPECT_EQ(first.unfinished, 0);
  EXPECT_EQ(first.started, 3);  // maxReplicaCount
  EXPECT_EQ(scaler.unfinished(), 3);
  EXPECT_EQ(scaler.tick().started, 0);  // never above the maximum, never stops one
  EXPECT_EQ(scaler.unfinished(), 3);
  scaler.stop();
  EXPECT_EQ(scaler.unfinished(), 0);
  // Stopped with the scaler, killed by SIGTERM: not a clean exit.
  EXPECT_EQ(scaler.failed().size(), 3u);
}

TEST(LocalScaler, KeepsTheLastExitsPerOutcome) {
  double value = 3;
  auto settings = options(10);
  settings.scaled_job.successful_history_limit = 2;
  settings.scaled_job.failed_history_limit = 1;
  LocalScaler succeeding(settings, shell("exit 0"), fixed(&value));
  EXPECT_EQ(succeeding.tick().started, 3);
  ASSERT_TRUE(awaitReaped(succeeding, [&] { return succeeding.unfinished() == 0; }));
  EXPECT_EQ(succeeding.succeeded().size(), 2u);
  EXPECT_TRUE(succeeding.failed().empty());
  EXPECT_EQ(succeeding.succeeded().back().how, "exited 0");

  LocalScaler failing(settings, shell("exit 3"), fixed(&value));
  EXPECT_EQ(failing.tick().started, 3);
  ASSERT_TRUE(awaitReaped(failing, [&] { return failing.unfinished() == 0; }));
  ASSERT_EQ(failing.failed().size(), 1u);
  EXPECT_EQ(failing.failed().back().how, "exited 3");
  // The ended workers no longer count: the next tick starts again.
  EXPECT_EQ(failing.tick().started, 3);
}

TEST(LocalScaler, WithoutAValueStartsNothing) {
  LocalScaler scaler(options(5), shell("sleep 30"), []() -> core::Result<std::optional<double>> {
    return core::Error{core::Error::Code::Unavailable, "connection refused"};
  });
  const auto report = scaler.tick();
  EXPECT_FALSE(report.decision.have_value);
  EXPECT_EQ(report.started, 0);
  EXPECT_EQ(report.error, "connection refused");

  LocalScaler null_value(options(5), shell("sleep 30"),
                         []() -> core::Result<std::optional<double>> { return std::optional<double>{}; });
  EXPECT_EQ(null_value.tick().started, 0);
}

TEST(LocalScaler, AWorkerPastItsDeadlineIsStoppedAndFails) {
  double value = 1;
  auto settings = options(1);
  settings.scaled_job.active_deadline = 1s;
  // Ignores SIGTERM, so only the SIGKILL after the grace ends it.
  LocalScaler scaler(settings, shell("trap '' TERM; sleep 30 & wait; sleep 30"), fixed(&value));
  EXPECT_EQ(scaler.tick().started, 1);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(scaler.tick().started, 0);  // still unfinished while it gets its grace
  ASSERT_TRUE(awaitReaped(scaler, [&] { return scaler.unfinished() == 0; }));
  ASSERT_EQ(scaler.failed().size(), 1u);
  EXPECT_NE(scaler.failed().back().how.find("DeadlineExceeded"), std::string::npos);
  EXPECT_NE(scaler.failed().back().how.find("SIGKILL"), std::string::npos);
}

TEST(LocalScaler, AnExecutableThatCannotStartIsReported) {
  double value = 2;
  LocalScaler scaler(options(5), {"/nonexistent/syncpod", {}, {}}, fixed(&value));
  const auto report = scaler.tick();
  EXPECT_EQ(report.started, 0);
  EXPECT_NE(report.error.find("/nonexistent/syncpod"), std::string::npos);
}

TEST(LocalScaler, WorkersGetTheirEnvironment) {
  double value = 1;
  WorkerCommand command = shell("test \"$SYNCPOD_SCHEMA\" = scaled");
  command.environment["SYNCPOD_SCHEMA"] = "scaled";
  LocalScaler scaler(options(1), command, fixed(&value));
  EXPECT_EQ(scaler.tick().started, 1);
  ASSERT_TRUE(awaitReaped(scaler, [&] { return scaler.unfinished() == 0; }));
  EXPECT_EQ(scaler.succeeded().size(), 1u);
}

}  // namespace
}  // namespace syncpod::scaler
