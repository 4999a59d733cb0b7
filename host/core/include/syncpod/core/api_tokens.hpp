#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syncpod/core/database.hpp"
#include "syncpod/core/job.hpp"
#include "syncpod/core/result.hpp"

namespace syncpod::core {

/// What a REST API token may do. Each scope includes the ones before it.
enum class TokenScope {
  Read = 1,  ///< GET everything
  Write,     ///< also create, change and delete integrations, start syncs, cancel jobs
  Admin,     ///< also everything about tokens and workers
};

std::string_view toString(TokenScope scope);
std::optional<TokenScope> parseTokenScope(std::string_view text);

/// A token as listed: never the token itself.
struct ApiToken {
  std::int64_t id = 0;
  std::string name;
  TokenScope scope = TokenScope::Read;
  std::string prefix;  ///< the token's first characters, e.g. "sp_3kF9"
  TimePoint created_at;
  std::optional<TimePoint> last_used_at;
  std::optional<TimePoint> revoked_at;
};

/// A token just created: `secret` is the bearer token, shown this once.
struct CreatedToken {
  ApiToken token;
  std::string secret;
};

/// The api_tokens table. One instance owns one connection; not thread-safe.
class TokenStore {
 public:
  /// Connects at once; throws DatabaseUnavailable.
  explicit TokenStore(DatabaseTarget target);
  ~TokenStore();
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  /// A new token of 256 random bits ("sp_" + 43 base64url characters). The name must be
  /// 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit, and unused.
  Result<CreatedToken> create(const std::string& name, TokenScope scope);
  /// Every token, revoked ones included, oldest first.
  Result<std::vector<ApiToken>> list();
  /// Revokes the named token. Invalid error when there is no such token; revoking twice is fine.
  Result<ApiToken> revoke(const std::string& name);
  /// The live token `secret` is, if any, and records its use (at most once a minute).
  Result<std::optional<ApiToken>> verify(std::string_view secret);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncpod::core
