#include "handlers.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

#include <spdlog/spdlog.h>

#include "backend.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/migrator.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

Json optionalTime(const std::optional<core::TimePoint>& time) {
  return time ? Json(isoTime(*time)) : Json(nullptr);
}

/// A JSON column as stored (text), as JSON again; null when absent or unreadable.
Json storedJson(const std::optional<std::string>& text) {
  if (!text || text->empty()) return nullptr;
  auto json = Json::parse(*text, nullptr, false);
  return json.is_discarded() ? Json(nullptr) : json;
}

}  // namespace

Json jobJson(const core::Job& job) {
  return {{"id", job.id},
          {"integration_id", job.integration_id},
          {"kind", core::toString(job.kind)},
          {"state", core::toString(job.state)},
          {"priority", job.priority},
          {"run_at", isoTime(job.run_at)},
          {"attempt", job.attempt},
          {"max_attempts", job.max_attempts},
          {"worker_id", job.worker_id ? Json(*job.worker_id) : Json(nullptr)},
          {"claimed_at", optionalTime(job.claimed_at)},
          {"finished_at", optionalTime(job.finished_at)},
          {"cancel_requested_at", optionalTime(job.cancel_requested_at)},
          {"payload", storedJson(job.payload_json)},
          {"result", storedJson(job.result_json)},
          {"last_error", job.last_error ? Json(*job.last_error) : Json(nullptr)},
          {"created_at", isoTime(job.created_at)}};
}

ApiError databaseError(const core::Error& error) {
  if (error.code == core::Error::Code::Unavailable) {
    return {503, "unavailable", "the database cannot be reached; try again"};
  }
  spdlog::error("database error: {}", error.message);
  return {500, "internal", "the database refused the request; see the service log"};
}

namespace {

core::Job findJob(Backend& backend, const ApiRequest& request) {
  const auto id = parseId(request.params.at("id"), "job id");
  auto job = backend.queue().find(id);
  if (!job) throw databaseError(job.error());
  if (!*job) throw ApiError{404, "not_found", "no job " + std::to_string(id)};
  return std::move(**job);
}

/// The "after" query parameter of the events list: an event id, 0 (the default) for the start.
core::JobEventId afterParameter(const ApiRequest& request) {
  const auto found = request.query.find("after");
  if (found == request.query.end()) return 0;
  const auto& text = found->second;
  core::JobEventId value = 0;
  const auto [last, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || last != text.data() + text.size() || value < 0) {
    throw ApiError{400, "invalid_parameter",
                   "after must be an event id or a next_cursor (an integer from 0), not '" +
                       text.substr(0, 40) + "'",
                   {{"parameter", "after"}}};
  }
  return value;
}

bool finished(core::JobState state) {
  return state == core::JobState::Succeeded || state == core::JobState::Failed ||
         state == core::JobState::Cancelled;
}

Json eventJson(const core::JobEvent& event) {
  return {{"id", event.id},
          {"at", isoTime(event.at)},
          {"attempt", event.attempt},
          {"kind", event.kind},
          {"level", event.level},
          {"message", event.message},
          {"data", storedJson(event.data_json)}};
}

}  // namespace

