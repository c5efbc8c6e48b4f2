// GPU tests (label gpu): the CUDA code paths of the sampler, UNet and decoder on a tiny random
// latent-diffusion model: every output on the device, finite fp16/bf16 outputs close to fp32,
// batch invariance on CUDA, and no host-device synchronisation inside the sampling loop
// (CUDA sync debug mode set to error). Each test skips with a reason where no GPU is present.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#if RDM_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <filesystem>
#include <fstream>

#include "rdm/ldm/autoencoder.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/guidance.hpp"
#include "rdm/sampler/schedule.hpp"
#include "rdm/ldm/unet.hpp"

namespace fs = std::filesystem;

namespace {

#define SKIP_WITHOUT_CUDA()                                                                      \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (this LibTorch build or machine has no GPU)"

// The golden sets' tiny RDM (UNet 32 channels, cross-attention over 32-wide context, KL f4).
const char* kTinyConfig = R"({"model": {"target": "ldm.models.diffusion.ddpm.LatentDiffusion", "params": {
  "linear_start": 0.0015, "linear_end": 0.015, "timesteps": 1000, "image_size": 8, "channels": 16,
  "conditioning_key": "crossattn", "scale_factor": 0.22765929,
  "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": {
    "image_size": 8, "in_channels": 16, "out_channels": 16, "model_channels": 32, "attention_resolutions": [1],
    "num_res_blocks": 1, "channel_mult": [1, 2], "num_head_channels": 8, "use_spatial_transformer": true,
    "transformer_depth": 1, "context_dim": 32}},
  "first_stage_config": {"target": "ldm.models.autoencoder.AutoencoderKL", "params": {"embed_dim": 16,
    "ddconfig": {"double_z": true, "z_channels": 16, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
      "ch_mult": [1, 1, 2], "num_res_blocks": 2, "attn_resolutions": [8], "dropout": 0.0}}},
  "cond_stage_config": {"target": "torch.nn.Identity"}}}})";

struct Tiny {
  rdm::ldm::LdmConfig cfg;
  rdm::ldm::UNetModel unet{nullptr};
  rdm::ldm::AutoencoderKL ae{nullptr};
  rdm::sampler::Schedule sched;
};

Tiny& tiny() {
  static Tiny t = [] {
    const fs::path p = fs::temp_directory_path() / ("rdm_gpu_tiny_" + std::to_string(::getpid()) + ".json");
    std::ofstream(p) << kTinyConfig;
    Tiny x;
    x.cfg = rdm::ldm::LdmConfig::from_file(p);
    fs::remove(p);
    torch::manual_seed(0);
    torch::NoGradGuard ng;
    x.unet = rdm::ldm::UNetModel(x.cfg.unet);
    x.ae = rdm::ldm::AutoencoderKL(x.cfg.first_stage, /*with_encoder=*/false);
    x.unet->eval();
    x.ae->eval();
    x.sched = rdm::sampler::Schedule::make(x.cfg.schedule);
    return x;
  }();
  return t;
}

// DDIM over the guided UNet for latents x_T (fp32, on the device), in dtype `dt`.
torch::Tensor sample(const torch::Tensor& x_T, const torch::Tensor& ctx, torch::Dtype dt, int64_t steps = 5) {
  Tiny& t = tiny();
  rdm::sampler::ModelFn model = [&](const torch::Tensor& x, const torch::Tensor& ts, const torch::Tensor& c) {
    return t.unet->forward(x.to(dt), ts, c).to(torch::kFloat32);
  };
  rdm::sampler::SamplerOptions o;
  o.steps = steps;
  const auto c = ctx.to(x_T.device(), dt);
  return rdm::sampler::ddim_sample(rdm::sampler::classifier_free_guidance(model, c, torch::zeros_like(c), 5.0), x_T, t.sched, o, {});
}

}  // namespace

