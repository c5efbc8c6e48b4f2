// rdm embed: CLIP embeddings of prompts and images (L2-normalised), or the token ids.
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/types.h>

#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/io/text_file.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
struct EmbedOpts {
  std::string text_file, out, preprocess = "clip";
  std::vector<std::string> texts, images;
  bool tokens = false, no_truncate = false;
  int batch = 16;
  ModelOptions model;
};

json rows_json(const torch::Tensor& t) {
  json rows = json::array();
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  for (int64_t i = 0; i < c.size(0); ++i) {
    const float* p = c[i].data_ptr<float>();
    rows.push_back(std::vector<float>(p, p + c.size(1)));
  }
  return rows;
}

void run_embed(const EmbedOpts& o) {
  std::vector<std::string> texts = o.texts;
  if (!o.text_file.empty())
    for (auto& l : io::read_text_lines(o.text_file, "--text-file"))
      if (!l.text.empty()) texts.push_back(std::move(l.text));
  if (texts.empty() && o.images.empty()) fail("embed: nothing to do; give --text, --text-file or --image");

  if (o.tokens) {
    if (!o.images.empty()) fail("embed: --tokens applies to prompts only");
    // The vocabulary beside --clip when it is given, else $RDM_CLIP_VOCAB or $RDM_MODELS.
    auto tok = clip::Tokenizer::load(o.model.vocab_path(o.model.clip.empty() ? fs::path() : o.model.clip_path()));
    torch::Tensor rows = tok.tokenize(texts, 77, !o.no_truncate);
    json out = json::array();
    for (size_t i = 0; i < texts.size(); ++i) {
      auto tr = tok.trace(texts[i]);
      auto r = rows[static_cast<int64_t>(i)];
      out.push_back({{"text", texts[i]},
                     {"ids", tr.ids},
                     {"bpe_tokens", tr.bpe_tokens},
                     {"tokens", std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel())},
                     {"eot_index", r.argmax().item<int64_t>()}});
    }
    std::cout << json{{"tokens", out}}.dump() << "\n";
    return;
  }

  if (o.batch < 1) fail("--batch must be at least 1");
  const auto device = o.model.torch_device();
  const auto dtype = o.model.dtype();
  const fs::path clip_path = o.model.clip_path();
  // The vocabulary only when there are prompts to encode.
  const auto encoder =
      clip::QueryEncoder::load(clip_path, texts.empty() ? fs::path() : o.model.vocab_path(clip_path), device, dtype);
  const clip::ClipModel& model = encoder.model();
  spdlog::info("CLIP {} on {} ({})", model.identity(), device.str(), o.model.precision);

  torch::Tensor text_emb, image_emb;
  if (!texts.empty()) text_emb = encoder.encode_texts(texts, !o.no_truncate, o.batch).cpu();
  if (!o.images.empty()) {
    const auto kind = o.preprocess == "rdm" ? clip::Preprocess::Rdm : clip::Preprocess::Clip;
    std::vector<fs::path> files(o.images.begin(), o.images.end());
    image_emb = encoder.encode_image_files(files, kind, o.batch).cpu();
  }

  if (!o.out.empty()) {
    std::vector<torch::Tensor> all;
    if (text_emb.defined()) all.push_back(text_emb);
    if (image_emb.defined()) all.push_back(image_emb);
    formats::write_npy(o.out, torch::cat(all).contiguous());
    spdlog::info("wrote {} embeddings of dimension {} to '{}' (prompts first, then images)",
                 torch::cat(all).size(0), model.config().embed_dim, o.out);
    return;
  }
  json out{{"model", model.identity()}, {"dim", model.config().embed_dim}};
  if (text_emb.defined()) {
    json arr = json::array();
    json rows = rows_json(text_emb);
    for (size_t i = 0; i < texts.size(); ++i) arr.push_back({{"text", texts[i]}, {"embedding", rows[i]}});
    out["texts"] = arr;
  }
  if (image_emb.defined()) {
    json arr = json::array();
    json rows = rows_json(image_emb);
    for (size_t i = 0; i < o.images.size(); ++i) arr.push_back({{"image", o.images[i]}, {"embedding", rows[i]}});
    out["images"] = arr;
  }
  std::cout << out.dump() << "\n";
}
}  // namespace

void add_embed_command(CLI::App& app) {
  auto o = std::make_shared<EmbedOpts>();
  auto* cmd = app.add_subcommand("embed", "CLIP embeddings (L2-normalised) of prompts and images, or token ids (CLIP weights: "
                                          "OpenAI .pt, state-dict .pt, .safetensors or a Hugging Face folder)");
  cmd->add_option("--text", o->texts, "Prompt (repeatable)");
  cmd->add_option("--text-file", o->text_file, "File with one prompt per line (empty lines skipped)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--image", o->images, "Image file(s) (PNG, JPEG, WEBP, BMP, TIFF)")->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "Write the embeddings as .npy [N, D] (prompts first, then images) instead of JSON");
  cmd->add_flag("--tokens", o->tokens, "Print the token ids of the prompts instead of embeddings (no model needed)");
  cmd->add_flag("--no-truncate", o->no_truncate, "Reject prompts longer than the context instead of truncating them");
  cmd->add_option("--preprocess", o->preprocess,
                  "Image preprocessing: clip (Pillow-exact resize + center crop) or rdm (RDM embedder: bicubic "
                  "resize to the model resolution without antialias)")
      ->check(CLI::IsMember({"clip", "rdm"}))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Items per forward pass")->capture_default_str();
  ModelOptions::Use use;
  use.precision_of = "CLIP (fp16 needs CUDA)";
  o->model.add_to(cmd, use);
  cmd->callback([o] { run_embed(*o); });
}

}  // namespace rdm::cli
