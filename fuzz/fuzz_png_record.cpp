// libFuzzer target: see fuzz_entries.hpp (rdm_fuzz::png_record).
#include "fuzz_entries.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rdm_fuzz::png_record(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
