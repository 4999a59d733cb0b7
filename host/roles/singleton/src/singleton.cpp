#include "syncpod/singleton/singleton.hpp"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "change_detector.hpp"
#include "syncpod/core/cron.hpp"
#include "syncpod/core/leader_lease.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/integration_spec.hpp"

namespace syncpod::singleton {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;
using core::Error;

const char* const kLeaseName = core::kSingletonLease;

/// A schedule read from one version of an integration's config, kept while the config stays.
struct CachedSchedule {
  std::string config_json;
  std::optional<core::CronSchedule> schedule;  ///< nullopt: none, or invalid (logged once)
};

}  // namespace

class Singleton::Impl {
 public:
  Impl(core::DatabaseTarget target, SingletonOptions options, const core::PluginRegistry* plugins)
      : options_(std::move(options)), plugins_(plugins) {
    if (options_.holder.empty()) options_.holder = core::LeaderLease::makeHolderId();
    target.client = "singleton";
    lease_ = std::make_unique<core::LeaderLease>(target, kLeaseName, options_.holder,
                                                 options_.lease_ttl);
    queue_ = std::make_unique<core::JobQueue>(target, options_.queue);
    if (plugins_ != nullptr) detector_queue_ = std::make_unique<core::JobQueue>(target, options_.queue);
  }

  void run() {
    spdlog::info("singleton {}: started; scale every {} ms, lease {} ms renewed every {} ms",
                 options_.holder, options_.scale_interval.count(), options_.lease_ttl.count(),
                 options_.renew_interval.count());
    std::thread detector;
    if (plugins_ != nullptr) detector = std::thread([this] { detectLoop(); });
    try {
      lead();
    } catch (...) {
      // The detector must not outlive run(), whatever ends it.
      stop();
      if (detector.joinable()) detector.join();
      throw;
    }
    if (token_) {
      if (auto released = lease_->release(*token_); released) {
        spdlog::info("singleton {}: released the lease (term {})", options_.holder, token_->term);
      } else {
        spdlog::warn("singleton {}: could not release the lease (term {}): {}; a standby takes "
                     "over when it expires", options_.holder, token_->term, released.error().message);
      }
    }
    // Released first: a standby leads while a source plugin finishes its cancelled fetch, and a
    // write the detector still tries is fenced.
    if (detector.joinable()) detector.join();
    spdlog::info("singleton {}: stopped", options_.holder);
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    detector_wake_.notify_all();
  }

 private:
  /// Takes the lease or stands by until stopped; as leader, runs the tick, rescue and cleanup
  /// when each is due.
  void lead() {
    const auto now = Steady::now();
    next_renew_ = next_scale_ = next_rescue_ = next_cleanup_ = now;
    while (!stopping()) {
      renewIfDue();
      if (token_ && Steady::now() >= next_scale_) {
        next_scale_ = Steady::now() + options_.scale_interval;
        tick();
      }
      if (token_ && Steady::now() >= next_rescue_) {
        next_rescue_ = Steady::now() + options_.rescue_interval;
        rescue();
      }
      if (token_ && Steady::now() >= next_cleanup_) {
        next_cleanup_ = Steady::now() + options_.cleanup_interval;
        cleanup();
      }
      auto wake = next_renew_;
      if (token_) wake = std::min({wake, next_scale_, next_rescue_, next_cleanup_});
      std::unique_lock lock(mutex_);
      wake_.wait_until(lock, wake, [&] { return stop_; });
    }
  }

  bool stopping() {
    std::lock_guard lock(mutex_);
    return stop_;
  }

  /// Renews the lease (leader) or tries to take it (standby) when due.
  void renewIfDue() {
    if (Steady::now() < next_renew_) return;
    const auto attempted_at = Steady::now();
    auto acquired = lease_->acquire();
    if (!acquired) {
      // Until the lease is known to be renewed the leader writes nothing it must not: every
      // write is fenced by the database anyway. Try again soon.
      next_renew_ = attempted_at + std::min(options_.renew_interval, milliseconds(1000));
      if (!db_down_) spdlog::warn("singleton {}: cannot reach the lease: {}", options_.holder, acquired.error().message);
      db_down_ = true;
      return;
    }
    db_down_ = false;
    next_renew_ = attempted_at + options_.renew_interval;
    const auto& token = *acquired;
    if (token && (!token_ || token_->term != token->term)) {
      spdlog::info("singleton {}: leading (term {})", options_.holder, token->term);
      // A new leader acts at once: the previous one may have stopped in the middle of a tick.
      // (The change detector polls at once when it sees the new term.)
      next_scale_ = next_rescue_ = next_cleanup_ = Steady::now();
    } else if (!token && token_) {
      spdlog::warn("singleton {}: lost the lease (term {}); standing by", options_.holder, token_->term);
    } else if (!token && !standby_logged_) {
      auto state = lease_->read();
      spdlog::info("singleton {}: standing by; {} leads (term {})", options_.holder,
                   state ? state->holder : std::string("another instance"), state ? state->term : 0);
    }
    standby_logged_ = !token;
    setToken(token);
  }

