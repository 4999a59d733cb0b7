#include "syncpod/core/api_tokens.hpp"

#include <array>
#include <regex>

#include "crypto.hpp"
#include "pg.hpp"

namespace syncpod::core {
namespace {

constexpr std::array<std::pair<TokenScope, std::string_view>, 3> kScopes{{
    {TokenScope::Read, "read"},
    {TokenScope::Write, "write"},
    {TokenScope::Admin, "admin"},
}};

constexpr std::string_view kTokenPrefix = "sp_";
constexpr std::size_t kShownPrefix = 7;  // "sp_" and four characters

const std::string kColumns = "id, name, scope, prefix, " + pg::epochMicros("created_at") + ", " +
                             pg::epochMicros("last_used_at") + ", " + pg::epochMicros("revoked_at");

ApiToken tokenOf(const pqxx::row& row) {
  ApiToken token;
  token.id = row[0].as<std::int64_t>();
  token.name = row[1].as<std::string>();
  token.scope = parseTokenScope(row[2].as<std::string>()).value_or(TokenScope::Read);
  token.prefix = row[3].as<std::string>();
  token.created_at = pg::fromEpochMicros(row[4].as<long long>());
  if (!row[5].is_null()) token.last_used_at = pg::fromEpochMicros(row[5].as<long long>());
  if (!row[6].is_null()) token.revoked_at = pg::fromEpochMicros(row[6].as<long long>());
  return token;
}

Error invalid(std::string message) { return {Error::Code::Invalid, std::move(message)}; }

}  // namespace

std::string_view toString(TokenScope scope) {
  for (const auto& [value, name] : kScopes) {
    if (value == scope) return name;
  }
  return "read";
}

std::optional<TokenScope> parseTokenScope(std::string_view text) {
  for (const auto& [value, name] : kScopes) {
    if (name == text) return value;
  }
  return std::nullopt;
}

class TokenStore::Impl : public pg::Session {
 public:
  using Session::Session;
};

TokenStore::TokenStore(DatabaseTarget target) : impl_(std::make_unique<Impl>(target)) {}
TokenStore::~TokenStore() = default;

Result<CreatedToken> TokenStore::create(const std::string& name, TokenScope scope) {
  static const std::regex kName("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");
  if (!std::regex_match(name, kName)) {
    return invalid("invalid token name '" + name +
                   "': use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  const auto secret = crypto::randomSecret(kTokenPrefix);
  auto created = impl_->run([&](pqxx::work& tx) -> std::optional<ApiToken> {
    const auto rows = tx.exec_params(
        "INSERT INTO api_tokens (name, scope, token_sha256, prefix) VALUES ($1, $2, decode($3, "
        "'hex'), $4) ON CONFLICT (name) DO NOTHING RETURNING " + kColumns,
        name, std::string(toString(scope)), crypto::sha256Hex(secret), secret.substr(0, kShownPrefix));
    if (rows.empty()) return std::nullopt;
    return tokenOf(rows[0]);
  });
  if (!created) return created.error();
  if (!*created) return invalid("a token named '" + name + "' exists already");
  return CreatedToken{std::move(**created), secret};
}

Result<std::vector<ApiToken>> TokenStore::list() {
  return impl_->run([&](pqxx::work& tx) {
    std::vector<ApiToken> tokens;
    for (const auto& row : tx.exec("SELECT " + kColumns + " FROM api_tokens ORDER BY id")) {
      tokens.push_back(tokenOf(row));
    }
    return tokens;
  });
}

Result<ApiToken> TokenStore::revoke(const std::string& name) {
  auto revoked = impl_->run([&](pqxx::work& tx) -> std::optional<ApiToken> {
    const auto rows = tx.exec_params(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1 "
        "RETURNING " + kColumns,
        name);
    if (rows.empty()) return std::nullopt;
    return tokenOf(rows[0]);
  });
  if (!revoked) return revoked.error();
  if (!*revoked) return invalid("no token named '" + name + "'");
  return std::move(**revoked);
}

Result<std::optional<ApiToken>> TokenStore::verify(std::string_view secret) {
  if (secret.substr(0, kTokenPrefix.size()) != kTokenPrefix) return std::optional<ApiToken>{};
  const auto hash = crypto::sha256Hex(secret);
  return impl_->run([&](pqxx::work& tx) -> std::optional<ApiToken> {
    // The lookup is by hash: the comparison never touches the token, so its timing says
    // nothing about how much of a guess was right.
    // Writes only when the recorded use is a minute old: most requests only read.
    const auto rows = tx.exec_params(
        "WITH live AS (SELECT * FROM api_tokens WHERE token_sha256 = decode($1, 'hex') AND "
        "revoked_at IS NULL), used AS (UPDATE api_tokens t SET last_used_at = now() FROM live "
        "WHERE t.id = live.id AND (live.last_used_at IS NULL OR live.last_used_at < now() - "
        "interval '1 minute') RETURNING t.*) SELECT " + kColumns + " FROM (SELECT * FROM used "
        "UNION ALL SELECT * FROM live WHERE id NOT IN (SELECT id FROM used)) token",
        hash);
    if (rows.empty()) return std::nullopt;
    return tokenOf(rows[0]);
  });
}

}  // namespace syncpod::core
