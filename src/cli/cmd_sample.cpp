// rdm sample: prompt(s) -> retrieval -> diffusion -> PNGs (scripts/knn2img.py, reproducible).
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/interrupt.hpp"
#include "cli/progress.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/image/png.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/io/text_file.hpp"
#include "rdm/app/output.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/sampler/solvers.hpp"
#include "rdm/retrieval/manifest.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// The options: the request they make (bound field by field; knn2img's defaults, 3 images per
// prompt) and what only the command knows: prompts, database specs, outputs, --from-png.
struct SampleOpts {
  SampleRequest request = [] {
    SampleRequest r;
    r.n = 3;
    r.batch_size = 0;  // 0: all n at once
    return r;
  }();
  std::vector<std::string> prompts;    // each gives request.n images
  std::string prompt_file;
  std::vector<std::string> databases;  // NAME|DIR[:weight]
  std::string image_prompt;
  std::string out = "outputs/rdm-samples";
  bool grid = false;
  int64_t n_rows = 0;
  bool json_out = false;
  bool overwrite = false;
  bool no_sidecar = false;
  bool png_timings = false;
  bool neighbors_sheet = false;
  std::string from_png;
  bool ignore_hashes = false;
  ModelOptions model;
};

// Samples every prompt and writes each image as soon as it is decoded; Ctrl-C keeps the
// finished images and exits with status 130.
void sample_and_write(const SampleOpts& o, const Pipeline& pipeline, const SampleRequest& base,
                      const std::vector<std::string>& prompts) {
  const fs::path out(o.out);
  ProgressBar bar;
  json report = {{"images", json::array()}, {"grids", json::array()}};
  std::vector<image::RgbImage> grid_images;
  double total_s = 0;
  int64_t total_images = 0;
  bool interrupted = false;
  InterruptGuard interrupt;
  for (size_t pi = 0; pi < prompts.size() && !interrupted; ++pi) {
    SampleRequest req = base;
    req.prompt = prompts[pi];
    if (prompts.size() > 1) bar.set_label(fmt::format("prompt {}/{} ", pi + 1, prompts.size()));
    const std::string slug =
        slugify(req.image_prompt ? req.image_prompt->stem().string() + " " + req.prompt : req.prompt);
    SampleCallbacks callbacks;
    callbacks.progress = [&](const SampleProgress& p) { bar(p); };
    callbacks.stop = interrupt.flag();
    callbacks.on_image = [&](SampledImage& img) {
      fs::path png = next_image_path(out, slug, img.seed, o.overwrite, o.overwrite ? total_images : 0);
      ImageRecord rec = img.record;
      if (o.neighbors_sheet && !rec.neighbors.empty()) {
        fs::path sheet = png.parent_path() / (png.stem().string() + "-neighbors.png");
        write_neighbor_sheet(sheet, rec.neighbors);
        rec.contact_sheet = sheet.filename().string();
      }
      write_image_with_record(png, img.image, rec, !o.no_sidecar, o.overwrite, o.png_timings);
      spdlog::info("wrote {}", png.string());
      report["images"].push_back({{"file", png.string()},
                                  {"prompt", req.prompt},
                                  {"seed", img.seed},
                                  {"index", img.index},
                                  {"neighbors", ImageRecord::neighbors_json(rec.neighbors)}});
      if (o.grid) grid_images.push_back(img.image);
      ++total_images;
    };
    auto result = pipeline.sample(req, callbacks);
    for (const auto& [k, v] : result.seconds)
      if (k == "sample" || k == "decode" || k == "encode" || k == "retrieve") total_s += v;
    interrupted = result.interrupted || interrupt.interrupted();
  }
  report["seconds"] = total_s;
  report["device"] = pipeline.device();
  report["precision"] = pipeline.precision();
  if (interrupted) {
    spdlog::warn("interrupted: {} finished image(s) written to '{}'", total_images, out.string());
    report["interrupted"] = true;
    if (o.json_out) std::cout << report.dump(2) << std::endl;
    std::cout.flush();
    std::exit(kInterruptedExitCode);  // every written image is complete
  }
  if (o.grid && !grid_images.empty()) {
    // knn2img: grid-{count:04d}.png with nrow = n_rows or n_samples.
    int64_t count = 0;
    while (fs::exists(out / fmt::format("grid-{:04d}.png", count)) && !o.overwrite) ++count;
    fs::path g = out / fmt::format("grid-{:04d}.png", count);
    image::write_png(g, make_grid(grid_images, o.n_rows > 0 ? o.n_rows : base.n));
    report["grids"].push_back(g.string());
    spdlog::info("wrote {}", g.string());
  }
  spdlog::info("total: {} image(s) in {:.2f} s ({:.2f} s/image)", total_images, total_s,
               total_images ? total_s / static_cast<double>(total_images) : 0.0);
  if (o.json_out) std::cout << report.dump(2) << std::endl;
}

