// FAISS index wrapper (see index.hpp). Equivalent of the reference's train_searcher.py
// (ScaNN builder: brute force / AH / tree+AH+reorder) with FAISS index_factory strings.
#include "retrieval/index.hpp"

#include <faiss/AutoTune.h>
#include <faiss/IndexFlat.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexIVF.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/clone_index.h>
#include <faiss/impl/io.h>
#include <faiss/utils/distances.h>

#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <chrono>
#include <numeric>
#include <random>
#include <unordered_set>
#include <vector>

#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"
#include "rdm/io/atomic_file.hpp"
#include "retrieval/ivf_scan.hpp"
#include "retrieval/rows.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;
using idx_t = faiss::Index::idx_t;

// Every entry point that runs FAISS holds a SingleThreadBlas (runtime.hpp): FAISS calls BLAS inside
// its OpenMP regions (the IVF coarse quantizer per thread slice), so OpenMP stays the one pool.

namespace {
std::string faiss_message(const faiss::FaissException& e) {
  // FAISS messages read "Error in <function> at <file>:<line>: <text>"; keep the text, on one line.
  std::string m = e.msg;
  m.erase(std::remove(m.begin(), m.end(), '\0'), m.end());  // FAISS_THROW_FMT keeps the NUL
  if (m.rfind("Error in", 0) == 0) {
    auto at = m.find(" at ");
    if (at != std::string::npos) {
      auto colon = m.find(": ", m.find(':', at + 4) + 1);
      if (colon != std::string::npos) m = m.substr(colon + 2);
    }
  }
  for (char& c : m)
    if (c == '\n' || c == '\r') c = ' ';
  while (!m.empty() && m.back() == ' ') m.pop_back();
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int64_t> sample_rows(int64_t n, int64_t m, uint64_t seed) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  if (m >= n) return rows;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < m; ++i) {  // partial Fisher-Yates
    std::uniform_int_distribution<int64_t> pick(i, n - 1);
    std::swap(rows[i], rows[pick(rng)]);
  }
  rows.resize(static_cast<size_t>(m));
  std::sort(rows.begin(), rows.end());
  return rows;
}
// A copy of `index` with empty lists: its trained state (quantizer, codec, options) only. IVF
// lists are swapped out for the copy instead of copied and cleared (they may be gigabytes).
std::unique_ptr<faiss::Index> empty_clone(const faiss::Index& index) {
  auto* ivf = dynamic_cast<faiss::IndexIVF*>(const_cast<faiss::Index*>(&index));
  if (!ivf) {
    std::unique_ptr<faiss::Index> c(faiss::clone_index(&index));
    c->reset();
    return c;
  }
  faiss::ArrayInvertedLists none(ivf->nlist, ivf->code_size);
  faiss::InvertedLists* lists = ivf->invlists;
  const bool own = ivf->own_invlists;
  const faiss::Index::idx_t ntotal = ivf->ntotal;
  ivf->invlists = &none;
  ivf->own_invlists = false;
  ivf->ntotal = 0;
  std::unique_ptr<faiss::Index> c;
  try {
    c.reset(faiss::clone_index(ivf));
  } catch (...) {
    ivf->invlists = lists, ivf->own_invlists = own, ivf->ntotal = ntotal;
    throw;
  }
  ivf->invlists = lists, ivf->own_invlists = own, ivf->ntotal = ntotal;
  return c;
}

// Adds every row of `rows` to a trained index (IVF: sized lists, see below).
void add_rows(faiss::Index* index, const RowSource& rows) {
  const int64_t n = rows.rows();
  auto* plain_ivf = dynamic_cast<faiss::IndexIVF*>(index);
  auto* lists = plain_ivf ? dynamic_cast<faiss::ArrayInvertedLists*>(plain_ivf->invlists) : nullptr;
  if (lists && n > 0) {
    // Two passes: assign every row to its list, size each list exactly, then add with the
    // assignments (the lists' codes would otherwise grow by doubling: up to 2x their size).
    std::vector<faiss::Index::idx_t> assign(static_cast<size_t>(n));
    std::vector<int64_t> count(plain_ivf->nlist, 0);
    for_each_chunk(rows, [&](int64_t first, int64_t c, const float* x) {
      faiss::Index::idx_t* a = assign.data() + first;
      plain_ivf->quantizer->assign(c, x, a);
      for (int64_t i = 0; i < c; ++i)
        if (a[i] >= 0) ++count[static_cast<size_t>(a[i])];
    });
    for (size_t l = 0; l < count.size(); ++l) {
      lists->codes[l].reserve(lists->codes[l].size() + static_cast<size_t>(count[l]) * lists->code_size);
      lists->ids[l].reserve(lists->ids[l].size() + static_cast<size_t>(count[l]));
    }
    for_each_chunk(rows, [&](int64_t first, int64_t c, const float* x) {
      plain_ivf->add_core(c, x, nullptr, assign.data() + first);
    });
  } else if (const float* x = rows.data()) {
    index->add(n, x);
  } else {
    for_each_chunk(rows, [&](int64_t, int64_t c, const float* x) { index->add(c, x); });
  }
}
}  // namespace

