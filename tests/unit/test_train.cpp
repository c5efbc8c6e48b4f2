// rdm::train: the training loop (loss decreases on a fixed batch, resume equals an uninterrupted
// run bit for bit), the files each stage writes (loaded strictly by the real loaders), the BPE
// vocabulary and the plot renderer.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "unit/temp_data.hpp"
#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/formats/inspect.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/image/plot.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/autoencoder.hpp"
#include "rdm/train/bpe.hpp"
#include "rdm/train/clip.hpp"
#include "rdm/train/export.hpp"
#include "rdm/train/rdm.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/app/model_paths.hpp"
#include "train/rdm_data.hpp"
#include "rdm/train/world_data.hpp"

namespace fs = std::filesystem;
using namespace rdm;

namespace {

fs::path fresh_dir(const std::string& name) { return rdm_test::fresh_temp_dir("rdm_test_train", name); }

std::vector<double> logged_losses(const fs::path& out) {
  std::vector<double> v;
  std::ifstream in(train::loss_log_path(out));
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return v;
}

// Every tensor of two checkpoints equal bit for bit.
void expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  auto ta = formats::read_tensor_file(train::checkpoint_path(a));
  auto tb = formats::read_tensor_file(train::checkpoint_path(b));
  ASSERT_EQ(ta.tensors.size(), tb.tensors.size());
  EXPECT_EQ(ta.metadata.at("step"), tb.metadata.at("step"));
  for (const auto& [k, t] : ta.tensors) {
    ASSERT_TRUE(tb.tensors.count(k)) << k;
    EXPECT_TRUE(torch::equal(t, tb.tensors.at(k))) << k;
  }
}

train::AutoencoderTrainConfig tiny_autoencoder(int64_t items) {
  train::AutoencoderTrainConfig c;
  c.ch = 32;
  c.ch_mult = {1, 2};
  c.num_res_blocks = 1;
  c.embed_dim = 4;
  c.world.size = 32;
  c.world.styles = train::training_styles(train::default_held_out_styles());
  c.items = items;
  c.batch = 4;
  return c;
}

train::ClipTrainConfig tiny_clip(int64_t items) {
  train::ClipTrainConfig c;
  c.width = 64;
  c.layers = 1;
  c.heads = 2;
  c.embed_dim = 32;
  c.patch = 8;
  c.context_length = 24;
  c.world.size = 32;
  c.world.styles = {"flat", "dots"};
  c.items = items;
  c.batch = 8;
  return c;
}

train::TrainOptions options(const fs::path& out, int64_t steps, double lr) {
  train::TrainOptions o;
  o.out = out;
  o.steps = steps;
  o.lr = lr;
  o.warmup = 0;
  o.min_lr_ratio = 1.0;
  o.log_every = 1;
  o.checkpoint_every = 2;
  o.seed = 7;
  return o;
}

}  // namespace

TEST(TrainData, OrderIsAPermutationPerEpochAndDependsOnlyOnSeedAndStep) {
  train::DataOrder a(3, 10), b(3, 10);
  std::vector<int64_t> epoch0 = a.batch(0, 10);
  std::vector<int64_t> sorted = epoch0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(a.batch(7, 3), b.batch(7, 3));   // random access: no history needed
  EXPECT_NE(a.batch(1, 10), epoch0);         // another epoch, another order
  EXPECT_NE(train::DataOrder(4, 10).batch(0, 10), epoch0);
  EXPECT_THROW(train::training_styles({"no-such-style"}), Error);
}

TEST(TrainData, LearningRateWarmsUpAndDecays) {
  train::TrainOptions o;
  o.lr = 1e-3, o.warmup = 10, o.steps = 110, o.min_lr_ratio = 0.1;
  EXPECT_NEAR(train::learning_rate(o, 0), 1e-4, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 9), 1e-3, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 60), 0.55e-3, 1e-9);
  EXPECT_NEAR(train::learning_rate(o, 110), 1e-4, 1e-12);
}

