// rdm db search DB --query-npy Q.npy: a batch of raw query vectors (float [N, D], L2-normalised
// here) answered one at a time through Database::search -- the path sampling uses -- with the
// latency of every query; --recall adds recall@k against exact search over the stored rows.
#include <algorithm>
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::cli {

namespace {
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}
}  // namespace

void run_db_search_npy(const DbSearchNpy& a) {
  auto d = retrieval::Database::open(a.dir);
  torch::Tensor q = formats::read_npy(a.query_npy);
  if (q.dim() != 2 || !q.is_floating_point() || q.size(1) != d.dim() || q.size(0) == 0)
    fail("--query-npy '{}': expected a float [N, {}] matrix (N >= 1) for database '{}', got {} {}",
         a.query_npy, d.dim(), d.name(), c10::str(q.sizes()), c10::toString(q.scalar_type()));
  q = q.to(torch::kFloat32).contiguous();
  if (!torch::isfinite(q).all().item<bool>() || (q.norm(2, 1) <= 0).any().item<bool>())
    fail("--query-npy '{}': rows must be finite and non-zero (they are L2-normalised)", a.query_npy);
  const int64_t n = q.size(0);
  retrieval::SearchOptions so{a.nprobe, a.ef, a.rerank};
  std::vector<std::vector<retrieval::Neighbor>> res(static_cast<size_t>(n));
  std::vector<double> ms(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {  // one query at a time, as sampling asks
    auto t0 = std::chrono::steady_clock::now();
    res[i] = d.search(q.narrow(0, i, 1), a.k, so)[0];
    ms[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  double recall = -1;
  if (a.recall) {
    auto truth = d.search_exact(q, a.k);
    int64_t hit = 0, total = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (auto& [s, id] : truth[i])
        for (auto& nb : res[i]) hit += nb.id == id;
      total += static_cast<int64_t>(truth[i].size());
    }
    recall = total ? static_cast<double>(hit) / static_cast<double>(total) : 0;
  }
  double mean = 0;
  for (double v : ms) mean += v / static_cast<double>(n);
  const auto& m = d.manifest();
  nlohmann::json lat{{"p50", percentile(ms, 50)}, {"p99", percentile(ms, 99)}, {"mean", mean},
                     {"max", *std::max_element(ms.begin(), ms.end())}};
  spdlog::info("{} queries, k = {}, index '{}': latency p50 {:.3f} ms, p99 {:.3f} ms{}", n, a.k, m.index,
               lat["p50"].get<double>(), lat["p99"].get<double>(),
               recall >= 0 ? fmt::format(", recall@{} {:.4f}", a.k, recall) : "");
  if (a.json) {
    nlohmann::json j{{"database", d.name()}, {"k", a.k}, {"index", m.index}, {"queries", n},
                     {"latency_ms", lat}};
    if (recall >= 0) j["recall"] = recall;
    nlohmann::json list = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::json nbs = nlohmann::json::array();
      for (auto& nb : res[i]) nbs.push_back({{"id", nb.id}, {"score", nb.score}});
      list.push_back({{"query", i}, {"latency_ms", ms[i]}, {"neighbors", std::move(nbs)}});
    }
    j["results"] = std::move(list);
    std::cout << io::dump_json_safe(j, -1) << std::endl;
  } else {
    std::cout << "query  latency_ms  neighbours (id:score, best first)\n";
    for (int64_t i = 0; i < n; ++i) {
      std::string line = fmt::format("{:>5}  {:>10.3f} ", i, ms[i]);
      for (auto& nb : res[i]) line += fmt::format(" {}:{:.4f}", nb.id, nb.score);
      std::cout << line << "\n";
    }
  }
}

}  // namespace rdm::cli
