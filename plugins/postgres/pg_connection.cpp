#include "pg_connection.hpp"

#include <cstdlib>

#include <libpq-fe.h>
#include <syncpod/sdk/model.hpp>

#include "pg_text.hpp"

namespace syncpod::plugins::postgres {
namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

void ignoreNotice(void*, const char*) {}

}  // namespace

bool SqlError::transient() const {
  return sqlstate_ == "40001" || sqlstate_ == "40P01" || sqlstate_ == "55P03" ||
         sqlstate_ == "57014" || sqlClass() == "53";
}

bool SqlError::fatal() const {
  return connection_lost_ || sqlstate_.empty() || sqlClass() == "08" || sqlstate_ == "57P01" ||
         sqlstate_ == "57P02" || sqlstate_ == "57P03" || sqlstate_ == "25P02";
}

Rows::Rows(pg_result* result) : result_(result) {}
Rows::~Rows() {
  PQclear(result_);
}
Rows::Rows(Rows&& other) noexcept : result_(other.result_) {
  other.result_ = nullptr;
}
Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int Rows::size() const {
  return PQntuples(result_);
}
bool Rows::isNull(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}
std::string Rows::text(int row, int column) const {
  return {PQgetvalue(result_, row, column),
          static_cast<std::size_t>(PQgetlength(result_, row, column))};
}
long Rows::affected() const {
  const char* count = PQcmdTuples(result_);
  return count == nullptr || *count == '\0' ? 0 : std::strtol(count, nullptr, 10);
}

Connection::Connection(std::string url, int connect_timeout_s)
    : url_(std::move(url)),
      redacted_url_(redactUrl(url_)),
      secrets_(urlSecrets(url_)),
      connect_timeout_s_(connect_timeout_s) {
  // Parse now, so a malformed URL is a config error at open rather than a failed job later.
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url_.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? oneLine(error) : "out of memory";
    PQfreemem(error);
    throw invalid("url " + redacted_url_ +
                  " is not a valid PostgreSQL URL: " + scrub(message, secrets_));
  }
  PQconninfoFree(options);
}

Connection::~Connection() {
  close();
}

void Connection::close() {
  if (connection_ != nullptr) PQfinish(connection_);
  connection_ = nullptr;
}

void Connection::open() {
  if (connection_ != nullptr && PQstatus(connection_) == CONNECTION_OK) return;
  close();
  // Later entries override what the URL (expanded from dbname) says, earlier ones give way to it.
  // TCP keepalives and a user timeout by default: a connection that waits idle through a long
  // fetch of the other side must notice a server gone silent (a failover, a NAT that forgot
  // it) in about a minute, not after the kernel's fifteen.
  const std::string timeout = std::to_string(connect_timeout_s_);
  const char* keywords[] = {"application_name", "keepalives",      "keepalives_idle",
                            "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                            "dbname",             "connect_timeout", "client_encoding",
                            nullptr};
  const char* values[] = {"syncpod-postgres", "1",          "30",   "10",   "3", "60000",
                          url_.c_str(),       timeout.c_str(), "UTF8", nullptr};
  connection_ = PQconnectdbParams(keywords, values, 1);
  if (connection_ == nullptr)
    throw retryable("cannot connect to " + redacted_url_ + ": out of memory");
  if (PQstatus(connection_) != CONNECTION_OK) {
    const std::string reason = scrub(oneLine(PQerrorMessage(connection_)), secrets_);
    close();
    const std::string message = "cannot connect to " + redacted_url_ + ": " + reason;
    // libpq reports refused logins only as text; these are the server's (and libpq's) words.
    if (contains(reason, "password authentication failed") ||
        contains(reason, "no pg_hba.conf entry") || contains(reason, "authentication failed") ||
        contains(reason, "password is required") ||
        (contains(reason, "role \"") && contains(reason, "does not exist")) ||
        contains(reason, "permission denied")) {
      throw unauthorized(message);
    }
    if (contains(reason, "database \"") && contains(reason, "does not exist"))
      throw invalid(message);
    throw retryable(message);
  }
  PQsetNoticeProcessor(connection_, &ignoreNotice, nullptr);
  // Fixed session settings make the text of timestamps and floats the same for every server
  // configuration: records compare equal across runs and cursors parse back exactly.
  try {
    exec("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3");
  } catch (const SqlError& error) {
    close();
    throw retryable("cannot set up the session on " + redacted_url_ + ": " + error.what());
  }
}

Rows Connection::exec(const std::string& sql, const Params& params) {
  if (connection_ == nullptr) throw SqlError("", "not connected", true);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
  PGresult* result = params.empty()
                         ? PQexec(connection_, sql.c_str())
                         : PQexecParams(connection_, sql.c_str(), static_cast<int>(values.size()),
                                        nullptr, values.data(), nullptr, nullptr, 0);
  Rows rows(result);
  const auto status = PQresultStatus(result);
  if (result != nullptr && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)) return rows;

  const bool lost = PQstatus(connection_) != CONNECTION_OK;
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* detail =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  std::string message = primary != nullptr ? primary : oneLine(PQerrorMessage(connection_));
  // Unique and foreign key violations name the offending key only in the detail.
  if (detail != nullptr && (sqlstate == "23505" || sqlstate == "23503"))
    message += " (" + std::string(detail) + ")";
  if (message.empty())
    message = lost ? "the connection to the server was lost" : "the statement failed";
  if (!sqlstate.empty()) message += " [SQLSTATE " + sqlstate + "]";
  if (lost) close();  // the next call connects again
  throw SqlError(std::move(sqlstate), scrub(oneLine(message), secrets_), lost);
}

std::string Connection::quote(std::string_view identifier) const {
  char* quoted = PQescapeIdentifier(connection_, identifier.data(), identifier.size());
  if (quoted == nullptr) {
    throw invalid("\"" + std::string(identifier) + "\" cannot be used as an SQL identifier: " +
                  oneLine(PQerrorMessage(connection_)));
  }
  std::string text(quoted);
  PQfreemem(quoted);
  return text;
}

bool Connection::inTransaction() const {
  if (connection_ == nullptr) return false;
  const auto status = PQtransactionStatus(connection_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

bool Connection::failedTransaction() const {
  return connection_ != nullptr && PQtransactionStatus(connection_) == PQTRANS_INERROR;
}

Transaction::Transaction(Connection& connection) : connection_(connection) {
  // A call that failed midway may have left its transaction behind.
  if (connection_.inTransaction()) connection_.exec("ROLLBACK");
  connection_.exec("BEGIN");
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    rollback();
  } catch (const SqlError&) {
    // The connection broke; the server ends the transaction itself.
  }
}

void Transaction::commit() {
  // COMMIT of a failed transaction rolls back without an error; say so instead.
  if (connection_.failedTransaction()) {
    rollback();
    throw SqlError("25P02", "the transaction failed before COMMIT and was rolled back", false);
  }
  open_ = false;
  connection_.exec("COMMIT");
}

void Transaction::rollback() {
  open_ = false;
  connection_.exec("ROLLBACK");
}

}  // namespace syncpod::plugins::postgres
