// numpy .npy (format 1.0/2.0/3.0) and .npz (zip of .npy, stored or deflated) files.
// Supported dtypes: <f2 <f4 <f8, |u1 |i1 <i2 <i4 <i8, |b1 (and <u2/<u4/<u8 read as the
// signed type of the same width when the values fit); C order only. Fortran order, object
// arrays, structured dtypes and big-endian data give an rdm::Error naming the file.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <torch/types.h>

namespace rdm::io {

// Reads a .npy file. The tensor aliases the file mapping when the data is aligned.
torch::Tensor read_npy(const std::filesystem::path& path);

// Parses .npy bytes in memory; `name` is used in error messages. Copies the data.
torch::Tensor parse_npy(std::string_view bytes, const std::string& name);

// Writes a tensor as .npy (format 1.0, C order, little endian), atomically.
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

// Serialises a tensor to .npy bytes.
std::string npy_bytes(const torch::Tensor& tensor);

// Reads every member "<name>.npy" of a .npz archive as name -> tensor.
std::map<std::string, torch::Tensor> read_npz(const std::filesystem::path& path);

}  // namespace rdm::io
