// `rdm eval --tabulate DIR...`: one line per eval run (sampler, spacing, steps, model calls,
// PSNR and CLIP similarity against the --against reference, style accuracy, prompt similarity,
// seconds per image) and a plot of quality against model calls, one line per sampler: the
// yardstick that judges a faster sampler on quality (README "Fast solvers: quality measured").
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "app/eval_internal.hpp"
#include "rdm/app/eval.hpp"
#include "rdm/app/eval_stats.hpp"
#include "rdm/image/plot.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/sampler/solvers.hpp"

namespace rdm::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::fixed;
using detail::to_double;

namespace {
fs::path eval_file(const fs::path& p) { return fs::is_directory(p) ? p / "eval.json" : p; }

// The overall row of `mode` in an eval.json (the first mode when it has no such mode).
const json& overall_row(const json& e, const std::string& mode, const fs::path& file) {
  for (const auto& r : e["overall"])
    if (r["mode"] == mode) return r;
  if (e["overall"].empty()) fail("'{}': the report has no overall rows", file.string());
  return e["overall"].front();
}

json tab_row(const fs::path& file) {
  const json e = read_eval_json(file);
  if (!e.contains("plan") || !e["plan"].is_object() || !e["plan"].contains("sampling"))
    fail("'{}': the report has no plan.sampling (an eval.json of an older rdm?)", file.string());
  const json& smp = e["plan"]["sampling"];
  const std::string sampler = smp.value("sampler", "ddim"), spacing = smp.value("spacing", "uniform");
  const int64_t steps = smp.value("steps", int64_t(0));
  const json& r = overall_row(e, "retrieval", file);
  const int64_t n_ref = r.value("reference_n", int64_t(0));
  const double psnr = to_double(r.value("psnr", json())), sd = to_double(r.value("psnr_sd", json()));
  const double half = n_ref > 1 ? kZ95 * sd / std::sqrt(static_cast<double>(n_ref)) : std::nan("");
  return {{"file", file.string()},
          {"mode", r["mode"]},
          {"sampler", sampler},
          {"spacing", spacing},
          {"steps", steps},
          {"eta", smp.value("eta", 0.0)},
          {"scale", smp.value("scale", 1.0)},
          {"model_calls", sampler::model_calls(sampler, steps)},
          {"against", e.value("against", json())},
          {"reference_n", n_ref},
          {"psnr", detail::number(psnr)},
          {"psnr_ci95", {detail::number(psnr - half), detail::number(psnr + half)}},
          {"reference_similarity", r.value("reference_similarity", json())},
          {"n", r["n"]},
          {"accuracy", r["accuracy"]},
          {"ci95", r["ci95"]},
          {"content_similarity", r["content_similarity"]},
          {"seconds_per_image", r["seconds_per_image"]}};
}

std::string series_label(const json& r) {
  std::string l = r["sampler"].get<std::string>();
  if (r["spacing"] != "uniform") l += " (" + r["spacing"].get<std::string>() + ")";
  return l;
}

// Two line plots one above the other: PSNR and style accuracy against model calls.
image::RgbImage tabulate_plot(const json& rows) {
  std::map<std::string, image::PlotSeries> psnr, acc;
  for (const auto& r : rows) {
    if (r["is_reference"].get<bool>()) continue;  // its calls dwarf the others' and it has no PSNR
    const std::string l = series_label(r);
    const double calls = static_cast<double>(r["model_calls"].get<int64_t>());
    psnr[l].label = acc[l].label = l;
    psnr[l].x.push_back(calls), psnr[l].y.push_back(to_double(r["psnr"]));
    acc[l].x.push_back(calls), acc[l].y.push_back(to_double(r["accuracy"]));
  }
  auto to_list = [](std::map<std::string, image::PlotSeries>& m) {
    std::vector<image::PlotSeries> v;
    for (auto& [k, s] : m) v.push_back(std::move(s));
    return v;
  };
  image::PlotOptions po;
  po.width = 720;
  po.height = 380;
  po.x_label = "model calls per image";
  po.title = "PSNR against the reference (dB), higher is closer";
  po.y_label = "PSNR (dB)";
  const image::RgbImage top = image::line_plot(to_list(psnr), po);
  po.title = "style accuracy (retrieval), by the eval's classifier";
  po.y_label = "accuracy";
  const image::RgbImage bottom = image::line_plot(to_list(acc), po);
  image::RgbImage out(top.height + bottom.height, top.width, 255);
  std::copy(top.pixels.begin(), top.pixels.end(), out.pixels.begin());
  std::copy(bottom.pixels.begin(), bottom.pixels.end(),
            out.pixels.begin() + static_cast<std::ptrdiff_t>(top.pixels.size()));
  return out;
}
}  // namespace

