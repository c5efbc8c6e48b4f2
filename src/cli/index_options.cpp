// The index options of db build / import / merge (index_options.hpp).
#include "cli/index_options.hpp"

namespace rdm::cli {

CLI::Option* add_index_options(CLI::App* c, retrieval::IndexOptions& index) {
  auto* opt = c->add_option("--index", index.description,
                            "auto (by collection size: Flat up to 50k, else IVF-SQ8 with tuned nprobe and exact re-ranking) "
                            "or a FAISS index_factory string (Flat = exact; e.g. IVF4096,PQ64, HNSW32)")
                  ->capture_default_str();
  c->add_option("--nprobe", index.nprobe, "IVF lists probed at search time (stored in the manifest)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--ef", index.ef, "HNSW efSearch (stored in the manifest)")->check(CLI::NonNegativeNumber);
  c->add_option("--rerank", index.rerank, "Exact re-rank of this many approximate candidates")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--train-size", index.train_size, "Training sample for the index (0 = automatic)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--recall-k", index.recall_k, "k of the recall@k report of approximate indexes")
      ->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--dtype", index.dtype, "Embeddings file dtype")->capture_default_str()
      ->check(CLI::IsMember({"float32", "float16"}));
  return opt;
}

void add_trained_from_option(CLI::App* c, retrieval::IndexOptions& index) {
  c->add_option("--trained-from", index.trained_from,
                "Reuse this database's trained index (no training; its index string, nprobe and re-ranking): "
                "shards built so are merged list by list by `db merge`")
      ->check(CLI::ExistingDirectory);
}

}  // namespace rdm::cli
