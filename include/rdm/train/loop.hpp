// The training loop shared by the `rdm train` stages (autoencoder, clip, rdm): AdamW with a
// warm-up + cosine learning rate, gradient clipping, a periodic checkpoint, automatic resume,
// a JSONL loss log, a loss-curve PNG and progress callbacks.
//
// Reproducible by construction: every random draw of step s (data order, noise, dropout of the
// context) comes from generators seeded with step_seed(seed, s, salt) (counter-based), so the
// only state to carry over a restart is the weights, the optimiser moments and the step. A run
// resumed from a checkpoint at step k is bit-identical to an uninterrupted one at every later
// step (same device, same thread count).
//
// Output folder:
//   checkpoint.safetensors  model.* weights, adam.m.* / adam.v.* moments, extra.* (EMA),
//                           metadata: step, seed, task, task config (JSON); written atomically
//   loss.jsonl              {"step", "loss", "lr", "seconds", ...task scalars} every log_every steps
//   loss.png                the loss curve (rewritten at every checkpoint and at the end)
//   + the task's model files (written at the end)
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::train {

struct TrainOptions {
  std::filesystem::path out;      // output folder (created)
  int64_t steps = 1000;           // total optimiser steps
  double lr = 1e-3;               // peak learning rate
  int64_t warmup = 100;           // linear warm-up steps (then cosine down to lr * min_lr_ratio)
  double min_lr_ratio = 0.1;
  double weight_decay = 0.0;      // AdamW decoupled weight decay
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double grad_clip = 1.0;         // max global gradient norm (0 = off)
  int64_t checkpoint_every = 100; // steps (a multiple of log_every)
  int64_t log_every = 10;
  uint64_t seed = 0;
  bool restart = false;           // ignore a checkpoint in `out` and start at step 0
  torch::Device device = torch::kCPU;
  // Checked after every step: when it returns true, a checkpoint is written and run() throws
  // Interrupted (the CLI maps it to exit status 130).
  std::function<bool()> should_stop;
};

// What one step of a task returns: the loss to minimise (a scalar with grad) and extra scalars
// to log ("acc", "logit_scale", ...).
struct StepOutput {
  torch::Tensor loss;
  std::map<std::string, double> scalars;
};

// One training stage. The loop owns the optimiser; the task owns the model and the data.
class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;  // "autoencoder", "clip", "rdm"
  // The task's configuration as JSON text: stored in the checkpoint, and a resume with a
  // different configuration is refused.
  virtual std::string config_json() const = 0;
  // The module whose parameters are trained (and checkpointed as model.*).
  virtual torch::nn::Module& model() = 0;
  // Forward + loss of step `step` (0-based). Random draws must come from step_seed().
  virtual StepOutput step(int64_t step, uint64_t seed) = 0;
  // After the optimiser update of `step` (EMA updates).
  virtual void after_step(int64_t step) {}
  // Further state to checkpoint (EMA weights), and its restore.
  virtual formats::StateDict extra_state() const { return {}; }
  virtual void load_extra_state(const formats::StateDict& state) {}
  // Writes the final model files into `out`; returns their paths.
  virtual std::vector<std::filesystem::path> write_model(const std::filesystem::path& out) = 0;
};

struct TrainProgress {
  int64_t step = 0, steps = 0;  // steps done, total
  int64_t first_step = 0;       // where this run started (resume point)
  double loss = 0;              // mean loss of the last log window (or the last step)
  double lr = 0;
  double seconds = 0;           // since this run started
  double eta = 0;               // seconds left at the current speed
};
using TrainProgressFn = std::function<void(const TrainProgress&)>;

struct TrainReport {
  int64_t steps = 0;            // total steps done
  int64_t resumed_from = -1;    // checkpoint step, -1 when started fresh
  double final_loss = 0;        // mean of the last log window
  double seconds = 0;           // this run
  double seconds_per_step = 0;  // this run (0 when no step was run)
  int64_t parameters = 0;
  std::vector<std::filesystem::path> files;  // model files, checkpoint, log, curve
};

// Thrown by run() when options.should_stop asked to stop (after the checkpoint was written).
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs (or resumes) the task to options.steps. Throws rdm::Error for bad options, an unreadable
// checkpoint or one written for another task/configuration.
TrainReport run(Task& task, const TrainOptions& options, const TrainProgressFn& progress = {});

// The learning rate at `step`: linear warm-up over `warmup` steps, then cosine to
// lr * min_lr_ratio at `steps`.
double learning_rate(const TrainOptions& options, int64_t step);

// Counter-based seeds: a 64-bit mix (splitmix64) of (seed, step, salt).
uint64_t step_seed(uint64_t seed, int64_t step, uint64_t salt = 0);
// A CPU generator seeded with `seed`: draw on the CPU, then move to the device, so that the
// numbers are the same on every device.
torch::Generator cpu_generator(uint64_t seed);

// Names of the files in an output folder.
std::filesystem::path checkpoint_path(const std::filesystem::path& out);
std::filesystem::path loss_log_path(const std::filesystem::path& out);
std::filesystem::path loss_plot_path(const std::filesystem::path& out);

}  // namespace rdm::train
