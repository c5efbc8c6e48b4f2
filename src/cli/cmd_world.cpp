// rdm world: writes a procedural world of captioned pictures, one folder per style.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "rdm/app/world.hpp"

namespace rdm::cli {

void add_world_command(CLI::App& app) {
  struct Opts {
    std::string out;
    int64_t count = 100, columns = 6;
    std::vector<std::string> styles, objects, colours;
    uint64_t seed = 0;
    int size = 64;
    double detail_prob = 0.75, style_prob = 0.0;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand(
      "world", "Write a procedural world of captioned pictures: OUT/<style>/<index>.png, "
               "OUT/captions.jsonl, OUT/contact_sheet.png");
  c->add_option("--out", o->out, "Output folder (created)")->required();
  c->add_option("--count", o->count, "Pictures per style")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--styles", o->styles, "Styles, comma-separated (default: all)")->delimiter(',');
  c->add_option("--objects", o->objects, "Objects, comma-separated (default: all)")->delimiter(',');
  c->add_option("--colours", o->colours, "Colours, comma-separated (default: all)")->delimiter(',');
  c->add_option("--seed", o->seed, "World seed")->capture_default_str();
  c->add_option("--size", o->size, "Picture width and height in pixels")->capture_default_str()
      ->check(CLI::Range(16, 512));
  c->add_option("--detail-prob", o->detail_prob,
                "Probability that a caption names the size (and, separately, the position)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--style-prob", o->style_prob,
                "Probability that a caption ends with \"in the style of <style>\"")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--sheet-columns", o->columns, "Pictures per style on the contact sheet")
      ->capture_default_str()->check(CLI::PositiveNumber);
  c->callback([o] {
    world::WriteOptions w;
    w.spec.seed = o->seed;
    w.spec.styles = o->styles;
    w.spec.objects = o->objects;
    w.spec.colours = o->colours;
    w.spec.size = o->size;
    w.spec.detail_prob = o->detail_prob;
    w.spec.style_prob = o->style_prob;
    w.out = o->out;
    w.count = o->count;
    w.sheet_columns = o->columns;
    w.threads = globals().threads;
    const world::WriteReport r = world::write_world(w);
    spdlog::info("world '{}': {} pictures, {}, {} in {:.1f} s", o->out, r.pictures,
                 r.captions.string(), r.contact_sheet.string(), r.seconds);
  });
}

}  // namespace rdm::cli
