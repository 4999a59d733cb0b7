#include "syncpod/core/webhooks.hpp"

#include <set>

#include <gtest/gtest.h>

namespace syncpod::core {
namespace {

const std::string kSecret = "whsec_test_secret_0123456789";
const std::string kTimestamp = "1700000000";
const std::string kBody = R"({"keys":["17"]})";
// printf '%s' '1700000000.{"keys":["17"]}' | openssl dgst -sha256 -hmac
// whsec_test_secret_0123456789
const std::string kSignature = "544b1b78cfba194755a25d0442be586d8575d03fe4001a25edab67174d0aac63";

TEST(WebhookSignature, IsTheHmacSha256OfTimestampDotBody) {
  EXPECT_EQ(webhookSignature(kSecret, kTimestamp, kBody), kSignature);
  // RFC 4231, test case 7: a key longer than the block, data with the '.' in its middle.
  EXPECT_EQ(
      webhookSignature(
          std::string(131, '\xaa'),
          "This is a test using a larger than block-size key and a larger than block-size data",
          " The key needs to be hashed before being used by the HMAC algorithm."),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(WebhookSignature, MatchesAnyV1EntryByAnySecret) {
  const std::vector<std::string> secrets = {"another-secret-0123456789", kSecret};
  EXPECT_TRUE(webhookSignatureMatches("v1=" + kSignature, kTimestamp, kBody, secrets));
  // Upper-case hex, spaces, other schemes and a second v1 entry.
  std::string upper = kSignature;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(webhookSignatureMatches(" v0=abc , v1=" + upper, kTimestamp, kBody, secrets));
  EXPECT_TRUE(webhookSignatureMatches("v1=" + std::string(64, '0') + ",v1=" + kSignature,
                                      kTimestamp, kBody, secrets));
}

TEST(WebhookSignature, RefusesEverythingElse) {
  const std::vector<std::string> secrets = {kSecret};
  EXPECT_FALSE(webhookSignatureMatches(kSignature, kTimestamp, kBody, secrets)) << "no scheme";
  EXPECT_FALSE(webhookSignatureMatches("v2=" + kSignature, kTimestamp, kBody, secrets));
  EXPECT_FALSE(
      webhookSignatureMatches("v1=" + kSignature.substr(0, 63), kTimestamp, kBody, secrets));
  EXPECT_FALSE(webhookSignatureMatches("v1=" + kSignature, "1700000001", kBody, secrets));
  EXPECT_FALSE(webhookSignatureMatches("v1=" + kSignature, kTimestamp, kBody + " ", secrets));
  EXPECT_FALSE(webhookSignatureMatches("v1=" + kSignature, kTimestamp, kBody,
                                       {"whsec_other_secret_0123456789"}));
  EXPECT_FALSE(webhookSignatureMatches("v1=" + kSignature, kTimestamp, kBody, {}));
  EXPECT_FALSE(webhookSignatureMatches("", kTimestamp, kBody, secrets));
  EXPECT_FALSE(webhookSignatureMatches("v1=", kTimestamp, kBody, secrets));
}

TEST(WebhookContentDigest, IsTheSha256OfTimestampDotBody) {
  EXPECT_EQ(webhookContentDigest(kTimestamp, kBody),
            "83c7af98cb638cc90e55f2b0dffdc38c42984d4b72744dff7105fa27bbdf0a58");
}

TEST(WebhookSecret, NewSecretsAreRandomAndValid) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const auto secret = newWebhookSecret();
    EXPECT_EQ(secret.rfind("whsec_", 0), 0U) << secret;
    EXPECT_EQ(secret.size(), 6U + 43U) << secret;
    EXPECT_TRUE(validWebhookSecret(secret)) << secret;
    seen.insert(secret);
  }
  EXPECT_EQ(seen.size(), 20U);
}

TEST(WebhookSecret, ChosenSecretsNeedSixteenPrintableCharacters) {
  EXPECT_TRUE(validWebhookSecret("0123456789abcdef"));
  EXPECT_TRUE(validWebhookSecret(std::string(256, 'x')));
  EXPECT_FALSE(validWebhookSecret("0123456789abcde"));
  EXPECT_FALSE(validWebhookSecret(std::string(257, 'x')));
  EXPECT_FALSE(validWebhookSecret("0123456789 abcdef"));
  EXPECT_FALSE(validWebhookSecret("0123456789abcdef\n"));
  EXPECT_FALSE(validWebhookSecret("0123456789abcdéf"));
}

}  // namespace
}  // namespace syncpod::core
