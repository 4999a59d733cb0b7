// Reading and checking a manifest's JSON form: the host does it when it loads a plugin, the
// conformance kit when it tests one. Every problem is reported, each with where it is.
#pragma once

#include <regex>
#include <string>
#include <vector>

#include "syncpod/sdk/json_schema.hpp"
#include "syncpod/sdk/model.hpp"

namespace syncpod {

/// Everything wrong with a manifest document; empty when it is valid.
inline std::vector<std::string> manifestProblems(const Json& json) {
  std::vector<std::string> problems;
  if (!json.is_object()) return {"the manifest must be a JSON object"};
  if (const auto e = json.find("error"); e != json.end()) {
    return {e->is_string() ? e->get<std::string>() : std::string("the manifest reports an error")};
  }
  const auto text = [&](const char* name) -> const Json* {
    const auto found = json.find(name);
    if (found == json.end() || !found->is_string()) {
      problems.push_back(std::string("\"") + name + "\" must be a string");
      return nullptr;
    }
    return &*found;
  };
  if (const auto* id = text("id")) {
    static const std::regex pattern("^[a-z0-9][a-z0-9_-]{0,62}$");
    if (!std::regex_match(id->get<std::string>(), pattern)) {
      problems.push_back("\"id\" must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit");
    }
  }
  if (const auto* version = text("version")) {
    static const std::regex semver(R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$)");
    if (!std::regex_match(version->get<std::string>(), semver)) {
      problems.push_back("\"version\" must be a semantic version such as 1.2.0");
    }
  }
  // Optional members must still have their type: manifestFromJson reads them.
  const auto checkType = [&](const Json& object, const char* name, bool (Json::*is)() const noexcept,
                             const std::string& what) {
    if (const auto found = object.find(name); found != object.end() && !((*found).*is)()) {
      problems.push_back(what);
    }
  };
  checkType(json, "description", &Json::is_string, "\"description\" must be a string");
  if (const auto* abi = text("abi")) {
    static const std::regex pattern(R"(^\d+\.\d+$)");
    if (!std::regex_match(abi->get<std::string>(), pattern)) {
      problems.push_back("\"abi\" must be MAJOR.MINOR");
    }
  }
  if (const auto streams = json.find("streams"); streams == json.end() || !streams->is_array()) {
    problems.push_back("\"streams\" must be an array");
  } else {
    for (std::size_t i = 0; i < streams->size(); ++i) {
      const auto& stream = (*streams)[i];
      const std::string at = "streams[" + std::to_string(i) + "]";
      if (!stream.is_object() || !stream.contains("name") || !stream["name"].is_string() ||
          stream["name"].get<std::string>().empty()) {
        problems.push_back(at + " needs a non-empty \"name\"");
        continue;
      }
      const auto keys = stream.find("key_fields");
      if (keys == stream.end() || !keys->is_array() || keys->empty() ||
          !std::all_of(keys->begin(), keys->end(), [](const Json& k) { return k.is_string(); })) {
        problems.push_back(at + " (" + stream["name"].get<std::string>() +
                           ") needs \"key_fields\": a non-empty array of field names");
      }
      checkType(stream, "description", &Json::is_string, at + ": \"description\" must be a string");
    }
  }
  const auto capabilities = json.find("capabilities");
  if (capabilities == json.end() || !capabilities->is_object()) {
    problems.push_back("\"capabilities\" must be an object");
  } else {
    const auto fetch = capabilities->find("fetch");
    bool has_full = false;
    if (fetch == capabilities->end() || !fetch->is_array()) {
      problems.push_back("\"capabilities.fetch\" must be an array of fetch modes");
    } else {
      for (const auto& mode : *fetch) {
        if (!mode.is_string() || !parseFetchMode(mode.get<std::string>())) {
          problems.push_back("\"capabilities.fetch\" lists " + mode.dump() + "; the modes are full, incremental, keys");
        } else {
          has_full = has_full || mode.get<std::string>() == "full";
        }
      }
      if (!has_full) problems.push_back("\"capabilities.fetch\" must include full");
    }
    const auto apply = capabilities->find("apply");
    if (apply == capabilities->end() || !apply->is_array()) {
      problems.push_back("\"capabilities.apply\" must be an array of operations");
    } else {
      for (const auto& op : *apply) {
        if (!op.is_string() || !parseChangeOp(op.get<std::string>())) {
          problems.push_back("\"capabilities.apply\" lists " + op.dump() + "; the operations are create, update, delete");
        }
      }
    }
    checkType(*capabilities, "deletion_detection", &Json::is_boolean,
             "\"capabilities.deletion_detection\" must be true or false");
    checkType(*capabilities, "configurable_streams", &Json::is_boolean,
             "\"capabilities.configurable_streams\" must be true or false");
    const auto cursor = capabilities->find("incremental_cursor_field");
    if (cursor != capabilities->end() && !cursor->is_null() && !cursor->is_string()) {
      problems.push_back("\"capabilities.incremental_cursor_field\" must be a string or null");
    }
  }
  const auto schema = json.find("config_schema");
  if (schema == json.end() || !schema->is_object()) {
    problems.push_back("\"config_schema\" must be a JSON Schema object");
  } else {
    for (const auto& problem : json_schema::checkSchema(*schema)) {
      problems.push_back("config_schema" + problem.path + ": " + problem.message);
    }
  }
  return problems;
}

/// The manifest a valid document describes; throws invalid() listing every problem otherwise.
inline Manifest manifestFromJson(const Json& json) {
  const auto problems = manifestProblems(json);
  if (!problems.empty()) {
    std::string message = "invalid manifest: ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i];
    throw invalid(message);
  }
  Manifest manifest;
  manifest.id = json["id"].get<std::string>();
  manifest.version = json["version"].get<std::string>();
  manifest.description = json.value("description", "");
  for (const auto& stream : json["streams"]) {
    manifest.streams.push_back({stream["name"].get<std::string>(),
                                stream["key_fields"].get<std::vector<std::string>>(),
                                stream.value("description", "")});
  }
  const auto& capabilities = json["capabilities"];
  manifest.capabilities.fetch_modes.clear();
  for (const auto& mode : capabilities["fetch"]) {
    manifest.capabilities.fetch_modes.push_back(*parseFetchMode(mode.get<std::string>()));
  }
  manifest.capabilities.apply_ops.clear();
  for (const auto& op : capabilities["apply"]) {
    manifest.capabilities.apply_ops.push_back(*parseChangeOp(op.get<std::string>()));
  }
  if (const auto c = capabilities.find("incremental_cursor_field"); c != capabilities.end() && c->is_string()) {
    manifest.capabilities.incremental_cursor_field = c->get<std::string>();
  }
  manifest.capabilities.deletion_detection = capabilities.value("deletion_detection", false);
  manifest.capabilities.configurable_streams = capabilities.value("configurable_streams", false);
  manifest.config_schema = json["config_schema"];
  return manifest;
}

}  // namespace syncpod
