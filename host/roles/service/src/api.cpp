#include "api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace syncpod::service {

std::string ApiRequest::header(std::string_view name) const {
  std::string key(name);
  for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto found = headers.find(key);
  return found == headers.end() ? std::string() : found->second;
}

ApiResponse errorResponse(const ApiError& error) {
  ApiResponse response;
  response.status = error.status;
  response.headers = error.headers;
  response.body = {{"error", {{"code", error.code}, {"message", error.message}, {"details", error.details}}}};
  return response;
}

namespace {

/// The deepest nesting of arrays and objects in `text`, counted without parsing, so that a
/// hostile body is refused before a parser or a destructor recurses into it.
int nestingDepth(const std::string& text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

/// "/a/b~1c/0": a JSON Pointer (RFC 6901) from `path` and one more step.
std::string pointerTo(const std::string& path, const std::string& step) {
  std::string out = path + "/";
  for (const char c : step.substr(0, 60)) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

/// Where in `json` a string or member name holds a NUL character, as a JSON Pointer; nullopt
/// when none does. The recursion is as deep as the JSON, which was checked before.
std::optional<std::string> nulCharacterAt(const Json& json, const std::string& path) {
  if (json.is_string()) {
    if (json.get_ref<const std::string&>().find('\0') != std::string::npos) return path;
  } else if (json.is_object()) {
    for (const auto& [name, value] : json.items()) {
      if (name.find('\0') != std::string::npos) return pointerTo(path, name);
      if (auto found = nulCharacterAt(value, pointerTo(path, name))) return found;
    }
  } else if (json.is_array()) {
    for (std::size_t i = 0; i < json.size(); ++i) {
      if (auto found = nulCharacterAt(json[i], pointerTo(path, std::to_string(i)))) return found;
    }
  }
  return std::nullopt;
}

}  // namespace

Json parseJsonObject(const std::string& body, int max_depth) {
  if (body.empty()) throw ApiError{400, "invalid_json", "the request needs a JSON object body"};
  if (nestingDepth(body) > max_depth) {
    throw ApiError{400, "invalid_json",
                   "the JSON body is nested deeper than " + std::to_string(max_depth) + " levels"};
  }
  Json json;
  try {
    json = Json::parse(body);
  } catch (const Json::parse_error& error) {
    // nlohmann's message names the byte offset and what it expected.
    std::string message = error.what();
    if (const auto colon = message.find("parse error"); colon != std::string::npos) {
      message = message.substr(colon);
    }
    throw ApiError{400, "invalid_json", "the body is not valid JSON: " + message,
                   {{"byte", error.byte}}};
  } catch (const Json::exception& error) {
    // A number too large for a double ("1e999") is an out_of_range error, not a parse_error.
    std::string message = error.what();
    if (const auto bracket = message.find("] "); bracket != std::string::npos) message = message.substr(bracket + 2);
    throw ApiError{400, "invalid_json", "the body is not valid JSON: " + message.substr(0, 200)};
  }
  if (!json.is_object()) {
    throw ApiError{400, "invalid_json", std::string("the body must be a JSON object, not ") + json.type_name()};
  }
  // PostgreSQL stores no NUL in text, nor \u0000 in jsonb: refused here, not by the database (a 500).
  if (const auto at = nulCharacterAt(json, "")) {
    throw ApiError{400, "invalid_json", "the body holds a NUL character (\\u0000) at " + *at + "; no field may hold one",
                   {{"pointer", *at}}};
  }
  return json;
}

std::int64_t parseId(const std::string& text, const std::string& name) {
  std::int64_t value = 0;
  const auto end = text.data() + text.size();
  const auto [last, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || last != end || value <= 0) {
    throw ApiError{400, "invalid_id", name + " must be a positive integer, not '" +
                                          text.substr(0, 40) + "'",
                   {{"parameter", name}}};
  }
  return value;
}

std::string parseUuid(const std::string& text, const std::string& name) {
  std::string uuid = text;
  bool valid = uuid.size() == 36;
  for (std::size_t i = 0; valid && i < uuid.size(); ++i) {
    auto& c = uuid[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      valid = c == '-';
    } else {
      valid = std::isxdigit(static_cast<unsigned char>(c)) != 0;
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (!valid) {
    throw ApiError{400, "invalid_id",
                   name + " must be a UUID (8-4-4-4-12 hexadecimal digits), not '" +
                       text.substr(0, 40) + "'",
                   {{"parameter", name}}};
  }
  return uuid;
}

void rejectUnknownFields(const Json& object, const std::vector<std::string>& allowed,
                         const std::string& where) {
  for (const auto& [name, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string known;
      for (const auto& option : allowed) known += (known.empty() ? "" : ", ") + option;
      throw ApiError{400, "unknown_field",
                     "unknown field '" + where + name.substr(0, 60) + "'; known fields: " + known,
                     {{"field", where + name.substr(0, 60)}}};
    }
  }
}

const Json* field(const Json& object, const std::string& name, Json::value_t type, bool required) {
  const auto found = object.find(name);
  if (found == object.end()) {
    if (required) throw ApiError{400, "missing_field", "field '" + name + "' is required", {{"field", name}}};
    return nullptr;
  }
  const bool integer_ok = type == Json::value_t::number_integer && found->is_number_integer();
  if (found->type() != type && !integer_ok) {
    const char* wanted = "a value of another type";
    switch (type) {
      case Json::value_t::string: wanted = "a string"; break;
      case Json::value_t::boolean: wanted = "true or false"; break;
      case Json::value_t::object: wanted = "an object"; break;
      case Json::value_t::array: wanted = "an array"; break;
      case Json::value_t::number_integer: wanted = "an integer"; break;
      default: break;
    }
    throw ApiError{400, "wrong_type",
                   "field '" + name + "' must be " + wanted + ", not " + found->type_name(),
                   {{"field", name}}};
  }
  return &*found;
}

void rejectUnknownParameters(const ApiRequest& request, const std::vector<std::string>& allowed) {
  for (const auto& [name, value] : request.query) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string known;
      for (const auto& option : allowed) known += (known.empty() ? "" : ", ") + option;
      throw ApiError{400, "unknown_parameter",
                     "unknown query parameter '" + name.substr(0, 60) + "'; known: " + known,
                     {{"parameter", name.substr(0, 60)}}};
    }
  }
}

int pageLimit(const ApiRequest& request, int fallback, int max) {
  const auto found = request.query.find("limit");
  if (found == request.query.end()) return fallback;
  int value = 0;
  const auto& text = found->second;
  const auto [last, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || last != text.data() + text.size() || value < 1 || value > max) {
    throw ApiError{400, "invalid_parameter", "limit must be an integer from 1 to " + std::to_string(max),
                   {{"parameter", "limit"}}};
  }
  return value;
}

}  // namespace syncpod::service
