// Internal: the consistency checks Database::open makes on a database folder, shared with
// `db merge` (which reads shards without opening them as databases). Each failure is an
// rdm::Error naming the folder, with the command that repairs it.
#pragma once
#include <cstdint>
#include <filesystem>

#include "rdm/retrieval/manifest.hpp"

namespace rdm::retrieval {
class FaissIndex;

// Appended to every such error.
inline constexpr const char* kRepairHint = "; run `rdm db build` (or import) again to repair the database";
class Store;

// dir/embeddings.npy, which must exist.
std::filesystem::path checked_embeddings_file(const std::filesystem::path& dir);
// The index holds the manifest's count x dim vectors.
void check_index_matches(const std::filesystem::path& dir, const Manifest& m, const FaissIndex& index);
// The item store holds the manifest's last item.
void check_store_matches(const std::filesystem::path& dir, const Manifest& m, const Store& store);

}  // namespace rdm::retrieval
