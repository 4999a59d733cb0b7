// A thin libpq layer for the postgres connector: one connection, statements with text
// parameters, results, and errors that carry PostgreSQL's SQLSTATE. Messages never contain the
// URL's password.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace syncpod::plugins::postgres {

/// A statement failed. sqlstate is "" when there is none (the connection broke).
class SqlError : public std::runtime_error {
 public:
  SqlError(std::string sqlstate, const std::string& message, bool connection_lost)
      : std::runtime_error(message),
        sqlstate_(std::move(sqlstate)),
        connection_lost_(connection_lost) {}

  const std::string& sqlstate() const { return sqlstate_; }
  /// The connection is gone (so is any transaction on it).
  bool connectionLost() const { return connection_lost_; }
  /// The statement may succeed if tried again later: serialization failure, deadlock, lock or
  /// statement timeout, too many connections.
  bool transient() const;
  /// Nothing more can be done on this connection in this call.
  bool fatal() const;
  /// The class of SQLSTATE (its first two characters), e.g. "23".
  std::string_view sqlClass() const { return std::string_view(sqlstate_).substr(0, 2); }

 private:
  std::string sqlstate_;
  bool connection_lost_;
};

/// The rows of a statement, in text format.
class Rows {
 public:
  explicit Rows(pg_result* result);
  ~Rows();
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  int size() const;
  bool isNull(int row, int column) const;
  std::string text(int row, int column) const;
  bool flag(int row, int column) const { return text(row, column) == "t"; }
  /// Rows inserted, updated or deleted by the statement.
  long affected() const;

 private:
  pg_result* result_;
};

using Params = std::vector<std::optional<std::string>>;

/// One libpq connection, opened on first use and again after it broke. Not thread-safe.
class Connection {
 public:
  Connection(std::string url, int connect_timeout_s);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Connects unless connected. Throws PluginError: unauthorized when the server refuses the
  /// role or password, invalid when the database does not exist, retryable otherwise.
  void open();
  void close();

  /// Runs one statement with text parameters; throws SqlError.
  Rows exec(const std::string& sql, const Params& params = {});

  /// `identifier` quoted for SQL ("my ""table"""), by libpq for the connection's encoding.
  std::string quote(std::string_view identifier) const;

  /// Whether a transaction is open (or failed and not yet rolled back).
  bool inTransaction() const;
  /// Whether the open transaction failed (only ROLLBACK is accepted now).
  bool failedTransaction() const;

  const std::string& redactedUrl() const { return redacted_url_; }
  /// The password texts of the URL, to scrub from any message.
  const std::vector<std::string>& secrets() const { return secrets_; }

 private:
  std::string url_;
  std::string redacted_url_;
  std::vector<std::string> secrets_;
  int connect_timeout_s_;
  pg_conn* connection_ = nullptr;
};

/// RAII transaction: BEGIN now, ROLLBACK unless commit() or rollback() ran first.
class Transaction {
 public:
  explicit Transaction(Connection& connection);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();
  void rollback();

 private:
  Connection& connection_;
  bool open_ = true;
};

}  // namespace syncpod::plugins::postgres
