// rdm sample: prompt(s) -> retrieval -> diffusion -> PNGs (scripts/knn2img.py, reproducible).
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/progress.hpp"
#include "rdm/error.hpp"
#include "rdm/io/png.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/output.hpp"
#include "rdm/pipeline.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
struct SampleOpts {
  std::vector<std::string> prompts;
  std::string prompt_file;
  std::vector<std::string> databases;
  int64_t k = 19;
  std::string sampler = "ddim";
  int steps = 50;
  double eta = 0.0;
  double scale = 5.0;
  uint64_t seed = 42;
  int64_t n = 3;
  int64_t batch_size = 0;
  int64_t width = 0, height = 0;
  std::string image_prompt;
  bool no_retrieval = false;
  std::string style;
  std::string out = "outputs/rdm-samples";
  bool grid = false;
  int64_t n_rows = 0;
  bool json_out = false;
  bool overwrite = false;
  bool no_sidecar = false;
  bool png_timings = false;
  bool neighbors_sheet = false;
  std::string from_png;
  ModelOptions model;
};

void run_sample(const SampleOpts& o, const CLI::App& cmd) {
  // The request: from a PNG's own metadata, or from the options.
  SampleRequest base;
  ModelOptions mo = o.model;
  std::vector<std::string> prompts = o.prompts;
  if (!o.from_png.empty()) {
    auto png = io::read_png(o.from_png);
    auto rec_text = png.find("rdm");
    if (!rec_text) fail("'{}' has no rdm metadata chunk: it was not made by rdm sample", o.from_png);
    json rec = io::parse_json_bounded(*rec_text, fmt::format("'{}': the rdm metadata chunk", o.from_png));
    base = request_from_record(rec);
    prompts = {base.prompt};
    if (mo.model.empty()) mo.model = rec["model"].value("path", std::string());
    if (mo.config.empty()) mo.config = rec["model"].value("config", std::string());
    if (mo.clip.empty()) mo.clip = rec["clip"].value("path", std::string());
    if (mo.vocab.empty()) mo.vocab = rec.value("vocab", std::string());
    if (cmd.count("--device") == 0 && rec.contains("device")) mo.device = rec["device"];
    if (cmd.count("--precision") == 0 && rec.contains("precision")) mo.precision = rec["precision"];
  } else {
    if (!o.prompt_file.empty()) {
      std::ifstream f(o.prompt_file);
      if (!f) fail("cannot read prompt file '{}'", o.prompt_file);
      for (std::string line; std::getline(f, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(line);
      }
      if (prompts.empty()) fail("prompt file '{}' has no prompts", o.prompt_file);
    }
    if (!o.image_prompt.empty()) {
      if (!fs::is_regular_file(o.image_prompt)) fail("image prompt '{}' does not exist", o.image_prompt);
      base.image_prompt = fs::path(o.image_prompt);
      if (prompts.empty()) prompts.push_back("");
    }
    if (prompts.empty()) fail("no prompt: give one as an argument, --prompt-file FILE or --image-prompt FILE");
    if (o.no_retrieval && o.style.empty() && o.databases.empty())
      fail("--no-retrieval (postfix baseline) needs --style TEXT or a --database whose name is the style");
    base.databases = resolve_databases(o.databases);
    base.no_retrieval = o.no_retrieval;
    base.style = o.style;
    base.k = o.k;
    base.sampler = o.sampler;
    base.steps = o.steps;
    base.eta = o.eta;
    base.scale = o.scale;
    base.seed = o.seed;
    base.n = o.n;
    base.width = o.width;
    base.height = o.height;
  }
  base.batch_size = o.batch_size > 0 ? o.batch_size : base.n;
  if (!o.from_png.empty() && o.batch_size > 0) base.batch_size = 1;
  if (base.sampler == "plms" && base.eta != 0) fail("--sampler plms needs --eta 0 (got {})", base.eta);

  const fs::path out(o.out);
  ensure_writable_dir(out);
  auto pipeline = Pipeline::load(mo.paths(), mo.options());
  if ((base.width > 0 && base.width % pipeline.size_multiple()) ||
      (base.height > 0 && base.height % pipeline.size_multiple()))
    fail("size {}x{} is not allowed: --width and --height must be multiples of {} for this model",
         base.width ? base.width : pipeline.native_width(), base.height ? base.height : pipeline.native_height(),
         pipeline.size_multiple());

  ProgressBar bar;
  json report = {{"images", json::array()}, {"grids", json::array()}};
  std::vector<io::RgbImage> grid_images;
  double total_s = 0;
  int64_t total_images = 0;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    SampleRequest req = base;
    req.prompt = prompts[pi];
    if (prompts.size() > 1) bar.set_label(fmt::format("prompt {}/{} ", pi + 1, prompts.size()));
    auto result = pipeline.sample(req, [&](const SampleProgress& p) { bar(p); });
    for (const auto& [k, v] : result.seconds)
      if (k == "sample" || k == "decode" || k == "encode" || k == "retrieve") total_s += v;
    const std::string slug = slugify(req.image_prompt ? req.image_prompt->stem().string() + " " + req.prompt : req.prompt);
    for (auto& img : result.images) {
      fs::path png = next_image_path(out, slug, img.seed, o.overwrite, o.overwrite ? total_images : 0);
      json rec = img.record;
      if (o.neighbors_sheet && !result.neighbors.empty()) {
        fs::path sheet = png.parent_path() / (png.stem().string() + "-neighbors.png");
        write_neighbor_sheet(sheet, result.neighbors);
        rec["contact_sheet"] = sheet.filename().string();
      }
      write_image_with_record(png, img.image, rec, !o.no_sidecar, o.overwrite, o.png_timings);
      spdlog::info("wrote {}", png.string());
      report["images"].push_back({{"file", png.string()},
                                  {"prompt", req.prompt},
                                  {"seed", img.seed},
                                  {"index", img.index},
                                  {"neighbors", rec["neighbors"]}});
      if (o.grid) grid_images.push_back(std::move(img.image));
      ++total_images;
    }
  }
  if (o.grid && !grid_images.empty()) {
    // knn2img: grid-{count:04d}.png with nrow = n_rows or n_samples.
    int64_t count = 0;
    while (fs::exists(out / fmt::format("grid-{:04d}.png", count)) && !o.overwrite) ++count;
    fs::path g = out / fmt::format("grid-{:04d}.png", count);
    io::write_png(g, make_grid(grid_images, o.n_rows > 0 ? o.n_rows : base.n));
    report["grids"].push_back(g.string());
    spdlog::info("wrote {}", g.string());
  }
  spdlog::info("total: {} image(s) in {:.2f} s ({:.2f} s/image)", total_images, total_s,
               total_images ? total_s / static_cast<double>(total_images) : 0.0);
  report["seconds"] = total_s;
  report["device"] = pipeline.device();
  report["precision"] = pipeline.precision();
  if (o.json_out) std::cout << report.dump(2) << std::endl;
}
}  // namespace

