// Writing a finished database folder (see finalize.hpp).
#include "retrieval/finalize.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <cmath>
#include <cstring>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/formats/npy.hpp"
#include "retrieval/auto_index.hpp"
#include "retrieval/index.hpp"
#include "retrieval/rows.hpp"
#include "retrieval/search.hpp"
#include "rdm/io/sha256.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

FolderLock::FolderLock(const fs::path& dir) {
  fs::create_directories(dir);
  fs::path file = dir / ".rdm.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create lock file '{}': {}", file.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    fail("database '{}' is being written by another rdm process (lock '{}' is held); wait for it "
         "or stop it, then rerun", dir.string(), file.string());
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

torch::Dtype embeddings_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float16") return torch::kFloat16;
  fail("unknown embeddings dtype '{}' (float32 or float16)", name);
}

void remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.size() > 1 && n[0] == '.' && n.find(".tmp.") != std::string::npos) fs::remove(e.path(), ec);
  }
}

void check_embeddings(const torch::Tensor& x, const std::string& source,
                      const std::function<std::string(int64_t)>& name_of) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.is_contiguous(), "embeddings must be [N, D] float32");
  const int64_t n = x.size(0), d = x.size(1);
  const float* p = x.data_ptr<float>();
  int64_t bad = 0, first = -1;
  std::string first_why;
  for (int64_t r = 0; r < n; ++r) {
    double norm2 = 0;
    bool finite = true;
    for (int64_t c = 0; c < d; ++c) {
      const float v = p[r * d + c];
      if (!std::isfinite(v)) finite = false;
      norm2 += static_cast<double>(v) * v;
    }
    const bool zero = finite && !(norm2 > 1e-24);
    if (finite && !zero && std::isfinite(norm2)) continue;
    if (bad++ == 0) {
      first = r;
      first_why = !finite ? "holds NaN or infinite values" : zero ? "is all zeros" : "has an infinite norm";
    }
  }
  if (bad == 0) return;
  std::string name = name_of ? name_of(first) : std::string();
  fail("{}: {} of {} embedding vectors cannot be L2-normalised (zero, NaN or infinite); the first is "
       "row {}{} which {}", source, bad, n, first, name.empty() ? "" : " (" + name + ")", first_why);
}