FaissIndex::FaissIndex(std::unique_ptr<faiss::Index> index) : index_(std::move(index)) {}
FaissIndex::FaissIndex(FaissIndex&&) noexcept = default;
FaissIndex& FaissIndex::operator=(FaissIndex&&) noexcept = default;
FaissIndex::~FaissIndex() = default;

FaissIndex FaissIndex::build(const std::string& description, const float* x, int64_t n,
                             int64_t dim, int64_t train_size, uint64_t seed) {
  return build(description, MatrixRows(x, n, dim), train_size, seed);
}

int64_t FaissIndex::default_train_size(int64_t n, int64_t nlist) {
  // FAISS's guidance is 30-256 training vectors per centroid; 64 keeps k-means well inside the
  // minutes on 2 cores at 1M vectors (2048 lists: 131k training rows) with good centroids.
  if (nlist > 0) return std::min<int64_t>(n, std::max<int64_t>(64 * nlist, 10000));
  return std::min<int64_t>(n, 100000);
}

FaissIndex FaissIndex::build(const std::string& description, const RowSource& rows,
                             int64_t train_size, uint64_t seed) {
  const int64_t n = rows.rows(), dim = rows.dim();
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::index_factory(static_cast<int>(dim), description.c_str(),
                                     faiss::METRIC_INNER_PRODUCT));
  } catch (const faiss::FaissException& e) {
    fail("unknown or invalid FAISS index description '{}' for dimension {}: {} (examples: Flat, "
         "IVF1024,Flat, IVF4096,PQ64, HNSW32)", description, dim, faiss_message(e));
  }
  const SingleThreadBlas one_pool;
  double train_s = 0, add_s = 0;
  try {
    auto* ivf = faiss::ivflib::try_extract_index_ivf(index.get());
    // Spherical k-means: the rows are L2-normalised and searched by inner product.
    if (ivf) ivf->cp.spherical = true;
    if (!index->is_trained) {
      int64_t m = train_size > 0 ? std::min(train_size, n)
                                 : default_train_size(n, ivf ? static_cast<int64_t>(ivf->nlist) : 0);
      if (ivf && m < static_cast<int64_t>(ivf->nlist))
        fail("FAISS index '{}' needs at least {} training vectors, only {} available; use fewer "
             "lists (e.g. IVF{},Flat) or the exact 'Flat' index", description, ivf->nlist, m,
             std::max<int64_t>(1, n / 39));
      std::vector<int64_t> picked = sample_rows(n, m, seed);
      std::vector<float> sample(static_cast<size_t>(m * dim));
      rows.gather(picked, sample.data());
      auto t0 = std::chrono::steady_clock::now();
      index->train(m, sample.data());
      std::vector<float>().swap(sample);
      ::malloc_trim(0);  // the sample and k-means buffers (freed in OpenMP threads' arenas)
      train_s = seconds_since(t0);
      spdlog::info("index '{}': trained on {} of {} vectors in {:.1f} s", description, m, n, train_s);
    }
    auto t1 = std::chrono::steady_clock::now();
    add_rows(index.get(), rows);
    add_s = seconds_since(t1);
    spdlog::info("index '{}': {} vectors added in {:.1f} s", description, n, add_s);
  } catch (const faiss::FaissException& e) {
    fail("cannot build FAISS index '{}' on {} vectors: {}", description, n, faiss_message(e));
  }
  FaissIndex built(std::move(index));
  built.train_seconds_ = train_s;
  built.add_seconds_ = add_s;
  return built;
}

FaissIndex FaissIndex::read(const fs::path& file) {
  if (!fs::exists(file))
    fail("index file '{}' is missing; run `rdm db build` (or import) again to repair the "
         "database", file.string());
  try {
    return FaissIndex(std::unique_ptr<faiss::Index>(faiss::read_index(file.c_str())));
  } catch (const faiss::FaissException& e) {
    fail("index file '{}' is damaged ({}); run `rdm db build` (or import) again to repair the "
         "database", file.string(), faiss_message(e));
  }
}

