// rdm db search: nearest neighbours of a text prompt or an image, as a table, JSON, or a
// contact sheet. The query path of the reference knn2img.py (CLIP text embedding,
// L2-normalised, Searcher top-k), usable on its own to preview what a database will do.
#include <filesystem>
#include <iostream>

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/cmd_db.hpp"
#include "cli/model_options.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"

namespace rdm::cli {
namespace fs = std::filesystem;

void add_db_search_command(CLI::App& db) {
  struct Args {
    std::string dir, text, image, sheet, query_npy;
    int64_t k = 19, nprobe = 0, ef = 0, rerank = 0;
    bool json = false, recall = false;
    ModelOptions model;
  };
  auto a = std::make_shared<Args>();
  auto* c = db.add_subcommand("search", "Nearest database images of a text prompt, an image or raw query vectors");
  c->add_option("db", a->dir, "Database folder")->required();
  auto* text = c->add_option("--text", a->text, "Text prompt");
  auto* image = c->add_option("--image", a->image, "Query image")->check(CLI::ExistingFile);
  auto* npy = c->add_option("--query-npy", a->query_npy,
                            "Raw query vectors: float32 .npy [N, D] (L2-normalised by rdm), answered one "
                            "at a time with per-query latency")->check(CLI::ExistingFile);
  text->excludes(image);
  npy->excludes(text)->excludes(image);
  c->add_flag("--recall", a->recall, "With --query-npy: recall@k against exact search over the stored embeddings");
  c->add_option("-k,--knn", a->k, "Number of neighbours")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--nprobe", a->nprobe, "IVF lists probed (default: manifest)")->check(CLI::NonNegativeNumber);
  c->add_option("--ef", a->ef, "HNSW efSearch (default: manifest)")->check(CLI::NonNegativeNumber);
  c->add_option("--rerank", a->rerank, "Exact re-rank of this many candidates (default: manifest)")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--json", a->json, "JSON on stdout");
  c->add_option("--sheet", a->sheet, "Write a contact sheet PNG of the neighbours");
  ModelOptions::Use use;
  use.clip_default = "the CLIP the database was built with";
  use.precision_of = "CLIP (fp16 needs CUDA)";
  a->model.add_to(c, use);
  c->callback([a] {
    if (!a->query_npy.empty()) {
      if (!a->sheet.empty()) fail("--sheet needs a --text or --image query, not --query-npy");
      return run_db_search_npy({a->dir, a->query_npy, a->k, a->nprobe, a->ef, a->rerank, a->json, a->recall});
    }
    if (a->recall) fail("--recall applies to --query-npy queries");
    if (a->text.empty() && a->image.empty()) fail("give a query: --text \"...\", --image FILE or --query-npy Q.npy");
    auto d = retrieval::Database::open(a->dir);
    fs::path clip_path;
    if (!a->model.clip.empty()) {
      clip_path = a->model.clip_path();
    } else {
      clip_path = d.clip_model();
      if (clip_path.empty() || !fs::exists(clip_path))
        fail("database '{}' does not record an existing CLIP model; pass --clip MODEL ({})",
             a->dir, d.clip_identity());
    }
    const fs::path vocab = a->text.empty() ? fs::path() : a->model.vocab_path(clip_path);
    const torch::Device device = a->model.torch_device();
    const torch::Dtype dtype = a->model.dtype();
    c10::InferenceMode guard;
    auto encoder = clip::QueryEncoder::load(clip_path, vocab, device, dtype);
    d.check_query_encoder(encoder.model().identity(), encoder.config().embed_dim);
    torch::Tensor q;
    if (!a->text.empty()) {
      q = encoder.encode_texts({a->text});
    } else {
      q = encoder.encode_image_files({a->image}, d.preprocess());
    }
    q = q.cpu();
    retrieval::SearchOptions so{a->nprobe, a->ef, a->rerank};
    auto res = d.search(q, a->k, so)[0];

    if (a->json) {
      nlohmann::json j{{"database", d.name()}, {"k", a->k}, {"clip", d.clip_identity()}};
      j["query"] = a->text.empty() ? nlohmann::json{{"image", a->image}} : nlohmann::json{{"text", a->text}};
      nlohmann::json list = nlohmann::json::array();
      for (size_t r = 0; r < res.size(); ++r)
      {
        nlohmann::json nb{{"rank", r + 1}, {"id", res[r].id}, {"score", res[r].score},
                          {"path", res[r].path}, {"label", res[r].label}};
        if (res[r].path.empty()) nb["img_id"] = d.item(res[r].id).orig_id;  // imports: the source id
        list.push_back(std::move(nb));
      }
      j["neighbors"] = list;
      std::cout << io::dump_json_safe(j, 2) << std::endl;
    } else {
      std::cout << "rank  score     id        label / path\n";
      for (size_t r = 0; r < res.size(); ++r) {
        std::string where = res[r].path.empty() ? d.item(res[r].id).orig_id : res[r].path;
        std::cout << fmt::format("{:>4}  {:.6f}  {:<8}  {}\n", r + 1, res[r].score, res[r].id,
                                 io::escape_for_terminal(where));
      }
    }
    if (!a->sheet.empty()) {
      std::vector<std::string> images, captions;
      for (size_t r = 0; r < res.size(); ++r) {
        images.push_back(res[r].path.empty() ? "" : d.source_path(res[r].id));
        std::string label = res[r].path.empty() ? "id " + std::to_string(res[r].id)
                                                : fs::path(res[r].path).filename().string();
        captions.push_back(fmt::format("#{} {:.4f}\n{}", r + 1, res[r].score, label));
      }
      image::write_contact_sheet(a->sheet, images, captions);
      spdlog::info("contact sheet written to {}", a->sheet);
    }
  });
}

}  // namespace rdm::cli
