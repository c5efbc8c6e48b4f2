// Port of ldm/modules/attention.py (CompVis latent-diffusion): GEGLU, FeedForward,
// CrossAttention, BasicTransformerBlock, SpatialTransformer. See include/rdm/attention.hpp.
#include "rdm/ldm/attention.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"

namespace rdm::ldm {

namespace F = torch::nn::functional;

namespace {
AttentionKernel kernel_from_env() {
  const char* e = std::getenv("RDM_ATTENTION");
  if (!e) return AttentionKernel::Auto;
  if (std::strcmp(e, "explicit") == 0) return AttentionKernel::Explicit;
  if (std::strcmp(e, "fused") == 0) return AttentionKernel::Fused;
  return AttentionKernel::Auto;
}
std::atomic<AttentionKernel>& kernel_setting() {
  static std::atomic<AttentionKernel> k{kernel_from_env()};
  return k;
}

inline void put(Capture* capture, const std::string& path, const std::string& name, const torch::Tensor& t) {
  if (capture) (*capture)[path.empty() ? name : path + "." + name] = t;
}

// Default bytes of one score-matrix slice: below glibc's largest mmap threshold (32 MB), so the
// buffers are reused from the heap instead of being mapped and faulted in at every call.
constexpr int64_t kSliceBytes = int64_t(16) << 20;
// Products (contraction x rows x cols) below this get their score slice cleared before the GEMM
// (far above LibTorch's small-kernel threshold of 400; the clearing costs little at this size).
constexpr int64_t kClearBelow = int64_t(1) << 16;

// FeedForward's `project_in` without GLU: Sequential(Linear, GELU) nested in `net` (a Sequential
// cannot hold a plain Sequential; this one has a concrete forward).
struct ProjectInImpl : torch::nn::SequentialImpl {
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(ProjectIn);
}  // namespace

void set_attention_kernel(AttentionKernel k) { kernel_setting().store(k); }
AttentionKernel attention_kernel() { return kernel_setting().load(); }

torch::Tensor scaled_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double scale, int64_t slice_bytes, torch::Tensor* scratch) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "scaled_attention: expected 3-d q, k, v");
  const AttentionKernel kind = attention_kernel();
  // Training (autograd recording): the same operations without the out= kernels and the reused
  // score buffer, which autograd cannot differentiate.
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()))
    return torch::bmm(torch::softmax(torch::bmm(q, k.transpose(1, 2)) * scale, -1), v);
#if TORCH_VERSION_MAJOR >= 2
  if (kind != AttentionKernel::Explicit) {
    // The fused kernel's default scale is 1/sqrt(head width), the value CrossAttention uses.
    const double def = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    if (std::abs(def - scale) <= 1e-12 * def) return at::scaled_dot_product_attention(q, k, v);
  }
#else
  if (kind == AttentionKernel::Fused)
    throw Unsupported("fused attention needs LibTorch >= 2.0 (this build has " TORCH_VERSION ")");
#endif
  // Explicit path, the reference's operations: sim = (q k^T) * scale (the scale applied to the
  // finished dot products, as alpha of the same GEMM); softmax over keys; sim v.
  const int64_t bh = q.size(0), n = q.size(1), m = k.size(1), d = q.size(2);
  if (slice_bytes <= 0) slice_bytes = kSliceBytes;
  const int64_t per = std::max<int64_t>(1, n * m * static_cast<int64_t>(q.element_size()));
  const int64_t step = std::clamp<int64_t>(slice_bytes / per, 1, bh);
  torch::Tensor out = at::empty({bh, n, v.size(2)}, q.options());
  torch::Tensor sim;
  if (scratch && scratch->defined() && scratch->numel() >= step * n * m && scratch->is_contiguous() &&
      scratch->options().dtype() == q.options().dtype() && scratch->device() == q.device())
    sim = scratch->flatten().narrow(0, 0, step * n * m).view({step, n, m});
  else
    sim = at::empty({step, n, m}, q.options());
  // baddbmm_ with beta = 0 still reads its destination in LibTorch's own small-product kernel
  // (contraction x rows x cols < 400 on the CPU in 1.13: dst * beta + alpha * acc, so a NaN or
  // inf left in the buffer survives). Clear the slice for such products; larger ones go to BLAS
  // GEMM, which never reads C when beta = 0. Zeroing first keeps the results bit-identical.
  const bool clear = d * n * m < kClearBelow;
  for (int64_t i = 0; i < bh; i += step) {
    const int64_t len = std::min(step, bh - i);
    torch::Tensor s = sim.narrow(0, 0, len);
    if (clear) s.zero_();
    s.baddbmm_(q.narrow(0, i, len), k.narrow(0, i, len).transpose(1, 2), /*beta=*/0.0, /*alpha=*/scale);
    torch::Tensor o = out.narrow(0, i, len);
    at::bmm_out(o, s.softmax(-1), v.narrow(0, i, len));
  }
  return out;
}

