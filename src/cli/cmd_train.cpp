// rdm train autoencoder | clip: train the tiny models on the procedural world (rdm::train).
// Resumes automatically from OUT/checkpoint.safetensors; Ctrl-C writes a checkpoint and exits 130.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/train/autoencoder.hpp"
#include "rdm/train/clip.hpp"
#include "rdm/train/export.hpp"
#include "rdm/train/rdm.hpp"
#include "rdm/train/world_data.hpp"

namespace rdm::cli {
namespace {

// Options every stage shares.
struct CommonOpts {
  std::string out;
  int64_t steps = 1000, checkpoint_every = 100, log_every = 10, warmup = 100;
  double lr = 1e-3, weight_decay = 0.0, grad_clip = 1.0;
  uint64_t seed = 0, world_seed = 0;
  bool restart = false;
  std::string device = "auto";
  int threads = 0;
  std::vector<std::string> held_out = train::default_held_out_styles();
  int64_t items = 100000, batch = 16;
};

void add_common(CLI::App* c, CommonOpts& o) {
  c->add_option("--out", o.out, "Output folder (created; holds the checkpoint, loss.jsonl, loss.png and the model)")
      ->required();
  c->add_option("--steps", o.steps, "Total optimiser steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--batch", o.batch, "Pictures per step")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--lr", o.lr, "Peak learning rate (AdamW)")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--warmup", o.warmup, "Linear warm-up steps (then cosine to lr/10)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--grad-clip", o.grad_clip, "Max gradient norm (0 = off)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (a multiple of --log-every)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--log-every", o.log_every, "Steps per loss.jsonl line")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", o.seed, "Seed of the weights, the data order and the noise")->capture_default_str();
  c->add_option("--world-seed", o.world_seed, "Seed of the procedural world (the same for every stage)")
      ->capture_default_str();
  c->add_flag("--restart", o.restart, "Start at step 0 even when OUT holds a checkpoint (default: resume)");
  c->add_option("--device", o.device, kDeviceChoices)->capture_default_str();
  c->add_option("--threads", o.threads, "CPU threads (0 = the global --threads / all available)")
      ->check(CLI::Range(0, 1 << 20));
  c->add_option("--hold-out", o.held_out, "Styles never shown in training (comma-separated)")
      ->delimiter(',')->capture_default_str();
  c->add_option("--items", o.items, "Training set size (world indices 0..items-1)")->capture_default_str()
      ->check(CLI::PositiveNumber);
}

train::TrainOptions to_options(const CommonOpts& o, const InterruptGuard& guard) {
  if (o.threads > 0) at::set_num_threads(std::min(o.threads, available_cpus()));
  train::TrainOptions t;
  t.out = o.out, t.steps = o.steps, t.lr = o.lr, t.warmup = o.warmup, t.weight_decay = o.weight_decay;
  t.grad_clip = o.grad_clip, t.checkpoint_every = o.checkpoint_every, t.log_every = o.log_every;
  t.seed = o.seed, t.restart = o.restart, t.device = parse_device(o.device);
  t.should_stop = [&guard] { return guard.interrupted(); };
  return t;
}

// A bar with loss and ETA on a terminal; a line every 5 % otherwise.
class TrainBar {
 public:
  void operator()(const train::TrainProgress& p) {
    if (spdlog::get_level() > spdlog::level::info) return;
    const int64_t run = p.steps - p.first_step, done = p.step - p.first_step;
    const double per = done > 0 ? p.seconds / static_cast<double>(done) : 0;
    if (tty_) {
      const int width = 30, fill = run > 0 ? static_cast<int>(width * done / run) : width;
      std::fprintf(stderr, "\r[%s%s] step %lld/%lld  loss %.4f  %.2f s/step  ETA %.0fs ",
                   std::string(static_cast<size_t>(fill), '#').c_str(),
                   std::string(static_cast<size_t>(width - fill), '.').c_str(), static_cast<long long>(p.step),
                   static_cast<long long>(p.steps), p.loss, per, p.eta);
      if (p.step == p.steps) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else {
      const int64_t twentieth = run > 0 ? 20 * done / run : 20;
      if (twentieth != last_ || p.step == p.steps) {
        last_ = twentieth;
        spdlog::info("step {}/{}: loss {:.4f}, lr {:.3g}, {:.2f} s/step, ETA {:.0f} s", p.step, p.steps, p.loss,
                     p.lr, per, p.eta);
      }
    }
  }

 private:
  bool tty_ = ::isatty(STDERR_FILENO) != 0;
  int64_t last_ = -1;
};

void report(const std::string& what, const train::TrainReport& r) {
  spdlog::info("train {}: {} steps ({} parameters), final loss {:.5f}, {:.1f} s ({:.3f} s/step)", what, r.steps,
               r.parameters, r.final_loss, r.seconds, r.seconds_per_step);
  for (const auto& f : r.files) std::printf("%s\n", f.string().c_str());
}

// Runs a stage under Ctrl-C handling: an interrupted run exits 130 after its checkpoint.
template <typename F>
void run_stage(const std::string& what, const CommonOpts& common, F&& train_fn) {
  InterruptGuard guard;
  const train::TrainOptions t = to_options(common, guard);
  try {
    report(what, train_fn(t));
  } catch (const train::Interrupted& e) {
    spdlog::warn("{}; run the same command again to resume", e.what());
    std::exit(kInterruptedExitCode);
  }
}

void add_autoencoder(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    train::AutoencoderTrainConfig model;
  };
  auto o = std::make_shared<Opts>();
  o->common.lr = 1e-3;
  auto* c = train->add_subcommand("autoencoder", "Train a small AutoencoderKL (CompVis layout) on world pictures");
  add_common(c, o->common);
  c->add_option("--ch", o->model.ch, "Base channels (a multiple of 32)")->capture_default_str();
  c->add_option("--ch-mult", o->model.ch_mult, "Channel multipliers per level")->delimiter(',')
      ->capture_default_str();
  c->add_option("--num-res-blocks", o->model.num_res_blocks, "ResNet blocks per level")->capture_default_str();
  c->add_option("--embed-dim", o->model.embed_dim, "Latent channels")->capture_default_str();
  c->add_option("--kl-weight", o->model.kl_weight, "Weight of the KL term")->capture_default_str();
  c->callback([o] {
    o->model.world.seed = o->common.world_seed;
    o->model.world.styles = train::training_styles(o->common.held_out);
    o->model.items = o->common.items;
    o->model.batch = o->common.batch;
    run_stage("autoencoder", o->common, [&](const train::TrainOptions& t) {
      return train::train_autoencoder(o->model, t, TrainBar());
    });
  });
}

void add_clip(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    train::ClipTrainConfig model;
  };
  auto o = std::make_shared<Opts>();
  o->common.lr = 5e-4;
  o->common.batch = 64;
  auto* c = train->add_subcommand(
      "clip", "Train a small CLIP (ViT + text transformer, OpenAI layout) and its BPE vocabulary on world captions");
  add_common(c, o->common);
  c->add_option("--width", o->model.width, "Width of both transformers")->capture_default_str();
  c->add_option("--layers", o->model.layers, "Layers of both transformers")->capture_default_str();
  c->add_option("--heads", o->model.heads, "Attention heads of both transformers")->capture_default_str();
  c->add_option("--embed-dim", o->model.embed_dim, "Joint embedding width")->capture_default_str();
  c->add_option("--patch", o->model.patch, "Vision patch size")->capture_default_str();
  c->add_option("--context-length", o->model.context_length, "Text tokens")->capture_default_str();
  c->add_option("--style-prob", o->model.world.style_prob,
                "Probability that a caption names its style (\"... in the style of dots\")")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->callback([o] {
    o->model.world.seed = o->common.world_seed;
    o->model.world.styles = train::training_styles(o->common.held_out);
    o->model.items = o->common.items;
    o->model.batch = o->common.batch;
    run_stage("clip", o->common, [&](const train::TrainOptions& t) {
      return train::train_clip(o->model, t, TrainBar());
    });
  });
}

