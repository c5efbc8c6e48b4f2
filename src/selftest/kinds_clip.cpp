// Selftest kinds of the CLIP suite: tokenize, clip_text, clip_image, clip_logits,
// clip_preprocess (schema: the golden folder's CASES.md). Everything comes from cases.json.
#include <fstream>

#include <nlohmann/json.hpp>

#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/preprocess.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/runtime/error.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {
namespace {

json read_json(const fs::path& p, const std::string& case_id) {
  std::ifstream f(p);
  if (!f) case_fail("case '{}': cannot open '{}'", case_id, p.string());
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    case_fail("case '{}': '{}' is not valid JSON: {}", case_id, p.string(), e.what());
  }
}

torch::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  int64_t n = static_cast<int64_t>(rows.size()), m = 0;
  for (auto& r : rows) m = std::max<int64_t>(m, static_cast<int64_t>(r.size()));
  auto t = torch::full({n, m}, -1, torch::kInt64);
  for (int64_t i = 0; i < n; ++i)
    for (size_t k = 0; k < rows[static_cast<size_t>(i)].size(); ++k) t[i][static_cast<int64_t>(k)] = rows[static_cast<size_t>(i)][k];
  return t;
}

// Compares a string or list-of-strings field of every item exactly.
template <typename T>
void compare_field(Report& r, const std::string& role, const json& items, const std::string& field,
                   const std::vector<T>& got) {
  for (size_t i = 0; i < got.size(); ++i) {
    const json& want = items.at(i).at(field);
    if (json(got[i]) != want) {
      r.mismatch(role, fmt::format("item {}: got {}, expected {}", i, json(got[i]).dump(), want.dump()));
      return;
    }
  }
  r.match(role);
}

clip::ClipModel load_case_model(const Case& c) {
  const json& m = c.j().at("model");
  auto cfg = clip::ClipConfig::from_json(c.model_config());
  formats::StateDict sd = c.model_weights();
  if (clip::is_hf_layout(sd)) sd = clip::hf_to_openai(sd);
  return clip::ClipModel::from_state_dict(sd, cfg, c.target().device, c.compute_dtype(),
                                          m.at("weights").at("file").get<std::string>());
}

}  // namespace

void run_tokenize(const Case& c, Report& r) {
  const json& j = c.j();
  const json& p = c.params();
  const fs::path io_path = c.path(j.at("io").get<std::string>());
  const json doc = read_json(io_path, c.id());
  const json& items = doc.at(json::json_pointer(j.value("items", std::string("/cases"))));
  if (p.value("apply_ftfy", false)) throw Unsupported("ftfy.fix_text is not implemented");
  const auto tok = clip::Tokenizer::load(c.path(j.at("vocab").get<std::string>()));
  const int64_t ctx = p.value("context_length", int64_t{77});
  const bool truncate = p.value("truncate", true);
  if (p.contains("sot_token") && p.at("sot_token").get<int64_t>() != tok.sot_token())
    r.mismatch("sot_token", fmt::format("vocabulary gives {}", tok.sot_token()));
  if (p.contains("eot_token") && p.at("eot_token").get<int64_t>() != tok.eot_token())
    r.mismatch("eot_token", fmt::format("vocabulary gives {}", tok.eot_token()));
  if (p.contains("num_items") && p.at("num_items").get<size_t>() != items.size())
    case_fail("case '{}': {} items, params say {}", c.id(), items.size(), p.at("num_items").get<size_t>());

  const std::string text_field = j.at("inputs").at("text").at("field").get<std::string>();
  std::vector<std::string> texts;
  for (const json& it : items) texts.push_back(it.at(text_field).get<std::string>());

  std::vector<std::string> cleaned, decoded;
  std::vector<std::vector<std::string>> pieces, bpe_tokens;
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> needs;
  for (const auto& t : texts) {
    auto tr = tok.trace(t);
    cleaned.push_back(tr.cleaned);
    pieces.push_back(tr.pieces);
    bpe_tokens.push_back(tr.bpe_tokens);
    decoded.push_back(tok.decode(tr.ids));
    needs.push_back(static_cast<int64_t>(tr.ids.size()) + 2 > ctx ? 1 : 0);
    ids.push_back(std::move(tr.ids));
  }
  torch::Tensor rows = tok.tokenize(texts, ctx, truncate);
  torch::Tensor eot_index = rows.argmax(-1);

  auto expected_rows = [&](const std::string& field) {
    std::vector<std::vector<int64_t>> v;
    for (const json& it : items) {
      const json& f = it.at(field);
      if (f.is_array()) v.push_back(f.get<std::vector<int64_t>>());
      else if (f.is_boolean()) v.push_back({f.get<bool>() ? 1 : 0});
      else v.push_back({f.get<int64_t>()});
    }
    return v;
  };
  auto check_ids = [&](const std::string& role, const json& spec, const torch::Tensor& got) {
    auto want = expected_rows(spec.at("field").get<std::string>());
    torch::Tensor w = ids_tensor(want);
    if (got.dim() == 1) w = w.reshape({-1});
    r.compare(role, got, w, spec);
  };
  const json& outs = j.at("outputs");
  for (auto& [role, spec] : outs.items()) {
    if (role == "bpe_ids") check_ids(role, spec, ids_tensor(ids));
    else if (role == "tokens") check_ids(role, spec, rows);
    else if (role == "eot_index") check_ids(role, spec, eot_index);
    else if (role == "needs_truncation") check_ids(role, spec, torch::tensor(needs));
    else case_fail("case '{}': unknown tokenize output '{}'", c.id(), role);
  }
  if (j.contains("optional_outputs")) {
    for (auto& [role, spec] : j.at("optional_outputs").items()) {
      const std::string field = spec.at("field").get<std::string>();
      if (role == "cleaned") compare_field(r, role, items, field, cleaned);
      else if (role == "pieces") compare_field(r, role, items, field, pieces);
      else if (role == "bpe_tokens") compare_field(r, role, items, field, bpe_tokens);
      else if (role == "decoded") compare_field(r, role, items, field, decoded);
    }
  }
}

