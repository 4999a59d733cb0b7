// A JSON Schema validator for the subset of JSON Schema (draft 2020-12) that connector config
// schemas use. The plugin layer validates every config against its manifest's schema before a
// connector sees it, and the host validates integration configs with the same code, so both
// give the same messages.
//
// Supported keywords: type (a name or a list), properties, required, additionalProperties
// (boolean or schema), items, enum, const, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum, minLength, maxLength, pattern (ECMAScript syntax), minItems, maxItems.
// Annotations that are accepted and not checked: $schema, $id, title, description, default,
// examples, format, writeOnly (marks a secret), readOnly, deprecated. Any other keyword makes
// the schema invalid (checkSchema says which), so a schema never silently checks less than
// its author meant.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace syncpod::json_schema {

using Json = nlohmann::json;

struct Violation {
  std::string path;     ///< JSON Pointer of the offending value ("" is the document itself)
  std::string message;  ///< what is wrong with it
  /// "<path>: <message>", with "(config)" standing for the document itself.
  std::string text() const { return (path.empty() ? std::string("(config)") : path) + ": " + message; }
};

/// A member name as a JSON Pointer reference token ("~" → "~0", "/" → "~1").
inline std::string escapePointer(const std::string& name) {
  std::string escaped;
  for (const char c : name) {
    if (c == '~') escaped += "~0";
    else if (c == '/') escaped += "~1";
    else escaped += c;
  }
  return escaped;
}

namespace detail {

inline const std::set<std::string>& knownKeywords() {
  static const std::set<std::string> keywords = {
      "type", "properties", "required", "additionalProperties", "items", "enum", "const",
      "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
      "pattern", "minItems", "maxItems", "$schema", "$id", "title", "description", "default",
      "examples", "format", "writeOnly", "readOnly", "deprecated"};
  return keywords;
}

inline const std::set<std::string>& typeNames() {
  static const std::set<std::string> names = {"object", "array", "string", "number",
                                              "integer", "boolean", "null"};
  return names;
}

inline bool hasType(const Json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    // A number without a fractional part is an integer, however large (1e300 too); casting it
    // to an integer type to find out would be undefined beyond that type's range.
    const double d = value.get<double>();
    return std::isfinite(d) && std::trunc(d) == d;
  }
  return false;
}

inline std::string typeOf(const Json& value) {
  if (value.is_object()) return "object";
  if (value.is_array()) return "array";
  if (value.is_string()) return "string";
  if (value.is_boolean()) return "boolean";
  if (value.is_null()) return "null";
  if (value.is_number_integer()) return "integer";
  return "number";
}

