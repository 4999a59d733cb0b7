// /api/v1/integrations…: create, list, get, replace, delete, enable/disable, validate, syncs,
// webhook secret.

#include <syncpod/sdk/json_schema.hpp>

#include "backend.hpp"
#include "handlers.hpp"
#include "syncpod/core/plugins.hpp"
#include "syncpod/core/sync/integration_spec.hpp"
#include "syncpod/core/webhooks.hpp"
#include "syncpod/service/service.hpp"

namespace syncpod::service {
namespace {

/// Shown in place of every secret; sent back unchanged in an update, it keeps the stored value.
constexpr const char* kRedacted = "********";
constexpr const char* kSides[] = {"source", "target"};

/// The config schema of the endpoint's plugin; nullptr when the plugin is not loaded. The
/// registry keeps the plugin, and so the schema, alive.
const Json* schemaOf(const core::PluginRegistry& plugins, const Json& endpoint) {
  if (!endpoint.is_object()) return nullptr;
  const auto plugin = endpoint.find("plugin");
  if (plugin == endpoint.end() || !plugin->is_string()) return nullptr;
  const auto found = plugins.find(plugin->get<std::string>());
  if (!found) return nullptr;
  return &found->manifest().config_schema;
}

/// The config with every secret its plugins' schemas mark replaced by kRedacted. The config
/// of an endpoint whose plugin is not loaded is hidden whole: which of its fields are secret
/// cannot be known.
Json redacted(const core::PluginRegistry& plugins, Json config) {
  for (const char* side : kSides) {
    if (!config.is_object() || !config.contains(side) || !config[side].is_object()) continue;
    auto& endpoint = config[side];
    if (!endpoint.contains("config")) continue;
    const auto* schema = schemaOf(plugins, endpoint);
    endpoint["config"] = schema != nullptr
                             ? json_schema::redactSecrets(*schema, endpoint["config"])
                             : Json(kRedacted);
  }
  return config;
}

/// Secrets sent back as kRedacted take their stored values.
void keepStoredSecrets(const core::PluginRegistry& plugins, Json& config, const Json& stored) {
  for (const char* side : kSides) {
    if (!config.is_object() || !config.contains(side) || !stored.contains(side)) continue;
    auto& endpoint = config[side];
    const auto& before = stored[side];
    if (!endpoint.is_object() || !endpoint.contains("config") || !before.is_object() ||
        !before.contains("config")) {
      continue;
    }
    if (endpoint["config"] == kRedacted) {  // a config hidden whole comes back whole
      endpoint["config"] = before["config"];
      continue;
    }
    const auto* schema = schemaOf(plugins, endpoint);
    if (schema == nullptr) continue;
    auto& value = endpoint["config"];
    for (const auto& path : json_schema::secretPointers(*schema, value)) {
      const Json::json_pointer pointer(path);
      if (value[pointer] == kRedacted && before["config"].contains(pointer)) {
        value[pointer] = before["config"][pointer];
      }
    }
  }
}

Json integrationJson(const core::PluginRegistry& plugins, const core::Integration& integration) {
  const auto& previous = integration.webhook_previous_expires_at;
  return {{"id", integration.id},
          {"name", integration.name},
          {"enabled", integration.enabled},
          {"config", redacted(plugins, Json::parse(integration.config_json, nullptr, false))},
          {"webhook_secret", integration.webhook_secret_set ? Json(kRedacted) : Json(nullptr)},
          {"webhook_previous_expires_at", previous ? Json(isoTime(*previous)) : Json(nullptr)},
          {"created_at", isoTime(integration.created_at)},
          {"updated_at", isoTime(integration.updated_at)}};
}

/// A webhook secret a client chose, checked; the message never quotes it.
std::string checkedWebhookSecret(const Json& value, const std::string& name) {
  if (!value.is_string()) {
    throw ApiError{400, "wrong_type", "field '" + name + "' must be a string" +
                                          (name == "webhook_secret" ? " or null" : "") + ", not " + value.type_name(),
                   {{"field", name}}};
  }
  auto secret = value.get<std::string>();
  if (secret == kRedacted) {
    throw ApiError{400, "invalid_field", "field '" + name + "' is \"" + kRedacted + "\", but there is no stored secret to keep",
                   {{"field", name}}};
  }
  if (!core::validWebhookSecret(secret)) {
    throw ApiError{400, "invalid_field",
                   "field '" + name + "' must be 16 to 256 printable ASCII characters without spaces",
                   {{"field", name}}};
  }
  return secret;
}

/// The "webhook_secret" of a create or update body: absent, or "********" in an update, changes
/// nothing; null removes the secret; a string replaces it at once (rotations that keep the old
/// one for a while go through …/webhook-secret).
std::optional<core::WebhookSecretChange> webhookSecretOf(const Json& body, bool updating) {
  const auto found = body.find("webhook_secret");
  if (found == body.end()) return std::nullopt;
  if (found->is_null()) return core::WebhookSecretChange{};
  if (updating && *found == kRedacted) return std::nullopt;
  return core::WebhookSecretChange{checkedWebhookSecret(*found, "webhook_secret"), std::chrono::seconds(0)};
}

/// Every problem of `config`: its own shape first, then against the plugins it names.
Json problemsOf(const core::PluginRegistry& plugins, const Json& config) {
  auto problems = core::integrationSpecProblems(config);
  if (problems.empty()) {
    auto spec = core::parseIntegrationSpec(config);
    if (spec) problems = core::checkAgainstPlugins(*spec, plugins);
  }
  Json list = Json::array();
  for (const auto& problem : problems) list.push_back({{"path", problem.path}, {"message", problem.message}});
  return list;
}

void requireValid(const core::PluginRegistry& plugins, const Json& config) {
  auto problems = problemsOf(plugins, config);
  if (problems.empty()) return;
  const auto& first = problems[0];
  throw ApiError{422, "invalid_config",
                 std::to_string(problems.size()) + " problem(s) in config, first: " +
                     first["path"].get<std::string>() + ": " + first["message"].get<std::string>(),
                 {{"problems", std::move(problems)}}};
}

std::string nameOf(const Json& body) {
  const auto* name = field(body, "name", Json::value_t::string, true);
  const auto text = name->get<std::string>();
  if (text.empty() || text.size() > 200) {
    throw ApiError{400, "invalid_field", "field 'name' must be 1 to 200 characters", {{"field", "name"}}};
  }
  return text;
}

core::Integration findIntegration(Backend& backend, const ApiRequest& request) {
  const auto id = parseId(request.params.at("id"), "integration id");
  auto found = backend.integrations().find(id);
  if (!found) throw databaseError(found.error());
  if (!*found) throw ApiError{404, "not_found", "no integration " + std::to_string(id)};
  return std::move(**found);
}

ApiError conflictOr(const core::Error& error) {
  if (error.code == core::Error::Code::Conflict) return {409, "conflict", error.message};
  return databaseError(error);
}

ApiResponse setEnabled(Backend& backend, const ApiRequest& request, const core::PluginRegistry& plugins,
                       bool enabled) {
  auto integration = findIntegration(backend, request);
  integration.enabled = enabled;
  auto updated = backend.integrations().update(integration);
  if (!updated) throw conflictOr(updated.error());
  if (!*updated) throw ApiError{404, "not_found", "no integration " + std::to_string(integration.id)};
  return {200, integrationJson(plugins, **updated), {}};
}

}  // namespace

void addIntegrationRoutes(Router& router, const RouteContext& context) {
  const auto& plugins = context.plugins;
  const int max_depth = context.options.max_json_depth;

  router.add("GET", "/api/v1/integrations", core::TokenScope::Read, [&plugins](ApiRequest& request, Backend& backend) {
    rejectUnknownParameters(request, {"limit", "cursor"});
    const int limit = pageLimit(request, 50, 500);
    core::IntegrationId after = 0;
    if (const auto found = request.query.find("cursor"); found != request.query.end()) {
      after = parseId(found->second, "cursor");
    }
    auto page = backend.integrations().list(after, limit);
    if (!page) throw databaseError(page.error());
    Json items = Json::array();
    for (const auto& integration : page->items) items.push_back(integrationJson(plugins, integration));
    return ApiResponse{200,
                       {{"items", std::move(items)},
                        {"next_cursor", page->next_after ? Json(std::to_string(*page->next_after)) : Json(nullptr)}},
                       {}};
  });

  router.add("POST", "/api/v1/integrations", core::TokenScope::Write,
             [&plugins, max_depth](ApiRequest& request, Backend& backend) {
               const auto body = parseJsonObject(request.body, max_depth);
               rejectUnknownFields(body, {"name", "enabled", "config", "webhook_secret"});
               const auto name = nameOf(body);
               const auto* enabled = field(body, "enabled", Json::value_t::boolean, false);
               const auto* config = field(body, "config", Json::value_t::object, true);
               const auto webhook = webhookSecretOf(body, false);
               requireValid(plugins, *config);
               auto created = backend.integrations().create(name, enabled ? enabled->get<bool>() : true, config->dump(),
                                                            webhook ? webhook->secret : std::nullopt);
               if (!created) throw conflictOr(created.error());
               return ApiResponse{201, integrationJson(plugins, *created), {}};
             });

  // Checks a config without saving it: the same problems create and update would refuse.
  router.add("POST", "/api/v1/integrations/validate", core::TokenScope::Write,
             [&plugins, max_depth](ApiRequest& request, Backend&) {
               const auto body = parseJsonObject(request.body, max_depth);
               rejectUnknownFields(body, {"config"});
               const auto* config = field(body, "config", Json::value_t::object, true);
               auto problems = problemsOf(plugins, *config);
               const bool valid = problems.empty();
               return ApiResponse{200, {{"valid", valid}, {"problems", std::move(problems)}}, {}};
             });

  router.add("GET", "/api/v1/integrations/{id}", core::TokenScope::Read,
             [&plugins](ApiRequest& request, Backend& backend) {
               return ApiResponse{200, integrationJson(plugins, findIntegration(backend, request)), {}};
             });

  // Replaces the integration. Secrets sent back as shown ("********") keep their values, and
  // so does a webhook_secret left out.
  router.add("PUT", "/api/v1/integrations/{id}", core::TokenScope::Write,
             [&plugins, max_depth](ApiRequest& request, Backend& backend) {
               auto integration = findIntegration(backend, request);
               const auto body = parseJsonObject(request.body, max_depth);
               rejectUnknownFields(body, {"name", "enabled", "config", "webhook_secret"});
               integration.name = nameOf(body);
               const auto* enabled = field(body, "enabled", Json::value_t::boolean, false);
               if (enabled) integration.enabled = enabled->get<bool>();
               auto config = *field(body, "config", Json::value_t::object, true);
               const auto webhook = webhookSecretOf(body, true);
               keepStoredSecrets(plugins, config, Json::parse(integration.config_json, nullptr, false));
               requireValid(plugins, config);
               integration.config_json = config.dump();
               auto updated = backend.integrations().update(integration, webhook);
               if (!updated) throw conflictOr(updated.error());
               if (!*updated) throw ApiError{404, "not_found", "no integration " + std::to_string(integration.id)};
               return ApiResponse{200, integrationJson(plugins, **updated), {}};
             });

  router.add("DELETE", "/api/v1/integrations/{id}", core::TokenScope::Write,
             [](ApiRequest& request, Backend& backend) {
               const auto id = parseId(request.params.at("id"), "integration id");
               auto removed = backend.integrations().remove(id);
               if (!removed) throw conflictOr(removed.error());
               if (!*removed) throw ApiError{404, "not_found", "no integration " + std::to_string(id)};
               return ApiResponse{204, nullptr, {}};
             });

  router.add("POST", "/api/v1/integrations/{id}/enable", core::TokenScope::Write,
             [&plugins](ApiRequest& request, Backend& backend) { return setEnabled(backend, request, plugins, true); });
  router.add("POST", "/api/v1/integrations/{id}/disable", core::TokenScope::Write,
             [&plugins](ApiRequest& request, Backend& backend) { return setEnabled(backend, request, plugins, false); });

  // Rotates the webhook secret: a new random one, shown in full in this response only, or the
  // one given; the secret it replaces may stay valid beside it for keep_previous_s.
  router.add("POST", "/api/v1/integrations/{id}/webhook-secret", core::TokenScope::Write,
             [&plugins, max_depth](ApiRequest& request, Backend& backend) {
               constexpr long long kMaxKeep = 7 * 24 * 3600;
               const auto id = parseId(request.params.at("id"), "integration id");
               const auto body = request.body.empty() ? Json::object() : parseJsonObject(request.body, max_depth);
               rejectUnknownFields(body, {"secret", "keep_previous_s"});
               core::WebhookSecretChange change;
               const auto given = body.find("secret");
               const bool generated = given == body.end();
               change.secret = generated ? core::newWebhookSecret() : checkedWebhookSecret(*given, "secret");
               if (const auto* keep = field(body, "keep_previous_s", Json::value_t::number_integer, false)) {
                 const auto seconds = keep->get<long long>();
                 if (seconds < 0 || seconds > kMaxKeep) {
                   throw ApiError{400, "invalid_field", "field 'keep_previous_s' must be 0 to " + std::to_string(kMaxKeep) + " (7 days)",
                                  {{"field", "keep_previous_s"}}};
                 }
                 change.keep_previous = std::chrono::seconds(seconds);
               }
               auto updated = backend.integrations().setWebhookSecret(id, change);
               if (!updated) throw databaseError(updated.error());
               if (!*updated) throw ApiError{404, "not_found", "no integration " + std::to_string(id)};
               auto shown = integrationJson(plugins, **updated);
               if (generated) shown["webhook_secret"] = *change.secret;
               return ApiResponse{200, std::move(shown), {}};
             });

  // Starts a sync: 202 with the job (or the queued job it was merged into).
  router.add("POST", "/api/v1/integrations/{id}/syncs", core::TokenScope::Write,
             [max_depth](ApiRequest& request, Backend& backend) {
               const auto integration = findIntegration(backend, request);
               const auto body = request.body.empty() ? Json::object() : parseJsonObject(request.body, max_depth);
               rejectUnknownFields(body, {"kind", "keys", "incremental", "plan"});
               core::EnqueueRequest enqueue;
               enqueue.integration_id = integration.id;
               const auto* kind = field(body, "kind", Json::value_t::string, false);
               const auto parsed = kind ? core::parseJobKind(kind->get<std::string>()) : core::JobKind::Full;
               if (!parsed) throw ApiError{400, "invalid_field", "field 'kind' must be full or partial", {{"field", "kind"}}};
               enqueue.kind = *parsed;
               if (const auto* keys = field(body, "keys", Json::value_t::array, false)) {
                 for (const auto& key : *keys) {
                   if (!key.is_string() || key.get<std::string>().empty()) {
                     throw ApiError{400, "invalid_field", "field 'keys' must hold non-empty strings", {{"field", "keys"}}};
                   }
                   enqueue.keys.push_back(key.get<std::string>());
                 }
               }
               if (const auto* incremental = field(body, "incremental", Json::value_t::boolean, false)) {
                 enqueue.incremental = incremental->get<bool>();
               }
               if (const auto* plan = field(body, "plan", Json::value_t::boolean, false)) enqueue.plan = plan->get<bool>();
               if (enqueue.kind == core::JobKind::Full && (!enqueue.keys.empty() || enqueue.incremental)) {
                 throw ApiError{400, "invalid_field", "keys and incremental belong to partial syncs", {{"field", "kind"}}};
               }
               if (enqueue.kind == core::JobKind::Partial && enqueue.keys.empty() && !enqueue.incremental) {
                 throw ApiError{400, "invalid_field", "a partial sync needs keys or incremental: true", {{"field", "keys"}}};
               }
               if (!integration.enabled) {
                 throw ApiError{409, "conflict", "integration " + std::to_string(integration.id) + " is disabled; enable it first"};
               }
               auto enqueued = backend.queue().enqueue(enqueue);
               if (!enqueued) throw databaseError(enqueued.error());
               auto job = backend.queue().find(enqueued->id);
               if (!job) throw databaseError(job.error());
               if (!*job) throw ApiError{409, "conflict", "the job finished and was removed at once"};
               auto shown = jobJson(**job);
               shown["merged"] = enqueued->merged;
               return ApiResponse{202, std::move(shown), {}};
             });
}

}  // namespace syncpod::service