void run_clip_text(const Case& c, Report& r) {
  auto model = load_case_model(c);
  torch::Tensor tokens = c.on_device(c.input("tokens")).to(torch::kInt64);
  torch::Tensor ln_final;
  torch::Tensor emb = model.encode_text(tokens, &ln_final);
  if (c.params().value("normalize", false)) emb = emb / emb.norm(2, -1, true);
  r.check("text_embeds", emb);
  if (c.j().at("outputs").contains("eot_index")) r.check("eot_index", tokens.argmax(-1));
  r.check_optional("module:ln_final", ln_final);
}

void run_clip_image(const Case& c, Report& r) {
  auto model = load_case_model(c);
  torch::Tensor px = c.on_device(c.input("pixel_values"));
  if (c.params().contains("image_resolution") &&
      c.params().at("image_resolution").get<int64_t>() != model.config().image_resolution)
    case_fail("case '{}': image_resolution {} but the model config says {}", c.id(),
         c.params().at("image_resolution").get<int64_t>(), model.config().image_resolution);
  torch::Tensor ln_post;
  torch::Tensor emb = model.encode_image(px, &ln_post);
  if (c.params().value("normalize", false)) emb = emb / emb.norm(2, -1, true);
  r.check("image_embeds", emb);
  r.check_optional("module:visual.ln_post", ln_post);
}

void run_clip_logits(const Case& c, Report& r) {
  auto model = load_case_model(c);
  torch::Tensor logits = model.logits_per_image(c.on_device(c.input("pixel_values")),
                                                c.on_device(c.input("tokens")).to(torch::kInt64));
  r.check("logits_per_image", logits);
}

void run_clip_preprocess(const Case& c, Report& r) {
  const json& p = c.params();
  auto need = [&](const char* k) -> const json& {
    if (!p.contains(k)) case_fail("case '{}': params.{} is missing", c.id(), k);
    return p.at(k);
  };
  const int64_t size = need("resize_shorter_side").get<int64_t>();
  const int64_t crop = need("center_crop").get<int64_t>();
  if (need("interpolation").get<std::string>() != "bicubic")
    throw Unsupported("interpolation '" + p.at("interpolation").get<std::string>() + "'");
  if (need("convert").get<std::string>() != "RGB") throw Unsupported("convert to other than RGB");
  if (p.value("apply_exif_orientation", false)) throw Unsupported("EXIF orientation");
  auto mean = need("mean").get<std::vector<double>>();
  auto std_ = need("std").get<std::vector<double>>();
  if (mean.size() != 3 || std_.size() != 3) case_fail("case '{}': mean/std need 3 values", c.id());
  float m[3], s[3];
  for (int i = 0; i < 3; ++i) m[i] = static_cast<float>(mean[i]), s[i] = static_cast<float>(std_[i]);

  image::Image img = image::read_image(c.path(c.j().at("inputs").at("image").at("file").get<std::string>()));
  auto [w, h] = clip::resize_target(img.width, img.height, static_cast<int>(size));
  image::Image resized = clip::pil_resize(img, w, h);
  auto [left, top] = clip::center_crop_offsets(w, h, static_cast<int>(crop));
  image::Image cropped = clip::pil_crop(resized, left, top, static_cast<int>(crop), static_cast<int>(crop));
  r.check("pixel_values", clip::to_normalized_tensor(image::to_rgb(cropped), m, s));
}

}  // namespace rdm::selftest
