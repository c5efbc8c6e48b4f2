// scaled_attention never reads the garbage of its score buffer: LibTorch 1.13's CPU baddbmm_
// kernel for small products computes dst * beta + alpha * acc even when beta = 0, so NaN/inf
// left in an `at::empty` buffer used to survive into the attention output.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "rdm/ldm/attention.hpp"

namespace {

struct KernelGuard {
  rdm::ldm::AttentionKernel saved = rdm::ldm::attention_kernel();
  explicit KernelGuard(rdm::ldm::AttentionKernel k) { rdm::ldm::set_attention_kernel(k); }
  ~KernelGuard() { rdm::ldm::set_attention_kernel(saved); }
};

torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  auto sim = torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(1, 2)) * scale;
  return torch::matmul(sim.softmax(-1), v.to(torch::kFloat64)).to(torch::kFloat32);
}

struct Shape {
  int64_t bh, n, m, d;
};

void check_shapes_with_poisoned_scratch(rdm::ldm::AttentionKernel kernel, float poison) {
  KernelGuard guard(kernel);
  const Shape shapes[] = {{2, 24, 1, 8}, {4, 3, 5, 2}, {1, 1, 1, 1}, {3, 16, 7, 4}, {8, 24, 77, 8}, {2, 300, 300, 32}};
  torch::manual_seed(3);
  for (const Shape& s : shapes) {
    auto q = torch::randn({s.bh, s.n, s.d}), k = torch::randn({s.bh, s.m, s.d}), v = torch::randn({s.bh, s.m, s.d});
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
    // A scratch buffer as large as the whole score tensor, full of poison.
    torch::Tensor scratch = torch::full({s.bh * s.n * s.m}, poison);
    for (int64_t slice : {int64_t(0), int64_t(1)}) {  // default slices, and one head per slice
      torch::Tensor got = rdm::ldm::scaled_attention(q, k, v, scale, slice, &scratch);
      ASSERT_TRUE(torch::isfinite(got).all().item<bool>())
          << "bh " << s.bh << " n " << s.n << " m " << s.m << " d " << s.d << " slice " << slice;
      EXPECT_TRUE(torch::allclose(got, reference(q, k, v, scale), 1e-4, 1e-5))
          << "bh " << s.bh << " n " << s.n << " m " << s.m << " d " << s.d;
      scratch.fill_(poison);
    }
  }
}

TEST(AttentionUninit, ExplicitKernelIgnoresNaNInScratch) {
  check_shapes_with_poisoned_scratch(rdm::ldm::AttentionKernel::Explicit, std::numeric_limits<float>::quiet_NaN());
}

TEST(AttentionUninit, ExplicitKernelIgnoresInfInScratch) {
  check_shapes_with_poisoned_scratch(rdm::ldm::AttentionKernel::Explicit, std::numeric_limits<float>::infinity());
}

TEST(AttentionUninit, AutoKernelIgnoresNaNInScratch) {
  // Auto: the fused kernel where LibTorch >= 2 has one, else the explicit path.
  check_shapes_with_poisoned_scratch(rdm::ldm::AttentionKernel::Auto, std::numeric_limits<float>::quiet_NaN());
}

TEST(AttentionUninit, FiniteScratchGivesTheSameBitsAsAFreshBuffer) {
  KernelGuard guard(rdm::ldm::AttentionKernel::Explicit);
  torch::manual_seed(5);
  for (const Shape& s : {Shape{2, 24, 1, 8}, Shape{4, 64, 20, 16}}) {
    auto q = torch::randn({s.bh, s.n, s.d}), k = torch::randn({s.bh, s.m, s.d}), v = torch::randn({s.bh, s.m, s.d});
    torch::Tensor scratch = torch::randn({s.bh * s.n * s.m}) * 1e6;
    auto a = rdm::ldm::scaled_attention(q, k, v, 0.25, 0);
    auto b = rdm::ldm::scaled_attention(q, k, v, 0.25, 0, &scratch);
    EXPECT_TRUE(torch::equal(a, b));
  }
}

}  // namespace
