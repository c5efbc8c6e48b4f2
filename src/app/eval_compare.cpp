// `rdm eval` tables on stdout: the summary of one eval.json and the comparison of two (a speed
// trade-off judged on quality: sampler, steps, precision). See rdm/app/eval.hpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "app/eval_internal.hpp"
#include "rdm/app/eval.hpp"
#include "rdm/app/eval_stats.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::fixed;

namespace {
void check_row(const json& r, const std::string& where) {
  if (!r.is_object()) fail("{}: a row is not a JSON object", where);
  for (const char* k : {"style", "mode"})
    if (!r.contains(k) || !r[k].is_string()) fail("{}: a row has no '{}' text", where, k);
  for (const char* k : {"n", "correct", "images"})
    if (!r.contains(k) || !r[k].is_number_integer() || r[k].get<int64_t>() < 0)
      fail("{}: row {}/{} has no count '{}'", where, r["style"].get<std::string>(), r["mode"].get<std::string>(), k);
  if (r["correct"].get<int64_t>() > r["n"].get<int64_t>())
    fail("{}: row {}/{} has more correct images than images", where, r["style"].get<std::string>(),
         r["mode"].get<std::string>());
  for (const char* k : {"accuracy", "content_similarity", "content_similarity_sd", "diversity", "seconds_per_image"})
    if (!r.contains(k) || !(r[k].is_number() || r[k].is_null()))
      fail("{}: row {}/{} has no number '{}'", where, r["style"].get<std::string>(), r["mode"].get<std::string>(), k);
  if (!r.contains("ci95") || !r["ci95"].is_array() || r["ci95"].size() != 2 || !r["ci95"][0].is_number() ||
      !r["ci95"][1].is_number())
    fail("{}: row {}/{} has no interval 'ci95'", where, r["style"].get<std::string>(), r["mode"].get<std::string>());
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

size_t style_width(const json& e) {
  size_t w = 5;
  for (const auto& r : e["rows"]) w = std::max(w, r["style"].get<std::string>().size());
  return std::min<size_t>(w, 40) + 2;
}

std::string signed3(double v) { return std::isfinite(v) ? fmt::format("{:+.3f}", v) : "-"; }
}  // namespace

json read_eval_json(const fs::path& file) {
  const std::string where = "'" + file.string() + "'";
  if (!fs::is_regular_file(file)) fail("{}: no such file (give the eval.json of an `rdm eval` run)", where);
  const json e = json::parse(io::read_file(file), nullptr, false);
  if (e.is_discarded()) fail("{}: not valid JSON (give the eval.json of an `rdm eval` run)", where);
  if (!e.is_object() || e.value("kind", "") != "rdm-eval")
    fail("{}: not an `rdm eval` report (no \"kind\": \"rdm-eval\")", where);
  if (e.value("version", 0) != 1)
    fail("{}: eval report version {} is not supported (1 is)", where, e.value("version", 0));
  for (const char* k : {"rows", "overall", "styles", "modes"})
    if (!e.contains(k) || !e[k].is_array()) fail("{}: the report has no '{}' list", where, k);
  if (!e.contains("classifier") || !e["classifier"].is_object()) fail("{}: the report has no 'classifier'", where);
  for (const char* table : {"rows", "overall"})
    for (const auto& r : e[table]) check_row(r, where);
  return e;
}

std::string summary_table(const json& e) {
  const size_t w = style_width(e);
  const json& c = e["classifier"];
  std::string out = fmt::format("style classifier (linear probe): held-out accuracy {} on {} images (chance {})\n",
                                fixed(c["holdout_accuracy"]), c.value("test_size", int64_t(0)), fixed(c["chance"]));
  const bool against = e.contains("against") && e["against"].is_object();
  out += pad("style", w) + pad("mode", 11) + pad("n", 6) + pad("accuracy", 10) + pad("95% CI", 17) + pad("content", 9) +
         pad("content acc", 13) + pad("diversity", 11) + (against ? "PSNR   ref sim  " : "") + "s/image\n";
  for (const char* table : {"rows", "overall"})
    for (const auto& r : e[table])
      out += pad(r["style"].get<std::string>(), w) + pad(r["mode"].get<std::string>(), 11) +
             pad(std::to_string(r["n"].get<int64_t>()), 6) + pad(fixed(r["accuracy"]), 10) +
             pad("[" + fixed(r["ci95"][0]) + ", " + fixed(r["ci95"][1]) + "]", 17) +
             pad(fixed(r["content_similarity"]), 9) + pad(fixed(r["content_accuracy"]), 13) +
             pad(fixed(r["diversity"]), 11) +
             (against ? pad(fixed(r.value("psnr", json()), 2), 7) + pad(fixed(r.value("reference_similarity", json())), 9)
                      : std::string()) +
             fixed(r["seconds_per_image"], 2) + "\n";
  if (against)
    out += fmt::format("PSNR (dB) and CLIP similarity against {} with {} steps in '{}'\n",
                       e["against"].value("sampler", "?"), e["against"].value("steps", int64_t(0)),
                       e["against"].value("dir", "?"));
  return out;
}

std::string compare_reports(const fs::path& a_file, const fs::path& b_file, json* as_json) {
  const json a = read_eval_json(a_file), b = read_eval_json(b_file);
  if (a["styles"] != b["styles"])
    fail("'{}' scores the styles {} but '{}' scores {}: compare reports of the same styles", b_file.string(),
         b["styles"].dump(), a_file.string(), a["styles"].dump());
  if (a["modes"] != b["modes"])
    fail("'{}' has the modes {} but '{}' has {}", b_file.string(), b["modes"].dump(), a_file.string(),
         a["modes"].dump());
  if (a.contains("plan") && b.contains("plan") &&
      a["plan"].value("prompts", json()) != b["plan"].value("prompts", json()))
    spdlog::warn("compare: '{}' and '{}' use different prompts", a_file.string(), b_file.string());
  std::map<std::pair<std::string, std::string>, const json*> rows_b;
  for (const char* table : {"rows", "overall"})
    for (const auto& r : b[table]) rows_b[{r["style"].get<std::string>(), r["mode"].get<std::string>()}] = &r;

  const size_t w = style_width(a);
  std::string out = fmt::format("A: {}\nB: {}\nB - A with 95% intervals (Newcombe for accuracy, Wald for content)\n",
                                a_file.string(), b_file.string());
  out += pad("style", w) + pad("mode", 11) + pad("acc A", 8) + pad("acc B", 8) + pad("B-A", 8) + pad("95% CI", 19) +
         pad("sim A", 8) + pad("sim B", 8) + pad("B-A", 8) + "95% CI\n";
  json list = json::array();
  for (const char* table : {"rows", "overall"})
    for (const auto& ra : a[table]) {
      const std::string style = ra["style"], mode = ra["mode"];
      auto it = rows_b.find({style, mode});
      if (it == rows_b.end()) fail("'{}' has no row for style '{}', mode '{}'", b_file.string(), style, mode);
      const json& rb = *it->second;
      const int64_t ka = ra["correct"], na = ra["n"], kb = rb["correct"], nb = rb["n"];
      const double pa = na ? double(ka) / double(na) : std::nan(""), pb = nb ? double(kb) / double(nb) : std::nan("");
      const Interval d = newcombe_difference(kb, nb, ka, na);
      const double sa = detail::to_double(ra["content_similarity"]), sb = detail::to_double(rb["content_similarity"]);
      const Interval ds = wald_difference(sb, detail::to_double(rb["content_similarity_sd"]), rb["images"], sa,
                                          detail::to_double(ra["content_similarity_sd"]), ra["images"]);
      out += pad(style, w) + pad(mode, 11) + pad(fixed(ra["accuracy"]), 8) + pad(fixed(rb["accuracy"]), 8) +
             pad(signed3(pb - pa), 8) + pad("[" + signed3(d.lo) + ", " + signed3(d.hi) + "]", 19) +
             pad(fixed(ra["content_similarity"]), 8) + pad(fixed(rb["content_similarity"]), 8) +
             pad(signed3(sb - sa), 8) +
             (std::isfinite(ds.lo) ? "[" + signed3(ds.lo) + ", " + signed3(ds.hi) + "]" : std::string("-")) + "\n";
      list.push_back({{"style", style},
                      {"mode", mode},
                      {"accuracy_a", ra["accuracy"]},
                      {"accuracy_b", rb["accuracy"]},
                      {"accuracy_difference", detail::number(pb - pa)},
                      {"accuracy_difference_ci95", {d.lo, d.hi}},
                      {"content_similarity_a", ra["content_similarity"]},
                      {"content_similarity_b", rb["content_similarity"]},
                      {"content_similarity_difference", detail::number(sb - sa)},
                      {"content_similarity_difference_ci95", {detail::number(ds.lo), detail::number(ds.hi)}}});
    }
  out += fmt::format("classifier held-out accuracy: A {}, B {}\n", fixed(a["classifier"]["holdout_accuracy"]),
                     fixed(b["classifier"]["holdout_accuracy"]));
  if (as_json) *as_json = {{"a", a_file.string()}, {"b", b_file.string()}, {"rows", list}};
  return out;
}

}  // namespace rdm::eval
