#pragma once
// Private to host/core: the only header that includes libpqxx.

#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>
#include <pqxx/pqxx>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core::pg {

/// Opens a connection whose search_path is the installation schema (quoted), so SQL names
/// are unqualified. Throws DatabaseUnavailable with a one-line message.
std::unique_ptr<pqxx::connection> connect(const DatabaseTarget& target);

/// `url` (a URI or key=value connection string) as a key=value connection string, with
/// limits added where it sets none: connect_timeout 10 s, TCP keepalives after 30 s idle (every
/// 10 s, 3 probes) and tcp_user_timeout 60 s. Without them libpq waits for ever on a connect,
/// and for about 15 minutes on a server whose address went silent (a failover): a worker could
/// not stop its jobs, nor a leader notice it lost its lease. A limit the environment sets
/// (PGCONNECT_TIMEOUT) stays the environment's, and a URL that names a connection service
/// gets none: the service file's entries would otherwise be overridden. Throws
/// DatabaseUnavailable when libpq cannot read `url`; the message does not quote it.
std::string withConnectionLimits(const std::string& url);

/// Collapses libpq's multi-line messages into one line without trailing punctuation noise.
std::string oneLine(std::string_view message);

/// Maps an exception from libpqxx to an Error value (broken connection → Unavailable).
Error toError(const std::exception& error);

/// Runs `body` (given the transaction) in one transaction on `connection` and commits;
/// failures come back as Error values (toError).
template <class Body>
auto inTransaction(pqxx::connection& connection, Body&& body)
    -> Result<decltype(body(std::declval<pqxx::work&>()))> {
  try {
    pqxx::work tx(connection);
    auto value = body(tx);
    tx.commit();
    return value;
  } catch (const std::exception& error) {
    return toError(error);
  }
}

/// One connection that runs each call of run() in a transaction of its own: the whole state
/// of a small store class.
class Session {
 public:
  explicit Session(const DatabaseTarget& target) : connection_(connect(target)) {}
  template <class Body>
  auto run(Body&& body) {
    return inTransaction(*connection_, std::forward<Body>(body));
  }

 private:
  std::unique_ptr<pqxx::connection> connection_;
};

/// `value` as the text of a json or jsonb parameter. Plugins hand over text that PostgreSQL
/// cannot store: bytes that are not UTF-8, and the NUL character, which jsonb refuses
/// (unsupported Unicode escape) and text cannot hold. Both become U+FFFD, so that one such
/// byte does not fail the statement, and with it every job or event in it, again and again.
std::string jsonText(const nlohmann::json& value);

/// Timestamps cross as microseconds since the Unix epoch (SQL: see kEpochMicros).
TimePoint fromEpochMicros(long long micros);
long long toEpochMicros(TimePoint time);

/// SQL expression turning a timestamptz column into epoch microseconds.
inline std::string epochMicros(const std::string& column) {
  return "(extract(epoch FROM " + column + ") * 1000000)::bigint";
}

}  // namespace syncpod::core::pg
