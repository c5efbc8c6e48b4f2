// Format sniffing and dispatch to the tensor-file readers.
#include "rdm/io/tensor_file.hpp"

#include <cstring>
#include <fstream>

#include "rdm/error.hpp"
#include "rdm/io/safetensors.hpp"

namespace rdm::io {
namespace fs = std::filesystem;

const char* format_name(Format f) {
  switch (f) {
    case Format::Safetensors: return "safetensors";
    case Format::TorchZip: return "torch_zip";
    case Format::TorchScript: return "torchscript";
    case Format::Npy: return "npy";
    case Format::Npz: return "npz";
    default: return "unknown";
  }
}

Format sniff_format(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}'", path.string());
  unsigned char b[16] = {0};
  f.read(reinterpret_cast<char*>(b), sizeof b);
  const auto got = static_cast<std::size_t>(f.gcount());
  if (got >= 6 && std::memcmp(b, "\x93NUMPY", 6) == 0) return Format::Npy;
  if (got >= 4 && std::memcmp(b, "PK\x03\x04", 4) == 0) return Format::TorchZip;  // refined by readers
  if (got >= 9) {
    // safetensors: u64 header length, then '{'
    if (b[8] == '{') return Format::Safetensors;
  }
  return Format::Unknown;
}

TensorFile read_tensor_file(const fs::path& path) {
  switch (sniff_format(path)) {
    case Format::Safetensors: return read_safetensors(path);
    default: break;
  }
  fail("'{}': unrecognised tensor file format (expected safetensors, a PyTorch zip checkpoint, "
       "TorchScript, .npy or .npz)",
       path.string());
}

}  // namespace rdm::io
