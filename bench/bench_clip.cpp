// CLIP benchmarks: tokenizer throughput (warm BPE cache vs a cold tokenizer as baseline) and
// encode_text / encode_image per item at ViT-L/14 size with random weights.
// The Python reference timing is scripts/bench_reference_clip.py (same shapes and threads).
//   ./build/bench/bench_clip --benchmark_filter=Tokenize   (needs RDM_CLIP_VOCAB or RDM_GOLDEN_DIR)
//   ./build/bench/bench_clip --benchmark_filter=Encode     (ViT-L/14: ~1.7 GB of RAM)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/tokenizer.hpp"

namespace fs = std::filesystem;
using rdm::clip::ClipConfig;
using rdm::clip::ClipModel;
using rdm::clip::Tokenizer;

namespace {
fs::path vocab_path() {
  if (const char* v = std::getenv("RDM_CLIP_VOCAB")) return v;
  if (const char* g = std::getenv("RDM_GOLDEN_DIR")) return fs::path(g) / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  return "models/bpe_simple_vocab_16e6.txt.gz";
}

// Deterministic prompts (the same LCG as scripts/bench_reference_clip.py): 5-19 words and a number.
std::vector<std::string> prompts(size_t n) {
  static const char* words[] = {"a", "painting", "of", "the", "virus", "monster", "playing", "guitar", "oil", "on",
                                "canvas", "by", "claude", "monet", "sunset", "over", "mountains", "highly", "detailed",
                                "watercolor", "portrait", "cat", "in", "space", "trending", "artstation", "4k", "surreal",
                                "caf\xC3\xA9", "night", "city", "neon", "lights", "rain", "Reflections,", "impressionism!"};
  const uint32_t nw = sizeof words / sizeof *words;
  uint32_t state = 12345;
  auto next = [&] {
    state = (state * 1103515245u + 12345u) & 0x7fffffffu;
    return state >> 8;
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string s;
    const uint32_t len = 5 + next() % 15;
    for (uint32_t k = 0; k < len; ++k) s += std::string(k ? " " : "") + words[next() % nw];
    s += " " + std::to_string(next() % 3000);
    out.push_back(s);
  }
  return out;
}

void BM_Tokenize10k_WarmCache(benchmark::State& st) {
  auto tok = Tokenizer::load(vocab_path());
  auto ps = prompts(10000);
  tok.tokenize(ps);
  for (auto _ : st) benchmark::DoNotOptimize(tok.tokenize(ps));
  st.counters["prompts/s"] = benchmark::Counter(static_cast<double>(ps.size()), benchmark::Counter::kIsIterationInvariantRate);
}
// Baseline: a freshly loaded tokenizer (empty BPE cache) per iteration; vocabulary loading excluded.
void BM_Tokenize10k_ColdCache(benchmark::State& st) {
  auto ps = prompts(10000);
  for (auto _ : st) {
    st.PauseTiming();
    auto tok = Tokenizer::load(vocab_path());
    st.ResumeTiming();
    benchmark::DoNotOptimize(tok.tokenize(ps));
  }
  st.counters["prompts/s"] = benchmark::Counter(static_cast<double>(ps.size()), benchmark::Counter::kIsIterationInvariantRate);
}

// ViT-L/14 with random weights (the architecture of the released model).
const ClipModel& vit_l14() {
  static ClipModel m = [] {
    ClipConfig c;  // defaults are ViT-L/14
    torch::manual_seed(0);
    rdm::formats::StateDict sd;
    auto r = [](std::vector<int64_t> s) { return torch::randn(s) * 0.02; };
    auto block = [&](const std::string& p, int64_t w) {
      sd[p + "attn.in_proj_weight"] = r({3 * w, w});
      sd[p + "attn.in_proj_bias"] = r({3 * w});
      sd[p + "attn.out_proj.weight"] = r({w, w});
      sd[p + "attn.out_proj.bias"] = r({w});
      sd[p + "mlp.c_fc.weight"] = r({4 * w, w});
      sd[p + "mlp.c_fc.bias"] = r({4 * w});
      sd[p + "mlp.c_proj.weight"] = r({w, 4 * w});
      sd[p + "mlp.c_proj.bias"] = r({w});
      for (const char* ln : {"ln_1", "ln_2"}) {
        sd[p + ln + ".weight"] = torch::ones({w});
        sd[p + ln + ".bias"] = torch::zeros({w});
      }
    };
    const int64_t tw = c.transformer_width, vw = c.vision_width, g = c.image_resolution / c.vision_patch_size;
    sd["token_embedding.weight"] = r({c.vocab_size, tw});
    sd["positional_embedding"] = r({c.context_length, tw});
    for (int64_t i = 0; i < c.transformer_layers; ++i) block("transformer.resblocks." + std::to_string(i) + ".", tw);
    sd["ln_final.weight"] = torch::ones({tw});
    sd["ln_final.bias"] = torch::zeros({tw});
    sd["text_projection"] = r({tw, c.embed_dim});
    sd["logit_scale"] = torch::tensor(4.6052f);
    sd["visual.conv1.weight"] = r({vw, 3, c.vision_patch_size, c.vision_patch_size});
    sd["visual.class_embedding"] = r({vw});
    sd["visual.positional_embedding"] = r({g * g + 1, vw});
    for (const char* ln : {"visual.ln_pre", "visual.ln_post"}) {
      sd[std::string(ln) + ".weight"] = torch::ones({vw});
      sd[std::string(ln) + ".bias"] = torch::zeros({vw});
    }
    for (int64_t i = 0; i < c.vision_layers; ++i) block("visual.transformer.resblocks." + std::to_string(i) + ".", vw);
    sd["visual.proj"] = r({vw, c.embed_dim});
    return ClipModel::from_state_dict(sd, c);
  }();
  return m;
}

void BM_EncodeText_ViTL14(benchmark::State& st) {
  const auto& m = vit_l14();
  const int64_t b = st.range(0);
  auto tok = torch::randint(1, 49406, {b, 77}, torch::kInt64);
  tok.select(1, 20).fill_(49407);
  torch::NoGradGuard ng;
  m.encode_text(tok);
  for (auto _ : st) benchmark::DoNotOptimize(m.encode_text(tok));
  st.counters["s/item"] = benchmark::Counter(static_cast<double>(b), benchmark::Counter::kIsIterationInvariantRate |
                                                                           benchmark::Counter::kInvert);
}

void BM_EncodeImage_ViTL14(benchmark::State& st) {
  const auto& m = vit_l14();
  const int64_t b = st.range(0);
  auto px = torch::randn({b, 3, 224, 224});
  torch::NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(m.encode_image(px));
  st.counters["s/item"] = benchmark::Counter(static_cast<double>(b), benchmark::Counter::kIsIterationInvariantRate |
                                                                           benchmark::Counter::kInvert);
}
}  // namespace

BENCHMARK(BM_Tokenize10k_WarmCache)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tokenize10k_ColdCache)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EncodeText_ViTL14)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_EncodeImage_ViTL14)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

int main(int argc, char** argv) {
  if (const char* t = std::getenv("RDM_THREADS")) at::set_num_threads(std::atoi(t));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
