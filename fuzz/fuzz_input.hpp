// Shared by the fuzz targets: the readers take paths, so each input goes to a temp file (in
// std::filesystem::temp_directory_path(), i.e. $TMPDIR or /tmp), removed when the process exits
// normally.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace rdm_fuzz {
struct InputFile {
  std::string path;
  InputFile()
      : path((std::filesystem::temp_directory_path() / ("rdm_fuzz_input_" + std::to_string(::getpid()) + ".bin"))
                 .string()) {}
  ~InputFile() { std::remove(path.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
};

inline std::string input_file(const std::uint8_t* data, std::size_t size) {
  static const InputFile file;
  FILE* f = std::fopen(file.path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return file.path;
}
}  // namespace rdm_fuzz
