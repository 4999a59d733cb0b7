#include "syncpod/core/scaled_job.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {

ScaledJobDecision decideScaledJob(std::optional<double> value, int unfinished,
                                  const ScaledJobSettings& settings) {
  ScaledJobDecision decision;
  if (!value || std::isnan(*value)) return decision;
  decision.have_value = true;
  decision.value = std::max(*value, 0.0);
  decision.active = decision.value > settings.activation_target_query_value;
  const double target = settings.target_query_value > 0 ? settings.target_query_value : 1;
  const double room = std::max(settings.max_replicas - settings.min_replicas, 0);
  decision.max_scale = static_cast<long long>(std::ceil(std::min(decision.value / target, room)));
  decision.scale_to = static_cast<long long>(std::ceil(decision.value));
  if (unfinished < settings.min_replicas) {
    decision.start = settings.min_replicas - unfinished;
  } else if (decision.active) {
    const long long wanted = std::min(decision.scale_to, decision.max_scale - unfinished);
    decision.start = static_cast<int>(std::max(wanted, 0LL));
  }
  return decision;
}

class ScaledJobTrigger::Impl {
 public:
  Impl(DatabaseTarget target, std::string query) : target_(std::move(target)), query_(std::move(query)) {}

  Result<std::optional<double>> read() {
    try {
      if (!connection_) connection_ = pg::connect(target_);
      pqxx::nontransaction tx(*connection_);
      const auto rows = tx.exec(query_);
      if (rows.empty() || rows.columns() == 0 || rows[0][0].is_null()) return std::optional<double>{};
      const std::string text = rows[0][0].c_str();
      char* end = nullptr;
      const double number = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) {
        return Error{Error::Code::Invalid, "the query's first column is not a number: '" + text.substr(0, 40) + "'"};
      }
      return std::optional<double>{number};
    } catch (const DatabaseUnavailable& error) {
      return Error{Error::Code::Unavailable, error.what()};
    } catch (const std::exception& error) {
      // A broken connection is opened afresh on the next read.
      if (connection_ && !connection_->is_open()) connection_.reset();
      auto mapped = pg::toError(error);
      if (mapped.code == Error::Code::Unavailable) connection_.reset();
      return mapped;
    }
  }

 private:
  DatabaseTarget target_;
  std::string query_;
  std::unique_ptr<pqxx::connection> connection_;
};

ScaledJobTrigger::ScaledJobTrigger(DatabaseTarget target, std::string query)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(query))) {}
ScaledJobTrigger::~ScaledJobTrigger() = default;

std::string ScaledJobTrigger::defaultQuery(const std::string& schema) {
  // Quoted as an identifier, as KEDA would be given it in the chart.
  std::string quoted = "\"";
  for (const char c : schema) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return "SELECT count FROM " + quoted + "\".desired_pod_count";
}

Result<std::optional<double>> ScaledJobTrigger::read() { return impl_->read(); }

}  // namespace syncpod::core
