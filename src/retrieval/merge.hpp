// Internal: the steps of merge_databases (merge.cpp), exposed for unit tests.
#pragma once
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "retrieval/index.hpp"
#include "retrieval/rows.hpp"
#include "retrieval/store.hpp"

namespace rdm::retrieval::merge_detail {

using PathPairs = std::vector<std::pair<std::string, std::string>>;

// An item of a shard: its store row (final_id = its row in the shard's embeddings).
struct ShardItem {
  StoreItem item;
  size_t shard = 0;
};

// Everything read from the shard databases.
struct Shards {
  Manifest first;                          // the first shard's manifest (settings of the merge)
  std::vector<ShardItem> items;            // items of the finished shards, in shard order
  // Per shard: its stored embeddings, memory-mapped (rows read as float32, L2-normalised as
  // the index was built from them), not loaded.
  std::vector<std::shared_ptr<const NpyRows>> embeddings;
  std::vector<FaissIndex> indexes;         // per shard, when read (each index file is read once)
  PathPairs skipped, duplicates;           // (path, reason) and (path, original)
  std::map<std::string, std::string> meta; // store metadata of the first shard
  nlohmann::json parts = nlohmann::json::array();  // manifest source.parts
};

// 1. The output is new and none of the inputs.
void check_output(const MergeOptions& options);
// 2. Reads every shard; all must share the CLIP encoder, dimension and preprocessing. Each
//    shard is checked as Database::open checks it (manifest, store, embeddings file, and its
//    index when `read_indexes`: they are kept for merging lists, so no index is read twice).
Shards read_shards(const std::vector<std::filesystem::path>& inputs, bool read_indexes);
// 3. Source-path order (items without a path keep shard order, after those with one); of
//    byte-identical items (same hash) the first is kept, the others are appended to
//    `duplicates` as (path, kept path).
std::vector<ShardItem> order_and_deduplicate(std::vector<ShardItem> items, PathPairs& duplicates);
// 4. The kept items' embeddings as one [n, dim] float32 matrix, read from the shards' files
//    (no shard is loaded whole); final ids become rows of it.
torch::Tensor gather_embeddings(std::vector<ShardItem>& kept,
                                const std::vector<std::shared_ptr<const NpyRows>>& shard_embeddings, int64_t dim);
// 5. The item store and build_report.tsv of the merged database.
void write_store(const std::filesystem::path& out, std::vector<ShardItem>& kept, const torch::Tensor& embeddings,
                 const Shards& shards);
// 6. The index settings: the options when --index was given, else the first shard's.
IndexOptions index_options(const MergeOptions& options, const Manifest& first);

}  // namespace rdm::retrieval::merge_detail
