// rdm eval: the paper's experiment, retrieval vs "in the style of" prompting, measured by a
// style classifier (rdm/app/eval.hpp). Resumable (finished images are skipped), shardable
// (--shard I/N; an unsharded run over the same --out writes the report), --compare A B.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "cli/model_options.hpp"
#include "rdm/app/eval.hpp"
#include "rdm/app/output.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/io/text_file.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/shard.hpp"
#include "rdm/sampler/solvers.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
struct EvalOpts {
  std::vector<std::string> prompts;
  std::string prompt_file;
  std::vector<std::string> databases;
  std::vector<uint64_t> seeds;
  int64_t n_seeds = 4;
  SampleRequest sampling = [] {
    SampleRequest r;
    r.seed = 42;  // the first seed of --n-seeds
    return r;
  }();
  std::string out = "outputs/rdm-eval";
  std::string shard = "0/1";
  bool report_only = false, allow_missing = false, json_out = false;
  std::vector<std::string> compare;
  std::vector<std::string> modes = eval::mode_names();
  std::string against;
  std::vector<std::string> tabulate;
  std::string plot;
  eval::ProbeOptions probe;
  ModelOptions model;
};

// Options that state the plan; without --databases and prompts the plan comes from OUT.
const char* const kPlanOptions[] = {"--seeds",  "--n-seeds", "--seed",   "--knn",  "--sampler", "--spacing",
                                    "--steps",  "--eta",     "--scale",  "--width", "--height", "--model",
                                    "--config", "--clip",    "--vocab",  "--modes"};

