// Internal: the steps of import_database (importer.cpp), exposed for unit tests.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "retrieval/store.hpp"

namespace rdm::retrieval::import_detail {

// 1. Folders expanded into their .npz files (or, without any, their .npy files), each list
//    sorted by name; files kept as given. rdm::Error for anything else.
std::vector<std::filesystem::path> expand_inputs(const std::vector<std::filesystem::path>& inputs);
// 2. An existing database in `out` must be an earlier import (import replaces it).
void check_output(const std::filesystem::path& out);

// One input file: its embeddings and one store item per row.
struct Part {
  torch::Tensor embeddings;      // [n, dim] as stored (float16/float32/...)
  std::vector<StoreItem> items;  // orig_id, patch_coords, final_id = first_id + row
  nlohmann::json info;           // manifest source.parts entry
};
// 3. Reads a .npz part (embedding, img_id, patch_coords) or a .npy matrix; rows get the ids
//    first_id, first_id + 1, ... `dim` (-1: any) is the width earlier parts had.
Part read_part(const std::filesystem::path& file, int64_t first_id, int64_t dim);

// Row r of a metadata array as compact JSON (a number or a list).
std::string row_json(const torch::Tensor& t, int64_t r);

// 4. A fresh item store in `out` (import is not incremental): the items and the metadata.
void write_store(const std::filesystem::path& out, const std::vector<StoreItem>& items,
                 const std::string& clip_identity, int64_t dim);

}  // namespace rdm::retrieval::import_detail
