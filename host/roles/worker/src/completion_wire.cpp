#include "completion_wire.hpp"

#include <nlohmann/json.hpp>

namespace syncpod::worker {

std::string toWire(const core::Completion& completion) {
  return nlohmann::json{{"outcome", core::toString(completion.outcome)},
                        {"result", completion.result_json},
                        {"error", completion.error}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> fromWire(const std::string& text, core::Completion& completion) {
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return "not a JSON object";
  const auto outcome = json.find("outcome");
  const auto result = json.find("result");
  const auto error = json.find("error");
  if (outcome == json.end() || !outcome->is_string() || result == json.end() ||
      !result->is_string() || error == json.end() || !error->is_string()) {
    return "needs the strings \"outcome\", \"result\" and \"error\"";
  }
  const auto name = outcome->get<std::string>();
  const auto value = core::parseOutcome(name);
  if (!value) return "unknown outcome \"" + name + "\"";
  // The queue refuses a completion whose result is not JSON, and with it the worker's whole
  // batch, each time it is tried again: such a result is garbled here, where one job pays.
  const auto& result_text = result->get_ref<const std::string&>();
  if (!result_text.empty() && nlohmann::json::parse(result_text, nullptr, false).is_discarded()) {
    return "its result is not JSON";
  }
  completion.outcome = *value;
  completion.result_json = result->get<std::string>();
  completion.error = error->get<std::string>();
  return std::nullopt;
}

}  // namespace syncpod::worker
