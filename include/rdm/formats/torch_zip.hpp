// PyTorch zip checkpoints (torch.save since 1.6: Lightning .ckpt, plain state-dict .pt/.pth)
// and TorchScript archives (OpenAI CLIP .pt), read with our own ZIP (ZIP64) reader and a
// restricted unpickler that never executes anything (rdm/io/pickle.hpp).
//
// Stored zip members are memory-mapped zero-copy: tensors alias the file mapping, so loading
// a multi-GB checkpoint never holds two copies. Deflated members are inflated with zlib.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "rdm/formats/tensor_file.hpp"
#include "rdm/formats/zip.hpp"

namespace rdm::formats {

struct TorchZipOptions {
  // Keys leading from the unpickled object to the state dict ({} = the object itself,
  // {"state_dict"} = a Lightning checkpoint). nullopt: automatic (the top level when it holds
  // tensors, else its "state_dict" member). Ignored for TorchScript archives.
  std::optional<std::vector<std::string>> state_dict_path;
};

// Reads a torch.save zip checkpoint (format TorchZip) or a TorchScript archive (format
// TorchScript: parameters and buffers by dotted module path). Scalar top-level entries
// (epoch, global_step, pytorch-lightning_version, ...) go to metadata. Throws rdm::Error
// naming the file.
TensorFile read_torch_zip(const std::filesystem::path& path, const TorchZipOptions& opts = {});

// The archive's top folder ("archive", or the file stem torch used), "" when records are at
// the root. Throws rdm::Error when there is no data.pkl.
std::string torch_zip_prefix(const ZipArchive& zip);

// True when the archive is a TorchScript archive (has constants.pkl or code/).
bool is_torchscript(const ZipArchive& zip);

}  // namespace rdm::formats