std::string tabulate_reports(const std::vector<fs::path>& evals, const fs::path& plot, json* as_json) {
  if (evals.empty()) fail("--tabulate: give one or more eval folders (or eval.json files)");
  json rows = json::array();
  std::set<std::string> seen;
  for (const auto& p : evals) {
    const fs::path file = eval_file(p);
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(file, ec);
    if (!seen.insert(ec ? file.string() : canonical.string()).second) {
      spdlog::warn("tabulate: '{}' is listed twice; counted once", file.string());
      continue;
    }
    rows.push_back(tab_row(file));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
    const std::string la = series_label(a), lb = series_label(b);
    return la != lb ? la < lb : a["model_calls"].get<int64_t>() < b["model_calls"].get<int64_t>();
  });
  // The reference run itself may be listed: it is marked, and is the only row without PSNR.
  std::set<std::string> refs;
  for (const auto& r : rows)
    if (r["against"].is_object()) refs.insert(r["against"].value("dir", ""));
  for (auto& r : rows) {
    const std::string dir =
        fs::absolute(fs::path(r["file"].get<std::string>()).parent_path()).lexically_normal().string();
    r["is_reference"] = refs.count(dir) > 0;
    if (!r["against"].is_object() && !r["is_reference"].get<bool>())
      spdlog::warn("tabulate: '{}' was scored without --against: it has no PSNR", r["file"].get<std::string>());
  }
  if (refs.size() > 1)
    spdlog::warn("tabulate: the evals were measured against {} different references: their PSNR is not comparable",
                 refs.size());
  std::string out =
      "| sampler | spacing | steps | model calls | PSNR vs reference (dB) | CLIP sim. vs reference | style accuracy | "
      "prompt similarity | s/image |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& r : rows) {
    const std::string psnr = r["is_reference"].get<bool>() ? std::string("(reference)")
                             : r["psnr"].is_number()
                                 ? fmt::format("{} [{}, {}]", fixed(r["psnr"], 2), fixed(r["psnr_ci95"][0], 2),
                                               fixed(r["psnr_ci95"][1], 2))
                                 : std::string("-");
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} [{}, {}] | {} | {} |\n", r["sampler"].get<std::string>(),
                       r["spacing"].get<std::string>(), r["steps"].get<int64_t>(), r["model_calls"].get<int64_t>(),
                       psnr, r["is_reference"].get<bool>() ? "1" : fixed(r["reference_similarity"]),
                       fixed(r["accuracy"]), fixed(r["ci95"][0], 2), fixed(r["ci95"][1], 2),
                       fixed(r["content_similarity"]), fixed(r["seconds_per_image"], 2));
  }
  for (const auto& r : rows)
    if (const json& a = r["against"]; a.is_object()) {
      out += fmt::format("\nPSNR on 8-bit RGB and CLIP image similarity against {} with {} steps ({} images, '{}'); "
                         "95 % intervals; model calls per image (with guidance each call is a doubled UNet batch)\n",
                         a.value("sampler", "?"), a.value("steps", int64_t(0)), a.value("images", int64_t(0)),
                         a.value("dir", "?"));
      break;
    }
  if (!plot.empty()) {
    image::write_png(plot, tabulate_plot(rows));
    spdlog::info("tabulate: wrote {}", plot.string());
  }
  if (as_json) *as_json = {{"kind", "rdm-eval-tabulate"}, {"rows", rows}};
  return out;
}

}  // namespace rdm::eval
