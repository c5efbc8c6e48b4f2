// Port of ldm/modules/attention.py (CompVis latent-diffusion): GEGLU, FeedForward,
// CrossAttention, BasicTransformerBlock, SpatialTransformer.
//
// Registered names equal the Python attribute names, so `named_parameters()` equals the
// reference state-dict keys (e.g. "transformer_blocks.0.attn2.to_k.weight").
// Norm constants stay local to this port: SpatialTransformer.norm is GroupNorm(32, eps 1e-6),
// the block's LayerNorms use eps 1e-5; attention scale = head_width^-0.5; GEGLU = x * gelu(gate)
// with the exact (erf) GELU, x being the first half of the projection.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "rdm/ldm/conv.hpp"

namespace rdm::ldm {

// Optional capture of intermediate outputs, keyed by the module path of the reference module
// tree ("input_blocks.1.1.transformer_blocks.0.attn1"). Filled only when non-null.
using Capture = std::map<std::string, torch::Tensor>;

// Implementation choice for the attention core; all give the reference result to float
// precision. Auto = fused kernel where the LibTorch build has one (>= 2.0), else Explicit.
enum class AttentionKernel { Auto, Explicit, Fused };
// Process-wide setting (default Auto; the RDM_ATTENTION env variable "explicit"/"fused"
// overrides the default at start-up).
void set_attention_kernel(AttentionKernel k);
AttentionKernel attention_kernel();

// softmax(q k^T * scale) v for q [BH, N, d], k/v [BH, M, d]. Splits the BH axis into slices so
// that the score matrix of one slice stays below `slice_bytes` (0: 16 MB; reuses heap memory and
// stays in cache, where the reference materialises all heads at once: 594 MB at the RDM's 48x48
// level, batch 2).
// `scratch` (tests): a buffer to hold the score slices instead of a fresh one; its contents are
// never read (the GEMM's destination is cleared where LibTorch's kernel would read it).
torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double scale, int64_t slice_bytes = 0, torch::Tensor* scratch = nullptr);

struct GEGLUImpl : torch::nn::Module {
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

// FeedForward(dim, glu=True, mult=4) as BasicTransformerBlock builds it: net = [GEGLU, Dropout,
// Linear(4*dim, dim)]; glu=false gives net = [[Linear, GELU], Dropout, Linear].
struct FeedForwardImpl : torch::nn::Module {
  FeedForwardImpl(int64_t dim, int64_t dim_out = -1, int64_t mult = 4, bool glu = false);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential net{nullptr};

 private:
  bool glu_;
  GEGLU geglu_{nullptr};
  torch::nn::Linear in_{nullptr}, out_{nullptr};
};
TORCH_MODULE(FeedForward);

struct CrossAttentionImpl : torch::nn::Module {
  // context_dim <= 0: same as query_dim (self-attention).
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head);
  // context undefined: self-attention over x.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::Sequential to_out{nullptr};  // [Linear(inner, query_dim), Dropout]

  int64_t heads() const { return heads_; }
  int64_t dim_head() const { return dim_head_; }

 private:
  int64_t heads_, dim_head_;
  double scale_;
  torch::nn::Linear out_proj_{nullptr};
};
TORCH_MODULE(CrossAttention);

struct BasicTransformerBlockImpl : torch::nn::Module {
  BasicTransformerBlockImpl(int64_t dim, int64_t n_heads, int64_t d_head, int64_t context_dim,
                            std::string path = "");
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, Capture* capture = nullptr);
  CrossAttention attn1{nullptr};
  FeedForward ff{nullptr};
  CrossAttention attn2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};

 private:
  std::string path_;
};
TORCH_MODULE(BasicTransformerBlock);

struct SpatialTransformerImpl : torch::nn::Module {
  SpatialTransformerImpl(int64_t in_channels, int64_t n_heads, int64_t d_head, int64_t depth,
                         int64_t context_dim, std::string path = "");
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, Capture* capture = nullptr);
  torch::nn::GroupNorm norm{nullptr};
  Conv2d proj_in{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};
  Conv2d proj_out{nullptr};

 private:
  std::string path_;
  std::vector<BasicTransformerBlock> blocks_;  // typed view of transformer_blocks
};
TORCH_MODULE(SpatialTransformer);

}  // namespace rdm::ldm
