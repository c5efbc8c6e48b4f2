// Default index by collection size (see auto_index.hpp).
#include "retrieval/auto_index.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace rdm::retrieval {

bool is_auto_index(const std::string& description) { return description == "auto"; }

IndexChoice choose_index(int64_t n, int64_t d) {
  IndexChoice c;
  if (n <= kFlatMax) {
    c.description = "Flat";
    c.reason = fmt::format("{} vectors <= {}: exact search (Flat) answers a query in about {:.0f} ms here, "
                           "with recall 1", n, kFlatMax, 4.2e-7 * static_cast<double>(n) * d / 768.0 * 1e3);
    return c;
  }
  // About 2 sqrt(N) lists, a power of two: 512 at 100k, 2048 at 1M (training on 64 vectors per
  // list keeps k-means within a few minutes on 2 cores).
  const double want = 2.0 * std::sqrt(static_cast<double>(n));
  int64_t nlist = 256;
  while (nlist * 2 <= n / 39 && std::abs(std::log2(static_cast<double>(nlist * 2) / want)) <
                                   std::abs(std::log2(static_cast<double>(nlist) / want)))
    nlist *= 2;
  c.description = fmt::format("IVF{},SQ8", nlist);
  c.rerank = 100;
  for (int64_t p : {2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256})
    if (p <= nlist / 4) c.nprobes.push_back(p);
  c.recall_target = n <= 300000 ? 0.99 : 0.97;
  c.reason = fmt::format("{} vectors > {}: exact search would take about {:.0f} ms per query; "
                         "IVF{},SQ8 (8-bit codes, {:.0f} MB) with exact re-ranking of 100 candidates "
                         "from the stored embeddings, nprobe tuned to recall@k >= {:.2f}",
                         n, kFlatMax, 4.2e-7 * static_cast<double>(n) * d / 768.0 * 1e3, nlist,
                         static_cast<double>(n) * d / 1e6, c.recall_target);
  return c;
}

}  // namespace rdm::retrieval
