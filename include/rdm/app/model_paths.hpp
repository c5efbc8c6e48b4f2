// Where rdm finds models and databases by name (knn2img hard-codes models/rdm/rdm768x768/
// model.ckpt and data/rdm/retrieval_databases/<name>). Layout, under $RDM_MODELS (default
// ./models) and $RDM_DATABASES (default ./databases):
//
//   models/rdm/<name>/model.ckpt | model.safetensors   --model <name>   (default rdm768x768)
//   models/rdm/<name>/config.yaml | config.json        (the latent-diffusion config)
//   models/rdm/<name>/rdm.json                         optional: {"clip": "<name or path>",
//                                                                 "vocab": "<path>"}
//   models/clip/<name>.pt | <name>.safetensors         --clip <name>    (default ViT-L-14)
//   models/clip/bpe_simple_vocab_16e6.txt.gz           --vocab (see resolve_vocab: a <clip
//                                                       stem>.vocab.txt.gz beside the CLIP wins)
//   databases/<name>/                                  --database <name>
//
// Every option also takes a path (file or folder) instead of a name.
#pragma once
#include <filesystem>
#include <string>

#include "rdm/app/pipeline.hpp"

namespace rdm {

std::filesystem::path models_root();     // $RDM_MODELS or ./models
std::filesystem::path databases_root();  // $RDM_DATABASES or ./databases
// The shipped tiny trained model: $RDM_MODELS/tiny, else the source tree's models/tiny (where
// this binary was built from). `--model tiny` finds it too. rdm::Error when neither exists.
std::filesystem::path tiny_model_dir();

// Resolves each of the four files from a name or path ("" = default). Throws rdm::Error naming
// what is missing, where it looked and what to run (scripts/download_models.sh, rdm demo).
PipelinePaths resolve_model_paths(const std::string& model, const std::string& config = "",
                                  const std::string& clip = "", const std::string& vocab = "");

// CLIP weights from a name under $RDM_MODELS/clip ("ViT-L/14" or "ViT-L-14" -> ViT-L-14.pt,
// .safetensors or a Hugging Face folder) or a path (file or folder).
std::filesystem::path resolve_clip(const std::string& name_or_path);

// The CLIP BPE vocabulary, the same for every command: `vocab` when given (it must exist);
// else beside the CLIP weights `clip` ("" = none): <clip stem>.vocab.txt.gz, a Hugging Face
// folder's vocab.json, bpe_simple_vocab_16e6.txt.gz in the CLIP's folder (or, for a file,
// vocab.json there) or the folder above; else $RDM_CLIP_VOCAB; else
// bpe_simple_vocab_16e6.txt.gz in $RDM_MODELS/clip or $RDM_MODELS. rdm::Error when none exists.
std::filesystem::path resolve_vocab(const std::string& vocab, const std::filesystem::path& clip);

// A database folder from a name or a path. Throws rdm::Error when it does not exist.
std::filesystem::path resolve_database(const std::string& name_or_dir);

}  // namespace rdm
