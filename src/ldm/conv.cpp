// Conv2d with a weight reordered once for oneDNN (see include/rdm/ldm/conv.hpp).
#include "rdm/ldm/conv.hpp"

#include <variant>

#include <ATen/Context.h>
#include <torch/torch.h>

#include "rdm/runtime/device.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm::ldm {

namespace {
// The padding as numbers, or null for "same"/"valid". The options' variant is c10::variant in
// LibTorch 1.x and std::variant in 2.x: std::get_if found by ordinary lookup, c10's by ADL.
const torch::ExpandingArray<2>* explicit_padding(const torch::nn::detail::ConvNdOptions<2>& o) {
  using std::get_if;
  return get_if<torch::ExpandingArray<2>>(&o.padding());
}
}  // namespace

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
  if (!packed_.defined()) return torch::nn::Conv2dImpl::forward(x);
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == packed_.scalar_type(),
              "Conv2d: a weight packed for the CPU in ", packed_.scalar_type(), " got a ", x.scalar_type(),
              " input on ", x.device());
  const auto& pad = *explicit_padding(options);  // checked by pack_for_inference
  return at::mkldnn_convolution(x, packed_, bias.defined() ? bias : torch::Tensor(), *pad, *options.stride(),
                                *options.dilation(), options.groups());
}

bool Conv2dImpl::pack_for_inference() {
  if (packed_.defined()) return true;
  if (!at::hasMKLDNN() || !weight.defined() || !weight.device().is_cpu()) return false;
  // oneDNN's bf16 convolution needs AVX512 (LibTorch otherwise takes its own slow kernel).
  const auto dt = weight.scalar_type();
  if (dt != torch::kFloat32 && !(dt == torch::kBFloat16 && cpu_has_native_bf16())) return false;
  if (torch::enumtype::get_enum_name(options.padding_mode()) != "kZeros") return false;
  const auto* pad = explicit_padding(options);
  if (!pad || options.transposed()) return false;
  torch::NoGradGuard no_grad;
  // The dense weight goes before the packed one is made, so that the packed copy can take its
  // place in the heap (packing a whole model then costs one weight's memory, not the model's).
  torch::Tensor plain = weight.contiguous().to_mkldnn();
  weight.set_data(torch::empty({0}, weight.options()));
  packed_ = at::mkldnn_reorder_conv2d_weight(plain, **pad, *options.stride(), *options.dilation(), options.groups());
  return true;
}

void Conv2dImpl::unpack() {
  if (!packed_.defined()) return;
  torch::NoGradGuard no_grad;
  weight.set_data(packed_.to_dense());
  packed_ = torch::Tensor();
}

int64_t pack_convolutions_for_inference(torch::nn::Module& module) {
  // The packed copies do not reliably land in the holes the dense weights leave in the heap, so
  // the free pages are given back as packing goes (else a model's convolution weights would be
  // resident twice at the peak: +4 GB at the 768 configuration).
  constexpr int64_t kTrimEvery = int64_t(256) << 20;
  int64_t n = 0, since_trim = 0;
  for (const auto& m : module.modules(/*include_self=*/true))
    if (auto* c = dynamic_cast<Conv2dImpl*>(m.get())) {
      const int64_t bytes = c->weight.numel() * c->weight.element_size();
      if (!c->packed() && c->pack_for_inference()) {
        ++n;
        if ((since_trim += bytes) >= kTrimEvery) {
          release_free_memory();
          since_trim = 0;
        }
      }
    }
  if (since_trim > 0) release_free_memory();
  return n;
}

void unpack_convolutions(torch::nn::Module& module) {
  for (const auto& m : module.modules(/*include_self=*/true))
    if (auto* c = dynamic_cast<Conv2dImpl*>(m.get())) c->unpack();
}

}  // namespace rdm::ldm
