// Common types of the tensor-file readers (safetensors, torch zip, TorchScript, npy/npz).
// Each reader is a small leaf returning a name -> tensor map plus metadata; the format is
// sniffed from the bytes, never from the file name.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace rdm::formats {

struct TorchZipOptions;  // rdm/io/torch_zip.hpp

enum class Format { Safetensors, TorchZip, TorchScript, Npy, Npz, Unknown };
const char* format_name(Format f);

// name -> tensor, sorted by name. Tensors may alias a memory map of the file (zero copy).
using StateDict = std::map<std::string, torch::Tensor>;

struct TensorFile {
  std::filesystem::path path;
  Format format = Format::Unknown;
  StateDict tensors;
  std::vector<std::string> order;               // names in file order
  std::map<std::string, std::string> metadata;  // safetensors __metadata__, ckpt scalars, ...
};

// Sniffs the format from the first bytes of the file.
Format sniff_format(const std::filesystem::path& path);

// Reads any supported tensor file. Throws rdm::Error naming the file on any problem.
TensorFile read_tensor_file(const std::filesystem::path& path);
// Same, with options for torch zip checkpoints (where the state dict lies in the pickle).
TensorFile read_tensor_file(const std::filesystem::path& path, const TorchZipOptions& opts);

}  // namespace rdm::formats