  /// The main loop's token, and the copy the change detector reads.
  void setToken(const std::optional<core::LeaseToken>& token) {
    token_ = token;
    {
      std::lock_guard lock(mutex_);
      leading_ = token;
    }
    detector_wake_.notify_all();
  }

  /// Whether this instance still leads in `term` and is not stopping (change detector).
  bool leadsIn(std::int64_t term) {
    std::lock_guard lock(mutex_);
    return !stop_ && leading_ && leading_->term == term;
  }

  /// A write came back Fenced: this instance no longer leads.
  void lostLeadership(const Error& error) {
    spdlog::warn("singleton {}: {}; standing by", options_.holder, error.message);
    setToken(std::nullopt);
    standby_logged_ = true;
    next_renew_ = Steady::now();
  }

  bool failed(const char* what, const Error& error) {
    if (error.code == Error::Code::Fenced) {
      lostLeadership(error);
    } else {
      spdlog::warn("singleton {}: {} failed: {}", options_.holder, what, error.message);
    }
    return true;
  }

  /// The autoscaling tick and the cron schedules: one log line with what was decided.
  void tick() {
    auto inputs = queue_->scalingInputs(options_.worker_stale_after);
    if (!inputs) {
      failed("reading the scaling inputs", inputs.error());
      return;
    }
    core::ScalingRecord record;
    record.inputs = *inputs;
    record.settings = options_.scaling;
    record.count = core::desiredPodCount(*inputs, options_.scaling);
    if (auto stored = queue_->storeScaling(*token_, record); !stored) {
      failed("writing desired_pod_count", stored.error());
      return;
    }
    const auto cron = fireSchedules();
    const auto demand = inputs->ongoing_jobs - inputs->runs_in_retired_workers +
                        (options_.scaling.policy == core::ScalingPolicy::QueueAware ? inputs->queued_jobs : 0);
    spdlog::info(
        "singleton term {}: desired_pod_count {} (policy {}: max({} / capacity {} + 1, minimum {}) + {} "
        "retired; ongoing {}, in retired {}, queued {}, active workers {}){}",
        token_ ? token_->term : 0, record.count, core::toString(options_.scaling.policy), demand,
        options_.scaling.worker_capacity, options_.scaling.minimum_active_workers,
        inputs->retired_workers, inputs->ongoing_jobs, inputs->runs_in_retired_workers,
        inputs->queued_jobs, inputs->active_workers, cron);
  }

  /// Enqueues a full job for each schedule that is due; returns the log line's cron part.
  std::string fireSchedules() {
    if (!token_) return {};
    auto integrations = queue_->scheduledIntegrations();
    if (!integrations) {
      failed("reading the integrations", integrations.error());
      return "; cron: not checked";
    }
    integrations_ = std::move(integrations).value();
    std::string fired;
    const auto now = core::Clock::now();
    for (const auto& integration : integrations_) {
      const auto* schedule = scheduleOf(integration);
      if (schedule == nullptr) continue;
      // Where the schedule resumes: its last fire, or the integration's last change if later.
      // A slot from before a change (a new schedule, say) was never in effect: "0 5" changed
      // to "0 8" at 10:00 must not fire today's 08:00 at once.
      const auto since = std::max(integration.last_cron_fire.value_or(integration.updated_at),
                                  integration.updated_at);
      const auto due = schedule->latestDue(since, now);
      if (!due) continue;
      auto result = queue_->fireCron(*token_, integration.id, *due);
      if (!result) {
        failed("firing a cron schedule", result.error());
        if (!token_) break;
        continue;
      }
      if (!result->fired) continue;
      fired += (fired.empty() ? "" : ", ") + integration.name + " (" + core::isoTime(*due) + " → job " +
               std::to_string(result->job) + (result->merged ? ", merged" : "") + ")";
    }
    return fired.empty() ? std::string() : "; cron fired: " + fired;
  }

