// SHA-256 (FIPS 180-4) of file contents: the content hash of database items.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace rdm::retrieval {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex();  // finishes; lower-case hex digest

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

inline std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

}  // namespace rdm::retrieval