// Options that --from-png cannot honour: the record fixes them. (Those it may take: --model,
// --config, --clip, --vocab to say where the files are now, --device, --precision, --threads,
// and the output options.)
const char* const kFixedByRecord[] = {"prompts", "--prompt-file", "--database", "--knn",    "--sampler", "--spacing",
                                      "--steps", "--eta",         "--scale",    "--seed",   "--n-samples",
                                      "--batch-size", "--width",   "--height",   "--image-prompt",
                                      "--no-retrieval", "--style"};

void check_from_png_conflicts(const CLI::App& cmd) {
  for (const char* name : kFixedByRecord)
    if (cmd.count(name) > 0)
      throw CLI::ValidationError(std::string(name) == "prompts" ? "PROMPT" : name,
                                 "conflicts with --from-png (the image's record fixes it; --from-png takes only "
                                 "--model/--config/--clip/--vocab/--device/--precision/--threads and output options)");
}

std::vector<std::string> collect_prompts(const SampleOpts& o) {
  std::vector<std::string> prompts;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    if (io::find_invalid_utf8(o.prompts[i]) != std::string::npos) fail("prompt {} is not valid UTF-8", i + 1);
    prompts.push_back(o.prompts[i]);
  }
  if (!o.prompt_file.empty()) {
    auto lines = io::read_prompt_lines(o.prompt_file, "prompt file");
    if (lines.empty()) fail("prompt file '{}' has no prompts", o.prompt_file);
    for (auto& l : lines) prompts.push_back(std::move(l.text));
  }
  return prompts;
}

// The record's model and database fingerprints against the files about to be loaded.
void check_record_files(const ImageRecord& rec, const PipelinePaths& paths, const SampleRequest& req, bool ignore,
                        const std::string& where) {
  auto mismatch = [&](const std::string& what, const std::string& recorded, const std::string& now) {
    if (recorded == now) return;
    if (ignore) {
      spdlog::warn("{}: {} differs from the record ({} now, {} recorded); --ignore-hashes: sampling anyway", where,
                   what, now, recorded);
      return;
    }
    fail("{}: {} differs from the one the image was made with ({} now, {} recorded): the image would not be "
         "reproduced; pass --ignore-hashes to sample anyway",
         where, what, now, recorded);
  };
  const std::string model_hash = rec.model ? rec.model->hash : std::string();
  if (!model_hash.empty())
    mismatch("model '" + paths.model.string() + "'", model_hash, file_fingerprint(paths.model));
  for (size_t i = 0; i < req.databases.size() && i < rec.databases.size(); ++i) {
    const std::string& recorded = rec.databases[i].hash;
    if (!recorded.empty())
      mismatch("database '" + req.databases[i].dir.string() + "'", recorded,
               retrieval::Manifest::read(req.databases[i].dir).content_hash);
  }
}

void check_record_clip(const ImageRecord& rec, const Pipeline& pipeline, bool ignore, const std::string& where) {
  const std::string recorded = rec.clip ? rec.clip->identity : std::string();
  const std::string now = pipeline.clip_identity();
  if (recorded.empty() || recorded == now) return;
  if (!ignore)
    fail("{}: the CLIP model differs from the one the image was made with ({} now, {} recorded); pass "
         "--ignore-hashes to sample anyway",
         where, now, recorded);
  spdlog::warn("{}: CLIP {} differs from the record ({}); --ignore-hashes: sampling anyway", where, now, recorded);
}

// --from-png: the request, and where the files were, from the record stored in the PNG.
ImageRecord read_png_record(const std::string& file, const std::string& where) {
  auto png = image::read_png(file);
  auto rec_text = png.find("rdm");
  if (!rec_text) fail("'{}' has no rdm metadata chunk: it was not made by rdm sample", file);
  json rec = io::parse_json_bounded(*rec_text, fmt::format("'{}': the rdm metadata chunk", file));
  if (!rec.is_object()) fail("'{}': the rdm metadata chunk is not a JSON object", file);
  return ImageRecord::from_json(rec, where);
}

