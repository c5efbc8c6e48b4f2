// rdm embed: CLIP embeddings of prompts and images (L2-normalised), or the token ids.
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include "cli/commands.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/io/text_file.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
struct EmbedOpts {
  std::string clip, vocab, text_file, out, device = "cpu", precision = "fp32", preprocess = "clip";
  std::vector<std::string> texts, images;
  bool tokens = false, no_truncate = false;
  int batch = 16;
};

// --vocab, else beside the model (the gz merge list, or vocab.json + merges.txt), else
// $RDM_CLIP_VOCAB, else models/bpe_simple_vocab_16e6.txt.gz under the current directory.
fs::path find_vocab(const EmbedOpts& o) {
  if (!o.vocab.empty()) return o.vocab;
  std::vector<fs::path> cands;
  if (!o.clip.empty()) {
    fs::path m(o.clip);
    fs::path dir = fs::is_directory(m) ? m : m.parent_path();
    if (dir.empty()) dir = ".";
    cands.push_back(dir / "bpe_simple_vocab_16e6.txt.gz");
    cands.push_back(dir / "vocab.json");
    cands.push_back(dir.parent_path() / "bpe_simple_vocab_16e6.txt.gz");
  }
  if (const char* env = std::getenv("RDM_CLIP_VOCAB")) cands.emplace_back(env);
  cands.push_back(fs::path("models") / "bpe_simple_vocab_16e6.txt.gz");
  for (auto& c : cands)
    if (fs::is_regular_file(c)) return c;
  fail("no CLIP vocabulary found: pass --vocab (bpe_simple_vocab_16e6.txt.gz or vocab.json), put it beside the "
       "model, set RDM_CLIP_VOCAB, or place it in models/");
}

torch::Dtype parse_precision(const std::string& p) {
  if (p == "fp32") return torch::kFloat32;
  if (p == "fp16") return torch::kFloat16;
  if (p == "bf16") return torch::kBFloat16;
  fail("--precision must be fp32, fp16 or bf16, got '{}'", p);
}

torch::Device parse_device(const std::string& d) {
  torch::Device dev = torch::kCPU;
  try {
    dev = torch::Device(d);
  } catch (const std::exception&) {
    fail("--device '{}' is not a device (cpu, cuda, cuda:N)", d);
  }
  if (dev.is_cuda() && !torch::cuda::is_available()) fail("--device {}: CUDA is not available in this build/machine", d);
  return dev;
}

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
    auto tok = clip::Tokenizer::load(find_vocab(o));
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

  if (o.clip.empty()) fail("embed: --clip MODEL is required");
  if (o.batch < 1) fail("--batch must be at least 1");
  const auto device = parse_device(o.device);
  const auto dtype = parse_precision(o.precision);
  // The vocabulary only when there are prompts to encode.
  const auto encoder = clip::QueryEncoder::load(o.clip, texts.empty() ? fs::path() : find_vocab(o), device, dtype);
  const clip::ClipModel& model = encoder.model();
  spdlog::info("CLIP {} on {} ({})", model.identity(), device.str(), o.precision);

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
  auto* cmd = app.add_subcommand("embed", "CLIP embeddings (L2-normalised) of prompts and images, or token ids");
  cmd->add_option("--clip", o->clip, "CLIP weights: OpenAI ViT-L-14.pt, state-dict .pt, .safetensors, or a Hugging Face folder");
  cmd->add_option("--text", o->texts, "Prompt (repeatable)");
  cmd->add_option("--text-file", o->text_file, "File with one prompt per line (empty lines skipped)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--image", o->images, "Image file(s) (PNG, JPEG, WEBP, BMP, TIFF)")->check(CLI::ExistingFile);
  cmd->add_option("--vocab", o->vocab,
                  "bpe_simple_vocab_16e6.txt.gz or HF vocab.json (+merges.txt beside it); default: beside the model, "
                  "$RDM_CLIP_VOCAB, models/");
  cmd->add_option("--out", o->out, "Write the embeddings as .npy [N, D] (prompts first, then images) instead of JSON");
  cmd->add_flag("--tokens", o->tokens, "Print the token ids of the prompts instead of embeddings (no model needed)");
  cmd->add_flag("--no-truncate", o->no_truncate, "Reject prompts longer than the context instead of truncating them");
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, fp16 (CUDA only) or bf16")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--preprocess", o->preprocess,
                  "Image preprocessing: clip (Pillow-exact resize + center crop) or rdm (RDM embedder: bicubic "
                  "resize to the model resolution without antialias)")
      ->check(CLI::IsMember({"clip", "rdm"}))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Items per forward pass")->capture_default_str();
  cmd->callback([o] { run_embed(*o); });
}

}  // namespace rdm::cli
