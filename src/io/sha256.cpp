// SHA-256 through Nettle's sha2 interface.
#include "rdm/io/sha256.hpp"

#include <nettle/sha2.h>

namespace rdm::io {

struct Sha256::State {
  sha256_ctx ctx;
};

Sha256::Sha256() : state_(std::make_unique<State>()) { sha256_init(&state_->ctx); }
Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  sha256_update(&state_->ctx, size, static_cast<const uint8_t*>(data));
}

std::string Sha256::hex() {
  uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(&state_->ctx, SHA256_DIGEST_SIZE, digest);
  static const char* kHex = "0123456789abcdef";
  std::string out(2 * SHA256_DIGEST_SIZE, '0');
  for (size_t i = 0; i < SHA256_DIGEST_SIZE; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

}  // namespace rdm::io
