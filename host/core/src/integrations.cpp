#include "syncpod/core/integrations.hpp"

#include "job_event_store.hpp"
#include "pg.hpp"

namespace syncpod::core {
namespace {

const std::string kColumns = "id, name, enabled, config::text, " + pg::epochMicros("created_at") +
                             ", " + pg::epochMicros("updated_at");

Integration integrationOf(const pqxx::row& row) {
  Integration integration;
  integration.id = row[0].as<IntegrationId>();
  integration.name = row[1].as<std::string>();
  integration.enabled = row[2].as<bool>();
  integration.config_json = row[3].as<std::string>();
  integration.created_at = pg::fromEpochMicros(row[4].as<long long>());
  integration.updated_at = pg::fromEpochMicros(row[5].as<long long>());
  return integration;
}

template <class T>
Result<T> nameTaken(const Result<T>& result, const std::string& name) {
  if (!result && result.error().code == Error::Code::Conflict) {
    return Error{Error::Code::Conflict, "an integration named '" + name + "' exists already"};
  }
  return result;
}

}  // namespace

class IntegrationStore::Impl : public pg::Session {
 public:
  using Session::Session;
};

IntegrationStore::IntegrationStore(DatabaseTarget target) : impl_(std::make_unique<Impl>(target)) {}
IntegrationStore::~IntegrationStore() = default;

Result<IntegrationPage> IntegrationStore::list(IntegrationId after, int limit) {
  return impl_->run([&](pqxx::work& tx) {
    IntegrationPage page;
    // One more than asked: whether there is a next page, without a count.
    const auto rows = tx.exec_params("SELECT " + kColumns +
                                         " FROM integrations WHERE id > $1 ORDER BY id LIMIT $2",
                                     after, limit + 1);
    for (const auto& row : rows) {
      if (static_cast<int>(page.items.size()) == limit) {
        page.next_after = page.items.back().id;
        break;
      }
      page.items.push_back(integrationOf(row));
    }
    return page;
  });
}

Result<std::optional<Integration>> IntegrationStore::find(IntegrationId id) {
  return impl_->run([&](pqxx::work& tx) -> std::optional<Integration> {
    const auto rows = tx.exec_params("SELECT " + kColumns + " FROM integrations WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    return integrationOf(rows[0]);
  });
}

Result<Integration> IntegrationStore::create(const std::string& name, bool enabled,
                                             const std::string& config_json) {
  return nameTaken(impl_->run([&](pqxx::work& tx) {
    return integrationOf(tx.exec_params1(
        "INSERT INTO integrations (name, enabled, config) VALUES ($1, $2, $3::jsonb) RETURNING " + kColumns,
        name, enabled, config_json));
  }), name);
}

Result<std::optional<Integration>> IntegrationStore::update(const Integration& integration) {
  return nameTaken(impl_->run([&](pqxx::work& tx) -> std::optional<Integration> {
    const auto rows = tx.exec_params(
        "UPDATE integrations SET name = $2, enabled = $3, config = $4::jsonb, updated_at = now() "
        "WHERE id = $1 RETURNING " + kColumns,
        integration.id, integration.name, integration.enabled, integration.config_json);
    if (rows.empty()) return std::nullopt;
    return integrationOf(rows[0]);
  }), integration.name);
}

Result<bool> IntegrationStore::remove(IntegrationId id) {
  auto removed = impl_->run([&](pqxx::work& tx) -> std::optional<bool> {
    // The lane row says whether a job runs; locking it keeps a claim from starting one now.
    const auto lane = tx.exec_params(
        "SELECT running_job_id FROM job_lanes WHERE integration_id = $1 FOR UPDATE", id);
    if (!lane.empty() && !lane[0][0].is_null()) return std::nullopt;
    // Its jobs go with it. Their job_queue, job_attempts and job_events rows have no foreign
    // key to cascade.
    tx.exec_params("DELETE FROM job_queue WHERE integration_id = $1", id);
    const std::string jobs = "SELECT id FROM jobs WHERE integration_id = $1";
    tx.exec_params("DELETE FROM job_attempts WHERE job_id IN (" + jobs + ")", id);
    tx.exec_params(job_events::deleteForJobsSql(jobs), id);
    return tx.exec_params("DELETE FROM integrations WHERE id = $1", id).affected_rows() > 0;
  });
  if (!removed) return removed.error();
  if (!*removed) {
    return Error{Error::Code::Conflict,
                 "integration " + std::to_string(id) + " has a running job; cancel it first"};
  }
  return **removed;
}

}  // namespace syncpod::core