  /// The integration's schedule, parsed once per config version; an invalid one is logged once
  /// and skipped, never fatal.
  const core::CronSchedule* scheduleOf(const core::ScheduledIntegration& integration) {
    auto& cached = schedules_[integration.id];
    if (cached.config_json != integration.config_json || cached.config_json.empty()) {
      cached.config_json = integration.config_json;
      cached.schedule.reset();
      const auto config = nlohmann::json::parse(integration.config_json, nullptr, false);
      auto schedule = core::parseSchedule(config);
      if (!schedule) {
        spdlog::warn("singleton: integration {} ({}): schedule ignored: {}", integration.id,
                     integration.name, schedule.error().message);
      } else {
        cached.schedule = std::move(schedule).value();
      }
    }
    return cached.schedule ? &*cached.schedule : nullptr;
  }

  void rescue() {
    auto rescued = queue_->rescue(*token_);
    if (!rescued) {
      failed("rescue", rescued.error());
    } else if (rescued->requeued + rescued->failed + rescued->cancelled > 0) {
      spdlog::info("singleton term {}: rescued orphaned jobs: {} re-queued, {} failed, {} cancelled",
                   token_->term, rescued->requeued, rescued->failed, rescued->cancelled);
    }
    if (token_) enqueueWebhookEvents();
  }

  /// Webhook events the service stored but could not turn into a job (the integration was
  /// disabled, the database failed in between) become partial jobs now.
  void enqueueWebhookEvents() {
    constexpr int kBatch = 1000;
    constexpr int kMaxBatches = 10;
    std::string jobs;
    for (int batch = 0; batch < kMaxBatches && token_; ++batch) {
      auto enqueued = queue_->enqueueWebhookEvents(*token_, kBatch);
      if (!enqueued) {
        failed("turning pending webhook events into jobs", enqueued.error());
        break;
      }
      int events = 0;
      for (const auto& job : *enqueued) {
        events += job.events;
        jobs += (jobs.empty() ? "" : ", ") + std::string("integration ") + std::to_string(job.integration_id) +
                ": " + std::to_string(job.events) + " → job " + std::to_string(job.job_id) +
                (job.merged ? " (merged)" : "");
      }
      if (events < kBatch) break;
    }
    if (!jobs.empty()) {
      spdlog::info("singleton term {}: pending webhook events enqueued: {}", token_ ? token_->term : 0, jobs);
    }
  }

  void cleanup() {
    // Within a third of the lease, so that the loop renews it in time; a backlog (retention
    // lowered, say) is worked off pass by pass between renewals.
    auto options = options_.cleanup;
    options.stop_by = Steady::now() + options_.lease_ttl / 3;
    auto cleaned = queue_->cleanup(*token_, options);
    if (cleaned && cleaned->stopped_early) next_cleanup_ = Steady::now();
    if (!cleaned) {
      failed("cleanup", cleaned.error());
    } else if (cleaned->workers_gone + cleaned->jobs_deleted + cleaned->workers_deleted +
                   cleaned->cron_fires_deleted + cleaned->webhook_events_deleted > 0) {
      spdlog::info("singleton term {}: cleanup: {} silent workers marked gone; deleted {} "
                   "finished jobs, {} ended workers, {} cron fires, {} webhook events",
                   token_->term, cleaned->workers_gone, cleaned->jobs_deleted,
                   cleaned->workers_deleted, cleaned->cron_fires_deleted, cleaned->webhook_events_deleted);
    }
  }

