// `rdm demo`: writes a tiny RDM checkpoint (CompVis LatentDiffusion key names, as
// configs/retrieval-augmented-diffusion/768x768.yaml but small), a tiny OpenAI-named CLIP, a
// vocabulary and style databases, then samples through the real pipeline (sweep + gallery).
#include "rdm/app/demo.hpp"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <fstream>

#include "rdm/ldm/autoencoder.hpp"
#include "rdm/clip/clip_model.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/app/model_paths.hpp"
#include "rdm/app/output.hpp"
#include "rdm/app/world.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/sampler/schedule.hpp"
#include "rdm/app/sweep.hpp"
#include "rdm/ldm/unet.hpp"

namespace rdm::demo {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr size_t kMerges = 400;
constexpr int64_t kClipWidth = 64, kClipEmbed = 32;

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The tiny model's config document, in the layout of the RDM YAML (model.params...).
json tiny_rdm_config() {
  json unet = {{"image_size", 16},        {"in_channels", 4},
               {"out_channels", 4},       {"model_channels", 32},
               {"attention_resolutions", {1, 2}},
               {"num_res_blocks", 1},     {"channel_mult", {1, 2}},
               {"use_scale_shift_norm", false}, {"resblock_updown", false},
               {"num_head_channels", 16}, {"use_spatial_transformer", true},
               {"transformer_depth", 1},  {"context_dim", kClipEmbed},
               {"use_checkpoint", true}};
  json ddconfig = {{"double_z", true},    {"z_channels", 4}, {"resolution", 128},       {"in_channels", 3},
                   {"out_ch", 3},         {"ch", 32},        {"ch_mult", {1, 2, 2, 2}}, {"num_res_blocks", 1},
                   {"attn_resolutions", json::array()},      {"dropout", 0.0}};
  json params = {
      {"linear_start", 0.0015},
      {"linear_end", 0.015},
      {"num_timesteps_cond", 1},
      {"log_every_t", 200},
      {"timesteps", 1000},
      {"first_stage_key", "jpg"},
      {"cond_stage_key", "nix"},
      {"image_size", 16},
      {"channels", 4},
      {"cond_stage_trainable", false},
      {"conditioning_key", "crossattn"},
      {"monitor", "val/loss_simple_ema"},
      {"scale_by_std", false},
      {"scale_factor", 0.22765929},
      {"unet_config", {{"target", "ldm.modules.diffusionmodules.openaimodel.UNetModel"}, {"params", unet}}},
      {"first_stage_config",
       {{"target", "ldm.models.autoencoder.AutoencoderKL"},
        {"params", {{"monitor", "val/rec_loss"}, {"embed_dim", 4}, {"ddconfig", ddconfig},
                    {"lossconfig", {{"target", "torch.nn.Identity"}}}}}}},
      {"cond_stage_config", {{"target", "torch.nn.Identity"}}}};
  return {{"model", {{"base_learning_rate", 0.0001}, {"target", "ldm.models.diffusion.ddpm.LatentDiffusion"},
                     {"params", params}}}};
}

// Re-draws every parameter from `gen`: weights U(-1/sqrt(fan_in), +) (torch's default bound),
// norm weights 1 + 0.1 N(0,1), biases U(-0.05, 0.05). Independent of the modules' own init.
void redraw(torch::nn::Module& m, at::Generator& gen) {
  torch::NoGradGuard ng;
  for (auto& item : m.named_parameters()) {
    auto& p = item.value();
    const std::string& name = item.key();
    if (p.dim() >= 2) {
      double fan_in = static_cast<double>(p.numel() / p.size(0));
      double b = 1.0 / std::sqrt(fan_in);
      p.copy_(torch::rand(p.sizes(), gen, torch::kFloat32) * (2 * b) - b);
    } else if (name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0) {
      p.copy_(1.0 + 0.1 * torch::randn(p.sizes(), gen, torch::kFloat32));
    } else {
      p.copy_(torch::rand(p.sizes(), gen, torch::kFloat32) * 0.1 - 0.05);
    }
  }
}

// An OpenAI-named CLIP state dict (clip/model.py CLIP.initialize_parameters scales).
formats::StateDict tiny_clip_state_dict(const clip::ClipConfig& c, at::Generator& gen) {
  formats::StateDict sd;
  auto randn = [&](std::vector<int64_t> shape, double std) {
    return torch::randn(shape, gen, torch::kFloat32) * std;
  };
  auto tower = [&](const std::string& prefix, int64_t width, int64_t layers) {
    const double attn_std = std::pow(width, -0.5), proj_std = attn_std * std::pow(2.0 * layers, -0.5),
                 fc_std = std::pow(2.0 * width, -0.5);
    for (int64_t i = 0; i < layers; ++i) {
      std::string p = prefix + "transformer.resblocks." + std::to_string(i) + ".";
      sd[p + "attn.in_proj_weight"] = randn({3 * width, width}, attn_std);
      sd[p + "attn.in_proj_bias"] = torch::zeros({3 * width});
      sd[p + "attn.out_proj.weight"] = randn({width, width}, proj_std);
      sd[p + "attn.out_proj.bias"] = torch::zeros({width});
      sd[p + "ln_1.weight"] = torch::ones({width});
      sd[p + "ln_1.bias"] = torch::zeros({width});
      sd[p + "mlp.c_fc.weight"] = randn({4 * width, width}, fc_std);
      sd[p + "mlp.c_fc.bias"] = torch::zeros({4 * width});
      sd[p + "mlp.c_proj.weight"] = randn({width, 4 * width}, proj_std);
      sd[p + "mlp.c_proj.bias"] = torch::zeros({width});
      sd[p + "ln_2.weight"] = torch::ones({width});
      sd[p + "ln_2.bias"] = torch::zeros({width});
    }
  };
  const int64_t w = c.transformer_width, vw = c.vision_width;
  sd["token_embedding.weight"] = randn({c.vocab_size, w}, 0.02);
  sd["positional_embedding"] = randn({c.context_length, w}, 0.01);
  tower("", w, c.transformer_layers);
  sd["ln_final.weight"] = torch::ones({w});
  sd["ln_final.bias"] = torch::zeros({w});
  sd["text_projection"] = randn({w, c.embed_dim}, std::pow(w, -0.5));
  sd["logit_scale"] = torch::tensor(static_cast<float>(std::log(1 / 0.07)));
  const int64_t grid = c.image_resolution / c.vision_patch_size;
  const double scale = std::pow(vw, -0.5);
  sd["visual.conv1.weight"] =
      randn({vw, 3, c.vision_patch_size, c.vision_patch_size}, std::pow(3.0 * c.vision_patch_size * c.vision_patch_size, -0.5));
  sd["visual.class_embedding"] = randn({vw}, scale);
  sd["visual.positional_embedding"] = randn({grid * grid + 1, vw}, scale);
  sd["visual.ln_pre.weight"] = torch::ones({vw});
  sd["visual.ln_pre.bias"] = torch::zeros({vw});
  tower("visual.", vw, c.vision_layers);
  sd["visual.ln_post.weight"] = torch::ones({vw});
  sd["visual.ln_post.bias"] = torch::zeros({vw});
  sd["visual.proj"] = randn({vw, c.embed_dim}, scale);
  return sd;
}
}  // namespace

