// Style databases at scale, end to end through the paths users run (one run, no Google Benchmark
// loop: each figure needs a whole import):
//   1. clustered CLIP-like vectors (the mixture of scripts/make_clip_like.py: a common direction,
//      Zipf-sized anisotropic clusters, noise; L2-normalised) written as .npy parts, plus held-out
//      queries of the same mixture;
//   2. `rdm db import` (retrieval::import_database, default --index auto): throughput, index
//      training time, peak RSS of the import (VmHWM, reset before it);
//   3. `rdm db search --query-npy` (Database::search, one query at a time, k = 19): latency p50 /
//      p99, and recall@19 against exact search over the stored embeddings (Database::search_exact);
//      the exact scan's own latency is the baseline.
// Sizes: 100k; RDM_BENCH_1M=1 adds 1M (about 3 GB of disk in TMPDIR, 4 GB RAM, 4 minutes).
// 10M is not run here: a projection from the 1M figures is printed, marked as such.
//   ./build/bench/bench_db [--threads 2] [--sizes 100000,1000000] [--queries 200] [--keep DIR]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {
constexpr int64_t kDim = 768, kK = 19, kRank = 24;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// VmHWM / VmRSS of this process in bytes (0 when /proc is unavailable).
int64_t proc_status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key)) * 1024;
  return 0;
}
// Resets VmHWM to the current RSS (Linux >= 4.0); false when it cannot.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  return static_cast<bool>(f);
}

