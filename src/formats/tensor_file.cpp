// Format sniffing (from the bytes, never the file name) and dispatch to the readers.
#include "rdm/formats/tensor_file.hpp"

#include <cstring>
#include <fstream>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/torch_zip.hpp"

namespace rdm::formats {
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

namespace {
// torch.save's legacy (pre-1.6) format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
const unsigned char kLegacyTorch[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8};

Format sniff_zip(const fs::path& path) {
  ZipArchive zip = ZipArchive::open(path);
  bool all_npy = true;
  for (const auto& e : zip.entries()) {
    if (!e.name.empty() && e.name.back() == '/') continue;
    if (e.name.size() < 4 || e.name.compare(e.name.size() - 4, 4, ".npy") != 0) all_npy = false;
  }
  if (all_npy) return Format::Npz;
  for (const auto& e : zip.entries())
    if (e.name == "data.pkl" || (e.name.size() > 9 && e.name.compare(e.name.size() - 9, 9, "/data.pkl") == 0 &&
                                 e.name.find('/') == e.name.size() - 9))
      return is_torchscript(zip) ? Format::TorchScript : Format::TorchZip;
  return Format::Unknown;
}
}  // namespace

Format sniff_format(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail("'{}' is a directory, not a tensor file", path.string());
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  unsigned char b[16] = {0};
  f.read(reinterpret_cast<char*>(b), sizeof b);
  const auto got = static_cast<std::size_t>(f.gcount());
  if (got >= 6 && std::memcmp(b, "\x93NUMPY", 6) == 0) return Format::Npy;
  if (got >= 4 && (std::memcmp(b, "PK\x03\x04", 4) == 0 || std::memcmp(b, "PK\x05\x06", 4) == 0))
    return sniff_zip(path);
  if (got >= sizeof kLegacyTorch && std::memcmp(b, kLegacyTorch, sizeof kLegacyTorch) == 0)
    fail("'{}' uses the legacy (pre-1.6) torch.save format, which is not supported: re-save it with "
         "torch.save(obj, path) from torch >= 1.6",
         path.string());
  if (got >= 9 && b[8] == '{') return Format::Safetensors;  // u64 header length, then JSON
  return Format::Unknown;
}

TensorFile read_tensor_file(const fs::path& path) { return read_tensor_file(path, TorchZipOptions{}); }

TensorFile read_tensor_file(const fs::path& path, const TorchZipOptions& opts) {
  switch (sniff_format(path)) {
    case Format::Safetensors: return read_safetensors(path);
    case Format::TorchZip:
    case Format::TorchScript: return read_torch_zip(path, opts);
    case Format::Npy: return read_npy_file(path);
    case Format::Npz: return read_npz_file(path);
    default: break;
  }
  fail("'{}': unrecognised tensor file format (expected safetensors, a PyTorch zip checkpoint, "
       "TorchScript, .npy or .npz)",
       path.string());
}

}  // namespace rdm::formats
