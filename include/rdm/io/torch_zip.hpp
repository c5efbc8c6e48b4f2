// PyTorch zip checkpoints (torch.save since 1.6: Lightning .ckpt, plain state-dict .pt/.pth)
// and TorchScript archives (OpenAI CLIP .pt), read with our own ZIP (ZIP64) parser and a
// restricted unpickler that never executes anything (see rdm/io/pickle.hpp).
//
// Stored zip members are memory-mapped zero-copy: tensors alias the file mapping, so loading
// a multi-GB checkpoint never holds two copies. Deflated members are inflated with zlib.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rdm/io/tensor_file.hpp"

namespace rdm::io {

class MappedFile;

// A read-only ZIP archive (central directory, ZIP64, stored and deflated members).
class ZipArchive {
 public:
  struct Entry {
    std::string name;
    std::uint64_t data_offset = 0;        // of the member data in the file
    std::uint64_t compressed_size = 0;
    std::uint64_t uncompressed_size = 0;
    std::uint16_t method = 0;             // 0 stored, 8 deflated
    std::uint32_t crc32 = 0;
  };

  // Opens and validates the central directory. Throws rdm::Error naming the file.
  static ZipArchive open(const std::filesystem::path& path);
  // Same, over an existing mapping.
  static ZipArchive open(std::shared_ptr<const MappedFile> file);

  const std::filesystem::path& path() const;
  const std::vector<Entry>& entries() const { return entries_; }
  // nullptr when absent.
  const Entry* find(const std::string& name) const;
  // Contents of a member (inflated when deflated; CRC checked). `limit` bounds the inflated size.
  std::string read(const Entry& e, std::uint64_t limit = std::uint64_t(1) << 34) const;
  // Zero-copy pointer to a stored member's bytes (nullptr for a deflated member).
  const std::uint8_t* stored_data(const Entry& e) const;
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<Entry> entries_;
};

struct TorchZipOptions {
  // Dotted path of the state dict inside the pickled object ("" = auto: the top level when it
  // holds tensors, else "state_dict"); e.g. "state_dict" or "model.state".
  std::string state_dict_path;
};

// Reads a torch.save zip checkpoint or a TorchScript archive (format TorchZip or TorchScript).
// TorchScript archives yield their parameters and buffers by dotted module path.
// Scalar top-level entries (epoch, global_step, pytorch-lightning_version, ...) go to metadata.
TensorFile read_torch_zip(const std::filesystem::path& path, const TorchZipOptions& opts = {});

// True when the zip archive at `path` is a TorchScript archive (has constants.pkl or code/).
bool is_torchscript(const ZipArchive& zip);

}  // namespace rdm::io
