// Norms of stored embeddings (see norms.hpp).
#include "rdm/retrieval/norms.hpp"

#include <algorithm>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/manifest.hpp"

namespace rdm::retrieval {

NormStats embedding_norms(const std::filesystem::path& db_dir) {
  const auto file = db_dir / kEmbeddingsFile;
  torch::Tensor stored = formats::read_npy(file);
  if (stored.dim() != 2 || !stored.is_floating_point())
    fail("'{}' is not a 2-d float matrix (shape {})", file.string(), c10::str(stored.sizes()));
  NormStats st;
  st.tolerance = stored.scalar_type() == torch::kFloat32 ? 1e-5 : 2e-3;
  st.rows = stored.size(0);
  bool first = true;
  for (int64_t b = 0; b < st.rows; b += 65536) {
    torch::Tensor rows = stored.slice(0, b, std::min(st.rows, b + 65536)).to(torch::kFloat64);
    torch::Tensor finite = torch::isfinite(rows).all(1);
    st.not_finite += finite.logical_not().sum().item<int64_t>();
    torch::Tensor norm = rows.norm(2, 1).masked_select(finite);
    st.zero += norm.eq(0).sum().item<int64_t>();
    st.off_unit += (norm - 1).abs().gt(st.tolerance).logical_and(norm.ne(0)).sum().item<int64_t>();
    if (norm.numel() > 0) {
      const double lo = norm.min().item<double>(), hi = norm.max().item<double>();
      st.min = first ? lo : std::min(st.min, lo);
      st.max = first ? hi : std::max(st.max, hi);
      first = false;
    }
  }
  return st;
}

}  // namespace rdm::retrieval
