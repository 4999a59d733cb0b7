#include "pg_text.hpp"

#include <cmath>
#include <cstdio>

namespace syncpod::plugins::postgres {
namespace {

constexpr std::string_view kSchemeSeparator = "://";

/// Where the password of scheme://user:password@host sits, if there is one. The last '@'
/// before the query ends the userinfo: an unencoded '@' inside a password then still counts
/// as part of it (and a stray '@' later in the URL only widens what is redacted).
std::optional<std::pair<std::size_t, std::size_t>> passwordRange(std::string_view url) {
  const auto scheme = url.find(kSchemeSeparator);
  if (scheme == std::string_view::npos) return std::nullopt;
  const auto start = scheme + kSchemeSeparator.size();
  const auto query = url.find('?', start);
  const auto at = url.rfind('@', query == std::string_view::npos ? std::string_view::npos : query);
  if (at == std::string_view::npos || at < start) return std::nullopt;
  const auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::nullopt;
  return std::pair{colon + 1, at};
}

/// Ranges of the values of password= parameters in the query part.
std::vector<std::pair<std::size_t, std::size_t>> queryPasswordRanges(std::string_view url) {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  const auto query = url.find('?');
  if (query == std::string_view::npos) return ranges;
  std::size_t position = query + 1;
  while (position <= url.size()) {
    auto end = url.find('&', position);
    if (end == std::string_view::npos) end = url.size();
    const auto parameter = url.substr(position, end - position);
    if (parameter.starts_with("password=")) ranges.emplace_back(position + 9, end);
    position = end + 1;
  }
  return ranges;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view text) {
  std::string decoded;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = hexValue(text[i + 1]);
      const int low = hexValue(text[i + 2]);
      if (high >= 0 && low >= 0) {
        decoded.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    decoded.push_back(text[i]);
  }
  return decoded;
}

void appendQuoted(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void appendArrayLiteral(std::string& out, const Json& array) {
  out.push_back('{');
  bool first = true;
  for (const auto& item : array) {
    if (!first) out.push_back(',');
    first = false;
    if (item.is_array()) {
      appendArrayLiteral(out, item);
    } else if (item.is_null()) {
      out += "NULL";
    } else {
      // Quoted always: a quoted element is never read as NULL or split at a comma.
      appendQuoted(out, *parameterText(item, false));
    }
  }
  out.push_back('}');
}

}  // namespace

std::string redactUrl(std::string_view url) {
  if (url.find(kSchemeSeparator) == std::string_view::npos) return "(connection string, redacted)";
  std::string redacted(url);
  // Query first: its ranges lie after the userinfo, so replacing them keeps the earlier offsets.
  const auto ranges = queryPasswordRanges(url);
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    redacted.replace(it->first, it->second - it->first, "***");
  }
  if (const auto range = passwordRange(url)) {
    redacted.replace(range->first, range->second - range->first, "***");
  }
  return redacted;
}

std::vector<std::string> urlSecrets(std::string_view url) {
  std::vector<std::string> secrets;
  const auto add = [&](std::size_t begin, std::size_t end) {
    const auto raw = url.substr(begin, end - begin);
    if (raw.empty()) return;
    secrets.emplace_back(raw);
    if (auto decoded = percentDecode(raw); decoded != raw) secrets.push_back(std::move(decoded));
  };
  if (const auto range = passwordRange(url)) add(range->first, range->second);
  for (const auto& [begin, end] : queryPasswordRanges(url)) add(begin, end);
  return secrets;
}

std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    // Very short secrets would garble ordinary words; libpq never echoes a password anyway,
    // so this is a second line of defence for real-world passwords.
    if (secret.size() < 4) continue;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}

std::string oneLine(std::string_view text) {
  std::string line;
  for (const char c : text) {
    if (c == '\n') {
      line += "; ";
    } else if (c == '\r' || c == '\t') {
      line += ' ';
    } else {
      line += c;
    }
  }
  const auto trim = [](char c) { return c == ' ' || c == ';'; };
  while (!line.empty() && trim(line.back())) line.pop_back();
  std::size_t start = 0;
  while (start < line.size() && line[start] == ' ') ++start;
  return line.substr(start);
}

std::optional<std::string> parameterText(const Json& value, bool postgres_array) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_float()) {
    // 3.0 arrives as a float when it went through a double somewhere; "3.0" does not parse as
    // an integer, "3" parses as every numeric type.
    const double number = value.get<double>();
    if (std::isfinite(number) && std::trunc(number) == number && std::fabs(number) < 1e15) {
      char text[32];
      std::snprintf(text, sizeof text, "%.0f", number);
      return std::string(text);
    }
    return value.dump();
  }
  if (value.is_array() && postgres_array) {
    std::string literal;
    appendArrayLiteral(literal, value);
    return literal;
  }
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string textArrayLiteral(const std::vector<std::string>& items) {
  std::string literal = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) literal.push_back(',');
    appendQuoted(literal, items[i]);
  }
  literal.push_back('}');
  return literal;
}

std::string textArrayLiteralWithNulls(const std::vector<std::optional<std::string>>& items) {
  std::string literal = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) literal.push_back(',');
    if (items[i]) {
      appendQuoted(literal, *items[i]);
    } else {
      literal += "NULL";
    }
  }
  literal.push_back('}');
  return literal;
}

}  // namespace syncpod::plugins::postgres