void FaissIndex::write(const fs::path& file) const {
  io::AtomicOutput out(file);
  try {
    faiss::write_index(index_.get(), out.tmp_path().c_str());
  } catch (const faiss::FaissException& e) {
    fail("cannot write index '{}': {}", file.string(), faiss_message(e));
  }
  out.commit();
}

bool FaissIndex::supports_param(const std::string& name) const {
  if (name == "nprobe") return faiss::ivflib::try_extract_index_ivf(index_.get()) != nullptr;
  faiss::ParameterSpace ps;
  try {
    // efSearch is accepted only by HNSW indexes (directly or wrapped).
    ps.set_index_parameter(index_.get(), name, 16);
    return true;
  } catch (const faiss::FaissException&) {
    return false;
  }
}

FaissIndex FaissIndex::build_from_trained(const FaissIndex& trained, const RowSource& rows,
                                          const std::string& source) {
  const int64_t n = rows.rows();
  if (rows.dim() != trained.dim())
    fail("{}: its index takes {}-dimensional vectors, these embeddings have {}", source, trained.dim(), rows.dim());
  if (!trained.index_->is_trained) fail("{}: its index is not trained", source);
  const SingleThreadBlas one_pool;
  std::unique_ptr<faiss::Index> index;
  double add_s = 0;
  try {
    index = empty_clone(*trained.index_);  // the trained quantizer and codec, no lists
    auto t1 = std::chrono::steady_clock::now();
    add_rows(index.get(), rows);
    add_s = seconds_since(t1);
    spdlog::info("index: {} vectors added to the trained index of {} (no training) in {:.1f} s", n, source, add_s);
  } catch (const faiss::FaissException& e) {
    fail("cannot reuse the trained index of {}: {}", source, faiss_message(e));
  }
  FaissIndex built(std::move(index));
  built.add_seconds_ = add_s;
  return built;
}

namespace {
// The bytes of an index with its lists emptied: its trained state (quantizer, codec, options).
std::vector<uint8_t> trained_state(const faiss::Index& index) {
  std::unique_ptr<faiss::Index> empty = empty_clone(index);
  faiss::VectorIOWriter w;
  faiss::write_index(empty.get(), &w);
  return w.data;
}
}  // namespace

std::string FaissIndex::why_not_mergeable(const std::vector<const FaissIndex*>& shards) {
  if (shards.empty()) return "no shards";
  try {
    std::vector<uint8_t> first;
    for (size_t k = 0; k < shards.size(); ++k) {
      const faiss::Index& idx = *shards[k]->index_;
      auto* ivf = dynamic_cast<const faiss::IndexIVF*>(&idx);
      if (!ivf || !dynamic_cast<const faiss::ArrayInvertedLists*>(ivf->invlists))
        return fmt::format("shard {} has no IVF index (only IVF lists can be merged)", k + 1);
      std::vector<uint8_t> state = trained_state(idx);
      if (k == 0) first = std::move(state);
      else if (state != first)
        return fmt::format("shard {} was trained separately from shard 1 (another coarse quantizer or codec; "
                           "build the shards with --trained-from to share one)", k + 1);
    }
  } catch (const faiss::FaissException& e) {
    return faiss_message(e);
  }
  return "";
}

