#include "syncpod/core/webhooks.hpp"

#include <cctype>

#include "crypto.hpp"

namespace syncpod::core {
namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr std::size_t kMinSecret = 16;
constexpr std::size_t kMaxSecret = 256;

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string lowered(std::string_view text) {
  std::string lower(text);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

}  // namespace

std::string webhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body) {
  std::string signed_content;
  signed_content.reserve(timestamp.size() + 1 + body.size());
  signed_content.append(timestamp).append(".").append(body);
  return crypto::hmacSha256Hex(secret, signed_content);
}

bool webhookSignatureMatches(std::string_view header, std::string_view timestamp,
                             std::string_view body, const std::vector<std::string>& secrets) {
  std::vector<std::string> expected;
  expected.reserve(secrets.size());
  for (const auto& secret : secrets) expected.push_back(webhookSignature(secret, timestamp, body));
  bool matched = false;
  // At most a few entries are looked at: a header of thousands would cost an HMAC compare each.
  int entries = 0;
  while (!header.empty() && entries < 8) {
    const auto comma = header.find(',');
    const auto entry = trimmed(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    ++entries;
    const auto equals = entry.find('=');
    if (equals == std::string_view::npos || trimmed(entry.substr(0, equals)) != "v1") continue;
    const auto given = lowered(trimmed(entry.substr(equals + 1)));
    // No early return: every entry is compared with every secret.
    for (const auto& signature : expected) matched |= crypto::constantTimeEqual(given, signature);
  }
  return matched;
}

std::string webhookContentDigest(std::string_view timestamp, std::string_view body) {
  std::string signed_content;
  signed_content.reserve(timestamp.size() + 1 + body.size());
  signed_content.append(timestamp).append(".").append(body);
  return crypto::sha256Hex(signed_content);
}

std::string newWebhookSecret() {
  return crypto::randomSecret(kSecretPrefix);
}

bool validWebhookSecret(std::string_view secret) {
  if (secret.size() < kMinSecret || secret.size() > kMaxSecret) return false;
  for (const char c : secret) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace syncpod::core
