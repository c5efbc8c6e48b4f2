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
  // In blocks of rows, the file's pages released after each block (a training sample, the
  // re-ranked candidates of the recall measurement): touched again, they come back from the page
  // cache. A sample spread over the whole file would otherwise leave all of it resident (each
  // page fault maps its neighbours too): 3 GB of RSS for a 2M x 768 fp16 file.
  constexpr size_t kBlock = 2048;
  const size_t row_bytes = static_cast<size_t>(d_ * stored_.element_size());
  const auto* base = static_cast<const uint8_t*>(stored_.data_ptr());
  for (size_t lo = 0; lo < ids.size(); lo += kBlock) {
    const size_t len = std::min(kBlock, ids.size() - lo);
    torch::Tensor idx = torch::from_blob(const_cast<int64_t*>(ids.data() + lo), {static_cast<int64_t>(len)}, torch::kLong);
    torch::Tensor dst = torch::from_blob(out + lo * d_, {static_cast<int64_t>(len), d_}, torch::kFloat32);
    dst.copy_(stored_.index_select(0, idx));
    if (stored_.scalar_type() != torch::kFloat32) normalize_rows(out + lo * d_, static_cast<int64_t>(len), d_);
    const auto [mn, mx] = std::minmax_element(ids.begin() + static_cast<std::ptrdiff_t>(lo),
                                              ids.begin() + static_cast<std::ptrdiff_t>(lo + len));
    // The span of the block's rows, widened by the kernel's fault-around window (64 KB).
    constexpr size_t kMargin = 64 << 10;
    const size_t total = static_cast<size_t>(stored_.nbytes());
    const size_t from = static_cast<size_t>(*mn) * row_bytes, to = static_cast<size_t>(*mx + 1) * row_bytes;
    const size_t b = from > kMargin ? from - kMargin : 0, e = std::min(total, to + kMargin);
    io::MappedFile::release_pages(base + b, e - b);
  }
}

}  // namespace rdm::retrieval