void add_rdm(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    train::RdmTrainConfig model;
    std::string autoencoder, clip;
  };
  auto o = std::make_shared<Opts>();
  o->common.lr = 2e-4;
  o->common.batch = 32;
  o->common.items = 20000;
  auto* c = train->add_subcommand(
      "rdm", "Train the retrieval-augmented LatentDiffusion (UNet with cross-attention over [query, k neighbours])");
  add_common(c, o->common);
  c->add_option("--autoencoder", o->autoencoder, "Folder of `rdm train autoencoder`")->required()
      ->check(CLI::ExistingDirectory);
  c->add_option("--clip", o->clip, "Folder of `rdm train clip`")->required()->check(CLI::ExistingDirectory);
  c->add_option("--model-channels", o->model.model_channels, "UNet base channels (a multiple of 32)")
      ->capture_default_str();
  c->add_option("--channel-mult", o->model.channel_mult, "UNet channel multipliers")->delimiter(',')
      ->capture_default_str();
  c->add_option("--num-res-blocks", o->model.num_res_blocks, "UNet ResBlocks per level")->capture_default_str();
  c->add_option("--attention-resolutions", o->model.attention_resolutions,
                "Downsampling rates with a spatial transformer")->delimiter(',')->capture_default_str();
  c->add_option("--knn", o->model.knn, "Neighbours per picture in the context")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--knn-pool", o->model.knn_pool,
                "Draw the neighbours each step from this many nearest (0 = always the --knn nearest)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--query-text-prob", o->model.query_text_prob,
                "Probability that the query token is the caption's text embedding (else the image's)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--context-dropout", o->model.context_dropout, "Probability of an all-zero context (guidance)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--ema-decay", o->model.ema_decay, "EMA decay of the UNet weights")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--context-init-gain", o->model.context_init_gain,
                "Initial scale of the cross-attention keys/values over the default init (the context is "
                "L2-normalised: sqrt(3 x embed_dim) starts them at unit scale)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--style-prob", o->model.world.style_prob,
                "Probability that a caption (the text query) names its style")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->callback([o] {
    o->model.autoencoder = o->autoencoder;
    o->model.clip = o->clip;
    o->model.world.seed = o->common.world_seed;
    o->model.world.styles = train::training_styles(o->common.held_out);
    o->model.items = o->common.items;
    o->model.batch = o->common.batch;
    run_stage("rdm", o->common, [&](const train::TrainOptions& t) { return train::train_rdm(o->model, t, TrainBar()); });
  });
}

