// report.html of `rdm eval`: one self-contained page (inline CSS, no script) with the set-up, the
// classifier, the table per style x mode, the figures and a grid of sample thumbnails per style
// x mode. Images and figures are linked relatively (they sit beside it). Every string that
// comes from the user (prompts, database names, paths) is HTML-escaped.
#include <spdlog/fmt/fmt.h>

#include <cctype>
#include <map>

#include "app/eval_internal.hpp"

namespace rdm::eval::detail {
using json = nlohmann::json;

namespace {
std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    const char* entity = c == '&'    ? "&amp;"
                         : c == '<'  ? "&lt;"
                         : c == '>'  ? "&gt;"
                         : c == '"'  ? "&quot;"
                         : c == '\'' ? "&#39;"
                                     : nullptr;
    if (entity)
      o += entity;
    else
      o += c;
  }
  return o;
}
std::string esc(const json& v) { return esc(v.is_string() ? v.get<std::string>() : v.dump()); }

// A relative URL of a file name: each path segment percent-encoded where needed.
std::string url(const std::string& rel) {
  std::string o;
  for (unsigned char c : rel) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~')
      o += static_cast<char>(c);
    else
      o += fmt::format("%{:02X}", c);
  }
  return o;
}

const char* kStyle = R"(<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f2f2f2}
td.l,th.l{text-align:left}
tr.overall td{font-weight:bold;background:#fafafa}
figure{display:inline-block;margin:2px;text-align:center}
figure img{width:96px;height:96px;object-fit:cover;display:block}
figcaption{font-size:11px;max-width:96px;overflow:hidden;white-space:nowrap}
figcaption.ok{color:#1a7f37}figcaption.miss{color:#b42318}
.plots img{max-width:100%;margin:4px;border:1px solid #ddd}
code{background:#f4f4f4;padding:0 3px}
</style>)";

std::string setup_section(const json& e) {
  const json& plan = e["plan"];
  const json& s = plan["sampling"];
  std::string h = "<h2>Set-up</h2>\n<table id=\"setup\">\n";
  auto row = [&](const std::string& k, const std::string& v_html) {
    h += "<tr><th class=\"l\">" + esc(k) + "</th><td class=\"l\">" + v_html + "</td></tr>\n";
  };
  row("model", "<code>" + esc(plan["model"]["model"]) + "</code>");
  row("CLIP", "<code>" + esc(plan["model"]["clip"]) + "</code>");
  row("sampling", esc(fmt::format("{} ({} spacing), {} steps, eta {}, scale {}, k {}, size {}x{} (0 = the model's)",
                                  s["sampler"].get<std::string>(), s["spacing"].get<std::string>(),
                                  s["steps"].get<int64_t>(), s["eta"].get<double>(), s["scale"].get<double>(),
                                  s["k"].get<int64_t>(), s["width"].get<int64_t>(), s["height"].get<int64_t>())));
  std::string seeds;
  for (const auto& v : plan["seeds"]) seeds += (seeds.empty() ? "" : ", ") + v.dump();
  row("seeds", esc(seeds));
  std::string prompts = "<ol>";
  for (const auto& p : plan["prompts"]) prompts += "<li>" + esc(p) + "</li>";
  row("prompts", prompts + "</ol>");
  std::string styles = "<ul>";
  for (const auto& st : plan["styles"])
    styles += "<li>" + esc(st["name"]) + " — postfix “… in the style of " +
              esc(e["postfix"][st["name"].get<std::string>()]) + "” — <code>" + esc(st["dir"]) + "</code></li>";
  row("styles", styles + "</ul>");
  row("images", esc(fmt::format("{} scored, {} missing", e["counts"]["images"].get<int64_t>(),
                                e["counts"]["missing"].get<int64_t>())));
  return h + "</table>\n";
}

std::string classifier_section(const json& c) {
  std::string h =
      "<h2>Style classifier</h2>\n<p>A linear probe (multinomial logistic regression) on the CLIP image "
      "embeddings stored in the style databases, the stand-in for the paper's ArtBench-trained "
      "classifier. Held-out accuracy <b id=\"classifier-accuracy\">" +
      fixed(c["holdout_accuracy"]) + "</b> on " + esc(c["test_size"]) + " held-out images (" + esc(c["train_size"]) +
      " for training; chance " + fixed(c["chance"]) + ").</p>\n";
  h += "<table id=\"classifier\"><tr><th class=\"l\">style</th><th>held "
       "out</th><th>correct</th><th>accuracy</th></tr>\n";
  for (const auto& r : c["per_class"])
    h += "<tr><td class=\"l\">" + esc(r["style"]) + "</td><td>" + esc(r["test"]) + "</td><td>" + esc(r["correct"]) +
         "</td><td>" + fixed(r["accuracy"]) + "</td></tr>\n";
  return h + "</table>\n";
}

std::string results_section(const json& e) {
  std::string h =
      "<h2>Results per style and mode</h2>\n<p>Accuracy: the share of images the classifier assigns to "
      "the style asked for, with its 95&nbsp;% Wilson interval. Text mode uses no style: its rows show how "
      "often a plain-prompt image happens to fall in each style (chance level). Content: mean CLIP "
      "cosine similarity of the image to the bare prompt; content accuracy: share of images whose "
      "nearest prompt is their own. Diversity: mean pairwise CLIP cosine distance among the seeds of one "
      "prompt.</p>\n<table id=\"results\"><tr><th class=\"l\">style</th><th class=\"l\">mode</th><th>n</th>"
      "<th>accuracy</th><th>95% CI</th><th>content sim.</th><th>content acc.</th><th>diversity</th>"
      "<th>s / image</th></tr>\n";
  for (const char* table : {"rows", "overall"})
    for (const auto& r : e[table])
      h += std::string(table == std::string("overall") ? "<tr class=\"overall\">" : "<tr>") + "<td class=\"l\">" +
           esc(r["style"]) + "</td><td class=\"l\">" + esc(r["mode"]) + "</td><td>" + esc(r["n"]) + "</td><td>" +
           fixed(r["accuracy"]) + "</td><td>" + fixed(r["ci95"][0]) + "–" + fixed(r["ci95"][1]) + "</td><td>" +
           fixed(r["content_similarity"]) + "</td><td>" + fixed(r["content_accuracy"]) + "</td><td>" +
           fixed(r["diversity"]) + "</td><td>" + fixed(r["seconds_per_image"], 2) + "</td></tr>\n";
  h += "</table>\n<div class=\"plots\"><img id=\"accuracy-plot\" src=\"" + url(e["files"]["accuracy"]) +
       "\" alt=\"accuracy by style and mode\">\n";
  for (const auto& m : e["modes"])
    h += "<img class=\"confusion\" src=\"" + url(e["files"]["confusion"][m.get<std::string>()]) +
         "\" alt=\"confusion " + esc(m) + "\">\n";
  return h + "</div>\n";
}

std::string samples_section(const json& e) {
  const size_t kPerCell = 16;
  std::map<std::pair<std::string, std::string>, std::vector<const json*>> cells;  // (style, mode)
  for (const auto& im : e["images"])
    for (const auto& st : e["styles"])
      if (im["mode"] == "text" || im["style"] == st) cells[{st.get<std::string>(), im["mode"]}].push_back(&im);
  std::string h =
      "<h2>Samples</h2>\n<p>Each cell: the images of one style and mode (caption: the style the classifier "
      "predicts; green when it is the style asked for). Text-mode images are the same in every row.</p>\n"
      "<table id=\"samples\"><tr><th class=\"l\">style</th>";
  for (const auto& m : e["modes"]) h += "<th class=\"l\">" + esc(m) + "</th>";
  h += "</tr>\n";
  for (const auto& st : e["styles"]) {
    h += "<tr><td class=\"l\">" + esc(st) + "</td>";
    for (const auto& m : e["modes"]) {
      const auto& list = cells[{st.get<std::string>(), m.get<std::string>()}];
      h += "<td class=\"l\">";
      for (size_t i = 0; i < list.size() && i < kPerCell; ++i) {
        const json& im = *list[i];
        const bool ok = im["predicted"] == st;
        h += "<figure class=\"sample\"><a href=\"" + url(im["file"]) + "\"><img src=\"" + url(im["file"]) +
             "\" alt=\"" + esc(im["prompt"]) + "\" title=\"" +
             esc(fmt::format("{} | seed {} | predicted {}", im["prompt"].get<std::string>(), im["seed"].dump(),
                             im["predicted"].get<std::string>())) +
             "\"></a><figcaption class=\"" + (ok ? "ok" : "miss") + "\">" + esc(im["predicted"]) +
             "</figcaption></figure>";
      }
      if (list.size() > kPerCell) h += fmt::format("<p>… and {} more</p>", list.size() - kPerCell);
      h += "</td>";
    }
    h += "</tr>\n";
  }
  return h + "</table>\n";
}
}  // namespace

std::string report_html(const json& e) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rdm eval: retrieval vs "
      "postfix</title>\n" +
      std::string(kStyle) + "</head><body>\n<h1>rdm eval: retrieval vs postfix prompting</h1>\n";
  h += "<p>Created " + esc(e["created"]) + ". Files: <a href=\"eval.json\">eval.json</a>, <a href=\"" +
       url(e["files"]["csv"]) + "\">eval.csv</a>.</p>\n";
  h += setup_section(e);
  h += classifier_section(e["classifier"]);
  h += results_section(e);
  h += samples_section(e);
  return h + "</body></html>\n";
}

}  // namespace rdm::eval::detail
