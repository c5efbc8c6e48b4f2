// Row sources (see rows.hpp).
#include "retrieval/rows.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

NpyRows::NpyRows(const std::filesystem::path& file) : stored_(formats::read_npy(file)), file_(file) {
  if (stored_.dim() != 2 || (stored_.scalar_type() != torch::kFloat32 && stored_.scalar_type() != torch::kFloat16))
    fail("'{}': expected a [N, D] float32/float16 matrix, got {} {}", file.string(),
         c10::str(stored_.sizes()), c10::toString(stored_.scalar_type()));
  n_ = stored_.size(0);
  d_ = stored_.size(1);
  data_offset_ = io::MappedFile::file_offset(stored_.data_ptr());
  if (data_offset_ >= 0) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fd_ = std::shared_ptr<int>(new int(fd), [](int* f) { ::close(*f); delete f; });
  }
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
  const size_t row_bytes = static_cast<size_t>(d_ * stored_.element_size());
  for (const int64_t id : ids)
    if (id < 0 || id >= n_) fail("'{}': row {} out of range [0, {})", file_.string(), id, n_);
  if (!fd_) {  // not a mapping (an unaligned file read into memory): plain copies
    torch::Tensor idx = torch::from_blob(const_cast<int64_t*>(ids.data()), {static_cast<int64_t>(ids.size())}, torch::kLong);
    torch::from_blob(out, {static_cast<int64_t>(ids.size()), d_}, torch::kFloat32).copy_(stored_.index_select(0, idx));
  } else {
    std::vector<uint8_t> row(row_bytes);
    for (size_t i = 0; i < ids.size(); ++i) {
      const off_t at = static_cast<off_t>(data_offset_ + ids[i] * static_cast<int64_t>(row_bytes));
      for (size_t got = 0; got < row_bytes;) {
        const ssize_t r = ::pread(*fd_, row.data() + got, row_bytes - got, at + static_cast<off_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("'{}': cannot read row {}: {}", file_.string(), ids[i], r < 0 ? std::strerror(errno) : "file truncated");
        got += static_cast<size_t>(r);
      }
      float* dst = out + i * d_;
      if (stored_.scalar_type() == torch::kFloat32) {
        std::memcpy(dst, row.data(), row_bytes);
      } else {
        const auto* h = reinterpret_cast<const c10::Half*>(row.data());
        for (int64_t c = 0; c < d_; ++c) dst[c] = static_cast<float>(h[c]);
      }
    }
  }
  if (stored_.scalar_type() != torch::kFloat32) normalize_rows(out, static_cast<int64_t>(ids.size()), d_);
}

}  // namespace rdm::retrieval