void write_demo_models(const DemoPaths& paths, uint64_t seed) {
  fs::create_directories(paths.model_dir);
  fs::create_directories(paths.clip.parent_path());

  // Vocabulary: merges learned from the built-in words.
  auto merges = learn_bpe_merges(demo_words(), kMerges);
  write_vocab_gz(paths.vocab, merges);

  // CLIP: ViT with 2 + 2 layers of width 64, 32-d embeddings, 32x32 images in 8x8 patches.
  clip::ClipConfig cc;
  cc.embed_dim = kClipEmbed;
  cc.image_resolution = 32;
  cc.vision_layers = 2;
  cc.vision_width = kClipWidth;
  cc.vision_heads = kClipWidth / 64;
  cc.vision_patch_size = 8;
  cc.context_length = 77;
  cc.vocab_size = 512 + static_cast<int64_t>(merges.size()) + 2;
  cc.transformer_width = kClipWidth;
  cc.transformer_heads = kClipWidth / 64;
  cc.transformer_layers = 2;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  formats::write_safetensors(paths.clip, tiny_clip_state_dict(cc, gen),
                        {{"config", cc.to_json().dump()}, {"note", "rdm demo: random weights, for testing only"}});

  // RDM: config + LatentDiffusion state dict (raw UNet, EMA copy, first stage, schedule).
  json doc = tiny_rdm_config();
  io::write_file_atomic(paths.model_dir / "config.json", doc.dump(2) + "\n");
  ldm::LdmConfig cfg = ldm::LdmConfig::from_file(paths.model_dir / "config.json");
  auto gen2 = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  ldm::UNetModel unet(cfg.unet);
  ldm::AutoencoderKL ae(cfg.first_stage, /*with_encoder=*/true);
  redraw(*unet, gen2);
  redraw(*ae, gen2);
  formats::StateDict sd;
  for (const auto& item : unet->named_parameters()) {
    std::string key = "model.diffusion_model." + item.key();
    sd[key] = item.value().detach().clone();
    sd[formats::ema_key(key)] = item.value().detach().clone();
  }
  for (const auto& item : unet->named_buffers()) sd["model.diffusion_model." + item.key()] = item.value().clone();
  sd["model_ema.decay"] = torch::tensor(0.9999f);
  sd["model_ema.num_updates"] = torch::tensor(0, torch::kInt32);
  for (const auto& item : ae->named_parameters()) sd["first_stage_model." + item.key()] = item.value().detach().clone();
  for (const auto& item : ae->named_buffers()) sd["first_stage_model." + item.key()] = item.value().clone();
  sampler::Schedule sched = sampler::Schedule::make(cfg.schedule);
  for (const auto& name : sampler::Schedule::persistent_buffer_names()) sd[name] = sched.buffers.at(name).to(torch::kFloat32);
  formats::write_safetensors(paths.model_dir / "model.safetensors", sd,
                        {{"note", "rdm demo: random weights, for testing only"}});
  json hint = {{"clip", "../../clip/" + paths.clip.filename().string()},
               {"vocab", "../../clip/" + paths.vocab.filename().string()},
               {"note", "rdm demo model: random weights, for checking the installation only"}};
  io::write_file_atomic(paths.model_dir / "rdm.json", hint.dump(2) + "\n");
}

