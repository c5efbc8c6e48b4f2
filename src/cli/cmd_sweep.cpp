// rdm sweep: many images over one loaded model (JOBS.jsonl or a cartesian product), resumable
// (finished jobs are skipped; Ctrl-C finishes the current image), shardable (--shard I/N).
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/interrupt.hpp"
#include "cli/progress.hpp"
#include "rdm/sampler/solvers.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/shard.hpp"
#include "rdm/io/text_file.hpp"
#include "rdm/app/output.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/app/sweep.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;

namespace {
struct SweepOpts {
  std::string jobs_file;
  std::vector<std::string> prompts;
  std::string prompt_file;
  std::vector<std::string> databases;
  std::vector<uint64_t> seeds;
  std::vector<double> scales;
  SampleRequest defaults;  // every job's values unless its line or the product gives them
  std::string out = "outputs/rdm-sweep";
  std::string shard = "0/1";
  bool neighbors_sheet = false;
  bool gallery_only = false;
  bool list = false;
  bool json_out = false;
  ModelOptions model;
};

void run(SweepOpts& o) {
  std::vector<SweepJob> jobs;
  for (size_t i = 0; i < o.prompts.size(); ++i)
    if (io::find_invalid_utf8(o.prompts[i]) != std::string::npos) fail("--prompts: prompt {} is not valid UTF-8", i + 1);
  if (!o.prompt_file.empty())
    for (auto& l : io::read_prompt_lines(o.prompt_file, "prompt file")) o.prompts.push_back(std::move(l.text));
  if (!o.jobs_file.empty()) {
    if (!o.prompts.empty()) fail("give either a jobs file or --prompts, not both");
    jobs = read_jobs_jsonl(o.jobs_file, o.defaults);
  } else {
    jobs = cartesian_jobs(o.prompts, o.databases, o.seeds, o.scales, o.defaults);
  }
  auto [shard_index, shard_count] = parse_shard(o.shard);
  const fs::path out(o.out);
  if (o.list) {
    for (size_t p : shard_positions(jobs.size(), shard_index, shard_count)) {
      nlohmann::json j = jobs[p].to_json();
      j["position"] = p;
      j["id"] = jobs[p].id();
      j["file"] = jobs[p].file_name();
      j["done"] = fs::exists(out / jobs[p].file_name());
      std::cout << j.dump() << "\n";
    }
    return;
  }
  if (o.gallery_only) {
    fs::path g, s;
    write_sweep_gallery(jobs, out, &g, &s);
    spdlog::info("wrote {} and {}", g.string(), s.empty() ? "(no contact sheet: no image yet)" : s.string());
    return;
  }
  // Every job against the rules and the model's config, before the model loads.
  const PipelinePaths paths = o.model.paths();
  check_jobs(jobs, paths.config, o.model.device, o.model.precision);
  ensure_writable_dir(out);
  PipelineOptions po = o.model.options();
  po.clip_vision =  // text prompts only: CLIP's text tower
      std::any_of(jobs.begin(), jobs.end(), [](const SweepJob& j) { return j.request.image_prompt.has_value(); });
  auto pipeline = Pipeline::load(paths, po);

  SweepOptions so;
  so.out = out;
  so.shard_index = shard_index;
  so.shard_count = shard_count;
  so.neighbors_sheet = o.neighbors_sheet;
  ProgressBar bar;
  SweepReport rep;
  {
    InterruptGuard interrupt;
    so.stop = interrupt.flag();
    rep = run_sweep(pipeline, jobs, so, [&](const SweepProgress& p) {
      bar.set_label(fmt::format("job {}/{} ", p.job, p.jobs));
      bar(p.sample);
    });
  }
  spdlog::info("sweep: {} done, {} skipped (already done), {} failed in {:.1f} s; log {}, gallery {}", rep.done,
               rep.skipped, rep.failed, rep.seconds, rep.log.string(), rep.gallery.string());
  if (o.json_out) std::cout << rep.to_json().dump(2) << std::endl;
  if (rep.interrupted) {
    std::cout.flush();
    std::exit(kInterruptedExitCode);  // interrupted cleanly: every finished image is complete; re-run to resume
  }
  if (rep.failed > 0) fail("sweep: {} job(s) failed (see {})", rep.failed, rep.log.string());
}
}  // namespace