TEST(TrainPlot, LinePlotAndBarChartDraw) {
  image::PlotSeries s;
  for (int i = 0; i < 50; ++i) s.x.push_back(i), s.y.push_back(std::exp(-i / 10.0));
  image::PlotOptions o;
  o.title = "loss";
  o.log_y = true;
  const image::RgbImage im = image::line_plot({s}, o);
  ASSERT_EQ(im.width, 640);
  ASSERT_EQ(im.height, 400);
  int64_t coloured = 0;
  for (size_t i = 0; i + 2 < im.pixels.size(); i += 3)
    coloured += im.pixels[i] != im.pixels[i + 1] || im.pixels[i + 1] != im.pixels[i + 2];
  EXPECT_GT(coloured, 200);  // the curve (the axes and labels are grey)
  EXPECT_FALSE(image::encode_png(im).empty());
  const image::RgbImage bars = image::bar_chart({{"flat", 0.9}, {"dots", 0.5}}, o);
  EXPECT_EQ(bars.width, 640);
  EXPECT_THROW(image::line_plot({s}, image::PlotOptions{10, 10}), Error);
  const auto t = image::nice_ticks(0, 1);
  ASSERT_FALSE(t.empty());
  EXPECT_DOUBLE_EQ(t.front(), 0.0);
  EXPECT_DOUBLE_EQ(t.back(), 1.0);
}

TEST(TrainBpe, VocabularyLoadsAndMakesWordsSingleTokens) {
  const std::vector<std::string> texts = {"a red boat", "a large red boat at the top", "a blue star in the style of dots",
                                          "a small blue star", "a red star"};
  const auto merges = train::learn_bpe(texts);
  const fs::path dir = fresh_dir("bpe");
  train::write_bpe_vocab(dir / "v.txt.gz", merges);
  const clip::Tokenizer tok = clip::Tokenizer::load(dir / "v.txt.gz");
  EXPECT_EQ(tok.vocab_size(), 512 + static_cast<int64_t>(merges.size()) + 2);
  EXPECT_EQ(tok.eot_token(), tok.vocab_size() - 1);
  EXPECT_EQ(tok.encode("red").size(), 1u);
  EXPECT_EQ(tok.encode("a red boat").size(), 3u);
  EXPECT_EQ(tok.decode(tok.encode("a blue star")), "a blue star ");
  EXPECT_GE(tok.encode("lighthouse").size(), 2u);  // unseen: pieces
  // The same merges from the same texts (the file is reproducible).
  EXPECT_EQ(train::learn_bpe(texts), merges);
  fs::remove_all(dir);
}

TEST(TrainAutoencoder, LossDecreasesOnAFixedBatch) {
  const fs::path out = fresh_dir("ae_loss");
  auto o = options(out, 12, 2e-3);
  o.checkpoint_every = 12;
  const auto r = train::train_autoencoder(tiny_autoencoder(4), o);
  const auto losses = logged_losses(out);
  ASSERT_EQ(losses.size(), 12u);
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << losses.front() << " -> " << losses.back();
  EXPECT_EQ(r.steps, 12);
  EXPECT_TRUE(fs::exists(train::loss_plot_path(out)));
  fs::remove_all(out);
}

