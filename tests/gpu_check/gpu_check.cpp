// rdm_gpu_check: the timing part of scripts/gpu-check.sh. Builds the latent-diffusion networks of
// a config (default models/rdm-768.yaml) with random weights on a device and measures, per
// precision: one UNet step (guidance batch 2), one decode, one full DDIM image (guided UNet +
// decode) and images/s at a batch; plus the error against fp32 of the UNet step and the peak
// device memory (CUDA builds). Prints one JSON object on stdout, progress on stderr.
//   rdm_gpu_check --device cuda --precisions fp16,bf16 --steps 50 --batch 8
#include <torch/torch.h>

#if RDM_GPU_MEM_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "rdm/ldm/attention.hpp"
#include "rdm/ldm/autoencoder.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/runtime/runtime.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/guidance.hpp"
#include "rdm/sampler/schedule.hpp"
#include "rdm/ldm/unet.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string config = "models/rdm-768.yaml", device = "cuda", precisions = "fp16,bf16";
  int64_t size = 768, steps = 50, batch = 8, context = 20, repeat = 3;
  bool channels_last = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--config") a.config = val();
    else if (k == "--device") a.device = val();
    else if (k == "--precisions") a.precisions = val();
    else if (k == "--size") a.size = std::stoll(val());
    else if (k == "--steps") a.steps = std::stoll(val());
    else if (k == "--batch") a.batch = std::stoll(val());
    else if (k == "--repeat") a.repeat = std::stoll(val());
    else if (k == "--channels-last") a.channels_last = true;
    else throw std::runtime_error("unknown option " + k);
  }
  return a;
}

torch::Dtype dtype_of(const std::string& p) {
  if (p == "fp32") return torch::kFloat32;
  if (p == "fp16") return torch::kFloat16;
  if (p == "bf16") return torch::kBFloat16;
  throw std::runtime_error("precision " + p + " is not fp32, fp16 or bf16");
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

void reset_peak(const torch::Device& d) {
#if RDM_GPU_MEM_STATS
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
#endif
}

// Peak bytes allocated on the device since reset_peak, in MiB (-1 when not measured).
double peak_mib(const torch::Device& d) {
#if RDM_GPU_MEM_STATS
  if (d.is_cuda()) {
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index());
    return static_cast<double>(s.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  return -1;
}

// Median seconds of `repeat` runs after one warm-up.
template <class Fn>
double time_it(const torch::Device& d, int64_t repeat, Fn&& fn) {
  fn();
  sync(d);
  std::vector<double> t;
  for (int64_t i = 0; i < repeat; ++i) {
    auto t0 = Clock::now();
    fn();
    sync(d);
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void progress(const std::string& s) { std::cerr << "[gpu_check] " << s << std::endl; }

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  const torch::Device dev(a.device);
  const rdm::ldm::LdmConfig cfg = rdm::ldm::LdmConfig::from_file(a.config);
  rdm::set_channels_last(a.channels_last);
  c10::InferenceMode guard;
  torch::manual_seed(0);
  const int64_t f = cfg.downsample_factor(), side = a.size / f, C = cfg.unet.in_channels, D = cfg.context_dim();
  rdm::ldm::UNetModel unet(cfg.unet);
  rdm::ldm::AutoencoderKL ae(cfg.first_stage, /*with_encoder=*/false);
  unet->eval();
  ae->eval();
  const auto x = torch::randn({2, C, side, side});
  const auto t = torch::tensor({981, 981}, torch::kInt64);
  const auto ctx = torch::randn({2, a.context, D});
  const auto z = torch::randn({1, cfg.first_stage.embed_dim, side, side});
  const rdm::sampler::Schedule sched = rdm::sampler::Schedule::make(cfg.schedule);
  nlohmann::json out = {{"config", a.config}, {"device", dev.str()}, {"size", a.size}, {"steps", a.steps},
                        {"batch", a.batch}, {"libtorch", TORCH_VERSION}, {"channels_last", a.channels_last},
                        {"attention", rdm::ldm::attention_kernel() == rdm::ldm::AttentionKernel::Explicit ? "explicit" : "auto (fused where available)"}};
  torch::Tensor ref_eps;
  {  // fp32 reference of the UNet step (also the fp32 timing)
    unet->to(dev, torch::kFloat32);
    progress("fp32 UNet step");
    ref_eps = unet->forward(x.to(dev), t.to(dev), ctx.to(dev)).to(torch::kCPU, torch::kFloat32);
    out["fp32"]["unet_step_s"] = time_it(dev, a.repeat, [&] { unet->forward(x.to(dev), t.to(dev), ctx.to(dev)); });
  }
  std::stringstream ps(a.precisions);
  for (std::string p; std::getline(ps, p, ',');) {
    const torch::Dtype dt = dtype_of(p);
    nlohmann::json r;
    unet->to(dev, dt);
    ae->to(dev, dt);
    reset_peak(dev);
    progress(p + ": UNet step (batch 2)");
    const auto xd = x.to(dev, dt), td = t.to(dev), cd = ctx.to(dev, dt);
    const auto eps = unet->forward(xd, td, cd).to(torch::kCPU, torch::kFloat32);
    r["unet_finite"] = bool(torch::isfinite(eps).all().item<bool>());
    r["unet_max_abs_err_vs_fp32"] = (eps - ref_eps).abs().max().item<double>();
    r["unet_max_abs_fp32"] = ref_eps.abs().max().item<double>();
    r["unet_step_s"] = time_it(dev, a.repeat, [&] { unet->forward(xd, td, cd); });
    progress(p + ": decode");
    const auto zd = (z.to(dev, dt) * (1.0 / cfg.scale_factor)).to(dt);
    const auto img = ae->decode(zd).to(torch::kCPU, torch::kFloat32);
    r["decode_finite"] = bool(torch::isfinite(img).all().item<bool>());
    r["decode_s"] = time_it(dev, a.repeat, [&] { ae->decode(zd); });
    auto sample = [&](int64_t b) {
      rdm::sampler::ModelFn model = [&](const torch::Tensor& xx, const torch::Tensor& tt, const torch::Tensor& cc) {
        return unet->forward(xx.to(dt), tt, cc).to(torch::kFloat32);
      };
      const auto c = torch::randn({b, a.context, D}).to(dev, dt);
      rdm::sampler::SamplerOptions o;
      o.steps = a.steps;
      auto zz = rdm::sampler::ddim_sample(rdm::sampler::classifier_free_guidance(model, c, torch::zeros_like(c), 5.0),
                                 torch::randn({b, C, side, side}).to(dev), sched, o, {});
      for (int64_t i = 0; i < b; ++i) ae->decode((zz.slice(0, i, i + 1) * (1.0 / cfg.scale_factor)).to(dt));
      sync(dev);
    };
    progress(p + ": one full image (" + std::to_string(a.steps) + " steps + decode)");
    r["image_s"] = time_it(dev, 1, [&] { sample(1); });
    progress(p + ": batch of " + std::to_string(a.batch));
    const double tb = time_it(dev, 1, [&] { sample(a.batch); });
    r["batch_s"] = tb;
    r["images_per_s"] = static_cast<double>(a.batch) / tb;
    r["peak_mib"] = peak_mib(dev);
    out[p] = r;
    progress(p + ": " + r.dump());
  }
  std::cout << out.dump(2) << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "rdm_gpu_check: " << e.what() << std::endl;
  return 1;
}