void add_sample_command(CLI::App& app) {
  auto o = std::make_shared<SampleOpts>();
  auto* cmd = app.add_subcommand("sample", "Generate images: prompt -> CLIP -> k neighbours -> guided diffusion -> PNG");
  cmd->add_option("prompts", o->prompts, "Text prompt(s); each gives --n-samples images");
  cmd->add_option("--prompt-file", o->prompt_file, "File with one prompt per line")->check(CLI::ExistingFile);
  cmd->add_option("-d,--database", o->databases,
                  "Style database NAME|DIR[:weight]; repeat to mix styles (the k neighbours are split by weight)");
  cmd->add_option("-k,--knn", o->k, "Neighbours in the context")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--sampler", o->sampler, "ddim | plms")->check(CLI::IsMember({"ddim", "plms"}))->capture_default_str();
  cmd->add_option("--steps", o->steps, "Sampling steps")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--eta", o->eta, "DDIM eta (0 = deterministic)")->check(CLI::Range(0.0, 10.0))->capture_default_str();
  cmd->add_option("--scale", o->scale, "Classifier-free guidance scale")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed; image i of a prompt uses seed + i")->capture_default_str();
  cmd->add_option("-n,--n-samples", o->n, "Images per prompt")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Images per model batch (0 = all n at once); never changes the images")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("-W,--width", o->width, "Width in pixels (0 = the model's, 768)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-H,--height", o->height, "Height in pixels (0 = the model's, 768)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--image-prompt", o->image_prompt, "Image whose CLIP embedding is the query and first token");
  cmd->add_flag("--no-retrieval", o->no_retrieval, "Postfix baseline: no neighbours, prompt + ' in the style of STYLE'");
  cmd->add_option("--style", o->style, "Style text for --no-retrieval (default: from the database name)");
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
  cmd->add_option("--from-png", o->from_png, "Reproduce an image from the metadata stored in it")->check(CLI::ExistingFile);
  o->model.add_to(cmd);
  cmd->callback([o, cmd] { run_sample(*o, *cmd); });
}

}  // namespace rdm::cli