TEST(TrainAutoencoder, ResumeEqualsUninterrupted) {
  const fs::path a = fresh_dir("ae_a"), b = fresh_dir("ae_b");
  const auto cfg = tiny_autoencoder(6);  // 6 items, batch 4: epochs straddle steps
  train::train_autoencoder(cfg, options(a, 5, 1e-3));
  // b: stopped after step 3 (a checkpoint then), resumed in a new task up to step 5.
  auto ob = options(b, 5, 1e-3);
  int calls = 0;
  ob.should_stop = [&] { return ++calls == 3; };
  EXPECT_THROW(train::train_autoencoder(cfg, ob), train::Interrupted);
  ob.should_stop = nullptr;
  const auto r = train::train_autoencoder(cfg, ob);
  EXPECT_EQ(r.resumed_from, 3);
  expect_same_checkpoint(a, b);
  EXPECT_EQ(logged_losses(a), logged_losses(b));
  // Another configuration is refused; --restart starts over.
  auto other = cfg;
  other.kl_weight = 1e-3;
  EXPECT_THROW(train::train_autoencoder(other, ob), Error);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(TrainAutoencoder, FilesLoadStrictlyThroughTheRealLoaders) {
  const fs::path out = fresh_dir("ae_files");
  const auto cfg = tiny_autoencoder(4);
  auto o = options(out, 1, 1e-3);
  train::train_autoencoder(cfg, o);
  auto ae = train::load_autoencoder(train::autoencoder_weights_path(out), train::autoencoder_config_path(out));
  EXPECT_EQ(ae.config.embed_dim, 4);
  EXPECT_EQ(ae.config.ddconfig.ch_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ae.config.downsample_factor(), 2);
  // The weights equal the checkpoint's model.* tensors.
  const auto ck = formats::read_tensor_file(train::checkpoint_path(out));
  for (const auto& p : ae.model->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ck.tensors.at("model." + p.key()))) << p.key();
  // What users' first stages hold, and nothing else.
  const auto ins = formats::inspect_file(train::autoencoder_weights_path(out));
  EXPECT_EQ(ins.total_tensors, static_cast<int64_t>(ae.model->named_parameters().size()));
  for (const auto& t : ins.tensors)
    EXPECT_TRUE(t.name.rfind("encoder.", 0) == 0 || t.name.rfind("decoder.", 0) == 0 ||
                t.name.rfind("quant_conv.", 0) == 0 || t.name.rfind("post_quant_conv.", 0) == 0)
        << t.name;
  {
    torch::NoGradGuard ng;
    const auto z = ae.model->encode(torch::zeros({1, 3, 32, 32}));
    EXPECT_EQ(z.sizes(), (std::vector<int64_t>{1, 8, 16, 16}));
  }
  // A first stage that does not match the weights is refused with the key named.
  std::ofstream(out / "bad.yaml") << "model:\n  target: ldm.models.autoencoder.AutoencoderKL\n  params:\n"
                                     "    embed_dim: 4\n    ddconfig: {double_z: true, z_channels: 4, resolution: 32,"
                                     " in_channels: 3, out_ch: 3, ch: 64, ch_mult: [1, 2], num_res_blocks: 1,"
                                     " attn_resolutions: []}\n";
  EXPECT_THROW(train::load_autoencoder(train::autoencoder_weights_path(out), out / "bad.yaml"), Error);
  fs::remove_all(out);
}

TEST(TrainClip, LossDecreasesAndFilesLoadThroughClipModelAndTokenizer) {
  const fs::path out = fresh_dir("clip");
  auto o = options(out, 15, 1e-3);
  o.checkpoint_every = 15;
  train::train_clip(tiny_clip(8), o);
  const auto losses = logged_losses(out);
  ASSERT_EQ(losses.size(), 15u);
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << losses.front() << " -> " << losses.back();

  const clip::ClipModel m = clip::ClipModel::load(train::clip_weights_path(out));
  const clip::Tokenizer tok = clip::Tokenizer::load(train::clip_vocab_path(out));
  EXPECT_EQ(m.config().vocab_size, tok.vocab_size());
  EXPECT_EQ(m.config().context_length, 24);
  EXPECT_EQ(m.config().image_resolution, 32);
  const auto e = m.encode_text(tok.tokenize({"a red boat"}, 24));
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{1, 32}));
  const auto ck = formats::read_tensor_file(train::checkpoint_path(out));
  torch::Tensor w;
  for (const auto& p : m.module().named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ck.tensors.at("model." + p.key()))) << p.key();
  fs::remove_all(out);
}

TEST(TrainClip, ResumeEqualsUninterrupted) {
  const fs::path a = fresh_dir("clip_a"), b = fresh_dir("clip_b");
  const auto cfg = tiny_clip(12);
  train::train_clip(cfg, options(a, 4, 1e-3));
  auto ob = options(b, 4, 1e-3);
  ob.steps = 2;
  train::train_clip(cfg, ob);
  ob.steps = 4;
  train::train_clip(cfg, ob);
  expect_same_checkpoint(a, b);
  fs::remove_all(a);
  fs::remove_all(b);
}

