// A faster search for the IVF indexes `--index auto` makes (IVF-Flat and IVF-SQ8 with a flat
// inner-product quantizer). Debian's FAISS is built for baseline x86-64, so its list scans run
// the scalar reference kernels (about 1 ns per dimension), and its OpenMP regions spin on the
// idle core for one query. These kernels are compiled for AVX-512 / AVX2 / baseline and picked
// at run time (GCC target_clones); the results are the same top-k FAISS computes (same lists,
// same codes, same decoding), up to float rounding.
#pragma once
#include <cstdint>

namespace faiss {
struct Index;
}

namespace rdm::retrieval {

// <a, b> over d floats with the widest vector unit of this CPU.
float simd_dot(const float* a, const float* b, int64_t d);

// True when `index` is of a kind handled here (then ivf_search_fast answers its searches).
bool ivf_fast_supported(const faiss::Index& index);
// Top-k by inner product of q[nq, d] (scores/ids [nq, k], id -1 when fewer exist), probing the
// index's nprobe lists. Only for indexes ivf_fast_supported accepts.
void ivf_search_fast(const faiss::Index& index, const float* q, int64_t nq, int64_t k, float* scores,
                     int64_t* ids);

}  // namespace rdm::retrieval
