#pragma once
// The integration config the binary tests give the `workload` test plugin: its one stream
// "items" from a workload source (configured by the test) to an empty workload target.

#include <nlohmann/json.hpp>

namespace syncpod::testing {

inline nlohmann::json workloadIntegrationConfig(const nlohmann::json& source) {
  return {{"source", {{"plugin", "workload"}, {"config", source}}},
          {"target", {{"plugin", "workload"}, {"config", {{"records", 0}}}}},
          {"deletion_policy", "additive"},
          {"streams", {{{"name", "items"}, {"source_stream", "items"}, {"target_stream", "items"},
                        {"key", {"id"}}, {"fields", {{"id", "id"}, {"value", "value"}}}}}}};
}

}  // namespace syncpod::testing
