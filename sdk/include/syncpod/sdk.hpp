// The syncpod plugin SDK: everything a connector author includes.
//
//   #include <syncpod/sdk.hpp>
//
//   class MyConnector : public syncpod::Connector {
//    public:
//     static syncpod::Manifest manifest();
//     explicit MyConnector(const syncpod::Json& config);
//     void check(syncpod::Context& context) override;
//     void fetch(const syncpod::FetchRequest& request, syncpod::RecordSink& sink,
//                syncpod::Context& context) override;
//     std::vector<syncpod::ChangeResult> apply(const syncpod::Changeset& changeset,
//                                              syncpod::ApplyMode mode,
//                                              syncpod::Context& context) override;
//   };
//   SYNCPOD_PLUGIN(MyConnector)
//
// docs/plugin-authoring.md walks through it; examples/hello-connector is a complete plugin.
#pragma once

#include "syncpod/abi.h"
#include "syncpod/sdk/connector.hpp"
#include "syncpod/sdk/json_schema.hpp"
#include "syncpod/sdk/manifest_check.hpp"
#include "syncpod/sdk/model.hpp"
#include "syncpod/sdk/plugin.hpp"