json DemoReport::to_json() const {
  json imgs = json::array(), sheets = json::array(), dbs = json::array();
  for (const auto& p : images) imgs.push_back(p.string());
  for (const auto& p : neighbor_sheets) sheets.push_back(p.string());
  for (const auto& p : paths.style_databases) dbs.push_back(p.string());
  return {{"root", paths.root.string()},
          {"random_model", random_model},
          {"prompts", prompts},
          {"styles", paths.styles},
          {"model", paths.model_dir.string()},
          {"clip", paths.clip.string()},
          {"vocab", paths.vocab.string()},
          {"databases", dbs},
          {"images", imgs},
          {"neighbor_sheets", sheets},
          {"gallery", gallery.string()},
          {"contact_sheet", contact_sheet.string()},
          {"seconds", seconds}};
}

namespace {

// The random fixture's pattern pictures, one database each.
void make_pattern_databases(const DemoPaths& P, const DemoOptions& o) {
  for (size_t s = 0; s < P.styles.size(); ++s) {
    const auto& style = P.styles[s];
    fs::path dir = P.images / style;
    fs::create_directories(dir);
    for (int64_t i = 0; i < o.images_per_style; ++i) {
      fs::path png = dir / fmt::format("{}-{:03d}.png", style, i);
      if (!fs::exists(png)) image::write_png(png, style_image(style, i));
    }
  }
}

// World pictures (kDemoWorldSeed, the same content in every style), one folder per style.
void make_world_pictures(const DemoPaths& P, const DemoOptions& o) {
  world::WriteOptions w;
  w.spec.seed = kDemoWorldSeed;
  w.spec.styles = P.styles;
  w.out = P.images;
  w.count = o.images_per_style;
  w.threads = 1;
  world::write_world(w);
}

void build_style_databases(const DemoPaths& P, const DemoOptions& o) {
  for (size_t s = 0; s < P.styles.size(); ++s) {
    fs::remove_all(P.style_databases[s]);  // ours (under the demo marker): rebuild from scratch
    retrieval::BuildOptions bo;
    bo.images = P.images / P.styles[s];
    bo.clip = P.clip;
    bo.out = P.style_databases[s];
    bo.name = P.styles[s];
    bo.device = o.device;
    bo.workers = 1;
    retrieval::build_database(bo);
  }
}

// Defaults that depend on the kind of model.
DemoOptions resolved(DemoOptions o) {
  if (o.prompts.empty()) o.prompts = default_prompts(o.random_model);
  if (o.k <= 0) o.k = o.random_model ? 19 : 4;
  if (o.images_per_style <= 0) o.images_per_style = o.random_model ? 24 : 48;
  if (o.random_model) {
    if (!o.styles.empty()) fail("demo: --styles are world styles, for the trained model (not with --random-model)");
    if (!o.model.empty()) fail("demo: --model and --random-model exclude each other");
  } else {
    if (o.styles.empty()) o.styles = default_styles();
    if (o.model.empty()) o.model = tiny_model_dir();
  }
  return o;
}

}  // namespace

