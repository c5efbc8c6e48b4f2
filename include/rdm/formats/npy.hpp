// numpy .npy (format 1.0/2.0/3.0) and .npz (zip of .npy members, stored or deflated) files.
// Port of the format of numpy/lib/format.py. Dtypes: <f2 <f4 <f8, |i1 <i2 <i4 <i8, |u1,
// <u2 <u4 <u8 (read as int32/int64/int64: LibTorch 1.13 has no wider unsigned types; values
// above the signed range are an error), |b1, <c8 <c16; big-endian variants are byte-swapped.
// C order only. Fortran order, object arrays, structured dtypes and truncated data give an
// rdm::Error naming the file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include <torch/types.h>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::formats {

// Reads a .npy file. The tensor aliases the file mapping when the data is aligned.
torch::Tensor read_npy(const std::filesystem::path& path);

// Parses .npy bytes in memory; `name` is used in error messages. Copies the data.
torch::Tensor parse_npy(std::string_view bytes, const std::string& name);

// Writes a tensor as .npy (format 1.0, C order, little endian), atomically.
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

// The .npy header (magic, version 1.0, dict, padding: the data starts at a multiple of 64) of
// a C-order array; npy_bytes(t) = npy_header(t's dtype, t's sizes) + t's bytes.
std::string npy_header(torch::ScalarType dtype, const std::vector<int64_t>& sizes);

// Serialises a tensor to .npy bytes.
std::string npy_bytes(const torch::Tensor& tensor);

// Reads every member "<name>.npy" of a .npz archive as name -> tensor.
std::map<std::string, torch::Tensor> read_npz(const std::filesystem::path& path);

// Writes a .npz archive (stored, or deflated like numpy.savez_compressed), atomically.
void write_npz(const std::filesystem::path& path, const std::map<std::string, torch::Tensor>& arrays,
               bool compressed = false);

// TensorFile views for read_tensor_file / rdm inspect (.npy: one tensor named after the stem).
TensorFile read_npy_file(const std::filesystem::path& path);
TensorFile read_npz_file(const std::filesystem::path& path);

}  // namespace rdm::formats
