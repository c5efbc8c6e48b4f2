// Style database search: port of the reference Searcher's query path
// (ldm/.../knn2img.py `Searcher.search`): L2-normalise the queries, top-k by dot product over
// L2-normalised database rows, gather and L2-normalise the neighbour embeddings.
#include "rdm/retrieval/database.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "retrieval/db_checks.hpp"
#include "retrieval/index.hpp"
#include "retrieval/ivf_scan.hpp"
#include "retrieval/rows.hpp"
#include "retrieval/search.hpp"
#include "retrieval/store.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

struct Database::Impl {
  fs::path dir;
  Manifest manifest;
  std::optional<Store> store;
  std::optional<FaissIndex> index;
  torch::Tensor stored;  // [count, dim] as in the file (float16/float32, memory mapped)
  mutable std::mutex search_mu;  // per-call search parameters mutate the index
};

namespace {
std::string arch_of(const std::string& identity) {
  auto p = identity.find(':');
  return p == std::string::npos ? identity : identity.substr(0, p);
}
}  // namespace

bool clip_identities_compatible(const std::string& a, const std::string& b) {
  if (a == b) return true;
  bool a_hash = a.find(':') != std::string::npos, b_hash = b.find(':') != std::string::npos;
  return (!a_hash || !b_hash) && arch_of(a) == arch_of(b);
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::Database(Database&&) noexcept = default;
Database& Database::operator=(Database&&) noexcept = default;
Database::~Database() = default;

fs::path checked_embeddings_file(const fs::path& dir) {
  fs::path emb = dir / kEmbeddingsFile;
  if (!fs::exists(emb)) fail("database '{}': {} is missing{}", dir.string(), kEmbeddingsFile, kRepairHint);
  return emb;
}

void check_index_matches(const fs::path& dir, const Manifest& m, const FaissIndex& index) {
  if (index.ntotal() != m.count || index.dim() != m.dim)
    fail("database '{}': index holds {} vectors of dimension {}, the manifest says {} x {}{}", dir.string(),
         index.ntotal(), index.dim(), m.count, m.dim, kRepairHint);
}

void check_store_matches(const fs::path& dir, const Manifest& m, const Store& store) {
  if (m.count > 0 && !store.item_by_id(m.count - 1))
    fail("database '{}': the item store lacks item {}{}", dir.string(), m.count - 1, kRepairHint);
}

Database Database::open(const fs::path& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->manifest = Manifest::read(dir);
  const Manifest& m = impl->manifest;
  impl->store.emplace(Store::open(dir / kStoreFile, false));
  impl->index.emplace(FaissIndex::read(dir / kIndexFile));
  check_index_matches(dir, m, *impl->index);
  const fs::path emb = checked_embeddings_file(dir);
  try {
    impl->stored = formats::read_npy(emb);
  } catch (const Error& e) {
    fail("database '{}': {}{}", dir.string(), e.what(), kRepairHint);
  }
  if (impl->stored.dim() != 2 || impl->stored.size(0) != m.count || impl->stored.size(1) != m.dim ||
      !impl->stored.is_floating_point())
    fail("database '{}': {} holds {} {}, the manifest says {} x {}{}", dir.string(),
         kEmbeddingsFile, c10::str(impl->stored.sizes()), c10::toString(impl->stored.scalar_type()), m.count,
         m.dim, kRepairHint);
  check_store_matches(dir, m, *impl->store);
  if (m.nprobe > 0 || m.ef > 0) impl->index->set_search_params(m.nprobe, m.ef);
  spdlog::debug("database '{}': {} x {} ({}), index {}", dir.string(), m.count, m.dim,
                m.clip_identity, m.index);
  return Database(std::move(impl));
}

int64_t Database::size() const { return impl_->manifest.count; }
int64_t Database::dim() const { return impl_->manifest.dim; }
std::string Database::clip_identity() const { return impl_->manifest.clip_identity; }
std::string Database::name() const {
  return impl_->manifest.name.empty() ? impl_->dir.filename().string() : impl_->manifest.name;
}
std::string Database::hash() const { return impl_->manifest.content_hash; }
const Manifest& Database::manifest() const { return impl_->manifest; }
const fs::path& Database::dir() const { return impl_->dir; }

clip::Preprocess Database::preprocess() const {
  return impl_->manifest.preprocess == "rdm" ? clip::Preprocess::Rdm : clip::Preprocess::Clip;
}

std::string Database::source_path(int64_t id) const {
  const fs::path root = impl_->manifest.source_root();
  if (root.empty()) return {};
  const std::string path = item(id).path;
  return path.empty() ? std::string() : (root / path).string();
}

std::string Database::clip_model() const { return impl_->manifest.source_clip_model(); }

void Database::check_query_encoder(const std::string& identity, int64_t dim) const {
  const Manifest& m = impl_->manifest;
  if (dim != m.dim || arch_of(identity) != arch_of(m.clip_identity))
    fail("database '{}' was built with CLIP '{}' (dim {}), but the query encoder is '{}' (dim {}); "
         "use the same CLIP model or rebuild the database with `rdm db build --clip ...`",
         name(), m.clip_identity, m.dim, identity, dim);
  if (!clip_identities_compatible(identity, m.clip_identity))
    spdlog::warn("database '{}' was built with CLIP weights '{}', the query encoder has '{}' "
                 "(same architecture, different weights)", name(), m.clip_identity, identity);
}

ItemInfo Database::item(int64_t id) const {
  if (id < 0 || id >= size()) fail("database '{}': item {} out of range [0, {})", name(), id, size());
  auto it = impl_->store->item_by_id(id);
  if (!it) fail("database '{}': the item store lacks item {}", name(), id);
  ItemInfo info;
  info.id = id;
  info.path = it->path;
  info.label = it->label;
  info.hash = it->hash;
  info.width = it->width;
  info.height = it->height;
  info.orig_id = it->orig_id;
  info.patch_coords = it->patch_coords;
  return info;
}

std::vector<std::pair<std::string, int64_t>> Database::label_counts() const {
  return impl_->store->label_counts(size());
}

torch::Tensor Database::embeddings(const std::vector<int64_t>& ids) const {
  for (int64_t id : ids)
    if (id < 0 || id >= size())
      fail("database '{}': embedding id {} out of range [0, {})", name(), id, size());
  torch::Tensor idx = torch::tensor(ids, torch::kLong);
  torch::Tensor rows = impl_->stored.index_select(0, idx).to(torch::kFloat32).contiguous();
  // float16 files are renormalised in float32, exactly as the index was built from them.
  if (impl_->stored.scalar_type() != torch::kFloat32)
    normalize_rows(rows.data_ptr<float>(), rows.size(0), rows.size(1));
  return rows;
}

std::vector<std::vector<Neighbor>> Database::search(const torch::Tensor& queries,
                                                    int64_t k) const {
  return search(queries, k, SearchOptions{});
}

std::vector<std::vector<Neighbor>> Database::search(const torch::Tensor& queries, int64_t k,
                                                    const SearchOptions& opt) const {
  const Manifest& m = impl_->manifest;
  if (queries.dim() != 2 || queries.size(1) != m.dim)
    fail("database '{}' holds {}-d embeddings (CLIP '{}'), the queries have shape {}; use the "
         "CLIP model the database was built with", name(), m.dim, m.clip_identity,
         c10::str(queries.sizes()));
  if (size() == 0) fail("database '{}' is empty: nothing to retrieve", name());
  if (k <= 0) fail("number of neighbours must be positive, got {}", k);
  if (k > size())
    fail("k = {} neighbours requested, but database '{}' holds only {} items", k, name(), size());
  const int64_t nq = queries.size(0), d = m.dim;
  torch::Tensor q = queries.detach().to(torch::kCPU, torch::kFloat32).contiguous().clone();
  normalize_rows(q.data_ptr<float>(), nq, d);  // the reference normalises the query again

  const int64_t rerank = opt.rerank > 0 ? opt.rerank : m.rerank;
  // Exact re-rank scores from the stored embeddings (ScaNN's reorder step).
  // Read straight from the memory-mapped file, row by row: no tensor ops (their OpenMP regions
  // would cost more than the arithmetic for one query).
  const torch::Tensor& st = impl_->stored;
  std::vector<float> row(static_cast<size_t>(d));
  ExactScoreFn exact = [&](const std::vector<int64_t>& ids, const float* qr, std::vector<float>& out) {
    for (size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] < 0 || ids[j] >= size())
        fail("database '{}': embedding id {} out of range [0, {})", name(), ids[j], size());
      if (st.scalar_type() == torch::kFloat32) {
        out[j] = simd_dot(st.data_ptr<float>() + ids[j] * d, qr, d);
        continue;
      }
      // float16 rows are renormalised in float32, exactly as embeddings() returns them.
      const c10::Half* h = st.data_ptr<c10::Half>() + ids[j] * d;
      double norm = 0;
      for (int64_t c = 0; c < d; ++c) {
        row[c] = static_cast<float>(h[c]);
        norm += static_cast<double>(row[c]) * row[c];
      }
      out[j] = norm > 0 ? simd_dot(row.data(), qr, d) / static_cast<float>(std::sqrt(norm)) : 0.f;
    }
  };
  std::vector<std::vector<std::pair<float, int64_t>>> ranked;
  {
    std::lock_guard lock(impl_->search_mu);
    bool custom = opt.nprobe > 0 || opt.ef > 0;
    if (custom) impl_->index->set_search_params(opt.nprobe, opt.ef);
    try {
      ranked = search_ranked(*impl_->index, q.data_ptr<float>(), nq, k, rerank, exact);
    } catch (...) {
      if (custom) impl_->index->set_search_params(m.nprobe, m.ef);
      throw;
    }
    if (custom) impl_->index->set_search_params(m.nprobe, m.ef);
  }

  std::vector<std::vector<Neighbor>> out(static_cast<size_t>(nq));
  for (int64_t r = 0; r < nq; ++r) {
    const auto& cand = ranked[r];
    for (auto& [score, id] : cand) {
      Neighbor nb;
      nb.id = id;
      nb.score = score;
      if (auto it = impl_->store->item_by_id(id)) {
        nb.path = it->path;
        nb.label = it->label;
      }
      out[r].push_back(std::move(nb));
    }
  }
  return out;
}

