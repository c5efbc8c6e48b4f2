// Benchmarks of the latent-diffusion networks at the real RDM 768x768 configuration
// (models/rdm-768.yaml), random weights, CPU:
//   - one UNet step: latent 2x16x48x48 (batch 2 = classifier-free guidance), context 2x20x768;
//   - one KL-f16 decode of a 768x768 image (latent 1x16x48x48).
// Each is measured with 1 thread (the LibTorch default here, and the Python reference's) and
// with RDM_BENCH_THREADS threads (default 2), in fp32 and, as opt-in precision, bf16 (weights
// and activations; GroupNorm in fp32), whose max |error| vs fp32 is reported as a counter.
// The Python reference is timed by scripts/bench_reference_ldm.py on the same workloads.
//
//   ./build/bench_ldm --benchmark_filter=UNet --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "rdm/ldm/autoencoder.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/runtime/runtime.hpp"
#include "rdm/ldm/unet.hpp"

namespace fs = std::filesystem;

namespace {
fs::path config_path() {
  if (const char* p = std::getenv("RDM_BENCH_CONFIG")) return p;
  if (const char* d = std::getenv("RDM_SOURCE_DIR")) return fs::path(d) / "models" / "rdm-768.yaml";
  return fs::path(__FILE__).parent_path().parent_path() / "models" / "rdm-768.yaml";
}

int bench_threads() {
  const char* t = std::getenv("RDM_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

const rdm::ldm::LdmConfig& config() {
  static const rdm::ldm::LdmConfig c = rdm::ldm::LdmConfig::from_file(config_path());
  return c;
}

// Max |out - same computation in the NCHW layout| (fp32): what channels-last changes.
template <class Fn>
double err_vs_nchw(const torch::Tensor& out, Fn&& fn) {
  rdm::set_channels_last(false);
  torch::Tensor ref = fn();
  rdm::set_channels_last(true);
  return (out - ref).abs().max().item<double>();
}

struct UNetFixture {
  rdm::ldm::UNetModel model{nullptr};
  torch::Tensor x, t, ctx, ref_fp32;
  torch::Dtype dtype = torch::kFloat32;
  bool packed = false;
};

// The module in dtype `dt`, its convolution weights packed for oneDNN or dense (rdm/ldm/conv.hpp).
void set_weights(torch::nn::Module& m, torch::Dtype& cur_dt, bool& cur_packed, torch::Dtype dt, bool packed) {
  if (cur_dt == dt && cur_packed == packed) return;
  torch::NoGradGuard ng;
  rdm::ldm::unpack_convolutions(m);
  m.to(dt);
  if (packed) rdm::ldm::pack_convolutions_for_inference(m);
  cur_dt = dt;
  cur_packed = packed;
}

UNetFixture& unet_fixture() {
  static UNetFixture f = [] {
    torch::manual_seed(0);
    UNetFixture u;
    {
      torch::NoGradGuard ng;
      u.model = rdm::ldm::UNetModel(config().unet);
    }
    u.model->eval();
    const int64_t side = 768 / config().downsample_factor();
    u.x = torch::randn({2, config().unet.in_channels, side, side});
    u.t = torch::tensor({981, 981}, torch::kInt64);
    u.ctx = torch::randn({2, 20, config().context_dim()});
    return u;
  }();
  return f;
}

void BM_UNetStep(benchmark::State& state) {
  const int threads = state.range(0) == 0 ? 1 : bench_threads();
  const torch::Dtype dt = state.range(1) ? torch::kBFloat16 : torch::kFloat32;
  at::set_num_threads(threads);
  UNetFixture& f = unet_fixture();
  set_weights(*f.model, f.dtype, f.packed, dt, state.range(2) != 0);
  c10::InferenceMode guard;
  torch::Tensor out;
  for (auto _ : state) {
    out = f.model->forward(f.x.to(dt), f.t, f.ctx.to(dt)).to(torch::kFloat32);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  if (dt == torch::kFloat32 && threads > 1 && !f.ref_fp32.defined()) f.ref_fp32 = out;
  if (dt != torch::kFloat32 && f.ref_fp32.defined()) {
    state.counters["max_abs_err_vs_fp32"] = (out - f.ref_fp32).abs().max().item<double>();
    state.counters["max_abs_fp32"] = f.ref_fp32.abs().max().item<double>();
  } else if (dt == torch::kFloat32 && threads > 1 && f.ref_fp32.defined()) {
    state.counters["max_abs_err_vs_first_fp32"] = (out - f.ref_fp32).abs().max().item<double>();
  }
  if (dt == torch::kFloat32 && rdm::channels_last() && threads > 1)
    state.counters["max_abs_err_vs_nchw"] =
        err_vs_nchw(out, [&] { return f.model->forward(f.x, f.t, f.ctx); });
  state.counters["threads"] = threads;
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

struct DecodeFixture {
  rdm::ldm::AutoencoderKL ae{nullptr};
  torch::Tensor z, ref_fp32;
  torch::Dtype dtype = torch::kFloat32;
  bool packed = false;
};

DecodeFixture& decode_fixture() {
  static DecodeFixture f = [] {
    torch::manual_seed(1);
    DecodeFixture d;
    {
      torch::NoGradGuard ng;
      d.ae = rdm::ldm::AutoencoderKL(config().first_stage, /*with_encoder=*/false);
    }
    d.ae->eval();
    const int64_t side = 768 / config().downsample_factor();
    d.z = torch::randn({1, config().first_stage.embed_dim, side, side});
    return d;
  }();
  return f;
}

void BM_DecodeKL768(benchmark::State& state) {
  const int threads = state.range(0) == 0 ? 1 : bench_threads();
  const torch::Dtype dt = state.range(1) ? torch::kBFloat16 : torch::kFloat32;
  at::set_num_threads(threads);
  DecodeFixture& f = decode_fixture();
  set_weights(*f.ae, f.dtype, f.packed, dt, state.range(2) != 0);
  c10::InferenceMode guard;
  torch::Tensor out;
  for (auto _ : state) {
    out = f.ae->decode(f.z.to(dt)).to(torch::kFloat32);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  if (dt == torch::kFloat32 && threads > 1 && !f.ref_fp32.defined()) f.ref_fp32 = out;
  if (dt != torch::kFloat32 && f.ref_fp32.defined())
    state.counters["max_abs_err_vs_fp32"] = (out - f.ref_fp32).abs().max().item<double>();
  else if (dt == torch::kFloat32 && threads > 1 && f.ref_fp32.defined())
    state.counters["max_abs_err_vs_first_fp32"] = (out - f.ref_fp32).abs().max().item<double>();
  if (dt == torch::kFloat32 && rdm::channels_last() && threads > 1)
    state.counters["max_abs_err_vs_nchw"] = err_vs_nchw(out, [&] { return f.ae->decode(f.z); });
  state.counters["threads"] = threads;
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// The fp32 GEMM rate of LibTorch's BLAS on this machine (RDM_BENCH_THREADS threads): square, and
// the UNet's largest Linear shapes at 768 (tokens x in x out). The UNet step's FLOPs (counted by
// scripts/bench_reference_ldm.py --flops) divided by the best rate is the step's fp32 compute bound.
void BM_GemmRate(benchmark::State& state) {
  at::set_num_threads(bench_threads());
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  torch::manual_seed(2);
  const torch::Tensor a = torch::randn({m, k}), b = torch::randn({k, n});
  torch::Tensor c = torch::mm(a, b);
  for (auto _ : state) {
    at::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["gflops"] = benchmark::Counter(2.0 * m * k * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = bench_threads();
}

// RDM_BENCH_PROFILE=trace.json: instead of benchmarking, profile one UNet step (chrome trace).
void profile_unet_step(const std::string& path) {
  at::set_num_threads(bench_threads());
  UNetFixture& f = unet_fixture();
  set_weights(*f.model, f.dtype, f.packed, torch::kFloat32, std::getenv("RDM_BENCH_DENSE") == nullptr);
  c10::InferenceMode guard;
  f.model->forward(f.x, f.t, f.ctx);  // warm-up
  torch::autograd::profiler::RecordProfile prof(path);
  f.model->forward(f.x, f.t, f.ctx);
}

// Args: {threads: 0 = one thread, 1 = RDM_BENCH_THREADS}, {precision: 0 fp32, 1 bf16},
// {convolution weights: 0 dense (reordered by oneDNN at every call), 1 packed once (what rdm
// samples with)}. The first fp32 run at RDM_BENCH_THREADS is the reference of the error counters.
BENCHMARK(BM_UNetStep)->Args({1, 0, 0})->Args({1, 0, 1})->Args({0, 0, 1})->Args({1, 1, 1})->Iterations(2)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_GemmRate)->Args({2048, 2048, 2048})->Args({4608, 448, 3584})->Args({4608, 1792, 448})->Args({1152, 896, 7168})->MinTime(1.0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecodeKL768)->Args({1, 0, 0})->Args({1, 0, 1})->Args({0, 0, 1})->Args({1, 1, 1})->Iterations(2)->Unit(benchmark::kSecond)->UseRealTime();
}  // namespace

int main(int argc, char** argv) {
  const std::string allocator = rdm::configure_cpu_allocator();
  if (const char* p = std::getenv("RDM_BENCH_PROFILE")) {
    profile_unet_step(p);
    return 0;
  }
  benchmark::AddCustomContext("allocator", allocator);
  benchmark::AddCustomContext("layout", rdm::channels_last() ? "channels-last" : "NCHW");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
