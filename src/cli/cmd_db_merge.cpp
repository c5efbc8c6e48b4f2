// rdm db merge: shard databases (db build --shard I/N) into one.
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "cli/index_options.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::cli {

void add_db_merge_command(CLI::App& db) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out, name;
    retrieval::IndexOptions index;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* c = db.add_subcommand("merge", "Merge shard databases (db build --shard I/N) into one");
  c->add_option("inputs", a->inputs, "Shard database folders")->required()->check(CLI::ExistingDirectory);
  c->add_option("--out", a->out, "Merged database folder (new)")->required();
  c->add_option("--name", a->name, "Database name (default: folder name)");
  auto* index_opt = add_index_options(c, a->index);
  c->add_flag("--json", a->json, "Print the report as JSON on stdout");
  c->callback([a, index_opt] {
    retrieval::MergeOptions o;
    for (auto& i : a->inputs) o.inputs.emplace_back(i);
    o.out = a->out;
    o.name = a->name;
    o.index_given = index_opt->count() > 0;  // else the shards' index settings
    o.index = a->index;
    auto r = retrieval::merge_databases(o);
    spdlog::info("database '{}': {} items from {} shards, {} skipped, {} duplicates, {:.1f} s", a->out,
                 r.indexed, a->inputs.size(), r.skipped, r.duplicates, r.seconds);
    if (a->json) std::cout << r.to_json().dump(2) << std::endl;
  });
}

}  // namespace rdm::cli