std::vector<std::vector<std::pair<float, int64_t>>> Database::search_exact(const torch::Tensor& queries,
                                                                          int64_t k) const {
  const Manifest& m = impl_->manifest;
  if (queries.dim() != 2 || queries.size(1) != m.dim)
    fail("database '{}' holds {}-d embeddings, the queries have shape {}", name(), m.dim,
         c10::str(queries.sizes()));
  k = std::min(k, size());
  const int64_t nq = queries.size(0);
  torch::Tensor q = queries.detach().to(torch::kCPU, torch::kFloat32).contiguous().clone();
  normalize_rows(q.data_ptr<float>(), nq, m.dim);
  NpyRows rows(impl_->dir / kEmbeddingsFile);
  std::vector<float> scores(static_cast<size_t>(nq * k));
  std::vector<int64_t> ids(static_cast<size_t>(nq * k));
  exact_search_rows(rows, q.data_ptr<float>(), nq, k, scores.data(), ids.data());
  std::vector<std::vector<std::pair<float, int64_t>>> out(static_cast<size_t>(nq));
  for (int64_t r = 0; r < nq; ++r)
    for (int64_t j = 0; j < k; ++j)
      if (ids[r * k + j] >= 0) out[r].emplace_back(scores[r * k + j], ids[r * k + j]);
  return out;
}

}  // namespace rdm::retrieval
