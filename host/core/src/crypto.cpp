#include "crypto.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <Poco/DigestEngine.h>
#include <Poco/HMACEngine.h>
#include <Poco/SHA2Engine.h>
#include <sys/random.h>

namespace syncpod::core::crypto {
namespace {

/// SHA-256 with the block and digest sizes Poco::HMACEngine asks of its engine (this Poco's
/// SHA2Engine does not declare them).
class Sha256Engine : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine() : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256) {}
};

std::string base64url(const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string text;
  unsigned bits = 0;
  int count = 0;
  for (std::size_t i = 0; i < size; ++i) {
    bits = (bits << 8) | data[i];
    count += 8;
    while (count >= 6) {
      count -= 6;
      text.push_back(kAlphabet[(bits >> count) & 0x3f]);
    }
  }
  if (count > 0) text.push_back(kAlphabet[(bits << (6 - count)) & 0x3f]);
  return text;
}

}  // namespace

std::string sha256Hex(std::string_view data) {
  Sha256Engine engine;
  engine.update(data.data(), data.size());
  return Poco::DigestEngine::digestToHex(engine.digest());
}

std::string hmacSha256Hex(std::string_view key, std::string_view data) {
  Poco::HMACEngine<Sha256Engine> engine(key.data(), key.size());
  engine.update(data.data(), data.size());
  return Poco::DigestEngine::digestToHex(engine.digest());
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

std::string randomSecret(std::string_view prefix) {
  std::array<unsigned char, 32> random{};
  std::size_t filled = 0;
  while (filled < random.size()) {
    const auto count = ::getrandom(random.data() + filled, random.size() - filled, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    filled += static_cast<std::size_t>(count);
  }
  return std::string(prefix) + base64url(random.data(), random.size());
}

}  // namespace syncpod::core::crypto
