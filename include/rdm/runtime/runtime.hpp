// Process-wide runtime settings for inference on the CPU.
#pragma once

#include <string>

namespace rdm {

// Keeps large tensor buffers in the process heap instead of one mmap/munmap per tensor.
//
// With glibc's defaults every allocation above the mmap threshold (at most 32 MB) is a fresh
// mapping, so each full-resolution activation of a UNet step or a 768x768 decode (up to 300 MB)
// is page-faulted and zero-filled by the kernel on first touch and unmapped again when freed:
// element-wise ops and GroupNorm then run at page-fault speed. Serving those buffers from the
// heap (M_MMAP_MAX = 0) and not trimming it after every free (M_TRIM_THRESHOLD) makes them
// reusable, which roughly halves a UNet step and quarters a decode on CPU, with identical
// numbers. The cost: freed memory stays with the process until it exits (the peak RSS is the
// same, what is kept is what was already used).
//
// Applied once; RDM_MALLOC=system leaves the C library's defaults. Returns a one-line
// description of what was done (for logs and benchmark reports).
std::string configure_cpu_allocator();

// Gives the heap's free pages back to the system (glibc malloc_trim) between phases that use
// differently sized buffers (UNet steps, then a full-resolution decode), so that memory freed by
// one phase does not stay resident beside the next one's. No-op elsewhere.
void release_free_memory();

// While alive: OpenBLAS (Debian's pthreads build) runs single-threaded, so that ATen's (or
// FAISS's) OpenMP pool is the one thread pool. OpenBLAS keeps a pool of its own whose threads
// spin after each GEMM and then compete for the same cores with the OpenMP threads of the next
// element-wise op, or run inside OpenMP regions (FAISS). Measured on 2 cores (AMD EPYC): a step of
// `rdm train rdm` (batch 32) 0.437 s -> 0.196 s; `rdm train autoencoder` and `rdm train clip`
// side by side (one thread each) 0.750 / 0.576 -> 0.525 / 0.531 s per step; same numbers
// (OpenBLAS splits a GEMM across threads, not its sums). Nestable; no-op without OpenBLAS.
class SingleThreadBlas {
 public:
  SingleThreadBlas();
  ~SingleThreadBlas();
  SingleThreadBlas(const SingleThreadBlas&) = delete;
  SingleThreadBlas& operator=(const SingleThreadBlas&) = delete;

 private:
  int saved_ = 0;
};


// Memory layout of the convolutional networks' activations (UNet, autoencoder): NCHW, the
// reference's, by default. RDM_CHANNELS_LAST=1 (or set_channels_last(true)) converts inputs to
// channels-last (NHWC) on entry and outputs back to contiguous NCHW; the numbers then differ
// from the NCHW path by the summation order inside the convolutions. Measured at the real 768
// config on 2 CPU cores (bench_ldm): UNet step 12.3 s vs 13.4 s NCHW, but the 768x768 decode
// slower (14.6 s vs 12.1 s) and the golden errors about twice as large, so it stays opt-in.
void set_channels_last(bool on);
bool channels_last();

}  // namespace rdm