// The request of the options (everything but the prompt).
SampleRequest request_of_options(const SampleOpts& o, const CLI::App& cmd) {
  SampleRequest r = o.request;
  if (!o.image_prompt.empty()) {
    if (!fs::is_regular_file(o.image_prompt)) fail("image prompt '{}' does not exist", o.image_prompt);
    r.image_prompt = fs::path(o.image_prompt);
  }
  if (o.request.no_retrieval && o.request.style.empty() && o.databases.empty())
    fail("--no-retrieval (postfix baseline) needs --style TEXT or a --database whose name is the style");
  r.databases = resolve_databases(o.databases);
  // Euler ancestral is ancestral at eta 1 (k-diffusion's default); with eta 0 it is DDIM.
  if (r.sampler == "euler_a" && cmd.count("--eta") == 0) r.eta = 1.0;
  r.batch_size = r.batch_size > 0 ? std::min(r.batch_size, r.n) : r.n;
  return r;
}

void run_sample(const SampleOpts& o, const CLI::App& cmd) {
  // The request: from a PNG's own metadata, or from the options.
  SampleRequest base;
  ModelOptions mo = o.model;
  std::vector<std::string> prompts;
  ImageRecord rec;
  const std::string where = o.from_png.empty() ? "rdm sample" : "--from-png '" + o.from_png + "'";
  if (!o.from_png.empty()) {
    check_from_png_conflicts(cmd);
    rec = read_png_record(o.from_png, where);
    base = rec.request(where);
    prompts = {base.prompt};
    if (mo.model.empty() && rec.model) mo.model = rec.model->path;
    if (mo.config.empty() && rec.model) mo.config = rec.model->config;
    if (mo.clip.empty() && rec.clip) mo.clip = rec.clip->path;
    if (mo.vocab.empty()) mo.vocab = rec.vocab;
    if (cmd.count("--device") == 0 && !rec.device.empty()) mo.device = rec.device;
    if (cmd.count("--precision") == 0 && !rec.precision.empty()) mo.precision = rec.precision;
  } else {
    prompts = collect_prompts(o);
    if (!o.image_prompt.empty()) prompts.push_back("");
    if (prompts.empty()) fail("no prompt: give one as an argument, --prompt-file FILE or --image-prompt FILE");
    base = request_of_options(o, cmd);
  }

  // Every value against the model's config, before any model loads.
  mo.torch_device();  // --device (or the record's) names a device here
  const PipelinePaths paths = mo.paths();
  const ModelFacts facts = ModelFacts::from_file(paths.config);
  for (const auto& p : prompts) {
    SampleRequest req = base;
    req.prompt = p;
    req.validate(facts, where);
  }
  check_memory(base.width, base.height, 1, facts, mo.device, mo.precision, machine_memory(), where);
  if (!o.from_png.empty()) check_record_files(rec, paths, base, o.ignore_hashes, where);

  const fs::path out(o.out);
  ensure_writable_dir(out);
  PipelineOptions po = mo.options();
  po.clip_vision = base.image_prompt.has_value();  // text prompts: CLIP's text tower only
  // One prompt: one sample() call, so each model goes as soon as it is no longer needed.
  po.one_shot = prompts.size() == 1;
  auto pipeline = Pipeline::load(paths, po);
  if (!o.from_png.empty()) check_record_clip(rec, pipeline, o.ignore_hashes, where);
  sample_and_write(o, pipeline, base, prompts);
}
}  // namespace

