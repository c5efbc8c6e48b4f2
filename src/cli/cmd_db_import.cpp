// rdm db import (CompVis .npz parts / .npy matrices) and rdm db merge (shards).
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::cli {
namespace {
struct IndexArgs {
  std::string index = "Flat", dtype = "float32";
  int64_t nprobe = 0, ef = 0, rerank = 0, train_size = 0, recall_k = 19;
};

CLI::Option* add_index_options(CLI::App* c, IndexArgs& a) {
  auto* opt = c->add_option("--index", a.index, "FAISS index_factory string (Flat = exact)")
                  ->capture_default_str();
  c->add_option("--nprobe", a.nprobe, "IVF lists probed (stored in the manifest)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--ef", a.ef, "HNSW efSearch (stored in the manifest)")->check(CLI::NonNegativeNumber);
  c->add_option("--rerank", a.rerank, "Exact re-rank of this many approximate candidates")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--train-size", a.train_size, "Index training sample (0 = automatic)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--recall-k", a.recall_k, "k of the recall@k report")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--dtype", a.dtype, "Embeddings file dtype")->capture_default_str()
      ->check(CLI::IsMember({"float32", "float16"}));
  return opt;
}

retrieval::IndexOptions to_index(const IndexArgs& a) {
  retrieval::IndexOptions o;
  o.description = a.index;
  o.nprobe = a.nprobe;
  o.ef = a.ef;
  o.rerank = a.rerank;
  o.train_size = a.train_size;
  o.recall_k = a.recall_k;
  o.dtype = a.dtype;
  return o;
}
}  // namespace

void add_db_import_command(CLI::App& db) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out, clip_identity = "ViT-L/14", name;
    IndexArgs index;
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
  c->add_flag("--json", a->json, "Print the report as JSON on stdout");
  c->callback([a] {
    retrieval::ImportOptions o;
    for (auto& i : a->inputs) o.inputs.emplace_back(i);
    o.out = a->out;
    o.clip_identity = a->clip_identity;
    o.name = a->name;
    o.index = to_index(a->index);
    auto r = retrieval::import_database(o);
    spdlog::info("database '{}': {} embeddings imported in {:.1f} s", a->out, r.indexed, r.seconds);
    if (a->json) std::cout << r.to_json().dump(2) << std::endl;
  });
}

void add_db_merge_command(CLI::App& db) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out, name;
    IndexArgs index;
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
    o.index_given = index_opt->count() > 0;
    o.index = to_index(a->index);
    auto r = retrieval::merge_databases(o);
    spdlog::info("database '{}': {} items from {} shards, {} skipped, {} duplicates, {:.1f} s", a->out,
                 r.indexed, a->inputs.size(), r.skipped, r.duplicates, r.seconds);
    if (a->json) std::cout << r.to_json().dump(2) << std::endl;
  });
}

}  // namespace rdm::cli
