// rdm demo: the embedded default. Creates a tiny model, vocabulary and style databases in
// seconds with no download, then samples and writes PNGs, contact sheets and a gallery.
#include <iostream>

#include <ATen/Parallel.h>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/progress.hpp"
#include "rdm/app/demo.hpp"

namespace rdm::cli {

void add_demo_command(CLI::App& app) {
  struct Opts {
    demo::DemoOptions d;
    std::string out = "demo";
    bool json_out = false;
    bool no_sample = false;
    ModelOptions model;  // --device, --precision, --threads (the demo makes its own CLIP)
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "demo", "Check the installation: make a tiny RDM + CLIP + style databases (no download) and sample with them");
  cmd->add_option("prompt", o->d.prompt, "Prompt")->capture_default_str();
  cmd->add_option("-o,--out", o->out, "Folder for the demo's models, databases and outputs")->capture_default_str();
  cmd->add_option("--seed", o->d.seed, "Seed (weights and sampling)")->capture_default_str();
  cmd->add_option("--steps", o->d.steps, "DDIM steps")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--images-per-style", o->d.images_per_style, "Generated images per style database")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_flag("--no-sample", o->no_sample, "Only create the models and databases");
  cmd->add_flag("--json", o->json_out, "Print a JSON report on stdout");
  ModelOptions::Use use;
  use.clip = use.vocab = false;
  use.precision_of = "the UNet and autoencoder (CLIP stays fp32)";
  use.threads_note = "; the demo's tiny model uses 1 unless --threads is given";
  o->model.add_to(cmd, use);
  cmd->callback([o] {
    // The tiny model's tensors are too small to gain from threads (and OpenMP threads that spin
    // on a busy machine cost far more than they give): one thread unless --threads says.
    if (globals().threads == 0) at::set_num_threads(1);
    o->d.out = o->out;
    o->d.device = o->model.device;
    o->d.precision = o->model.precision;
    o->d.sample = !o->no_sample;
    ProgressBar bar;
    auto rep = demo::run_demo(o->d, [&](const SampleProgress& p) { bar(p); });
    if (o->json_out) {
      std::cout << rep.to_json().dump(2) << std::endl;
      return;
    }
    if (!o->d.sample) return;
    spdlog::info("demo finished in {:.1f} s. This tiny model has random weights: it only checks the installation.",
                 rep.seconds["total"]);
    std::cerr << "  images:        " << rep.images.size() << " in " << rep.paths.outputs.string() << "\n"
              << "  first image:   " << (rep.images.empty() ? "" : rep.images[0].string()) << "\n"
              << "  neighbours:    " << (rep.neighbor_sheets.empty() ? "" : rep.neighbor_sheets[0].string()) << "\n"
              << "  contact sheet: " << rep.contact_sheet.string() << "\n"
              << "  gallery:       " << rep.gallery.string() << "\n"
              << "  try:           rdm sample \"" << o->d.prompt << "\" --model " << rep.paths.model_dir.string()
              << " --database " << rep.paths.style_databases[0].string() << " --steps 20 -n 2 --out "
              << (rep.paths.root / "samples").string() << "\n";
  });
}

}  // namespace rdm::cli