TEST(CudaPaths, OutputsStayOnTheDevice) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode guard;
  Tiny& t = tiny();
  const torch::Device dev(torch::kCUDA, 0);
  t.unet->to(dev, torch::kFloat32);
  t.ae->to(dev, torch::kFloat32);
  const auto x = torch::randn({2, 16, 8, 8}).to(dev);
  const auto eps = t.unet->forward(x, torch::tensor({981, 1}, torch::kInt64).to(dev), torch::randn({2, 5, 32}).to(dev));
  EXPECT_TRUE(eps.device().is_cuda());
  const auto z = sample(x, torch::randn({2, 5, 32}), torch::kFloat32);
  EXPECT_TRUE(z.device().is_cuda());
  EXPECT_EQ(z.scalar_type(), torch::kFloat32);
  const auto img = t.ae->decode(z);
  EXPECT_TRUE(img.device().is_cuda());
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
}

TEST(CudaPaths, HalfPrecisionIsFiniteAndCloseToFp32) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode guard;
  Tiny& t = tiny();
  const torch::Device dev(torch::kCUDA, 0);
  torch::manual_seed(3);
  const auto x = torch::randn({2, 16, 8, 8}).to(dev);
  const auto ctx = torch::randn({2, 5, 32});
  t.unet->to(dev, torch::kFloat32);
  t.ae->to(dev, torch::kFloat32);
  const auto ref = t.ae->decode(sample(x, ctx, torch::kFloat32)).cpu();
  for (auto dt : {torch::kFloat16, torch::kBFloat16}) {
    t.unet->to(dev, dt);
    t.ae->to(dev, dt);
    const auto img = t.ae->decode(sample(x, ctx, dt).to(dt)).to(torch::kFloat32).cpu();
    EXPECT_TRUE(torch::isfinite(img).all().item<bool>()) << c10::toString(dt);
    const double err = (img - ref).abs().max().item<double>(), scale = ref.abs().max().item<double>();
    std::cout << c10::toString(dt) << ": max |image - fp32| = " << err << " (max |fp32| " << scale << ")\n";
    EXPECT_LT(err, 0.1 * scale + 0.05) << c10::toString(dt);
  }
  t.unet->to(dev, torch::kFloat32);
  t.ae->to(dev, torch::kFloat32);
}

TEST(CudaPaths, ImageDoesNotDependOnTheBatch) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode guard;
  Tiny& t = tiny();
  const torch::Device dev(torch::kCUDA, 0);
  t.unet->to(dev, torch::kFloat32);
  torch::manual_seed(5);
  const auto x4 = torch::randn({4, 16, 8, 8});
  const auto c4 = torch::randn({4, 5, 32});
  const auto z4 = sample(x4.to(dev), c4, torch::kFloat32).cpu();
  for (int64_t i : {0, 2}) {
    const auto z1 = sample(x4.slice(0, i, i + 1).to(dev), c4.slice(0, i, i + 1), torch::kFloat32).cpu();
    const double d = (z1 - z4.slice(0, i, i + 1)).abs().max().item<double>();
    std::cout << "image " << i << ": max |batch 1 - batch 4| = " << d << "\n";
    // cuDNN/cuBLAS may pick other kernels per batch size (TF32 convolutions by default): the
    // same image within float tolerance, not bit for bit.
    EXPECT_LT(d, 1e-2) << "image " << i;
  }
}

TEST(CudaPaths, NoHostSyncInsideTheSamplingLoop) {
  SKIP_WITHOUT_CUDA();
#if RDM_WITH_CUDA
  c10::InferenceMode guard;
  Tiny& t = tiny();
  const torch::Device dev(torch::kCUDA, 0);
  t.unet->to(dev, torch::kFloat16);
  const auto x = torch::randn({2, 16, 8, 8}).to(dev);
  const auto c = torch::randn({2, 5, 32}).to(dev, torch::kFloat16);
  sample(x, c, torch::kFloat16, 2);  // warm-up: one-time copies (timestep frequencies) happen here
  torch::cuda::synchronize();
  auto& ws = c10::cuda::warning_state();
  const auto before = ws.get_sync_debug_mode();
  ws.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  torch::Tensor z;
  try {
    z = sample(x, c, torch::kFloat16, 5);
  } catch (const std::exception& e) {
    ws.set_sync_debug_mode(before);
    FAIL() << "host-device synchronisation inside the sampling loop: " << e.what();
  }
  ws.set_sync_debug_mode(before);
  EXPECT_TRUE(z.device().is_cuda());
  t.unet->to(dev, torch::kFloat32);
#else
  GTEST_SKIP() << "this LibTorch build has no CUDA headers (sync debug mode)";
#endif
}
