// rdm db import: CompVis .npz parts / .npy embedding matrices into a style database.
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "cli/index_options.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::cli {

void add_db_import_command(CLI::App& db) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out, clip_identity = "ViT-L/14", name;
    retrieval::IndexOptions index;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* c = db.add_subcommand("import", "Import CompVis .npz database parts or .npy embedding matrices");
  c->add_option("inputs", a->inputs, ".npz parts, .npy matrices or folders of them (sorted by name)")
      ->required()->check(CLI::ExistingPath);
  c->add_option("--out", a->out, "Database folder")->required();
  c->add_option("--clip-identity", a->clip_identity, "CLIP model the embeddings come from")
      ->capture_default_str();
  c->add_option("--name", a->name, "Database name (default: folder name)");
  add_index_options(c, a->index);
  add_trained_from_option(c, a->index);
  c->add_flag("--json", a->json, "Print the report as JSON on stdout");
  c->callback([a] {
    retrieval::ImportOptions o;
    for (auto& i : a->inputs) o.inputs.emplace_back(i);
    o.out = a->out;
    o.clip_identity = a->clip_identity;
    o.name = a->name;
    o.index = a->index;
    auto r = retrieval::import_database(o);
    spdlog::info("database '{}': {} embeddings imported in {:.1f} s", a->out, r.indexed, r.seconds);
    if (a->json) std::cout << r.to_json().dump(2) << std::endl;
  });
}

}  // namespace rdm::cli
