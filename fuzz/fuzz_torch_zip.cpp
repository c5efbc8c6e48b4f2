// libFuzzer target: zip reader + torch zip checkpoint / TorchScript reader.
#include "fuzz_input.hpp"
#include "rdm/error.hpp"
#include "rdm/io/torch_zip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto tf = rdm::io::read_torch_zip(rdm_fuzz::input_file(data, size));
    for (const auto& [k, t] : tf.tensors) (void)t.sum();
  } catch (const rdm::Error&) {
  }
  return 0;
}
