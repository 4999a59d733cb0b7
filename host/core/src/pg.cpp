#include "pg.hpp"

#include <cctype>
#include <cstdlib>

#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "syncpod/core/errors.hpp"

namespace syncpod::core::pg {

std::string oneLine(std::string_view message) {
  std::string line;
  line.reserve(message.size());
  bool pending_space = false;
  for (char c : message) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      pending_space = !line.empty();
      continue;
    }
    if (pending_space) line.push_back(' ');
    pending_space = false;
    line.push_back(c);
  }
  return line;
}

std::string withConnectionLimits(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    // libpq's message may quote the text it stopped at, a password included.
    PQfreemem(error);
    throw DatabaseUnavailable(
        "cannot read the database URL: write it as postgresql://user:password@host:port/dbname"
        "?parameter=value (special characters percent-encoded) or as keyword=value pairs, with "
        "parameters libpq knows");
  }
  static constexpr std::pair<std::string_view, std::string_view> kLimits[] = {
      {"connect_timeout", "10"},    {"keepalives", "1"},      {"keepalives_idle", "30"},
      {"keepalives_interval", "10"}, {"keepalives_count", "3"}, {"tcp_user_timeout", "60000"},
  };
  // Values given elsewhere win over these limits: a connection service file (its entries
  // apply only to what the string leaves unset) or libpq's environment (PGCONNECT_TIMEOUT).
  bool names_service = std::getenv("PGSERVICE") != nullptr;
  for (const auto* option = options; option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) == "service" && option->val != nullptr) names_service = true;
  }
  const auto quoted = [](std::string_view value) {
    std::string out = "'";
    for (const char c : value) {
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    }
    return out + "'";
  };
  std::string conninfo;
  for (const auto* option = options; option->keyword != nullptr; ++option) {
    std::string_view value = option->val != nullptr ? option->val : "";
    if (option->val == nullptr && !names_service &&
        (option->envvar == nullptr || std::getenv(option->envvar) == nullptr)) {
      for (const auto& [keyword, limit] : kLimits) {
        if (keyword == option->keyword) value = limit;
      }
    }
    if (value.empty() && option->val == nullptr) continue;
    conninfo += (conninfo.empty() ? "" : " ") + std::string(option->keyword) + "=" + quoted(value);
  }
  PQconninfoFree(options);
  return conninfo;
}

std::unique_ptr<pqxx::connection> connect(const DatabaseTarget& target) {
  try {
    auto connection = std::make_unique<pqxx::connection>(withConnectionLimits(target.url));
    connection->set_variable("search_path", connection->quote_name(target.schema));
    // Operators see which installation a session belongs to in pg_stat_activity.
    const auto name = "syncpod:" + target.schema + (target.client.empty() ? "" : ":" + target.client);
    connection->set_variable("application_name", connection->quote(name));
    return connection;
  } catch (const pqxx::broken_connection& error) {
    throw DatabaseUnavailable("cannot connect to PostgreSQL at " + target.redactedUrl() + ": " +
                              oneLine(error.what()));
  } catch (const std::exception& error) {
    throw DatabaseUnavailable("cannot use database URL " + target.redactedUrl() + ": " +
                              oneLine(error.what()));
  }
}

Error toError(const std::exception& error) {
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) {
    return {Error::Code::Unavailable, "database connection lost: " + oneLine(error.what())};
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&error) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&error) != nullptr ||
      dynamic_cast<const pqxx::unique_violation*>(&error) != nullptr) {
    return {Error::Code::Conflict, oneLine(error.what())};
  }
  if (dynamic_cast<const pqxx::data_exception*>(&error) != nullptr ||
      dynamic_cast<const pqxx::integrity_constraint_violation*>(&error) != nullptr) {
    return {Error::Code::Invalid, oneLine(error.what())};
  }
  return {Error::Code::Internal, oneLine(error.what())};
}

TimePoint fromEpochMicros(long long micros) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros)));
}

long long toEpochMicros(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

std::string jsonText(const nlohmann::json& value) {
  const auto text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // Outside strings JSON has no backslash, and inside them every escape starts with one, so a
  // scan from escape to escape finds each \u0000 and nothing else.
  static constexpr std::string_view kNul = "\\u0000";
  if (text.find(kNul) == std::string::npos) return text;
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
    } else if (text.compare(i, kNul.size(), kNul) == 0) {
      out += "\\ufffd";
      i += kNul.size() - 1;
    } else {
      out.append(text, i, 2);
      ++i;
    }
  }
  return out;
}

}  // namespace syncpod::core::pg
