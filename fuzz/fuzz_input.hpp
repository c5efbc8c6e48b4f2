// Shared by the fuzz targets: the readers take paths, so each input goes to a temp file.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace rdm_fuzz {
inline std::string input_file(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/rdm_fuzz_input_" + std::to_string(::getpid()) + ".bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
}  // namespace rdm_fuzz