// ---------------------------------------------------------------------------
GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GEGLUImpl::forward(const torch::Tensor& x) {
  auto parts = proj->forward(x).chunk(2, -1);  // [x | gate]
  return parts[0] * at::gelu(parts[1]);        // exact (erf) GELU
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t dim_out, int64_t mult, bool glu) : glu_(glu) {
  const int64_t inner = dim * mult;
  if (dim_out <= 0) dim_out = dim;
  net = register_module("net", torch::nn::Sequential());
  if (glu) {
    geglu_ = GEGLU(dim, inner);
    net->push_back(geglu_);
  } else {
    in_ = torch::nn::Linear(dim, inner);
    net->push_back(ProjectIn(in_, torch::nn::GELU()));
  }
  net->push_back(torch::nn::Dropout(0.0));
  out_ = torch::nn::Linear(inner, dim_out);
  net->push_back(out_);
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = glu_ ? geglu_->forward(x) : at::gelu(in_->forward(x));
  return out_->forward(h);  // Dropout: identity at inference
}

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head)
    : heads_(heads), dim_head_(dim_head), scale_(std::pow(static_cast<double>(dim_head), -0.5)) {
  const int64_t inner = dim_head * heads;
  if (context_dim <= 0) context_dim = query_dim;
  to_q = register_module("to_q", torch::nn::Linear(torch::nn::LinearOptions(query_dim, inner).bias(false)));
  to_k = register_module("to_k", torch::nn::Linear(torch::nn::LinearOptions(context_dim, inner).bias(false)));
  to_v = register_module("to_v", torch::nn::Linear(torch::nn::LinearOptions(context_dim, inner).bias(false)));
  out_proj_ = torch::nn::Linear(inner, query_dim);
  to_out = register_module("to_out", torch::nn::Sequential(out_proj_, torch::nn::Dropout(0.0)));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const torch::Tensor& ctx = context.defined() ? context : x;
  const int64_t b = x.size(0), n = x.size(1), m = ctx.size(1), h = heads_, d = dim_head_;
  // 'b n (h d) -> (b h) n d'
  auto heads_first = [&](const torch::Tensor& t, int64_t len) {
    return t.view({b, len, h, d}).transpose(1, 2).reshape({b * h, len, d});
  };
  torch::Tensor q = heads_first(to_q->forward(x), n);
  torch::Tensor k = heads_first(to_k->forward(ctx), m);
  torch::Tensor v = heads_first(to_v->forward(ctx), m);
  torch::Tensor out = scaled_attention(q, k, v, scale_);
  // '(b h) n d -> b n (h d)'
  out = out.view({b, h, n, d}).transpose(1, 2).reshape({b, n, h * d});
  return out_proj_->forward(out);  // to_out.1 is Dropout
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t n_heads, int64_t d_head,
                                                     int64_t context_dim, std::string path)
    : path_(std::move(path)) {
  // Registration order = the reference's attribute order (attn1, ff, attn2, norm1..3).
  attn1 = register_module("attn1", CrossAttention(dim, -1, n_heads, d_head));
  ff = register_module("ff", FeedForward(dim, -1, 4, /*glu=*/true));
  attn2 = register_module("attn2", CrossAttention(dim, context_dim, n_heads, d_head));
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1 = register_module("norm1", ln());
  norm2 = register_module("norm2", ln());
  norm3 = register_module("norm3", ln());
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x0, const torch::Tensor& context,
                                                 Capture* capture) {
  torch::Tensor x = x0;
  if (!capture) {
    x = attn1->forward(norm1->forward(x)) + x;
    x = attn2->forward(norm2->forward(x), context) + x;
    x = ff->forward(norm3->forward(x)) + x;
    return x;
  }
  torch::Tensor t = norm1->forward(x);
  put(capture, path_, "norm1", t);
  t = attn1->forward(t);
  put(capture, path_, "attn1", t);
  x = t + x;
  t = norm2->forward(x);
  put(capture, path_, "norm2", t);
  t = attn2->forward(t, context);
  put(capture, path_, "attn2", t);
  x = t + x;
  t = norm3->forward(x);
  put(capture, path_, "norm3", t);
  t = ff->forward(t);
  put(capture, path_, "ff", t);
  x = t + x;
  if (!path_.empty()) (*capture)[path_] = x;
  return x;
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t in_channels, int64_t n_heads, int64_t d_head,
                                               int64_t depth, int64_t context_dim, std::string path)
    : path_(std::move(path)) {
  const int64_t inner = n_heads * d_head;
  norm = register_module("norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, in_channels).eps(1e-6)));
  proj_in = register_module("proj_in", Conv2d(torch::nn::Conv2dOptions(in_channels, inner, 1)));
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) {
    const std::string p = path_.empty() ? "" : path_ + ".transformer_blocks." + std::to_string(i);
    blocks_.push_back(BasicTransformerBlock(inner, n_heads, d_head, context_dim, p));
    transformer_blocks->push_back(blocks_.back());
  }
  proj_out = register_module("proj_out", Conv2d(torch::nn::Conv2dOptions(inner, in_channels, 1)));
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x_in, const torch::Tensor& context,
                                              Capture* capture) {
  const int64_t b = x_in.size(0), h = x_in.size(2), w = x_in.size(3);
  torch::Tensor x = norm->forward(x_in);  // GroupNorm(32, eps 1e-6), in the input dtype
  put(capture, path_, "norm", x);
  x = proj_in->forward(x);
  put(capture, path_, "proj_in", x);
  const int64_t c = x.size(1);
  x = x.permute({0, 2, 3, 1}).reshape({b, h * w, c});  // 'b c h w -> b (h w) c'
  for (auto& blk : blocks_) x = blk->forward(x, context, capture);
  x = x.view({b, h, w, c}).permute({0, 3, 1, 2});  // 'b (h w) c -> b c h w' (a view)
  x = proj_out->forward(x);
  put(capture, path_, "proj_out", x);
  x = x + x_in;
  return x;
}

}  // namespace rdm::ldm