FaissIndex FaissIndex::merge_lists(std::vector<FaissIndex> shards, const std::vector<std::vector<int64_t>>& new_ids) {
  if (shards.empty() || shards.size() != new_ids.size()) fail("merge_lists: {} shards, {} id maps", shards.size(), new_ids.size());
  const SingleThreadBlas one_pool;
  try {
    std::unique_ptr<faiss::Index> merged = empty_clone(*shards[0].index_);
    auto* target = dynamic_cast<faiss::IndexIVF*>(merged.get());
    auto* tl = dynamic_cast<faiss::ArrayInvertedLists*>(target->invlists);
    // Each shard's ids become merged ids (dropped entries removed), then its lists are appended
    // with FAISS's merge_from; the lists are sized first so that they never grow by doubling.
    std::vector<size_t> total(target->nlist, 0);
    for (size_t k = 0; k < shards.size(); ++k) {
      auto* ivf = dynamic_cast<faiss::IndexIVF*>(shards[k].index_.get());
      auto* al = dynamic_cast<faiss::ArrayInvertedLists*>(ivf->invlists);
      const auto& map = new_ids[k];
      int64_t kept = 0;
      for (size_t l = 0; l < al->nlist; ++l) {
        auto& ids = al->ids[l];
        auto& codes = al->codes[l];
        size_t w = 0;
        for (size_t j = 0; j < ids.size(); ++j) {
          const int64_t old = ids[j];
          if (old < 0 || old >= static_cast<int64_t>(map.size()))
            fail("cannot merge: shard {} holds id {} outside its {} items", k + 1, old, map.size());
          if (map[static_cast<size_t>(old)] < 0) continue;
          ids[w] = map[static_cast<size_t>(old)];
          if (w != j) std::memmove(codes.data() + w * al->code_size, codes.data() + j * al->code_size, al->code_size);
          ++w;
        }
        ids.resize(w);
        codes.resize(w * al->code_size);
        total[l] += w;
        kept += static_cast<int64_t>(w);
      }
      ivf->ntotal = kept;
    }
    for (size_t l = 0; l < total.size(); ++l) {
      tl->ids[l].reserve(total[l]);
      tl->codes[l].reserve(total[l] * tl->code_size);
    }
    for (auto& s : shards) {
      target->merge_from(*s.index_, 0);
      s.index_.reset();  // its lists are moved; free them now
    }
    return FaissIndex(std::move(merged));
  } catch (const faiss::FaissException& e) {
    fail("cannot merge the indexes' lists: {}", faiss_message(e));
  }
}

void FaissIndex::set_search_params(int64_t nprobe, int64_t ef) {
  faiss::ParameterSpace ps;
  try {
    if (nprobe > 0) {
      if (!faiss::ivflib::try_extract_index_ivf(index_.get()))
        fail("--nprobe applies to IVF indexes only");
      ps.set_index_parameter(index_.get(), "nprobe", static_cast<double>(nprobe));
    }
    if (ef > 0) ps.set_index_parameter(index_.get(), "efSearch", static_cast<double>(ef));
  } catch (const faiss::FaissException& e) {
    fail("cannot set search parameters (nprobe {}, ef {}): {}", nprobe, ef, faiss_message(e));
  }
}

void FaissIndex::search(const float* q, int64_t nq, int64_t k, float* scores,
                        int64_t* ids) const {
  static_assert(sizeof(idx_t) == sizeof(int64_t));
  if (ivf_fast_supported(*index_)) return ivf_search_fast(*index_, q, nq, k, scores, ids);
  const SingleThreadBlas one_pool;
  try {
    index_->search(nq, q, k, scores, reinterpret_cast<idx_t*>(ids));
  } catch (const faiss::FaissException& e) {
    fail("FAISS search failed: {}", faiss_message(e));
  }
}

int64_t FaissIndex::ntotal() const { return index_->ntotal; }
int64_t FaissIndex::dim() const { return index_->d; }
bool FaissIndex::exact() const {
  auto* flat = dynamic_cast<const faiss::IndexFlat*>(index_.get());
  return flat && flat->metric_type == faiss::METRIC_INNER_PRODUCT;
}

void validate_index_description(const std::string& description, int64_t dim) {
  try {
    std::unique_ptr<faiss::Index> probe(faiss::index_factory(
        static_cast<int>(dim), description.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const faiss::FaissException& e) {
    fail("unknown or invalid FAISS index description '{}' for dimension {}: {} (examples: Flat, "
         "IVF1024,Flat, IVF4096,PQ64, HNSW32)", description, dim, faiss_message(e));
  }
}

void exact_search(const float* x, int64_t n, const float* q, int64_t nq, int64_t d, int64_t k,
                  float* scores, int64_t* ids) {
  const SingleThreadBlas one_pool;
  faiss::knn_inner_product(q, x, static_cast<size_t>(d), static_cast<size_t>(nq),
                           static_cast<size_t>(n), static_cast<size_t>(k), scores, ids);
}

void normalize_rows(float* x, int64_t n, int64_t d) {
  if (n >= 256) return faiss::fvec_renorm_L2(static_cast<size_t>(d), static_cast<size_t>(n), x);
  // A few rows (queries): no OpenMP region, whose idle threads would spin on the other core.
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * d;
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(row[j]) * row[j];
    if (s > 0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(s));
      for (int64_t j = 0; j < d; ++j) row[j] *= inv;
    }
  }
}

}  // namespace rdm::retrieval