  /// Change detection runs on a thread of its own, with its own connection: a source that
  /// answers slowly (a rate limit, a hung connection) must hold up neither the scaling tick,
  /// cron and rescue nor the lease. It polls when this instance starts leading, then
  /// change_poll_interval after each round ends.
  void detectLoop() {
    std::int64_t polled_term = 0;
    auto next_poll = Steady::now();
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (!leading_) {
        detector_wake_.wait(lock);
        continue;
      }
      if (leading_->term == polled_term && Steady::now() < next_poll) {
        detector_wake_.wait_until(lock, next_poll);
        continue;
      }
      const auto token = *leading_;
      lock.unlock();
      try {
        detectChanges(token);
      } catch (const std::exception& error) {
        // Whatever a round meets, the thread goes on: it must not take the process down.
        spdlog::error("singleton {}: change detection: {}", options_.holder, error.what());
      }
      lock.lock();
      polled_term = token.term;
      next_poll = Steady::now() + options_.change_poll_interval;
    }
  }

  /// Polls the sources of integrations with detect_changes; enqueues a partial incremental job
  /// (merged into a queued one) for each that changed. Stops, and asks the plugin polled at the
  /// moment to cancel, as soon as this instance stops leading in `token`'s term or stops.
  void detectChanges(const core::LeaseToken& token) {
    const std::function<bool()> cancelled = [&] { return !leadsIn(token.term); };
    auto integrations = detector_queue_->scheduledIntegrations();
    if (!integrations) {
      detectionFailed("reading the integrations", integrations.error());
      return;
    }
    std::vector<std::string> changed;
    for (const auto& integration : *integrations) {
      if (cancelled()) break;
      const auto config = nlohmann::json::parse(integration.config_json, nullptr, false);
      if (!config.is_object() || !config.value("detect_changes", false)) continue;
      auto spec = core::parseIntegrationSpec(config);
      if (!spec) {
        warnOnce(integration, "change detection skipped: " + spec.error().message);
        continue;
      }
      auto cursors = detector_queue_->sourceCursors(integration.id);
      if (!cursors) {
        detectionFailed("reading cursors", cursors.error());
        continue;
      }
      auto found = sourceChanged(*spec, *cursors, *plugins_, cancelled);
      if (cancelled()) break;
      if (!found) {
        warnOnce(integration, "change detection failed: " + found.error().message);
        continue;
      }
      if (!*found) continue;
      core::EnqueueRequest request;
      request.integration_id = integration.id;
      request.kind = core::JobKind::Partial;
      request.incremental = true;
      auto enqueued = detector_queue_->enqueue(token, std::vector<core::EnqueueRequest>{request});
      if (!enqueued) {
        // Fenced: another instance leads now; the main loop finds out when it renews.
        if (enqueued.error().code == Error::Code::Fenced) break;
        detectionFailed("enqueueing a partial job", enqueued.error());
        continue;
      }
      changed.push_back(integration.name + " → job " + std::to_string(enqueued->front().id) +
                        (enqueued->front().merged ? " (merged)" : ""));
    }
    if (!changed.empty()) {
      std::string list;
      for (const auto& item : changed) list += (list.empty() ? "" : ", ") + item;
      spdlog::info("singleton term {}: changes detected: {}", token.term, list);
    }
  }

  void detectionFailed(const char* what, const Error& error) {
    spdlog::warn("singleton {}: change detection: {} failed: {}", options_.holder, what, error.message);
  }

  void warnOnce(const core::ScheduledIntegration& integration, const std::string& message) {
    auto& last = warned_[integration.id];
    if (last == message) return;
    last = message;
    spdlog::warn("singleton: integration {} ({}): {}", integration.id, integration.name, message);
  }

  SingletonOptions options_;
  const core::PluginRegistry* plugins_;
  std::unique_ptr<core::LeaderLease> lease_;
  std::unique_ptr<core::JobQueue> queue_;
  std::unique_ptr<core::JobQueue> detector_queue_;  ///< the change detector's connection
  std::optional<core::LeaseToken> token_;
  bool standby_logged_ = false;
  bool db_down_ = false;
  Steady::time_point next_renew_, next_scale_, next_rescue_, next_cleanup_;
  std::vector<core::ScheduledIntegration> integrations_;
  std::map<core::IntegrationId, CachedSchedule> schedules_;
  std::map<core::IntegrationId, std::string> warned_;  ///< change detector only

  std::mutex mutex_;  ///< guards stop_ and leading_
  std::condition_variable wake_;
  std::condition_variable detector_wake_;
  bool stop_ = false;
  std::optional<core::LeaseToken> leading_;  ///< token_ as the change detector sees it
};

Singleton::Singleton(core::DatabaseTarget target, SingletonOptions options,
                     const core::PluginRegistry* plugins)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(options), plugins)) {}

Singleton::~Singleton() = default;

void Singleton::run() { impl_->run(); }

void Singleton::stop() { impl_->stop(); }

}  // namespace syncpod::singleton