namespace {
// A tiny first stage and CLIP (one step each), shared by the RDM tests.
struct TinyInputs {
  fs::path root, ae, clip;
  TinyInputs() {
    root = fresh_dir("rdm_inputs");
    ae = root / "ae";
    clip = root / "clip";
    train::train_autoencoder(tiny_autoencoder(4), options(ae, 1, 1e-3));
    train::train_clip(tiny_clip(8), options(clip, 1, 1e-3));
  }
  ~TinyInputs() { fs::remove_all(root); }
};
const TinyInputs& tiny_inputs() {
  static TinyInputs t;
  return t;
}

train::RdmTrainConfig tiny_rdm(int64_t items) {
  train::RdmTrainConfig c;
  c.autoencoder = tiny_inputs().ae;
  c.clip = tiny_inputs().clip;
  c.model_channels = 32;
  c.channel_mult = {1, 2};
  c.attention_resolutions = {2};
  c.knn = 2;
  c.world.size = 32;
  c.world.styles = {"flat", "dots"};
  c.items = items;
  c.batch = 4;
  return c;
}
}  // namespace

TEST(TrainRdm, NeighboursExcludeTheItemAndAreNearestFirst) {
  auto e = torch::tensor({{1.0f, 0.0f}, {0.9f, 0.1f}, {0.0f, 1.0f}, {0.5f, 0.5f}});
  e = e / e.norm(2, 1, true);
  const auto nn = train::detail::nearest_neighbours(e, 2);
  EXPECT_EQ(nn[0][0].item<int64_t>(), 1);
  EXPECT_EQ(nn[2][0].item<int64_t>(), 3);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_NE(nn[i][j].item<int64_t>(), i);
}

