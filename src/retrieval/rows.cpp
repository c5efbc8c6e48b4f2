// Row sources (see rows.hpp).
#include "retrieval/rows.hpp"

#include <algorithm>
#include <cstring>

#include "rdm/formats/npy.hpp"
#include "rdm/io/mapped_file.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/index.hpp"

namespace rdm::retrieval {

void MatrixRows::read(int64_t first, int64_t count, float* out) const {
  std::memcpy(out, x_ + first * d_, static_cast<size_t>(count * d_) * sizeof(float));
}

void MatrixRows::gather(const std::vector<int64_t>& ids, float* out) const {
  for (size_t i = 0; i < ids.size(); ++i)
    std::memcpy(out + i * d_, x_ + ids[i] * d_, static_cast<size_t>(d_) * sizeof(float));
}

NpyRows::NpyRows(const std::filesystem::path& file) : stored_(formats::read_npy(file)) {
  if (stored_.dim() != 2 || (stored_.scalar_type() != torch::kFloat32 && stored_.scalar_type() != torch::kFloat16))
    fail("'{}': expected a [N, D] float32/float16 matrix, got {} {}", file.string(),
         c10::str(stored_.sizes()), c10::toString(stored_.scalar_type()));
  n_ = stored_.size(0);
  d_ = stored_.size(1);
}

void NpyRows::read(int64_t first, int64_t count, float* out) const {
  torch::Tensor src = stored_.narrow(0, first, count);
  torch::Tensor dst = torch::from_blob(out, {count, d_}, torch::kFloat32);
  dst.copy_(src);
  if (stored_.scalar_type() != torch::kFloat32) normalize_rows(out, count, d_);
  // The copied pages need not stay resident (bounded RSS when streaming a large file).
  io::MappedFile::release_pages(src.data_ptr(), static_cast<size_t>(count * d_ * src.element_size()));
}

void NpyRows::gather(const std::vector<int64_t>& ids, float* out) const {
  if (ids.empty()) return;
  torch::Tensor idx = torch::from_blob(const_cast<int64_t*>(ids.data()),
                                       {static_cast<int64_t>(ids.size())}, torch::kLong);
  torch::Tensor dst = torch::from_blob(out, {static_cast<int64_t>(ids.size()), d_}, torch::kFloat32);
  dst.copy_(stored_.index_select(0, idx));
  if (stored_.scalar_type() != torch::kFloat32) normalize_rows(out, static_cast<int64_t>(ids.size()), d_);
  // The file's pages need not stay resident (a training sample, the re-ranked candidates of the
  // recall measurement): touched again, they are read back from the page cache.
  io::MappedFile::release_pages(stored_.data_ptr(), static_cast<size_t>(stored_.nbytes()));
}

}  // namespace rdm::retrieval