DemoReport run_demo(const DemoOptions& options, const SampleProgressFn& progress) {
  auto t_all = Clock::now();
  const DemoOptions o = resolved(options);
  DemoReport rep;
  rep.prompts = o.prompts;
  rep.random_model = o.random_model;
  // The trained model's files, found as `--model DIR` finds them (rdm.json names its CLIP).
  const PipelinePaths trained = o.random_model ? PipelinePaths{} : resolve_model_paths(o.model.string());
  rep.paths = o.random_model ? DemoPaths::under(o.out) : DemoPaths::trained(o.out, trained, o.styles);
  const DemoPaths& P = rep.paths;
  // The demo folder is ours to rewrite; refuse a non-empty folder made by something else.
  const fs::path marker = o.out / ".rdm-demo";
  if (fs::exists(o.out) && !fs::is_empty(o.out) && !fs::exists(marker))
    fail("'{}' exists and was not made by rdm demo: pass --out to choose another folder", o.out.string());
  ensure_writable_dir(o.out);
  io::write_file_atomic(marker, "made by rdm demo; safe to delete\n");

  // 1. Models: the random fixture is written, the trained model is read where it is.
  auto t0 = Clock::now();
  if (o.random_model) {
    write_demo_models(P, o.seed);
    rep.seconds["models"] = since(t0);
    spdlog::info("demo: random-weight RDM, CLIP and vocabulary written to '{}' ({:.2f} s)", P.models.string(),
                 rep.seconds["models"]);
  } else {
    spdlog::info("demo: trained model '{}'", trained.model.string());
  }

  // 2. Pictures and one database per style.
  t0 = Clock::now();
  if (o.random_model) make_pattern_databases(P, o);
  else make_world_pictures(P, o);
  build_style_databases(P, o);
  rep.seconds["databases"] = since(t0);
  spdlog::info("demo: {} style databases of {} pictures in '{}' ({:.2f} s)", P.styles.size(), o.images_per_style,
               P.databases.string(), rep.seconds["databases"]);
  if (!o.sample) return rep;

  // 3. Every prompt x style through the sweep (gallery + contact sheets).
  t0 = Clock::now();
  const PipelinePaths pp =
      o.random_model ? PipelinePaths{P.model_dir / "model.safetensors", P.model_dir / "config.json", P.clip, P.vocab}
                     : trained;
  auto pipeline = Pipeline::load(pp, {o.device, o.precision, /*clip_vision=*/false});  // text prompts only
  SampleRequest defaults;
  defaults.steps = o.steps;
  defaults.k = std::min<int64_t>(o.k, o.images_per_style);
  defaults.seed = o.seed;
  defaults.scale = o.scale;
  std::vector<std::string> dbs;
  for (const auto& d : P.style_databases) dbs.push_back(fs::absolute(d).string());
  auto jobs = cartesian_jobs(o.prompts, dbs, {o.seed}, {o.scale}, defaults);
  for (const auto& j : jobs) fs::remove(P.outputs / j.file_name());  // always sample afresh
  SweepOptions so;
  so.out = P.outputs;
  so.neighbors_sheet = true;
  auto sweep = run_sweep(pipeline, jobs, so, [&](const SweepProgress& p) {
    if (progress) progress(p.sample);
  });
  if (sweep.failed > 0) fail("demo: {} sample(s) failed (see {})", sweep.failed, sweep.log.string());
  for (const auto& j : jobs) {
    fs::path png = P.outputs / j.file_name();
    rep.images.push_back(png);
    fs::path sheet = P.outputs / (png.stem().string() + "-neighbors.png");
    if (fs::exists(sheet)) rep.neighbor_sheets.push_back(sheet);
  }
  rep.gallery = sweep.gallery;
  rep.contact_sheet = sweep.contact_sheet;
  rep.seconds["sample"] = since(t0);
  rep.seconds["total"] = since(t_all);
  return rep;
}

}  // namespace rdm::demo