void add_export(CLI::App* train) {
  auto o = std::make_shared<train::ExportOptions>();
  auto* c = train->add_subcommand(
      "export", "Pack the three trained stages into one model folder (EMA weights; loads with --model OUT)");
  c->add_option("--autoencoder", o->autoencoder, "Folder of `rdm train autoencoder`")->required()
      ->check(CLI::ExistingDirectory);
  c->add_option("--clip", o->clip, "Folder of `rdm train clip`")->required()->check(CLI::ExistingDirectory);
  c->add_option("--rdm", o->rdm, "Folder of `rdm train rdm`")->required()->check(CLI::ExistingDirectory);
  c->add_option("--out", o->out, "The model folder (replaced as a whole)")->required();
  c->callback([o] {
    const auto rep = train::export_model(*o);
    spdlog::info("train export: {} files, {:.1f} MB in '{}'", rep.files.size(), rep.bytes / 1e6, o->out.string());
    for (const auto& f : rep.files) std::printf("%s\n", f.string().c_str());
  });
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* c = app.add_subcommand("train", "Train the tiny models on the procedural world (resumable; see README)");
  c->require_subcommand(1);
  add_autoencoder(c);
  add_clip(c);
  add_rdm(c);
  add_export(c);
}

}  // namespace rdm::cli
