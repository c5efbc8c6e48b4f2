// safetensors reader (memory-mapped, zero-copy when aligned) and writer.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets:[begin,end]}, "__metadata__": {str: str}}, then the data buffer.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::formats {

// Reads and validates every header field: length bounds, JSON, dtypes, offsets inside the
// file, no overlap, size == numel * itemsize. Tensors alias the mapping (kept alive by them).
TensorFile read_safetensors(const std::filesystem::path& path);

// Writes atomically (temp file + rename). Tensors are written contiguous, on the CPU.
void write_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// "F32" <-> torch dtype.
torch::Dtype safetensors_dtype(const std::string& code);
std::string safetensors_dtype_code(torch::Dtype dtype);

}  // namespace rdm::formats
