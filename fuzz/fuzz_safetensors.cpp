// libFuzzer target: safetensors reader. Only rdm::Error may escape the reader.
#include "fuzz_input.hpp"
#include "rdm/error.hpp"
#include "rdm/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto tf = rdm::io::read_safetensors(rdm_fuzz::input_file(data, size));
    for (const auto& [k, t] : tf.tensors) (void)t.sum();
  } catch (const rdm::Error&) {
  }
  return 0;
}