void addRoutes(Router& router, const RouteContext& context) {
  // The process answers: nothing else is checked, so a database outage never restarts pods.
  router.add("GET", "/healthz", std::nullopt,
             [](ApiRequest&, Backend&) { return ApiResponse{200, {{"status", "ok"}}, {}}; });

  // Ready when the database answers and the schema is the one this binary expects.
  router.add("GET", "/readyz", std::nullopt, [](ApiRequest&, Backend& backend) {
    try {
      core::Migrator(backend.target(), core::embeddedMigrations()).requireCurrent();
    } catch (const core::StartupError& error) {
      return errorResponse({503, "not_ready", error.what()});
    }
    return ApiResponse{200, {{"status", "ready"}}, {}};
  });

  router.add("GET", "/api/v1/jobs", core::TokenScope::Read, [](ApiRequest& request, Backend& backend) {
    rejectUnknownParameters(request, {"integration_id", "state", "kind", "limit", "cursor"});
    core::JobFilter filter;
    filter.limit = pageLimit(request, 50, 500);
    if (const auto found = request.query.find("integration_id"); found != request.query.end()) {
      filter.integration_id = parseId(found->second, "integration_id");
    }
    if (const auto found = request.query.find("state"); found != request.query.end()) {
      filter.state = core::parseJobState(found->second);
      if (!filter.state) {
        throw ApiError{400, "invalid_parameter",
                       "state must be queued, running, succeeded, failed or cancelled",
                       {{"parameter", "state"}}};
      }
    }
    if (const auto found = request.query.find("kind"); found != request.query.end()) {
      filter.kind = core::parseJobKind(found->second);
      if (!filter.kind) {
        throw ApiError{400, "invalid_parameter", "kind must be full or partial", {{"parameter", "kind"}}};
      }
    }
    if (const auto found = request.query.find("cursor"); found != request.query.end()) {
      filter.before = parseId(found->second, "cursor");
    }
    ++filter.limit;  // one more: whether a next page exists
    auto jobs = backend.queue().list(filter);
    if (!jobs) throw databaseError(jobs.error());
    Json items = Json::array();
    Json next = nullptr;
    for (const auto& job : *jobs) {
      if (static_cast<int>(items.size()) == filter.limit - 1) {
        next = std::to_string(items.back()["id"].get<core::JobId>());
        break;
      }
      items.push_back(jobJson(job));
    }
    return ApiResponse{200, {{"items", std::move(items)}, {"next_cursor", next}}, {}};
  });

  // The job with its finished attempts and the progress its sync last published.
  router.add("GET", "/api/v1/jobs/{id}", core::TokenScope::Read,
             [](ApiRequest& request, Backend& backend) {
               const auto job = findJob(backend, request);
               auto shown = jobJson(job);
               auto attempts = backend.queue().attempts(job.id);
               if (!attempts) throw databaseError(attempts.error());
               shown["attempts"] = Json::array();
               for (const auto& attempt : *attempts) {
                 shown["attempts"].push_back(
                     {{"attempt", attempt.attempt},
                      {"worker_id", attempt.worker_id ? Json(*attempt.worker_id) : Json(nullptr)},
                      {"started_at", optionalTime(attempt.started_at)},
                      {"finished_at", isoTime(attempt.finished_at)},
                      {"outcome", attempt.outcome},
                      {"error", attempt.error ? Json(*attempt.error) : Json(nullptr)}});
               }
               auto progress = backend.queue().progress(job.id);
               if (!progress) throw databaseError(progress.error());
               shown["progress"] = *progress ? Json{{"fetched", (*progress)->fetched},
                                                    {"diffed", (*progress)->diffed},
                                                    {"applied", (*progress)->applied},
                                                    {"failed", (*progress)->failed},
                                                    {"updated_at", isoTime((*progress)->updated_at)}}
                                             : Json(nullptr);
               return ApiResponse{200, std::move(shown), {}};
             });

  // The job's events, oldest first. next_cursor is where to go on from, also when the page
  // is the last one so far: a running job has more to come. It is null only once the job has
  // ended and the page reached its last event. The job's state is read before its events, so
  // a job that ends in between is seen running and its last events are asked for again.
  router.add("GET", "/api/v1/jobs/{id}/events", core::TokenScope::Read,
             [](ApiRequest& request, Backend& backend) {
               rejectUnknownParameters(request, {"after", "limit"});
               const int limit = pageLimit(request, 50, 500);
               const auto after = afterParameter(request);
               const auto job = findJob(backend, request);
               auto events = backend.queue().events(job.id, after, limit + 1);
               if (!events) throw databaseError(events.error());
               const bool more = static_cast<int>(events->size()) > limit;
               if (more) events->pop_back();
               Json items = Json::array();
               for (const auto& event : *events) items.push_back(eventJson(event));
               Json next = nullptr;
               if (more || !finished(job.state)) {
                 next = std::to_string(events->empty() ? after : events->back().id);
               }
               return ApiResponse{200, {{"items", std::move(items)}, {"next_cursor", next}}, {}};
             });

  router.add("POST", "/api/v1/jobs/{id}/cancel", core::TokenScope::Write,
             [](ApiRequest& request, Backend& backend) {
               const auto job = findJob(backend, request);
               auto outcome = backend.queue().cancel(job.id);
               if (!outcome) throw databaseError(outcome.error());
               if (*outcome == core::CancelOutcome::AlreadyFinished) {
                 throw ApiError{409, "conflict",
                                "job " + std::to_string(job.id) + " already finished (" +
                                    std::string(core::toString(job.state)) + ")"};
               }
               if (*outcome == core::CancelOutcome::NotFound) {
                 throw ApiError{404, "not_found", "no job " + std::to_string(job.id)};
               }
               auto now = findJob(backend, request);
               return ApiResponse{202, jobJson(now), {}};
             });

  addIntegrationRoutes(router, context);
  addWebhookRoutes(router, context);
  addStatusRoutes(router, context);
  addMetricsRoute(router, context);
}

}  // namespace syncpod::service
