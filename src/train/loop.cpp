// The training loop of `rdm train` (see rdm/train/loop.hpp): AdamW, learning-rate schedule,
// checkpoint + resume, loss log and curve.
#include "rdm/train/loop.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "rdm/formats/safetensors.hpp"
#include "rdm/image/plot.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"
#include "rdm/train/optim.hpp"

namespace rdm::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kCheckpointFormat = "rdm-train-checkpoint/1";

void check_options(const TrainOptions& o) {
  if (o.out.empty()) fail("train: no output folder given");
  if (o.steps < 0) fail("train: steps must be >= 0, got {}", o.steps);
  if (o.log_every <= 0) fail("train: log_every must be positive, got {}", o.log_every);
  if (o.checkpoint_every <= 0 || o.checkpoint_every % o.log_every != 0)
    fail("train: checkpoint_every ({}) must be a positive multiple of log_every ({})", o.checkpoint_every,
         o.log_every);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("train: learning rate must be positive, got {}", o.lr);
  if (o.warmup < 0) fail("train: warmup must be >= 0, got {}", o.warmup);
  if (!(o.grad_clip >= 0)) fail("train: grad_clip must be >= 0, got {}", o.grad_clip);
}

// The loss log: lines with step <= keep_until are kept (a resumed run drops what the killed one
// logged after its last checkpoint); returns them parsed.
std::vector<json> read_log(const fs::path& path, int64_t keep_until) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.contains("step") && j["step"].get<int64_t>() <= keep_until) rows.push_back(std::move(j));
    } catch (const json::exception&) {
      break;  // a line cut by a kill: everything after it is dropped
    }
  }
  return rows;
}

void write_log(const fs::path& path, const std::vector<json>& rows) {
  std::string text;
  for (const auto& r : rows) text += r.dump() + "\n";
  io::write_file_atomic(path, text);
}

void write_plot(const fs::path& path, const std::vector<json>& rows, const std::string& task) {
  image::PlotSeries s;
  s.label = "loss";
  for (const auto& r : rows) {
    s.x.push_back(r["step"].get<double>());
    s.y.push_back(r["loss"].get<double>());
  }
  image::PlotOptions po;
  po.title = "rdm train " + task;
  po.x_label = "step";
  po.y_label = "loss (log scale)";
  bool positive = !s.y.empty();
  for (double v : s.y) positive = positive && v > 0;
  po.log_y = positive;
  image::write_png(path, image::line_plot({s}, po));
}

struct Checkpoint {
  int64_t step = 0;
  formats::StateDict model, m, v, extra;
};

void save_checkpoint(const fs::path& path, Task& task, const AdamW& opt, int64_t step, const TrainOptions& o) {
  formats::StateDict sd;
  for (const auto& p : task.model().named_parameters()) sd["model." + p.key()] = p.value().detach().cpu();
  for (const auto& b : task.model().named_buffers()) sd["model." + b.key()] = b.value().detach().cpu();
  for (const auto& [k, t] : opt.state()) sd["adam." + k] = t.cpu();
  for (const auto& [k, t] : task.extra_state()) sd["extra." + k] = t.detach().cpu();
  const std::map<std::string, std::string> meta = {{"format", kCheckpointFormat},
                                                   {"task", task.name()},
                                                   {"step", std::to_string(step)},
                                                   {"seed", std::to_string(o.seed)},
                                                   {"rng", "counter-based: step_seed(seed, step, salt)"},
                                                   {"config", task.config_json()}};
  formats::write_safetensors(path, sd, meta);
}

// Reads a checkpoint and checks that it belongs to this task and configuration.
Checkpoint read_checkpoint(const fs::path& path, Task& task, const TrainOptions& o) {
  formats::TensorFile tf = formats::read_tensor_file(path);
  auto meta = [&](const char* key) {
    auto it = tf.metadata.find(key);
    if (it == tf.metadata.end()) fail("checkpoint '{}': metadata '{}' is missing", path.string(), key);
    return it->second;
  };
  if (meta("format") != kCheckpointFormat)
    fail("checkpoint '{}': format '{}', expected '{}'", path.string(), meta("format"), kCheckpointFormat);
  if (meta("task") != task.name())
    fail("checkpoint '{}' is a '{}' run, not '{}' (use another --out or --restart)", path.string(), meta("task"),
         task.name());
  if (meta("seed") != std::to_string(o.seed))
    fail("checkpoint '{}' was trained with --seed {}, not {} (use --restart to start over)", path.string(),
         meta("seed"), o.seed);
  if (json::parse(meta("config")) != json::parse(task.config_json()))
    fail("checkpoint '{}' has another configuration ({}) than this run ({}); use --restart to start over",
         path.string(), meta("config"), task.config_json());
  Checkpoint c;
  c.step = std::stoll(meta("step"));
  for (auto& [k, t] : tf.tensors) {
    auto take = [&](const std::string& prefix, formats::StateDict& into) {
      if (k.rfind(prefix, 0) != 0) return false;
      into[k.substr(prefix.size())] = t;
      return true;
    };
    if (!take("model.", c.model) && !take("adam.", c.m) && !take("extra.", c.extra))
      fail("checkpoint '{}': unexpected tensor '{}'", path.string(), k);
  }
  return c;
}

// Copies checkpoint weights into the task's model (every parameter and buffer, same shapes).
void restore_model(torch::nn::Module& model, const formats::StateDict& sd, const fs::path& path) {
  torch::NoGradGuard ng;
  size_t used = 0;
  auto fill = [&](const std::string& name, torch::Tensor& t) {
    auto it = sd.find(name);
    if (it == sd.end()) fail("checkpoint '{}': tensor 'model.{}' is missing", path.string(), name);
    if (it->second.sizes() != t.sizes())
      fail("checkpoint '{}': tensor 'model.{}' has shape {}, expected {}", path.string(), name,
           fmt::join(it->second.sizes(), "x"), fmt::join(t.sizes(), "x"));
    t.copy_(it->second);
    ++used;
  };
  for (auto& p : model.named_parameters()) fill(p.key(), p.value());
  for (auto& b : model.named_buffers()) fill(b.key(), b.value());
  if (used != sd.size()) fail("checkpoint '{}': {} model tensors, the model has {}", path.string(), sd.size(), used);
}

