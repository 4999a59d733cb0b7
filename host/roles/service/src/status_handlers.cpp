// /api/v1/workers, /api/v1/scaling and /api/v1/plugins: what the installation runs.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>

#include "backend.hpp"
#include "handlers.hpp"
#include "syncpod/core/errors.hpp"
#include "syncpod/core/plugins.hpp"

namespace syncpod::service {
namespace {

constexpr const char* kWorkerStates = "INACTIVE, ACTIVE, RETIRED, TERMINATING or TERMINATED";

Json workerJson(const core::WorkerRecord& worker) {
  return {{"id", worker.id},
          {"state", core::toString(worker.state)},
          {"started_at", isoTime(worker.started_at)},
          {"state_changed_at", isoTime(worker.state_changed_at)},
          {"last_heartbeat_at", isoTime(worker.last_heartbeat_at)},
          {"capacity", worker.capacity},
          {"running_jobs", worker.running_jobs},
          {"version", worker.version},
          {"host", worker.host},
          {"pid", worker.pid ? Json(*worker.pid) : Json(nullptr)}};
}

long long epochMicros(core::TimePoint time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

/// Workers are listed newest first by start time, and ids break ties; a cursor is the place
/// of the last worker of a page, "<started_at in epoch microseconds>_<id>". Opaque to clients.
std::string workerCursor(const core::WorkerRecord& worker) {
  return std::to_string(epochMicros(worker.started_at)) + "_" + worker.id;
}

/// The 400 for a cursor this API did not hand out.
ApiError invalidCursor() {
  return {400,
          "invalid_parameter",
          "cursor must be a next_cursor this endpoint returned",
          {{"parameter", "cursor"}}};
}

core::WorkerPosition parseWorkerCursor(const std::string& text) {
  const auto separator = text.find('_');
  if (separator == std::string::npos || separator == 0) throw invalidCursor();
  long long micros = 0;
  const auto* end = text.data() + separator;
  const auto [last, error] = std::from_chars(text.data(), end, micros);
  if (error != std::errc() || last != end || micros < 0) throw invalidCursor();
  try {
    return {core::TimePoint(std::chrono::duration_cast<core::Clock::duration>(
                std::chrono::microseconds(micros))),
            parseUuid(text.substr(separator + 1), "cursor")};
  } catch (const ApiError&) {
    throw invalidCursor();
  }
}

core::WorkerState workerStateParameter(const std::string& text) {
  std::string upper = text;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto state = core::parseWorkerState(upper);
  if (!state) {
    throw ApiError{400,
                   "invalid_parameter",
                   std::string("state must be ") + kWorkerStates,
                   {{"parameter", "state"}}};
  }
  return *state;
}

/// Plugin ids are 1-63 lower-case letters, digits, '-' or '_' (the manifest's rule); anything
/// else cannot name a plugin.
bool isPluginId(const std::string& text) {
  if (text.empty() || text.size() > 63) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

ApiError malformedPluginId(const std::string& text) {
  return {400,
          "invalid_id",
          "plugin id must be 1-63 lower-case letters, digits, '-' or '_', not '" +
              text.substr(0, 40) + "'",
          {{"parameter", "plugin id"}}};
}

}  // namespace

void addStatusRoutes(Router& router, const RouteContext& context) {
  const auto& plugins = context.plugins;

  // Workers are not secret: a read token sees them, like every GET. Admin is for acting on
  // them, which the API does not do yet.
  router.add("GET", "/api/v1/workers", core::TokenScope::Read,
             [](ApiRequest& request, Backend& backend) {
               rejectUnknownParameters(request, {"state", "limit", "cursor"});
               core::WorkerFilter filter;
               filter.limit = pageLimit(request, 50, 500);
               if (const auto found = request.query.find("state"); found != request.query.end()) {
                 filter.state = workerStateParameter(found->second);
               }
               if (const auto found = request.query.find("cursor"); found != request.query.end()) {
                 filter.after = parseWorkerCursor(found->second);
               }
               ++filter.limit;  // one more: whether a next page exists
               auto workers = backend.queue().listWorkers(filter);
               if (!workers) throw databaseError(workers.error());
               Json items = Json::array();
               Json next = nullptr;
               for (std::size_t i = 0; i < workers->size(); ++i) {
                 if (static_cast<int>(i) == filter.limit - 1) {
                   next = workerCursor((*workers)[i - 1]);
                   break;
                 }
                 items.push_back(workerJson((*workers)[i]));
               }
               return ApiResponse{200, {{"items", std::move(items)}, {"next_cursor", next}}, {}};
             });

  // The worker with every lifecycle transition it recorded and the jobs it runs now.
  router.add("GET", "/api/v1/workers/{id}", core::TokenScope::Read,
             [](ApiRequest& request, Backend& backend) {
               rejectUnknownParameters(request, {});
               const auto id = parseUuid(request.params.at("id"), "worker id");
               auto found = backend.queue().findWorker(id);
               if (!found) throw databaseError(found.error());
               if (!*found) throw ApiError{404, "not_found", "no worker " + id};
               const auto& details = **found;
               auto shown = workerJson(details.worker);
               shown["transitions"] = Json::array();
               for (const auto& transition : details.transitions) {
                 shown["transitions"].push_back(
                     {{"state", transition.state},
                      {"at", isoTime(transition.at)},
                      {"reason", transition.reason ? Json(*transition.reason) : Json(nullptr)}});
               }
               shown["running_job_ids"] = details.running_job_ids;
               return ApiResponse{200, std::move(shown), {}};
             });

  // desired_pod_count with its inputs (what `syncpod scaling explain --json` prints), and who
  // holds the singleton's lease now.
  router.add("GET", "/api/v1/scaling", core::TokenScope::Read,
             [](ApiRequest& request, Backend& backend) {
               rejectUnknownParameters(request, {});
               auto record = backend.queue().readScaling();
               if (!record) throw databaseError(record.error());
               core::LeaderLease* lease = nullptr;
               try {
                 lease = &backend.lease();
               } catch (const core::DatabaseUnavailable&) {
                 throw databaseError({core::Error::Code::Unavailable, "cannot connect"});
               }
               auto state = lease->read();
               if (!state) throw databaseError(state.error());
               return ApiResponse{200, core::scalingJson(*record, *state), {}};
             });

  // The plugins this service loaded, in id order. Their paths on the server are not shown.
  router.add("GET", "/api/v1/plugins", core::TokenScope::Read,
             [&plugins](ApiRequest& request, Backend&) {
               rejectUnknownParameters(request, {"limit", "cursor"});
               const int limit = pageLimit(request, 50, 500);
               std::string after;
               if (const auto found = request.query.find("cursor"); found != request.query.end()) {
                 if (!isPluginId(found->second)) throw invalidCursor();
                 after = found->second;
               }
               Json items = Json::array();
               Json next = nullptr;
               for (const auto& plugin : plugins.plugins()) {
                 if (plugin->manifest().id <= after) continue;
                 if (static_cast<int>(items.size()) == limit) {
                   next = items.back()["id"];
                   break;
                 }
                 items.push_back(core::pluginJson(*plugin));
               }
               return ApiResponse{200, {{"items", std::move(items)}, {"next_cursor", next}}, {}};
             });

  router.add("GET", "/api/v1/plugins/{id}", core::TokenScope::Read,
             [&plugins](ApiRequest& request, Backend&) {
               rejectUnknownParameters(request, {});
               const auto& id = request.params.at("id");
               if (!isPluginId(id)) throw malformedPluginId(id);
               const auto plugin = plugins.find(id);
               if (!plugin) {
                 throw ApiError{404, "not_found", "no plugin with id '" + id + "' is loaded"};
               }
               return ApiResponse{200, core::pluginJson(*plugin), {}};
             });
}

}  // namespace syncpod::service
