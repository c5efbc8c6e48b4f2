// The index options shared by `rdm db build`, `db import` and `db merge` (--index, --nprobe,
// --ef, --rerank, --train-size, --recall-k, --dtype), bound to retrieval::IndexOptions, whose
// member initialisers are the defaults.
#pragma once
#include <CLI/CLI.hpp>

#include "rdm/retrieval/build.hpp"

namespace rdm::cli {

// Adds the options to `c`; returns --index (db merge asks whether it was given).
CLI::Option* add_index_options(CLI::App* c, retrieval::IndexOptions& index);
// --trained-from DB (db build and db import).
void add_trained_from_option(CLI::App* c, retrieval::IndexOptions& index);

}  // namespace rdm::cli