// The mixture of scripts/make_clip_like.py, drawn with torch's seeded generator.
struct Mixture {
  torch::Tensor mu, centres, bases, weights;  // [d], [c, d], [c, d, rank], [c]
  torch::Generator gen;
  Mixture(int64_t n, uint64_t seed) : gen(at::detail::createCPUGenerator(seed)) {
    const int64_t clusters = std::max<int64_t>(16, n / 400);
    const auto f = torch::TensorOptions().dtype(torch::kFloat32);
    mu = at::normal(0, 1, {kDim}, gen, f);
    mu /= mu.norm();
    centres = at::normal(0, 1, {clusters, kDim}, gen, f) / std::sqrt(double(kDim));
    bases = at::normal(0, 1, {clusters, kDim, kRank}, gen, f) / std::sqrt(double(kDim));
    bases *= 0.5 * torch::pow(0.8, torch::arange(kRank, f));  // decaying variance per direction
    weights = 1.0 / torch::pow(torch::arange(1, clusters + 1, f), 0.7);  // Zipf-like sizes
    weights = weights.index_select(0, torch::randperm(clusters, gen));
  }
  torch::Tensor draw(int64_t m) {
    torch::Tensor k = at::multinomial(weights, m, true, gen);
    torch::Tensor z = at::normal(0, 1, {m, kRank}, gen, torch::kFloat32);
    // Per row: centre + basis * z, as one batched product over the rows' own bases.
    torch::Tensor x = centres.index_select(0, k);
    const int64_t block = 4096;  // bounds the gathered bases to block * d * rank floats
    for (int64_t s = 0; s < m; s += block) {
      const int64_t e = std::min(m, s + block);
      torch::Tensor b = bases.index_select(0, k.slice(0, s, e));               // [b, d, rank]
      x.slice(0, s, e) += torch::bmm(b, z.slice(0, s, e).unsqueeze(2)).squeeze(2);
    }
    x += 1.3 * mu.unsqueeze(0);
    x += at::normal(0, 1, {m, kDim}, gen, torch::kFloat32) * (0.6 / std::sqrt(double(kDim)));
    return x / x.norm(2, 1, true);
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

nlohmann::json run_size(int64_t n, int64_t queries, const fs::path& work) {
  const fs::path parts = work / ("parts-" + std::to_string(n)), db = work / ("db-" + std::to_string(n));
  fs::remove_all(parts);
  fs::remove_all(db);
  fs::create_directories(parts);
  auto t0 = Clock::now();
  Mixture mix(n, 1234 + static_cast<uint64_t>(n));
  const int64_t per = 100000;
  for (int64_t first = 0, i = 0; first < n; first += per, ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "part-%03lld.npy", static_cast<long long>(i));
    rdm::formats::write_npy(parts / name, mix.draw(std::min(per, n - first)));
  }
  const torch::Tensor q = mix.draw(queries);  // held out: same mixture, not in the database
  std::fprintf(stderr, "bench_db: %lld vectors generated in %.1f s\n", static_cast<long long>(n), seconds_since(t0));

  rdm::retrieval::ImportOptions opt;
  opt.inputs = {parts};
  opt.out = db;
  opt.name = "bench";
  const bool hwm = reset_peak_rss();
  const int64_t rss_before = proc_status_bytes("VmRSS:");
  t0 = Clock::now();
  const auto report = rdm::retrieval::import_database(opt);
  const double import_s = seconds_since(t0);
  const int64_t peak = proc_status_bytes("VmHWM:");
  fs::remove_all(parts);

  auto database = rdm::retrieval::Database::open(db);
  const auto& m = database.manifest();
  std::vector<double> ms;
  std::vector<std::vector<rdm::retrieval::Neighbor>> got;
  for (int64_t i = 0; i < queries; ++i) {
    const torch::Tensor one = q.slice(0, i, i + 1);
    const auto t = Clock::now();
    auto r = database.search(one, kK);
    ms.push_back(1e3 * seconds_since(t));
    got.push_back(std::move(r[0]));
  }
  // Exact search: the ground truth, and (timed per query on the first queries) the baseline.
  std::vector<double> exact_ms;
  for (int64_t i = 0; i < std::min<int64_t>(queries, 10); ++i) {
    const auto t = Clock::now();
    (void)database.search_exact(q.slice(0, i, i + 1), kK);
    exact_ms.push_back(1e3 * seconds_since(t));
  }
  const auto truth = database.search_exact(q, kK);
  int64_t hit = 0;
  for (int64_t i = 0; i < queries; ++i) {
    std::unordered_set<int64_t> t;
    for (const auto& [s, id] : truth[i]) t.insert(id);
    for (const auto& nb : got[i]) hit += t.count(nb.id);
  }
  nlohmann::json j;
  j["n"] = n;
  j["index"] = m.index;
  j["nprobe"] = m.nprobe;
  j["rerank"] = m.rerank;
  j["import_seconds"] = import_s;
  j["import_rows_per_second"] = static_cast<double>(n) / import_s;
  j["train_seconds"] = m.report.value("index_train_seconds", -1.0);
  j["add_seconds"] = m.report.value("index_add_seconds", -1.0);
  j["peak_rss_import_gb"] = hwm ? peak / 1e9 : -1.0;
  j["rss_before_import_gb"] = rss_before / 1e9;
  j["search_p50_ms"] = percentile(ms, 0.5);
  j["search_p99_ms"] = percentile(ms, 0.99);
  j["exact_p50_ms"] = percentile(exact_ms, 0.5);
  j["recall_at_19"] = static_cast<double>(hit) / static_cast<double>(queries * kK);
  j["build_report_recall"] = report.recall;
  j["queries"] = queries;
  return j;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  int64_t queries = 200;
  std::vector<int64_t> sizes = {100000};
  if (std::getenv("RDM_BENCH_1M")) sizes.push_back(1000000);
  fs::path keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::stoi(v);
    else if (a == "--queries") queries = std::stoll(v);
    else if (a == "--keep") keep = v;
    else if (a == "--sizes") {
      sizes.clear();
      for (size_t p = 0; p <= v.size();) {
        const size_t c = std::min(v.find(',', p), v.size());
        sizes.push_back(std::stoll(v.substr(p, c - p)));
        p = c + 1;
      }
    } else {
      std::fprintf(stderr, "bench_db: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const fs::path work = keep.empty() ? fs::temp_directory_path() / ("rdm_bench_db_" + std::to_string(::getpid())) : keep;
  fs::create_directories(work);
  nlohmann::json rows = nlohmann::json::array();
  try {
    for (int64_t n : sizes) rows.push_back(run_size(n, queries, work));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_db: %s\n", e.what());
    if (keep.empty()) fs::remove_all(work);
    return 1;
  }
  if (keep.empty()) fs::remove_all(work);
  std::printf("| N | index (auto) | nprobe | rerank | train s | import s | rows/s | p50 ms | p99 ms | exact ms | recall@19 | peak RSS GB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %lld | %s | %lld | %lld | %.1f | %.1f | %.0f | %.2f | %.2f | %.1f | %.3f | %.2f |\n",
                static_cast<long long>(r["n"]), r["index"].get<std::string>().c_str(),
                static_cast<long long>(r["nprobe"]), static_cast<long long>(r["rerank"]),
                r["train_seconds"].get<double>(), r["import_seconds"].get<double>(),
                r["import_rows_per_second"].get<double>(), r["search_p50_ms"].get<double>(),
                r["search_p99_ms"].get<double>(), r["exact_p50_ms"].get<double>(), r["recall_at_19"].get<double>(),
                r["peak_rss_import_gb"].get<double>());
  // 10M: not run here. Projected from the largest size measured, stated as a projection:
  // IVF search cost grows with the codes scanned per query (lists grow as N / nlist; auto picks
  // nlist 4096 at 10M, twice 1M's), exact search and import linearly.
  const auto& last = rows.back();
  const double scale = 1e7 / last["n"].get<double>();
  std::printf("\n10M (projection from %lld, not measured): import about %.0f s, exact search about %.0f ms per query\n",
              static_cast<long long>(last["n"]), last["import_seconds"].get<double>() * scale,
              last["exact_p50_ms"].get<double>() * scale);
  std::printf("%s\n", rows.dump().c_str());
  return 0;
}