// One bar over every image of this shard: images done (skipped ones included), steps of the
// running one, ETA from this run's pace. A line per image when stderr is not a terminal.
class RunBar {
 public:
  RunBar(int64_t total, int64_t already) : total_(total), already_(already), tty_(::isatty(STDERR_FILENO) != 0) {}
  void operator()(const SweepProgress& p) {
    if (spdlog::get_level() > spdlog::level::info || p.sample.steps <= 0) return;
    const double done_now = static_cast<double>(p.job - 1) + static_cast<double>(p.sample.step) / p.sample.steps;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const double left = static_cast<double>(p.jobs) - done_now;
    const double eta = done_now > 0 ? el / done_now * left : 0;
    const int64_t image = already_ + p.job;
    if (tty_) {
      const int width = 30;
      const int fill =
          static_cast<int>(width * (static_cast<double>(already_) + done_now) / static_cast<double>(total_));
      std::fprintf(stderr, "\reval [%s%s] image %lld/%lld step %d/%d  ETA %.0fs ", std::string(fill, '#').c_str(),
                   std::string(width - fill, '.').c_str(), static_cast<long long>(image),
                   static_cast<long long>(total_), p.sample.step, p.sample.steps, eta);
      if (p.job == p.jobs && p.sample.step == p.sample.steps) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (p.sample.step == p.sample.steps) {
      spdlog::info("eval: image {}/{} done ({:.1f} s so far, ETA {:.0f} s)", image, total_, el, eta);
    }
  }

 private:
  int64_t total_, already_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

eval::Plan plan_from_options(const EvalOpts& o) {
  eval::Plan plan;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    if (io::find_invalid_utf8(o.prompts[i]) != std::string::npos) fail("--prompt: prompt {} is not valid UTF-8", i + 1);
    plan.prompts.push_back(o.prompts[i]);
  }
  if (!o.prompt_file.empty()) {
    auto lines = io::read_prompt_lines(o.prompt_file, "prompt file");
    if (lines.empty()) fail("--prompts: prompt file '{}' has no prompts", o.prompt_file);
    for (auto& l : lines) plan.prompts.push_back(std::move(l.text));
  }
  if (o.databases.empty()) fail("--databases: give the style databases to compare (at least 2)");
  plan.styles = eval::resolve_styles(o.databases);
  plan.seeds = o.seeds;
  if (plan.seeds.empty())
    for (int64_t i = 0; i < o.n_seeds; ++i) plan.seeds.push_back(o.sampling.seed + static_cast<uint64_t>(i));
  plan.sampling = o.sampling;
  plan.modes = o.modes;
  const PipelinePaths p = o.model.paths();
  auto abs = [](const fs::path& f) { return fs::absolute(f).lexically_normal(); };
  plan.model = {abs(p.model), abs(p.config), abs(p.clip), abs(p.vocab)};
  plan.validate();
  return plan;
}

eval::Plan choose_plan(const EvalOpts& o, const CLI::App& cmd) {
  if (!o.prompts.empty() || !o.prompt_file.empty() || !o.databases.empty()) return plan_from_options(o);
  std::optional<eval::Plan> stored = eval::read_plan(o.out);
  if (!stored)
    fail("--out '{}' holds no eval ({} missing): give --databases and --prompt/--prompts to start one", o.out,
         eval::kPlanFile);
  for (const char* name : kPlanOptions)
    if (cmd.count(name) > 0)
      fail("{}: the eval in '{}' fixes it ({}); give --databases and the prompts as well to restate the whole plan",
           name, o.out, eval::kPlanFile);
  spdlog::info("eval: continuing the eval of '{}' ({} prompt(s), {} style(s), {} seed(s))",
               (fs::path(o.out) / eval::kPlanFile).string(), stored->prompts.size(), stored->styles.size(),
               stored->seeds.size());
  return *stored;
}

// Samples this shard's missing images; returns the loaded pipeline (none when nothing was to do).
std::optional<Pipeline> sample_missing(const EvalOpts& o, const eval::Plan& plan, const std::vector<eval::Job>& jobs,
                                       const Shard& shard) {
  const fs::path out(o.out);
  const int64_t in_shard = static_cast<int64_t>(shard_positions(jobs.size(), shard.index, shard.count).size());
  const int64_t missing = eval::count_missing(jobs, out, shard.index, shard.count);
  if (missing == 0) {
    spdlog::info("eval: all {} image(s) of shard {}/{} exist in '{}'; nothing to sample", in_shard, shard.index,
                 shard.count, eval::images_dir(out).string());
    return std::nullopt;
  }
  std::optional<Pipeline> pipeline = Pipeline::load(plan.model, o.model.options());
  RunBar bar(in_shard, in_shard - missing);
  SweepReport rep;
  {
    InterruptGuard interrupt;
    rep = eval::sample_images(*pipeline, jobs, out, shard.index, shard.count, interrupt.flag(),
                              [&](const SweepProgress& p) { bar(p); });
  }
  spdlog::info("eval: sampled {} image(s), {} already there, {} failed in {:.1f} s ({:.2f} s/image)", rep.done,
               rep.skipped, rep.failed, rep.seconds, rep.done ? rep.seconds / static_cast<double>(rep.done) : 0.0);
  if (rep.interrupted) {
    std::cout.flush();
    std::exit(kInterruptedExitCode);  // every finished image is complete; the same command resumes
  }
  if (rep.failed > 0) fail("eval: {} image(s) failed (see {})", rep.failed, rep.log.string());
  return pipeline;
}

void run(EvalOpts& o, const CLI::App& cmd) {
  if (!o.compare.empty()) {
    json j;
    const std::string table = eval::compare_reports(o.compare.at(0), o.compare.at(1), &j);
    std::cout << (o.json_out ? j.dump(2) + "\n" : table);
    return;
  }
  if (!o.tabulate.empty()) {
    json j;
    const std::vector<fs::path> evals(o.tabulate.begin(), o.tabulate.end());
    const std::string table = eval::tabulate_reports(evals, o.plot, &j);
    std::cout << (o.json_out ? j.dump(2) + "\n" : table);
    return;
  }
  if (!o.plot.empty()) fail("--plot: goes with --tabulate");
  const Shard shard = parse_shard(o.shard);
  if (o.report_only && shard.count > 1) fail("--report-only scores every shard's images: leave out --shard");
  const eval::Plan plan = choose_plan(o, cmd);
  const fs::path out(o.out);
  if (!o.against.empty() && !eval::read_plan(o.against))  // before any image is sampled
    fail("--against '{}' holds no eval ({} missing): give the --out folder of an earlier `rdm eval`", o.against,
         eval::kPlanFile);
  const std::vector<eval::Job> jobs = eval::plan_jobs(plan);
  // Every job against the rules and the model's config before anything is written or loaded.
  if (!o.report_only && eval::count_missing(jobs, out, shard.index, shard.count) > 0)
    check_jobs(eval::sweep_jobs(jobs), plan.model.config, o.model.device, o.model.precision);
  ensure_writable_dir(out);
  eval::write_plan(plan, out);
  spdlog::info("eval: {} prompt(s) x {} style(s) x {} seed(s): {} image(s) (modes: {})", plan.prompts.size(),
               plan.styles.size(), plan.seeds.size(), jobs.size(), fmt::join(plan.modes, ", "));
  std::optional<Pipeline> pipeline;
  if (!o.report_only) pipeline = sample_missing(o, plan, jobs, shard);
  if (shard.count > 1) {
    spdlog::info("eval: shard {}/{} is complete; when every shard is, run `rdm eval --out {}` for the report",
                 shard.index, shard.count, out.string());
    return;
  }
  std::optional<clip::QueryEncoder> own;
  if (!pipeline) own = clip::QueryEncoder::load(plan.model.clip, plan.model.vocab, o.model.torch_device());
  const clip::QueryEncoder& encoder = pipeline ? pipeline->query_encoder() : *own;
  eval::ReportOptions ro;
  ro.probe = o.probe;
  ro.allow_missing = o.allow_missing;
  ro.against = o.against;
  const eval::ReportFiles f = eval::write_report(plan, jobs, encoder, out, ro);
  spdlog::info("eval: wrote {}, {}, {}, {} and {} confusion matrices", f.json.string(), f.csv.string(), f.html.string(),
               f.accuracy_png.string(), f.confusion_pngs.size());
  std::cout << (o.json_out ? f.eval.dump(2) + "\n" : eval::summary_table(f.eval));
}
}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOpts>();
  auto* cmd = app.add_subcommand(
      "eval", "Retrieval vs \"in the style of\" prompting over style databases, scored by a style classifier");
  cmd->add_option("--prompt", o->prompts, "A prompt (repeat for more)");
  cmd->add_option("--prompts", o->prompt_file, "Prompts, one per line")->check(CLI::ExistingFile);
  cmd->add_option("--databases", o->databases,
                  "Style databases (names or folders; a folder of databases stands for all of them); each database's "
                  "name is its style label");
  cmd->add_option("--seeds", o->seeds, "Seeds (the same in every mode); default: --n-seeds seeds from --seed")
      ->check(seed_validator("--seeds"));
  cmd->add_option("--n-seeds", o->n_seeds, "Number of seeds --seed, --seed + 1, ... when --seeds is not given")
      ->check(CLI::Range(int64_t(1), int64_t(100000)))
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "First seed of --n-seeds")
      ->check(seed_validator("--seed"))
      ->capture_default_str();
  cmd->add_option("-k,--knn", o->sampling.k, "Neighbours per retrieval image (1 to 1000)")
      ->check(CLI::Range(int64_t(1), kMaxNeighbors))
      ->capture_default_str();
  cmd->add_option("--sampler", o->sampling.sampler, "Sampler: ddim, plms, dpmpp2m, unipc, euler_a")
      ->check(CLI::IsMember(sampler::sampler_names()))
      ->capture_default_str();
  cmd->add_option("--spacing", o->sampling.spacing, "Timestep spacing: uniform, trailing, karras")
      ->check(CLI::IsMember(sampler::spacing_names()))
      ->capture_default_str();
  cmd->add_option("--steps", o->sampling.steps, "Sampling steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--eta", o->sampling.eta, "DDIM eta in [0, 1]")->check(eta_validator("--eta"))->capture_default_str();
  cmd->add_option("--scale", o->sampling.scale, "Guidance scale")
      ->check(scale_validator("--scale"))
      ->capture_default_str();
  cmd->add_option("-W,--width", o->sampling.width, "Width (0 = the model's)")
      ->check(CLI::Range(int64_t(0), kMaxImageSide));
  cmd->add_option("-H,--height", o->sampling.height, "Height (0 = the model's)")
      ->check(CLI::Range(int64_t(0), kMaxImageSide));
  cmd->add_option("-o,--out", o->out, "Eval folder (shared by all shards; images in OUT/images)")
      ->capture_default_str();
  cmd->add_option("--shard", o->shard, "Sample part I of N (0 <= I < N); then run once without --shard for the report")
      ->capture_default_str();
  cmd->add_flag("--report-only", o->report_only, "Sample nothing: score the images in OUT and write the report");
  cmd->add_flag("--allow-missing", o->allow_missing, "Score the images present even when some are missing");
  cmd->add_option("--probe-holdout", o->probe.holdout, "Share of each style's database held out to test the classifier")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  cmd->add_option("--probe-l2", o->probe.l2, "L2 penalty of the classifier")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  cmd->add_option("--probe-seed", o->probe.seed, "Seed of the classifier's train/test split")->capture_default_str();
  cmd->add_option("--compare", o->compare, "Compare two eval.json files (A B): B - A per style and mode, with 95% CIs")
      ->expected(2)
      ->excludes("--report-only")
      ->excludes("--shard");
  cmd->add_option("--modes", o->modes, "Modes to sample and score: retrieval, postfix, text (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(eval::mode_names()));
  cmd->add_option("--against", o->against,
                  "An earlier eval's --out folder as reference (e.g. DDIM, 250 steps): PSNR and CLIP similarity of "
                  "each image to its image of the same mode, prompt, style and seed")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--tabulate", o->tabulate,
                  "Eval folders (or eval.json files) to tabulate: sampler, steps, model calls, PSNR vs reference, "
                  "style accuracy, prompt similarity")
      ->excludes("--compare")
      ->excludes("--report-only")
      ->excludes("--shard");
  cmd->add_option("--plot", o->plot, "With --tabulate: write a PNG of PSNR and style accuracy against model calls");
  cmd->add_flag("--json", o->json_out, "Print eval.json (or the comparison) as JSON on stdout instead of a table");
  o->model.add_to(cmd, ModelOptions::rdm_use());
  cmd->callback([o, cmd] {
    if (o->sampling.sampler == "euler_a" && cmd->count("--eta") == 0) o->sampling.eta = 1.0;
    run(*o, *cmd);
  });
}

}  // namespace rdm::cli
