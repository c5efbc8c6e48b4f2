// SHA-256 (FIPS 180-4) through Nettle (Debian's nettle-dev): the one place rdm hashes bytes
// (database item and embedding hashes, model fingerprints, sweep job ids).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace rdm::io {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex();  // finishes; lower-case hex digest

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(std::string_view bytes);

}  // namespace rdm::io