void add_sample_command(CLI::App& app) {
  auto o = std::make_shared<SampleOpts>();
  auto* cmd = app.add_subcommand("sample", "Generate images: prompt -> CLIP -> k neighbours -> guided diffusion -> PNG");
  auto* prompts = cmd->add_option("prompts", o->prompts, "Text prompt(s); each gives --n-samples images");
  auto* prompt_file = cmd->add_option("--prompt-file", o->prompt_file,
                                      "File with one prompt per line (UTF-8, at most 64 MiB, lines up to 64 KiB)")
                          ->check(CLI::ExistingFile);
  cmd->add_option("-d,--database", o->databases,
                  "Style database NAME|DIR[:weight]; repeat to mix styles (the k neighbours are split by weight)");
  cmd->add_option("-k,--knn", o->request.k, "Neighbours in the context (0 to 1000)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), kMaxNeighbors));
  cmd->add_option("--sampler", o->request.sampler, "Sampler: ddim (the reference's), plms, dpmpp2m (DPM-Solver++(2M)), unipc (UniPC-2, bh2), euler_a (Euler ancestral; eta defaults to 1)")
      ->check(CLI::IsMember(sampler::sampler_names()))
      ->capture_default_str();
  cmd->add_option("--spacing", o->request.spacing, "Timestep spacing: uniform (the reference's), trailing, karras")
      ->check(CLI::IsMember(sampler::spacing_names()))
      ->capture_default_str();
  cmd->add_option("--steps", o->request.steps, "Sampling steps (1 to the schedule's timesteps - 1: 999 for the RDM)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--eta", o->request.eta, "DDIM eta in [0, 1] (0 = deterministic; the reference's DDIM is defined there)")
      ->check(eta_validator("--eta"))
      ->capture_default_str();
  cmd->add_option("--scale", o->request.scale, "Classifier-free guidance scale, finite, |scale| <= 100")
      ->check(scale_validator("--scale"))
      ->capture_default_str();
  cmd->add_option("--seed", o->request.seed, "Seed (0 to 2^64 - 1); image i of a prompt uses seed + i, which must not pass 2^64 - 1")
      ->check(seed_validator("--seed"))
      ->capture_default_str();
  cmd->add_option("-n,--n-samples", o->request.n, "Images per prompt (1 to 100000)")
      ->check(CLI::Range(int64_t(1), kMaxImages))
      ->capture_default_str();
  cmd->add_option("--batch-size", o->request.batch_size, "Images per model batch (0 = all n at once); never changes the images")
      ->check(CLI::Range(int64_t(0), kMaxImages))
      ->capture_default_str();
  cmd->add_option("-W,--width", o->request.width, "Width in pixels: 0 = the model's (768), else a multiple of the model's size "
                                          "multiple (128 for the RDM), at most 16384")
      ->check(CLI::Range(int64_t(0), kMaxImageSide));
  cmd->add_option("-H,--height", o->request.height, "Height in pixels (as --width)")->check(CLI::Range(int64_t(0), kMaxImageSide));
  auto* image_prompt = cmd->add_option("--image-prompt", o->image_prompt,
                                       "Image whose CLIP embedding is the query and first token (instead of a text "
                                       "prompt; the two cannot be combined)");
  image_prompt->excludes(prompts)->excludes(prompt_file);
  cmd->add_flag("--no-retrieval", o->request.no_retrieval, "Postfix baseline: no neighbours, prompt + ' in the style of STYLE'");
  cmd->add_option("--style", o->request.style, "Style text for --no-retrieval (default: from the database name)");
  cmd->add_option("-o,--out", o->out, "Output folder")->capture_default_str();
  cmd->add_flag("--grid", o->grid, "Also write grid-NNNN.png (the reference's layout)");
  cmd->add_option("--n-rows", o->n_rows, "Images per grid row (0 = n-samples)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--neighbors-sheet", o->neighbors_sheet, "Also write <image>-neighbors.png, a contact sheet of the neighbours");
  cmd->add_flag("--json", o->json_out, "Print a JSON result on stdout");
  cmd->add_flag("--overwrite", o->overwrite, "Allow replacing existing files (numbering restarts at 00000)");
  cmd->add_flag("--no-sidecar", o->no_sidecar, "Do not write the .json beside each PNG");
  cmd->add_flag("--png-timings", o->png_timings,
                "Also store the timings in the PNG (they are always in the sidecar; without them the same "
                "command gives byte-identical PNGs)");
  auto* from_png = cmd->add_option("--from-png", o->from_png,
                  "Reproduce an image from the record stored in it. The record fixes the prompt, databases, seed "
                  "and sampler settings (giving those too is an error); --model/--config/--clip/--vocab say where "
                  "the files are now, --device/--precision/--threads/--out and the output flags apply")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--ignore-hashes", o->ignore_hashes,
                "With --from-png: sample even if the model, CLIP or database differs from the recorded one")
      ->needs(from_png);
  o->model.add_to(cmd, ModelOptions::rdm_use());
  cmd->callback([o, cmd] { run_sample(*o, *cmd); });
}

}  // namespace rdm::cli