/// Length in code points, as JSON Schema counts it (the text is UTF-8).
inline std::size_t codePoints(const std::string& text) {
  std::size_t count = 0;
  for (const char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

inline void checkSchemaAt(const Json& schema, const std::string& path,
                          std::vector<Violation>& out) {
  if (schema.is_boolean()) return;
  if (!schema.is_object()) {
    out.push_back({path, "a schema must be an object or a boolean"});
    return;
  }
  for (const auto& [keyword, value] : schema.items()) {
    const std::string at = path + "/" + escapePointer(keyword);
    if (!knownKeywords().count(keyword)) {
      out.push_back({at, "unsupported keyword \"" + keyword + "\""});
      continue;
    }
    if (keyword == "type") {
      const auto valid_name = [](const Json& t) { return t.is_string() && typeNames().count(t.get<std::string>()); };
      const bool ok = value.is_array() ? std::all_of(value.begin(), value.end(), valid_name) && !value.empty()
                                       : valid_name(value);
      if (!ok) out.push_back({at, "must be one of object, array, string, number, integer, boolean, null (or a list of them)"});
    } else if (keyword == "properties") {
      if (!value.is_object()) {
        out.push_back({at, "must be an object of schemas"});
        continue;
      }
      for (const auto& [name, sub] : value.items()) checkSchemaAt(sub, at + "/" + escapePointer(name), out);
    } else if (keyword == "additionalProperties" || keyword == "items") {
      checkSchemaAt(value, at, out);
    } else if (keyword == "required") {
      const bool ok = value.is_array() && std::all_of(value.begin(), value.end(),
                                                      [](const Json& n) { return n.is_string(); });
      if (!ok) out.push_back({at, "must be an array of property names"});
    } else if (keyword == "enum") {
      if (!value.is_array() || value.empty()) out.push_back({at, "must be a non-empty array"});
    } else if (keyword == "minimum" || keyword == "maximum" || keyword == "exclusiveMinimum" ||
               keyword == "exclusiveMaximum") {
      if (!value.is_number()) out.push_back({at, "must be a number"});
    } else if (keyword == "minLength" || keyword == "maxLength" || keyword == "minItems" ||
               keyword == "maxItems") {
      if (!value.is_number_unsigned()) out.push_back({at, "must be a non-negative integer"});
    } else if (keyword == "pattern") {
      if (!value.is_string()) {
        out.push_back({at, "must be a string"});
        continue;
      }
      try {
        std::regex(value.get<std::string>(), std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        out.push_back({at, "is not a valid regular expression"});
      }
    } else if (keyword == "writeOnly" || keyword == "readOnly" || keyword == "deprecated") {
      if (!value.is_boolean()) out.push_back({at, "must be true or false"});
    }
  }
}

inline void validateAt(const Json& schema, const Json& value, const std::string& path,
                       std::vector<Violation>& out) {
  if (schema.is_boolean()) {
    if (!schema.get<bool>()) out.push_back({path, "is not allowed here"});
    return;
  }
  if (!schema.is_object()) return;

  if (const auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string expected;
    const auto consider = [&](const Json& type) {
      ok = ok || hasType(value, type.get<std::string>());
      expected += (expected.empty() ? "" : " or ") + type.get<std::string>();
    };
    if (t->is_array()) {
      for (const auto& type : *t) consider(type);
    } else {
      consider(*t);
    }
    if (!ok) {
      out.push_back({path, "must be " + expected + ", not " + typeOf(value)});
      return;  // the other keywords would only repeat the same mistake
    }
  }
  if (const auto e = schema.find("enum"); e != schema.end()) {
    if (std::find(e->begin(), e->end(), value) == e->end()) {
      out.push_back({path, "must be one of " + e->dump()});
    }
  }
  if (const auto c = schema.find("const"); c != schema.end() && *c != value) {
    out.push_back({path, "must be " + c->dump()});
  }
  if (value.is_number()) {
    const double number = value.get<double>();
    const auto bound = [&](const char* keyword, auto violated, const char* words) {
      if (const auto b = schema.find(keyword); b != schema.end() && violated(number, b->template get<double>())) {
        out.push_back({path, std::string("must be ") + words + " " + b->dump()});
      }
    };
    bound("minimum", [](double v, double b) { return v < b; }, "at least");
    bound("maximum", [](double v, double b) { return v > b; }, "at most");
    bound("exclusiveMinimum", [](double v, double b) { return v <= b; }, "greater than");
    bound("exclusiveMaximum", [](double v, double b) { return v >= b; }, "less than");
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    const auto length = codePoints(text);
    if (const auto m = schema.find("minLength"); m != schema.end() && length < m->get<std::size_t>()) {
      out.push_back({path, "must be at least " + m->dump() + " characters long"});
    }
    if (const auto m = schema.find("maxLength"); m != schema.end() && length > m->get<std::size_t>()) {
      out.push_back({path, "must be at most " + m->dump() + " characters long"});
    }
    if (const auto p = schema.find("pattern"); p != schema.end()) {
      try {
        if (!std::regex_search(text, std::regex(p->get<std::string>(), std::regex::ECMAScript))) {
          out.push_back({path, "must match the pattern " + p->dump()});
        }
      } catch (const std::regex_error&) {
        out.push_back({path, "cannot be checked: the schema's pattern is not a valid regular expression"});
      }
    }
  }
  if (value.is_array()) {
    if (const auto m = schema.find("minItems"); m != schema.end() && value.size() < m->get<std::size_t>()) {
      out.push_back({path, "must have at least " + m->dump() + " items"});
    }
    if (const auto m = schema.find("maxItems"); m != schema.end() && value.size() > m->get<std::size_t>()) {
      out.push_back({path, "must have at most " + m->dump() + " items"});
    }
    if (const auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        validateAt(*items, value[i], path + "/" + std::to_string(i), out);
      }
    }
  }
  if (value.is_object()) {
    if (const auto r = schema.find("required"); r != schema.end()) {
      for (const auto& name : *r) {
        if (!value.contains(name.get<std::string>())) {
          out.push_back({path + "/" + escapePointer(name.get<std::string>()), "is required"});
        }
      }
    }
    const auto properties = schema.find("properties");
    const auto additional = schema.find("additionalProperties");
    for (const auto& [name, member] : value.items()) {
      const std::string at = path + "/" + escapePointer(name);
      if (properties != schema.end() && properties->contains(name)) {
        validateAt((*properties)[name], member, at, out);
      } else if (additional != schema.end()) {
        if (additional->is_boolean() && !additional->get<bool>()) {
          out.push_back({at, "is not a known setting"});
        } else {
          validateAt(*additional, member, at, out);
        }
      }
    }
  }
}

inline bool isSecret(const Json& schema) {
  const auto w = schema.find("writeOnly");
  return w != schema.end() && w->is_boolean() && w->get<bool>();
}

/// Walks `value` with its schema: a member goes by its property's schema, or else by
/// additionalProperties; an array element by items. So a secret inside a map of named
/// settings or in a list is found where it is.
inline void collectSecretsIn(const Json& schema, const Json& value, const std::string& path,
                             std::vector<std::string>& out) {
  if (!schema.is_object()) return;
  if (isSecret(schema)) {
    out.push_back(path);
    return;
  }
  if (value.is_object()) {
    const auto properties = schema.find("properties");
    const auto additional = schema.find("additionalProperties");
    for (const auto& [name, member] : value.items()) {
      const std::string at = path + "/" + escapePointer(name);
      if (properties != schema.end() && properties->is_object() && properties->contains(name)) {
        collectSecretsIn((*properties)[name], member, at, out);
      } else if (additional != schema.end()) {
        collectSecretsIn(*additional, member, at, out);
      }
    }
  } else if (value.is_array()) {
    if (const auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        collectSecretsIn(*items, value[i], path + "/" + std::to_string(i), out);
      }
    }
  }
}

}  // namespace detail

/// Problems with a schema itself: unsupported keywords and malformed values, with their paths
/// inside the schema. Empty when the schema is usable.
inline std::vector<Violation> checkSchema(const Json& schema) {
  std::vector<Violation> problems;
  detail::checkSchemaAt(schema, "", problems);
  return problems;
}

/// Every way `value` breaks `schema` (which checkSchema accepts), in document order.
inline std::vector<Violation> validate(const Json& schema, const Json& value) {
  std::vector<Violation> violations;
  detail::validateAt(schema, value, "", violations);
  return violations;
}

/// JSON Pointers of the values in `config` that the schema marks as secrets ("writeOnly":
/// true), wherever they are: under properties, additionalProperties (a map of named settings)
/// or items (a list).
inline std::vector<std::string> secretPointers(const Json& schema, const Json& config) {
  std::vector<std::string> pointers;
  detail::collectSecretsIn(schema, config, "", pointers);
  return pointers;
}

/// A copy of `config` with every secret the schema marks replaced by "********".
inline Json redactSecrets(const Json& schema, Json config) {
  for (const auto& path : secretPointers(schema, config)) config[Json::json_pointer(path)] = "********";
  return config;
}

}  // namespace syncpod::json_schema
