// Row access to the embeddings an index is built from, without holding them all in memory:
// an in-memory matrix, or the embeddings .npy file of a database read chunk by chunk (memory
// mapped; pages are dropped again after each chunk, so peak RSS stays bounded at any N).
// Every row comes out as float32, L2-normalised (float16 files are renormalised in float32,
// exactly as Database::embeddings() returns them).
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include <torch/types.h>

namespace rdm::retrieval {

class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t dim() const = 0;
  // Rows [first, first + count) into out[count, dim].
  virtual void read(int64_t first, int64_t count, float* out) const = 0;
  // Rows `ids` (any order) into out[ids.size(), dim].
  virtual void gather(const std::vector<int64_t>& ids, float* out) const = 0;
  // Rows held in memory as one float32 matrix (nullptr when streamed from a file).
  virtual const float* data() const { return nullptr; }
};

// x[n, d] float32, already normalised; not owned.
class MatrixRows : public RowSource {
 public:
  MatrixRows(const float* x, int64_t n, int64_t d) : x_(x), n_(n), d_(d) {}
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void read(int64_t first, int64_t count, float* out) const override;
  void gather(const std::vector<int64_t>& ids, float* out) const override;
  const float* data() const override { return x_; }

 private:
  const float* x_;
  int64_t n_, d_;
};

// A [N, D] float32/float16 .npy file (a database's embeddings.npy), memory mapped.
class NpyRows : public RowSource {
 public:
  explicit NpyRows(const std::filesystem::path& file);
  int64_t rows() const override { return n_; }
  int64_t dim() const override { return d_; }
  void read(int64_t first, int64_t count, float* out) const override;
  // Scattered rows are read with pread, not through the mapping: each fault on a mapped page
  // maps a whole page-cache folio (up to megabytes on current kernels), so scattered reads of a
  // mapping leave hundreds of MB resident however soon they are released.
  void gather(const std::vector<int64_t>& ids, float* out) const override;

 private:
  torch::Tensor stored_;  // aliases the mapping
  int64_t n_ = 0, d_ = 0;
  std::filesystem::path file_;
  std::shared_ptr<int> fd_;  // the file opened for pread (nullptr: gather through the tensor)
  int64_t data_offset_ = -1;  // file offset of row 0
};

// Rows per chunk when streaming (about 50 MB of float32 at D = 768).
constexpr int64_t kRowChunk = 16384;

// Calls fn(first, count, x) for consecutive chunks of `chunk` rows, x = rows [first, first +
// count) as float32 [count, dim]: in place for rows held in memory, else read into one reused
// buffer.
template <class Fn>
void for_each_chunk(const RowSource& rows, Fn&& fn, int64_t chunk = kRowChunk) {
  const int64_t n = rows.rows(), d = rows.dim();
  std::vector<float> buf;
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t c = std::min(chunk, n - first);
    const float* x = rows.data() ? rows.data() + first * d : nullptr;
    if (!x) {
      buf.resize(static_cast<size_t>(c * d));
      rows.read(first, c, buf.data());
      x = buf.data();
    }
    fn(first, c, x);
  }
}

}  // namespace rdm::retrieval
