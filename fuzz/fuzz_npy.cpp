// libFuzzer target: .npy parsing from memory and .npz archives from a file.
#include "fuzz_input.hpp"
#include "rdm/error.hpp"
#include "rdm/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)rdm::io::parse_npy(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.npy").sum();
  } catch (const rdm::Error&) {
  }
  try {
    for (const auto& [k, t] : rdm::io::read_npz(rdm_fuzz::input_file(data, size))) (void)t.sum();
  } catch (const rdm::Error&) {
  }
  return 0;
}
