// numpy string arrays (|S<n> bytes, <U<n> unicode) as numpy writes them for ids, e.g. the
// `img_id` of the CompVis retrieval databases (np.savez_compressed). See npy.hpp for the rest.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

namespace rdm::formats {

// A .npz whose members may include string arrays (|S<n> bytes, <U<n> unicode), as numpy
// writes for ids: numeric members as tensors, string members as UTF-8 strings in C order
// (trailing NULs stripped) with their shape.
struct NpzArrays {
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, std::vector<std::string>> strings;
  std::map<std::string, std::vector<int64_t>> string_shapes;
};
NpzArrays read_npz_arrays(const std::filesystem::path& path);
// Parses a string .npy from memory (any other dtype is an error).
std::vector<std::string> parse_npy_strings(std::string_view bytes, const std::string& name,
                                           std::vector<int64_t>* shape = nullptr);

}  // namespace rdm::formats
