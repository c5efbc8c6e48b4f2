// IVF list scans with run-time dispatched SIMD kernels (see ivf_scan.hpp).
#include "retrieval/ivf_scan.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/invlists/InvertedLists.h>

#include <immintrin.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <utility>
#include <vector>

namespace rdm::retrieval {
namespace {

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define RDM_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RDM_SIMD_CLONES
#endif

RDM_SIMD_CLONES float dot_f32(const float* a, const float* b, int64_t d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < d; ++j) s += a[j] * b[j];
  return s;
}

// sum a[j] * c[j] over uint8 codes: explicit AVX-512 / AVX2 kernels (GCC widens u8 -> f32 only
// four lanes at a time on its own), picked once at run time.
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f"))) float dot_u8_avx512(const float* a, const uint8_t* c, int64_t d) {
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + j));
    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), f, acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; j < d; ++j) s += a[j] * static_cast<float>(c[j]);
  return s;
}

__attribute__((target("avx2,fma"))) float dot_u8_avx2(const float* a, const uint8_t* c, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + j));
    __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), f, acc);
  }
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_hadd_ps(h, h);
  h = _mm_hadd_ps(h, h);
  float s = _mm_cvtss_f32(h);
  for (; j < d; ++j) s += a[j] * static_cast<float>(c[j]);
  return s;
}
#endif

float dot_u8_plain(const float* a, const uint8_t* c, int64_t d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < d; ++j) s += a[j] * static_cast<float>(c[j]);
  return s;
}

using DotU8 = float (*)(const float*, const uint8_t*, int64_t);
DotU8 pick_dot_u8() {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return dot_u8_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return dot_u8_avx2;
#endif
  return dot_u8_plain;
}
const DotU8 dot_u8 = pick_dot_u8();

// Scores of q against n rows x[n, d].
RDM_SIMD_CLONES void dots_f32(const float* q, const float* x, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float s = 0;
    const float* r = x + i * d;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += q[j] * r[j];
    out[i] = s;
  }
}

const faiss::IndexIVFScalarQuantizer* as_sq8(const faiss::IndexIVF* ivf) {
  auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ivf);
  return sq && sq->sq.qtype == faiss::ScalarQuantizer::QT_8bit ? sq : nullptr;
}

using Hit = std::pair<float, int64_t>;
// Min-heap on score (ties: larger id first out), so the k best stay.
struct Worse {
  bool operator()(const Hit& a, const Hit& b) const {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
};

void search_one(const faiss::IndexIVF& ivf, const float* q, int64_t k, float* scores, int64_t* ids,
                std::vector<float>& buf) {
  const int64_t d = ivf.d, nlist = static_cast<int64_t>(ivf.nlist);
  const int64_t nprobe = std::clamp<int64_t>(static_cast<int64_t>(ivf.nprobe), 1, nlist);
  auto* quant = static_cast<const faiss::IndexFlat*>(ivf.quantizer);
  buf.resize(static_cast<size_t>(std::max<int64_t>(nlist, d)));
  dots_f32(q, quant->get_xb(), nlist, d, buf.data());
  std::vector<Hit> lists(static_cast<size_t>(nlist));
  for (int64_t l = 0; l < nlist; ++l) lists[l] = {buf[l], l};
  std::partial_sort(lists.begin(), lists.begin() + nprobe, lists.end(), Worse());

  const faiss::IndexIVFScalarQuantizer* sq = as_sq8(&ivf);
  std::vector<float> qs(static_cast<size_t>(d));
  float base = 0;
  if (sq) {  // x_j ~ vmin_j + (c_j + 0.5) / 255 * vdiff_j: <q, x> = base + sum qs_j c_j
    const float* vmin = sq->sq.trained.data();
    const float* vdiff = vmin + d;
    for (int64_t j = 0; j < d; ++j) {
      qs[j] = q[j] * vdiff[j] / 255.0f;
      base += q[j] * (vmin[j] + 0.5f * vdiff[j] / 255.0f);
    }
  }
  std::priority_queue<Hit, std::vector<Hit>, Worse> heap;
  auto push = [&](float s, int64_t id) {
    if (static_cast<int64_t>(heap.size()) < k) heap.emplace(s, id);
    else if (Worse()(Hit{s, id}, heap.top())) {
      heap.pop();
      heap.emplace(s, id);
    }
  };
  const faiss::InvertedLists* il = ivf.invlists;
  for (int64_t p = 0; p < nprobe; ++p) {
    const auto [coarse, l] = lists[p];
    const int64_t n = static_cast<int64_t>(il->list_size(l));
    if (n == 0) continue;
    faiss::InvertedLists::ScopedCodes codes(il, l);
    faiss::InvertedLists::ScopedIds lid(il, l);
    if (sq) {
      const float add = base + (sq->by_residual ? coarse : 0.f);
      const size_t cs = sq->code_size;
      for (int64_t i = 0; i < n; ++i) push(add + dot_u8(qs.data(), codes.get() + i * cs, d), lid.get()[i]);
    } else {
      const float* x = reinterpret_cast<const float*>(codes.get());
      for (int64_t i = 0; i < n; ++i) push(dot_f32(q, x + i * d, d), lid.get()[i]);
    }
  }
  for (int64_t j = static_cast<int64_t>(heap.size()); j < k; ++j) {
    scores[j] = -std::numeric_limits<float>::infinity();
    ids[j] = -1;
  }
  for (int64_t j = static_cast<int64_t>(heap.size()) - 1; j >= 0; --j) {
    scores[j] = heap.top().first;
    ids[j] = heap.top().second;
    heap.pop();
  }
}

}  // namespace

float simd_dot(const float* a, const float* b, int64_t d) { return dot_f32(a, b, d); }

bool ivf_fast_supported(const faiss::Index& index) {
  auto* ivf = dynamic_cast<const faiss::IndexIVF*>(&index);
  if (!ivf || ivf->metric_type != faiss::METRIC_INNER_PRODUCT || !ivf->invlists) return false;
  auto* quant = dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer);
  if (!quant || quant->metric_type != faiss::METRIC_INNER_PRODUCT) return false;
  return dynamic_cast<const faiss::IndexIVFFlat*>(ivf) != nullptr || as_sq8(ivf) != nullptr;
}

void ivf_search_fast(const faiss::Index& index, const float* q, int64_t nq, int64_t k, float* scores,
                     int64_t* ids) {
  auto& ivf = static_cast<const faiss::IndexIVF&>(index);
  const int64_t d = ivf.d;
  if (nq == 1) {  // one query: no OpenMP region (FAISS's would spin the other core)
    std::vector<float> buf;
    search_one(ivf, q, k, scores, ids, buf);
    return;
  }
#pragma omp parallel
  {
    std::vector<float> buf;
#pragma omp for schedule(dynamic, 4)
    for (int64_t r = 0; r < nq; ++r) search_one(ivf, q + r * d, k, scores + r * k, ids + r * k, buf);
  }
}

}  // namespace rdm::retrieval