double write_database_files(const fs::path& dir, torch::Tensor embeddings, Manifest& m,
                            const IndexOptions& opt, const std::string& source,
                            const std::function<std::string(int64_t)>& name_of, double* recall_raw,
                            FaissIndex* prebuilt) {
  auto t0 = std::chrono::steady_clock::now();
  TORCH_CHECK(embeddings.dim() == 2, "embeddings must be [N, D]");
  const int64_t n = embeddings.size(0), d = embeddings.size(1);
  // Stored rows: normalised, rounded to the file dtype. The index is built from exactly what
  // the file holds (renormalised in float32), so `embeddings()` and the index agree.
  // A matrix handed over (moved in, nothing else refers to it) is normalised in place; any
  // other is copied first, so the caller's rows stay as they were.
  const bool owned = embeddings.device().is_cpu() && embeddings.scalar_type() == torch::kFloat32 &&
                     embeddings.is_contiguous() && embeddings.use_count() == 1 &&
                     embeddings.storage().use_count() == 1 && embeddings.storage_offset() == 0;
  torch::Tensor x = owned ? std::move(embeddings) : embeddings.to(torch::kCPU, torch::kFloat32).contiguous().clone();
  embeddings = torch::Tensor();
  check_embeddings(x, source, name_of);  // before anything is written
  normalize_rows(x.data_ptr<float>(), n, d);
  torch::Tensor stored = x.to(embeddings_dtype(opt.dtype)).contiguous();
  if (stored.scalar_type() != torch::kFloat32) {
    x.copy_(stored);  // the rounded rows, in place (no second float32 matrix)
    normalize_rows(x.data_ptr<float>(), n, d);
  }
  fs::create_directories(dir);
  {
    // The hash of npy_bytes(stored), the file write_npy writes, without a copy in memory.
    const std::string header = formats::npy_header(stored.scalar_type(), stored.sizes().vec());
    io::Sha256 hash;
    hash.update(header.data(), header.size());
    hash.update(stored.data_ptr(), stored.nbytes());
    m.content_hash = "sha256:" + hash.hex();
    formats::write_npy(dir / kEmbeddingsFile, stored);
  }
  spdlog::info("wrote {} ({} x {} {})", (dir / kEmbeddingsFile).string(), n, d, opt.dtype);

  MatrixRows rows(x.data_ptr<float>(), n, d);
  const double recall = finish_database(dir, rows, m, opt, recall_raw, prebuilt);
  m.report["finalize_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.write(dir);  // last: the folder is complete from here on
  return recall;
}

namespace {
int64_t recall_queries(const IndexOptions& opt, int64_t n, int64_t d, bool tuning) {
  if (opt.recall_queries > 0) return opt.recall_queries;
  // Keep the exact ground truth affordable: about 5e10 multiply-adds at most (more queries
  // when the build tunes nprobe on them: 400, about 2.5e11 at 1M x 768).
  double budget = (tuning ? 2.5e11 : 5e10) / (static_cast<double>(n) * static_cast<double>(d));
  return std::clamp<int64_t>(static_cast<int64_t>(budget), tuning ? 400 : 100, 1000);
}
}  // namespace

double finish_database(const fs::path& dir, const RowSource& rows, Manifest& m, IndexOptions opt,
                       double* recall_raw, FaissIndex* prebuilt) {
  const int64_t n = rows.rows(), d = rows.dim();
  auto t1 = std::chrono::steady_clock::now();
  IndexChoice choice;
  std::optional<FaissIndex> made;
  if (!prebuilt && !opt.trained_from.empty()) {
    // Another database's trained index: its string and search settings, no training, no tuning.
    const fs::path from = opt.trained_from;
    const std::string what = "database '" + from.string() + "' (--trained-from)";
    const Manifest tm = Manifest::read(from);
    if (!is_auto_index(opt.description) && opt.description != tm.index)
      fail("--index '{}' and --trained-from {} (index '{}') disagree: give one of them", opt.description, what, tm.index);
    const FaissIndex trained = FaissIndex::read(from / kIndexFile);
    opt.description = tm.index;
    if (opt.nprobe <= 0) opt.nprobe = tm.nprobe;
    if (opt.ef <= 0) opt.ef = tm.ef;
    if (opt.rerank <= 0) opt.rerank = tm.rerank;
    m.report["trained_from"] = fs::absolute(from).lexically_normal().string();
    spdlog::info("index: '{}' trained for {} reused (nprobe {}, re-ranking {})", tm.index, what, opt.nprobe, opt.rerank);
    made.emplace(FaissIndex::build_from_trained(trained, rows, what));
    prebuilt = &*made;
  }
  const bool automatic = !prebuilt && is_auto_index(opt.description);
  if (automatic) {
    choice = choose_index(n, d);
    spdlog::info("index: {} -> '{}'", choice.reason, choice.description);
    opt.description = choice.description;
    if (opt.rerank <= 0) opt.rerank = choice.rerank;
    m.report["index_choice"] = choice.reason;
  }
  if (!prebuilt) made.emplace(FaissIndex::build(opt.description, rows, opt.train_size, opt.seed));
  FaissIndex& index = prebuilt ? *prebuilt : *made;
  if (index.ntotal() != n) fail("index of '{}' holds {} vectors, the embeddings {}", dir.string(), index.ntotal(), n);
  if (opt.nprobe > 0 || opt.ef > 0) index.set_search_params(opt.nprobe, opt.ef);
  double recall = -1;
  if (!index.exact() && n > 1) {
    const bool tune = automatic && opt.nprobe <= 0 && !choice.nprobes.empty();
    RecallSet set = make_recall_set(rows, opt.recall_k, recall_queries(opt, n, d, tune), opt.seed);
    RecallFigures f;
    if (tune) {
      // The smallest nprobe whose served recall (held-out queries, exact ground truth) reaches
      // the target; the largest tried otherwise.
      for (int64_t p : choice.nprobes) {
        index.set_search_params(p, 0);
        opt.nprobe = p;
        f = measure_recall(index, rows, set, opt.rerank);
        spdlog::info("index '{}': nprobe {} -> recall@{} {:.4f}", opt.description, p, set.k, f.served);
        if (f.served >= choice.recall_target) break;
      }
    } else {
      f = measure_recall(index, rows, set, opt.rerank);
    }
    recall = f.served;
    if (recall_raw) *recall_raw = f.raw;
    m.report["recall"] = {{"k", opt.recall_k}, {"queries", f.queries}, {"value", f.served},
                          {"raw_ann", f.raw}, {"rerank", opt.rerank}, {"nprobe", opt.nprobe},
                          {"ef", opt.ef}, {"queries_kind", "held-out: perturbed copies of stored vectors"}};
    if (opt.rerank > 0)
      spdlog::info("index '{}': recall@{} = {:.4f} with exact re-ranking of {} candidates ({:.4f} raw ANN) "
                   "vs exact search on {} held-out queries", opt.description, opt.recall_k, f.served,
                   opt.rerank, f.raw, f.queries);
    else
      spdlog::info("index '{}': recall@{} = {:.4f} vs exact search on {} held-out queries",
                   opt.description, opt.recall_k, f.served, f.queries);
  } else {
    m.report.erase("recall");
  }
  index.write(dir / kIndexFile);
  auto t2 = std::chrono::steady_clock::now();
  spdlog::info("index '{}' over {} vectors written in {:.2f} s", opt.description, n,
               std::chrono::duration<double>(t2 - t1).count());
  m.count = n;
  m.dim = d;
  m.embeddings_dtype = opt.dtype;
  m.normalization = "l2";
  m.index = opt.description;
  m.nprobe = opt.nprobe;
  m.ef = opt.ef;
  m.rerank = opt.rerank;
  m.created = utc_now();
  m.report["index_seconds"] = std::chrono::duration<double>(t2 - t1).count();
  m.report["index_train_seconds"] = index.train_seconds();
  m.report["index_add_seconds"] = index.add_seconds();
  return recall;
}

}  // namespace rdm::retrieval