void add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepOpts>();
  auto* cmd = app.add_subcommand("sweep", "Many images over one loaded model: resumable, shardable, with a gallery");
  cmd->add_option("jobs", o->jobs_file, "JOBS.jsonl: one JSON object per line (prompt, database, seed(s), scale(s), ...)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--prompts", o->prompts, "Cartesian sweep: prompts");
  cmd->add_option("--prompt-file", o->prompt_file, "Cartesian sweep: prompts, one per line")->check(CLI::ExistingFile);
  cmd->add_option("--databases", o->databases, "Cartesian sweep: databases (NAME|DIR[:w], mixes joined by '+', 'none')");
  cmd->add_option("--seeds", o->seeds, "Cartesian sweep: seeds (0 to 2^64 - 1)")->check(seed_validator("--seeds"));
  cmd->add_option("--scales", o->scales, "Cartesian sweep: guidance scales (finite, |scale| <= 100)")
      ->check(scale_validator("--scales"));
  cmd->add_option("-k,--knn", o->defaults.k, "Neighbours per image (0 to 1000)")
      ->check(CLI::Range(int64_t(0), kMaxNeighbors))
      ->capture_default_str();
  cmd->add_option("--sampler", o->defaults.sampler, "Sampler: ddim (the reference's), plms, dpmpp2m (DPM-Solver++(2M)), unipc (UniPC-2, bh2), euler_a (Euler ancestral; eta defaults to 1)")
      ->check(CLI::IsMember(sampler::sampler_names()))
      ->capture_default_str();
  cmd->add_option("--spacing", o->defaults.spacing, "Timestep spacing: uniform (the reference's), trailing, karras")
      ->check(CLI::IsMember(sampler::spacing_names()))
      ->capture_default_str();
  cmd->add_option("--steps", o->defaults.steps, "Sampling steps (1 to the schedule's timesteps - 1)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--eta", o->defaults.eta, "DDIM eta in [0, 1]")->check(eta_validator("--eta"))->capture_default_str();
  cmd->add_option("--scale", o->defaults.scale, "Default guidance scale (finite, |scale| <= 100)")
      ->check(scale_validator("--scale"))
      ->capture_default_str();
  cmd->add_option("--seed", o->defaults.seed, "Default seed (0 to 2^64 - 1)")
      ->check(seed_validator("--seed"))
      ->capture_default_str();
  cmd->add_option("-W,--width", o->defaults.width, "Width (0 = the model's; a multiple of its size multiple)")
      ->check(CLI::Range(int64_t(0), kMaxImageSide));
  cmd->add_option("-H,--height", o->defaults.height, "Height (0 = the model's)")->check(CLI::Range(int64_t(0), kMaxImageSide));
  cmd->add_option("-o,--out", o->out, "Output folder (shared by all shards)")->capture_default_str();
  cmd->add_option("--shard", o->shard, "Run part I of N (0 <= I < N): jobs at positions p with p % N == I")
      ->capture_default_str();
  cmd->add_flag("--neighbors-sheet", o->neighbors_sheet, "Also write a contact sheet of each image's neighbours");
  cmd->add_flag("--gallery-only", o->gallery_only, "Only rebuild index.html and contact_sheet.png (after all shards)");
  cmd->add_flag("--list", o->list, "Print this shard's jobs as JSON lines and exit");
  cmd->add_flag("--json", o->json_out, "Print the sweep report as JSON on stdout");
  o->model.add_to(cmd, ModelOptions::rdm_use());
  cmd->callback([o, cmd] {
    // Euler ancestral is ancestral at eta 1 (k-diffusion's default); JSONL jobs give their own eta.
    if (o->defaults.sampler == "euler_a" && cmd->count("--eta") == 0) o->defaults.eta = 1.0;
    run(*o);
  });
}

}  // namespace rdm::cli
