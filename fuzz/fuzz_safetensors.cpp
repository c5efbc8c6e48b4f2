// libFuzzer target: see rdm_fuzz::safetensors in fuzz_entries_io.hpp (shared with the corpus replay test).
#include "fuzz_entries_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rdm_fuzz::safetensors(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