std::string format_scalars(const std::map<std::string, double>& s) {
  std::string out;
  for (const auto& [k, v] : s) out += fmt::format(", {} {:.4g}", k, v);
  return out;
}

}  // namespace

uint64_t step_seed(uint64_t seed, int64_t step, uint64_t salt) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(step)) ^ salt);
}

torch::Generator cpu_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

double learning_rate(const TrainOptions& o, int64_t step) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const int64_t span = std::max<int64_t>(1, o.steps - o.warmup);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup) / static_cast<double>(span));
  const double lo = o.lr * o.min_lr_ratio;
  return lo + (o.lr - lo) * 0.5 * (1.0 + std::cos(M_PI * t));
}

fs::path checkpoint_path(const fs::path& out) { return out / "checkpoint.safetensors"; }
fs::path loss_log_path(const fs::path& out) { return out / "loss.jsonl"; }
fs::path loss_plot_path(const fs::path& out) { return out / "loss.png"; }

TrainReport run(Task& task, const TrainOptions& o, const TrainProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  check_options(o);
  const SingleThreadBlas one_pool;  // ATen's OpenMP threads only: 2.2x faster steps (runtime.hpp)
  fs::create_directories(o.out);
  const fs::path ckpt = checkpoint_path(o.out), log_path = loss_log_path(o.out), plot_path = loss_plot_path(o.out);
  task.model().to(o.device);
  task.model().train();
  AdamW opt(task.model(), {o.beta1, o.beta2, o.eps, o.weight_decay});

  TrainReport report;
  for (const auto& p : task.model().parameters()) report.parameters += p.numel();
  int64_t start = 0;
  if (!o.restart && fs::exists(ckpt)) {
    Checkpoint c = read_checkpoint(ckpt, task, o);
    restore_model(task.model(), c.model, ckpt);
    opt.load_state(c.m, ckpt.string());
    task.load_extra_state(c.extra);
    start = c.step;
    report.resumed_from = start;
    spdlog::info("train {}: resuming from step {} ('{}')", task.name(), start, ckpt.string());
  } else {
    spdlog::info("train {}: {} parameters, {} steps on {}", task.name(), report.parameters, o.steps, o.device.str());
  }
  std::vector<json> rows = report.resumed_from >= 0 ? read_log(log_path, start) : std::vector<json>{};
  write_log(log_path, rows);
  std::ofstream log(log_path, std::ios::app);

  const auto t0 = Clock::now();
  double window = 0;
  int64_t window_n = 0;
  std::map<std::string, double> window_scalars;
  double last_loss = rows.empty() ? 0 : rows.back()["loss"].get<double>();
  for (int64_t s = start; s < o.steps; ++s) {
    const double lr = learning_rate(o, s);
    opt.zero_grad();
    StepOutput out = task.step(s, o.seed);
    out.loss.backward();
    if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(task.model().parameters(), o.grad_clip);
    opt.step(lr);
    task.after_step(s);
    const double loss = out.loss.item<double>();
    if (!std::isfinite(loss)) fail("train {}: the loss is {} at step {} (lower --lr?)", task.name(), loss, s + 1);
    window += loss;
    ++window_n;
    for (const auto& [k, v] : out.scalars) window_scalars[k] += v;
    const int64_t done = s + 1;
    if (done % o.log_every == 0 || done == o.steps) {
      last_loss = window / static_cast<double>(window_n);
      json row = {{"step", done}, {"loss", last_loss}, {"lr", lr},
                  {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}};
      for (const auto& [k, v] : window_scalars) row[k] = v / static_cast<double>(window_n);
      log << row.dump() << "\n" << std::flush;
      rows.push_back(row);
      spdlog::debug("step {}: loss {:.5f}, lr {:.3g}{}", done, last_loss, lr, format_scalars(window_scalars));
      window = 0, window_n = 0, window_scalars.clear();
    }
    const bool stop = o.should_stop && o.should_stop();
    if (done % o.checkpoint_every == 0 || done == o.steps || stop) {
      save_checkpoint(ckpt, task, opt, done, o);
      write_plot(plot_path, rows, task.name());
    }
    const double el = std::chrono::duration<double>(Clock::now() - t0).count();
    if (progress) {
      TrainProgress p;
      p.step = done, p.steps = o.steps, p.first_step = start, p.loss = window_n ? window / window_n : last_loss;
      p.lr = lr, p.seconds = el, p.eta = el / static_cast<double>(done - start) * static_cast<double>(o.steps - done);
      progress(p);
    }
    if (stop) throw Interrupted(fmt::format("train {}: stopped at step {}; checkpoint '{}'", task.name(), done, ckpt.string()));
  }
  report.steps = std::max(start, o.steps);
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  report.seconds_per_step = o.steps > start ? report.seconds / static_cast<double>(o.steps - start) : 0;
  report.final_loss = last_loss;
  if (start >= o.steps) {
    if (!fs::exists(ckpt)) save_checkpoint(ckpt, task, opt, start, o);  // steps = 0
    write_plot(plot_path, rows, task.name());
  }
  task.model().eval();
  report.files = task.write_model(o.out);
  for (const auto& p : {ckpt, log_path, plot_path}) report.files.push_back(p);
  return report;
}

}  // namespace rdm::train
