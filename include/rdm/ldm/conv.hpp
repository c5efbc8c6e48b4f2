// Conv2d of the ported models: torch::nn::Conv2d (same parameters, same checkpoint keys) whose
// weight can be reordered once, for inference on the CPU, into oneDNN's blocked layout.
//
// LibTorch runs fp32/bf16 CPU convolutions through oneDNN (mkldnn_convolution). Given a dense
// weight, every call reorders it into the blocked layout first; at the UNet's low resolutions
// (1280 channels at 12x12 and 6x6) that reorder costs several times the convolution itself.
// `pack_for_inference` does it once; the results equal the dense weight's to float rounding
// (oneDNN may choose another kernel for the packed layout: max |difference| 4e-6 on one UNet
// step at the 768 configuration), and the dense weight is released so that memory does not double.
#pragma once
#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

namespace rdm::ldm {

class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x);
  // Reorders the weight for oneDNN when this build has it, the weight is on the CPU in fp32 (or
  // bf16 on a CPU with native bf16) and the options allow it (explicit zero padding); the
  // `weight` parameter is then an empty tensor and the packed copy is the weight. Returns whether
  // it packed. Not for training: forward with a packed weight records no gradient.
  bool pack_for_inference();
  // Back to the dense `weight` parameter (the same values), e.g. before `to(dtype)`.
  void unpack();
  bool packed() const { return packed_.defined(); }

 private:
  torch::Tensor packed_;
};
TORCH_MODULE(Conv2d);

// Packs every Conv2d in `module` (pack_for_inference); returns how many were packed.
int64_t pack_convolutions_for_inference(torch::nn::Module& module);
// Unpacks every packed Conv2d in `module`.
void unpack_convolutions(torch::nn::Module& module);

}  // namespace rdm::ldm
