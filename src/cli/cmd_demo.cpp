// rdm demo: the embedded default. The shipped tiny trained model samples every prompt with every
// style database (built from procedural pictures in seconds, no download) and writes PNGs,
// contact sheets and a gallery; --random-model makes the random-weight test fixture instead.
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
    std::string model;
    ModelOptions model_opts;  // --device, --precision, --threads (the CLIP is the model's own)
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "demo", "The method in 30 s: the shipped tiny RDM samples prompts x style databases (some styles unseen in training)");
  cmd->add_option("prompts", o->d.prompts, "Prompts (default: a red boat, a yellow star, a green tree)");
  cmd->add_option("--styles", o->d.styles, "World styles of the databases (default: stripes,dots,checks,gradient + "
                                           "the held-out mosaic,hatching)")
      ->delimiter(',');
  cmd->add_option("--model", o->model, "Trained model folder (default: the shipped models/tiny)");
  cmd->add_flag("--random-model", o->d.random_model,
                "Write a tiny RDM + CLIP with random weights instead (the tests' fixture: arithmetic, not images)");
  cmd->add_option("-k,--k", o->d.k, "Neighbours per image (default: 4 as the tiny model was trained; 19 random)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--scale", o->d.scale, "Guidance scale")->capture_default_str();
  cmd->add_option("-o,--out", o->out, "Folder for the demo's models, databases and outputs")->capture_default_str();
  cmd->add_option("--seed", o->d.seed, "Seed of the samples (and of the random model's weights)")->capture_default_str();
  cmd->add_option("--steps", o->d.steps, "DDIM steps")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--images-per-style", o->d.images_per_style, "Pictures per style database (default 48; 24 random)")
      ->check(CLI::Range(1, 10000));
  cmd->add_flag("--no-sample", o->no_sample, "Only create the models and databases");
  cmd->add_flag("--json", o->json_out, "Print a JSON report on stdout");
  ModelOptions::Use use;
  use.clip = use.vocab = false;
  use.precision_of = "the UNet and autoencoder (CLIP stays fp32)";
  use.threads_note = "; the demo's tiny model uses 1 unless --threads is given";
  o->model_opts.add_to(cmd, use);
  cmd->callback([o] {
    // The tiny model's tensors are too small to gain from threads (and OpenMP threads that spin
    // on a busy machine cost far more than they give): one thread unless --threads says.
    if (globals().threads == 0) at::set_num_threads(1);
    o->d.out = o->out;
    o->d.model = o->model;
    o->d.device = o->model_opts.device;
    o->d.precision = o->model_opts.precision;
    o->d.sample = !o->no_sample;
    ProgressBar bar;
    auto rep = demo::run_demo(o->d, [&](const SampleProgress& p) { bar(p); });
    if (o->json_out) {
      std::cout << rep.to_json().dump(2) << std::endl;
      return;
    }
    if (!o->d.sample) return;
    if (rep.random_model)
      spdlog::info("demo finished in {:.1f} s. This model has random weights: it only checks the arithmetic.",
                   rep.seconds["total"]);
    else
      spdlog::info("demo finished in {:.1f} s: {} prompt(s) x {} style database(s); mosaic and hatching were never "
                   "seen in training.", rep.seconds["total"], rep.prompts.size(), rep.paths.styles.size());
    std::cerr << "  images:        " << rep.images.size() << " in " << rep.paths.outputs.string() << "\n"
              << "  first image:   " << (rep.images.empty() ? "" : rep.images[0].string()) << "\n"
              << "  neighbours:    " << (rep.neighbor_sheets.empty() ? "" : rep.neighbor_sheets[0].string()) << "\n"
              << "  contact sheet: " << rep.contact_sheet.string() << "\n"
              << "  gallery:       " << rep.gallery.string() << "\n"
              << "  try:           rdm sample \"" << rep.prompts.at(0) << "\" --model " << rep.paths.model_dir.string()
              << " --database " << rep.paths.style_databases[0].string() << (rep.random_model ? "" : " -k 4")
              << " --steps 20 -n 2 --out "
              << (rep.paths.root / "samples").string() << "\n";
  });
}

}  // namespace rdm::cli