TEST(TrainRdm, PoolDrawsAreDistinctMembersInPoolOrderAndCoverThePool) {
  const int64_t rows = 3, pool = 6, k = 2;
  const auto pools = torch::arange(rows * pool, torch::kInt64).view({rows, pool}) * 10;
  std::vector<std::set<int64_t>> seen(rows);
  auto g = train::cpu_generator(11);
  torch::Tensor first;
  for (int draw = 0; draw < 200; ++draw) {
    const auto d = train::detail::draw_from_pools(pools, k, g);
    ASSERT_EQ(d.sizes(), (std::vector<int64_t>{rows, k}));
    if (draw == 0) first = d.clone();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t a = d[r][0].item<int64_t>(), b = d[r][1].item<int64_t>();
      EXPECT_LT(a, b) << "pool order kept, no repeats";
      for (const int64_t v : {a, b}) {
        EXPECT_GE(v, r * pool * 10);
        EXPECT_LT(v, (r + 1) * pool * 10);
        EXPECT_EQ(v % 10, 0);
        seen[r].insert(v);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(seen[r].size(), static_cast<size_t>(pool)) << "row " << r;
  auto g2 = train::cpu_generator(11);
  EXPECT_TRUE(torch::equal(train::detail::draw_from_pools(pools, k, g2), first)) << "seeded";
  EXPECT_TRUE(torch::equal(train::detail::draw_from_pools(pools, pool, g2), pools)) << "k = P keeps the row";
  EXPECT_THROW(train::detail::draw_from_pools(pools, pool + 1, g2), Error);
  EXPECT_THROW(train::detail::draw_from_pools(pools, 0, g2), Error);
}

TEST(TrainRdm, KnnPoolStoresThePoolAndAPoolOfKTrainsAsWithout) {
  const fs::path a = fresh_dir("rdm_pool_a"), b = fresh_dir("rdm_pool_b"), c = fresh_dir("rdm_pool_c");
  auto cfg = tiny_rdm(6);
  train::train_rdm(cfg, options(a, 3, 1e-3));
  cfg.knn_pool = cfg.knn;  // a pool of exactly k: nothing to draw, the same run
  train::train_rdm(cfg, options(b, 3, 1e-3));
  EXPECT_EQ(logged_losses(a), logged_losses(b));
  cfg.knn_pool = 4;
  train::train_rdm(cfg, options(c, 3, 1e-3));
  const auto data = formats::read_safetensors(c / "train_data.safetensors");
  EXPECT_EQ(data.tensors.at("neighbours").sizes(), (std::vector<int64_t>{6, 4}));
  const auto lc = logged_losses(c);
  ASSERT_EQ(lc.size(), 3u);
  EXPECT_NE(lc, logged_losses(a)) << "other neighbours, other losses";
  for (const double l : lc) EXPECT_TRUE(std::isfinite(l));
  cfg.knn_pool = cfg.knn - 1;
  EXPECT_THROW(train::make_rdm_task(cfg, c, 7, torch::kCPU), Error);
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

TEST(TrainRdm, LossDecreasesOnAFixedBatch) {
  const fs::path out = fresh_dir("rdm_loss");
  auto o = options(out, 16, 2e-3);
  o.checkpoint_every = 16;
  train::train_rdm(tiny_rdm(4), o);
  const auto l = logged_losses(out);
  ASSERT_EQ(l.size(), 16u);
  const double first = (l[0] + l[1] + l[2] + l[3]) / 4, last = (l[12] + l[13] + l[14] + l[15]) / 4;
  EXPECT_LT(last, 0.8 * first) << first << " -> " << last;
  fs::remove_all(out);
}

TEST(TrainRdm, ContextInitGainScalesOnlyCrossAttentionKeysAndValues) {
  const fs::path a = fresh_dir("rdm_gain_a"), b = fresh_dir("rdm_gain_b");
  auto cfg = tiny_rdm(4);
  const auto plain = train::make_rdm_task(cfg, a, 7, torch::kCPU);
  cfg.context_init_gain = 3.0;
  const auto scaled = train::make_rdm_task(cfg, b, 7, torch::kCPU);
  const auto pa = plain->model().named_parameters(), pb = scaled->model().named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  int scaled_count = 0;
  for (const auto& p : pa) {
    const std::string& k = p.key();
    const bool context = k.find(".attn2.to_k.") != std::string::npos || k.find(".attn2.to_v.") != std::string::npos;
    const auto expected = context ? p.value() * 3.0 : p.value();
    EXPECT_TRUE(torch::allclose(pb[k], expected, 1e-6, 0)) << k;
    if (context) {
      ++scaled_count;
      EXPECT_GT(p.value().abs().max().item<double>(), 0) << k;
    }
  }
  EXPECT_GT(scaled_count, 0);
  for (const double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    cfg.context_init_gain = bad;
    EXPECT_THROW(train::make_rdm_task(cfg, b, 7, torch::kCPU), Error) << bad;
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(TrainRdm, ResumeEqualsUninterruptedAndFilesLoadAsACompVisCheckpoint) {
  const fs::path a = fresh_dir("rdm_a"), b = fresh_dir("rdm_b");
  const auto cfg = tiny_rdm(6);
  train::train_rdm(cfg, options(a, 5, 1e-3));
  auto ob = options(b, 5, 1e-3);
  int calls = 0;
  ob.should_stop = [&] { return ++calls == 3; };
  EXPECT_THROW(train::train_rdm(cfg, ob), train::Interrupted);
  ob.should_stop = nullptr;
  train::train_rdm(cfg, ob);
  expect_same_checkpoint(a, b);  // weights, Adam moments and the EMA copy

  // The model folder loads like a user's CompVis checkpoint: config, strict weights, EMA.
  const auto paths = resolve_model_paths(a.string());
  EXPECT_EQ(paths.model, train::rdm_weights_path(a));
  EXPECT_EQ(fs::canonical(paths.clip), fs::canonical(train::clip_weights_path(tiny_inputs().clip)));
  EXPECT_EQ(fs::canonical(paths.vocab), fs::canonical(train::clip_vocab_path(tiny_inputs().clip)));
  const auto config = ldm::LdmConfig::from_file(paths.config);
  ldm::LoadSpec spec;
  spec.strict_schedule = true;
  spec.load_encoder = true;
  spec.pack_convolutions = false;  // the weights are compared below
  const auto ld = ldm::LatentDiffusion::load(paths.model, config, spec);
  EXPECT_TRUE(ld.uses_ema());
  EXPECT_EQ(ld.context_dim(), 32);
  EXPECT_EQ(ld.latent_channels(), 4);
  const auto ck = formats::read_tensor_file(train::checkpoint_path(a));
  for (const auto& p : ld.unet()->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ck.tensors.at("extra." + p.key()))) << p.key();
  const auto eps = ld.apply_model(torch::zeros({2, 4, 16, 16}), torch::tensor({10, 500}), torch::zeros({2, 3, 32}));
  EXPECT_EQ(eps.sizes(), (std::vector<int64_t>{2, 4, 16, 16}));
  const auto ins = formats::inspect_file(paths.model);
  EXPECT_TRUE(ins.compvis);
  EXPECT_GT(ins.ema_tensors, 0);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(TrainExport, EmaWeightsBecomeTheModelAndTheFolderLoadsByItself) {
  const fs::path a = fresh_dir("export_rdm"), out = fresh_dir("export_out") / "tiny";
  train::train_rdm(tiny_rdm(6), options(a, 3, 1e-3));
  fs::create_directories(out);
  std::ofstream(out / "stale.txt") << "from an older export\n";
  train::ExportOptions eo{tiny_inputs().ae, tiny_inputs().clip, a, out};
  const auto rep = train::export_model(eo);
  EXPECT_GT(rep.bytes, 0);
  EXPECT_FALSE(fs::exists(out / "stale.txt"));  // the folder is replaced as a whole
  for (const char* f : {"model.safetensors", "config.yaml", "clip.safetensors", "clip.vocab.txt.gz", "rdm.json",
                        "training.json", "loss-rdm.png"})
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f;

  // It resolves by itself (rdm.json names the CLIP beside it), loads strictly, without EMA,
  // and its UNet weights are the EMA weights of the training run.
  const auto paths = resolve_model_paths(out.string());
  EXPECT_EQ(fs::canonical(paths.clip), fs::canonical(out / "clip.safetensors"));
  EXPECT_EQ(fs::canonical(paths.vocab), fs::canonical(out / "clip.vocab.txt.gz"));
  ldm::LoadSpec spec;
  spec.strict_schedule = true;
  spec.load_encoder = true;
  spec.pack_convolutions = false;  // the weights are compared below
  const auto ld = ldm::LatentDiffusion::load(paths.model, ldm::LdmConfig::from_file(paths.config), spec);
  EXPECT_FALSE(ld.uses_ema());
  const auto ck = formats::read_tensor_file(train::checkpoint_path(a));
  for (const auto& p : ld.unet()->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ck.tensors.at("extra." + p.key()))) << p.key();
  const auto ins = formats::inspect_file(paths.model);
  EXPECT_TRUE(ins.compvis);
  EXPECT_EQ(ins.ema_tensors, 0);
  const auto training = nlohmann::json::parse(std::ifstream(out / "training.json"));
  EXPECT_EQ(training.at("rdm").at("steps").get<int64_t>(), 3);
  // No absolute paths of the training machine in the shipped record.
  for (const char* k : {"autoencoder", "clip"}) {
    const std::string v = training.at("rdm").at("config").at(k).get<std::string>();
    EXPECT_FALSE(v.empty()) << k;
    EXPECT_EQ(v.find('/'), std::string::npos) << k << ": " << v;
  }

  // A stage folder without its model is named.
  train::ExportOptions bad = eo;
  bad.rdm = fresh_dir("export_empty");
  EXPECT_THROW(
      {
        try {
          train::export_model(bad);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  fs::remove_all(a);
  fs::remove_all(out.parent_path());
}
