#pragma once
// Private to host/core: hashes, HMAC and random secrets, on Poco's digest engines.

#include <string>
#include <string_view>

namespace syncpod::core::crypto {

/// Lower-case hex SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

/// Lower-case hex HMAC-SHA256 (RFC 2104) of `data` keyed with `key`.
std::string hmacSha256Hex(std::string_view key, std::string_view data);

/// Compares in a time that depends only on the lengths, so a guess learns nothing from how
/// long the comparison took.
bool constantTimeEqual(std::string_view a, std::string_view b);

/// `prefix` and 256 random bits from the kernel, base64url without padding (43 characters).
/// Throws std::runtime_error when the kernel gives no randomness.
std::string randomSecret(std::string_view prefix);

}  // namespace syncpod::core::crypto
