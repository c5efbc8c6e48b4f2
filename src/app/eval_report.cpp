// `rdm eval` scoring and its files: the style classifier over the databases, CLIP embeddings of
// the images and prompts, the metrics per style x mode, eval.json, eval.csv and the figures
// (see rdm/app/eval.hpp). No reference file: the paper's evaluation, with intervals.
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <set>

#include "app/eval_internal.hpp"
#include "rdm/app/eval.hpp"
#include "rdm/app/eval_stats.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/image/plot.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::number;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
const double kNaN = std::nan("");

// One finished image and its scores.
struct Scored {
  const Job* job = nullptr;
  fs::path file;
  int64_t predicted = -1;
  std::vector<double> probabilities;
  double content = kNaN;  // cosine similarity to its own (bare) prompt
  int64_t nearest = -1;   // the prompt its embedding is closest to
  double seconds = kNaN;  // encode + retrieve + sample + decode, from the sidecar
  fs::path reference;           // --against: the reference's image of the same job
  double psnr = kNaN;           // --against: PSNR against it (dB)
  double ref_similarity = kNaN;  // --against: CLIP image cosine similarity to it
};

// Seconds the image took (its sidecar's timings); NaN when they are not recorded.
double sidecar_seconds(const fs::path& png) {
  fs::path side = png;
  side.replace_extension(".json");
  if (!fs::exists(side)) return kNaN;
  const json j = json::parse(io::read_file(side), nullptr, false);
  if (!j.is_object() || !j.contains("seconds") || !j["seconds"].is_object()) return kNaN;
  double t = 0;
  bool any = false;
  for (const char* k : {"encode", "retrieve", "sample", "decode"})
    if (j["seconds"].contains(k) && j["seconds"][k].is_number()) t += j["seconds"][k].get<double>(), any = true;
  return any ? t : kNaN;
}

void check_encoder(const Plan& plan, const clip::QueryEncoder& encoder) {
  const int64_t dim = encoder.config().embed_dim;
  const std::string identity = encoder.model().identity();
  for (const auto& s : plan.styles) {
    if (s.dim != dim)
      fail(
          "database '{}' holds {}-d CLIP embeddings but the CLIP '{}' makes {}-d ones: the eval needs the CLIP the "
          "databases were built with (--clip)",
          s.dir.string(), s.dim, plan.model.clip.string(), dim);
    if (!retrieval::clip_identities_compatible(s.clip_identity, identity))
      fail(
          "database '{}' was made with CLIP {} but the eval embeds with {} ('{}'): pass the CLIP the databases were "
          "built with (--clip)",
          s.dir.string(), s.clip_identity, identity, plan.model.clip.string());
  }
}

torch::Tensor embed_images(const clip::QueryEncoder& encoder, const std::vector<fs::path>& files,
                           clip::Preprocess preprocess) {
  const auto t0 = Clock::now();
  std::vector<torch::Tensor> parts;
  const size_t chunk = 64;
  for (size_t i = 0; i < files.size(); i += chunk) {
    std::vector<fs::path> part(files.begin() + static_cast<std::ptrdiff_t>(i),
                               files.begin() + static_cast<std::ptrdiff_t>(std::min(files.size(), i + chunk)));
    parts.push_back(encoder.encode_image_files(part, preprocess, 32).to(torch::kCPU).clone());
    spdlog::debug("eval: embedded {}/{} images", i + part.size(), files.size());
  }
  spdlog::info("eval: embedded {} image(s) with CLIP in {:.2f} s", files.size(), since(t0));
  return parts.empty() ? torch::zeros({0, encoder.config().embed_dim}) : torch::cat(parts, 0);
}

// One table row over `items` (image, target style); the images may repeat (text mode).
json row_json(const std::string& style, const std::string& mode, const std::vector<std::pair<size_t, int64_t>>& items,
              const std::vector<Scored>& scored, const torch::Tensor& emb, size_t prompts) {
  int64_t correct = 0;
  std::set<size_t> distinct;
  for (const auto& [i, target] : items) {
    correct += scored[i].predicted == target;
    distinct.insert(i);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  double sum = 0, sum2 = 0, secs = 0;
  int64_t n_secs = 0, content_hits = 0;
  std::map<std::pair<size_t, int64_t>, std::vector<int64_t>> groups;  // (prompt, job style) -> images
  for (size_t i : distinct) {
    const Scored& s = scored[i];
    sum += s.content, sum2 += s.content * s.content;
    content_hits += s.nearest == static_cast<int64_t>(s.job->prompt);
    if (std::isfinite(s.seconds)) secs += s.seconds, ++n_secs;
    groups[{s.job->prompt, s.job->style}].push_back(static_cast<int64_t>(i));
  }
  const double m = distinct.empty() ? kNaN : sum / static_cast<double>(distinct.size());
  const double var = distinct.size() > 1 ? (sum2 - static_cast<double>(distinct.size()) * m * m) /
                                               static_cast<double>(distinct.size() - 1)
                                         : kNaN;
  double psum = 0, psum2 = 0, rsum = 0;
  int64_t n_ref = 0;
  for (size_t i : distinct)
    if (std::isfinite(scored[i].psnr))
      psum += scored[i].psnr, psum2 += scored[i].psnr * scored[i].psnr, rsum += scored[i].ref_similarity, ++n_ref;
  const double pm = n_ref ? psum / static_cast<double>(n_ref) : kNaN;
  const double pvar = n_ref > 1 ? std::max(0.0, (psum2 - static_cast<double>(n_ref) * pm * pm) /
                                                    static_cast<double>(n_ref - 1))
                                : kNaN;
  double div = 0;
  int64_t n_div = 0;
  for (const auto& [key, idx] : groups)
    if (idx.size() > 1) div += mean_pairwise_cosine_distance(emb.index_select(0, torch::tensor(idx))), ++n_div;
  const Interval ci = wilson_interval(correct, n);
  return {{"style", style},
          {"mode", mode},
          {"n", n},
          {"correct", correct},
          {"accuracy", n ? json(static_cast<double>(correct) / static_cast<double>(n)) : json(nullptr)},
          {"ci95", {ci.lo, ci.hi}},
          {"images", distinct.size()},
          {"content_similarity", number(m)},
          {"content_similarity_sd", number(var > 0    ? std::sqrt(var)
                                           : var == 0 ? 0.0
                                                      : kNaN)},
          {"content_accuracy", prompts >= 2 && !distinct.empty()
                                   ? json(static_cast<double>(content_hits) / static_cast<double>(distinct.size()))
                                   : json(nullptr)},
          {"diversity", n_div ? json(div / static_cast<double>(n_div)) : json(nullptr)},
          {"seconds_per_image", n_secs ? json(secs / static_cast<double>(n_secs)) : json(nullptr)},
          {"reference_n", n_ref},
          {"psnr", number(pm)},
          {"psnr_sd", number(std::sqrt(pvar))},
          {"reference_similarity", n_ref ? json(rsum / static_cast<double>(n_ref)) : json(nullptr)}};
}

struct Tables {
  json rows = json::array(), overall = json::array(), confusion = json::object();
};

Tables make_tables(const Plan& plan, const std::vector<Scored>& scored, const torch::Tensor& emb) {
  Tables t;
  const size_t S = plan.styles.size();
  for (const auto& mode : plan.modes) {
    std::vector<std::pair<size_t, int64_t>> all;
    std::vector<std::vector<int64_t>> matrix(S, std::vector<int64_t>(S, 0));
    for (size_t s = 0; s < S; ++s) {
      std::vector<std::pair<size_t, int64_t>> items;
      for (size_t i = 0; i < scored.size(); ++i)
        if (scored[i].job->mode == mode && (mode == "text" || scored[i].job->style == static_cast<int64_t>(s))) {
          items.emplace_back(i, static_cast<int64_t>(s));
          ++matrix[s][static_cast<size_t>(scored[i].predicted)];
        }
      t.rows.push_back(row_json(plan.styles[s].name, mode, items, scored, emb, plan.prompts.size()));
      all.insert(all.end(), items.begin(), items.end());
    }
    t.overall.push_back(row_json("all", mode, all, scored, emb, plan.prompts.size()));
    std::vector<std::string> labels;
    for (const auto& s : plan.styles) labels.push_back(s.name);
    t.confusion[mode] = {{"labels", labels}, {"matrix", matrix}};
  }
  return t;
}

json image_json(const Plan& plan, const Scored& s, const fs::path& out) {
  const Job& j = *s.job;
  return {{"file", s.file.lexically_relative(out).generic_string()},
          {"mode", j.mode},
          {"prompt", plan.prompts[j.prompt]},
          {"prompt_index", j.prompt},
          {"style", j.style >= 0 ? json(plan.styles[static_cast<size_t>(j.style)].name) : json(nullptr)},
          {"seed", j.seed},
          {"job_id", j.sweep.id()},
          {"predicted", plan.styles[static_cast<size_t>(s.predicted)].name},
          {"probabilities", s.probabilities},
          {"content_similarity", number(s.content)},
          {"nearest_prompt", s.nearest},
          {"seconds", number(s.seconds)},
          {"reference", s.reference.empty() ? json(nullptr) : json(s.reference.string())},
          {"psnr", number(s.psnr)},
          {"reference_similarity", number(s.ref_similarity)}};
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

std::string eval_csv(const json& eval) {
  std::string out =
      "style,mode,n,correct,accuracy,ci95_low,ci95_high,content_similarity,content_accuracy,diversity,"
      "seconds_per_image,psnr,reference_similarity\n";
  auto num = [](const json& v) { return v.is_number() ? fmt::format("{:.6g}", v.get<double>()) : std::string(); };
  for (const char* table : {"rows", "overall"})
    for (const auto& r : eval[table])
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(r["style"].get<std::string>()),
                         r["mode"].get<std::string>(), r["n"].get<int64_t>(), r["correct"].get<int64_t>(),
                         num(r["accuracy"]), num(r["ci95"][0]), num(r["ci95"][1]), num(r["content_similarity"]),
                         num(r["content_accuracy"]), num(r["diversity"]), num(r["seconds_per_image"]),
                         num(r.value("psnr", json())), num(r.value("reference_similarity", json())));
  return out;
}

// accuracy.png and confusion-<mode>.png.
void write_figures(const json& eval, const fs::path& out, ReportFiles& files) {
  const auto styles = eval["styles"].get<std::vector<std::string>>();
  std::vector<image::BarSeries> series;
  for (const auto& mode : eval["modes"].get<std::vector<std::string>>()) {
    image::BarSeries s;
    s.label = mode;
    for (const auto& r : eval["rows"])
      if (r["mode"] == mode) {
        s.values.push_back(detail::to_double(r["accuracy"]));
        s.low.push_back(r["ci95"][0].get<double>());
        s.high.push_back(r["ci95"][1].get<double>());
      }
    series.push_back(s);
  }
  image::PlotOptions po;
  po.width = std::clamp<int>(static_cast<int>(styles.size()) * 110 + 120, 480, 4096);
  po.height = 420;
  po.title = "style accuracy by style and mode (95% Wilson intervals)";
  po.y_label = "accuracy";
  files.accuracy_png = out / "accuracy.png";
  image::write_png(files.accuracy_png, image::grouped_bar_chart(styles, series, po));
  for (const auto& mode : eval["modes"].get<std::vector<std::string>>()) {
    image::HeatMap hm;
    hm.title = "confusion: " + mode + " mode";
    hm.row_title = "style asked for";
    hm.column_title = "style predicted";
    hm.rows = hm.columns = styles;
    for (const auto& r : eval["confusion"][mode]["matrix"]) {
      std::vector<double> row;
      for (const auto& v : r) row.push_back(v.get<double>());
      hm.values.push_back(row);
    }
    const fs::path png = out / ("confusion-" + mode + ".png");
    image::write_png(png, image::heat_map(hm));
    files.confusion_pngs.push_back(png);
  }
}

// The finished images of the plan; rdm::Error for missing ones unless allowed.
std::vector<Scored> find_images(const std::vector<Job>& jobs, const fs::path& out, bool allow_missing,
                                int64_t& missing) {
  std::vector<Scored> scored;
  const fs::path dir = images_dir(out);
  missing = 0;
  for (const auto& j : jobs) {
    const fs::path png = dir / j.sweep.file_name();
    if (!fs::exists(png)) {
      ++missing;
      continue;
    }
    Scored s;
    s.job = &j;
    s.file = png;
    s.seconds = sidecar_seconds(png);
    scored.push_back(std::move(s));
  }
  if (missing > 0 && !allow_missing)
    fail(
        "{} of the eval's {} images are missing in '{}': run the remaining shards (or this command without "
        "--report-only), or pass --allow-missing to score the images present",
        missing, jobs.size(), dir.string());
  if (scored.empty()) fail("no image of the eval exists in '{}' yet: nothing to score", dir.string());
  if (missing > 0)
    spdlog::warn("eval: {} of {} images are missing; scoring the {} present", missing, jobs.size(), scored.size());
  return scored;
}

// Class probabilities, content similarity and nearest prompt of each image.
void score_images(std::vector<Scored>& scored, const StyleProbe& probe, const torch::Tensor& emb,
                  const torch::Tensor& text) {
  const torch::Tensor probs = probe.probabilities(emb).to(torch::kFloat64).contiguous();
  const torch::Tensor sims = emb.matmul(text.t()).to(torch::kFloat64).contiguous();  // [N, P]
  const torch::Tensor nearest = sims.argmax(1).contiguous();
  for (size_t i = 0; i < scored.size(); ++i) {
    const int64_t row = static_cast<int64_t>(i);
    const double* p = probs[row].data_ptr<double>();
    scored[i].probabilities.assign(p, p + probs.size(1));
    scored[i].predicted = probs[row].argmax().item<int64_t>();
    scored[i].content = sims[row][static_cast<int64_t>(scored[i].job->prompt)].item<double>();
    scored[i].nearest = nearest[row].item<int64_t>();
  }
}

// --against: PSNR and CLIP similarity of each image to the reference's image of the same job;
// returns what the reference eval sampled with (eval.json's "against").
json score_against(const Plan& plan, std::vector<Scored>& scored, const torch::Tensor& emb,
                   const clip::QueryEncoder& encoder, clip::Preprocess preprocess, const fs::path& against) {
  const std::optional<Plan> ref = read_plan(against);  // read once: it opens the databases again
  if (!ref)
    fail("--against '{}' holds no eval ({} missing): give the --out folder of an earlier `rdm eval`", against.string(),
         kPlanFile);
  std::vector<const Job*> jobs;
  for (const auto& s : scored) jobs.push_back(s.job);
  const std::vector<fs::path> refs = detail::reference_images(plan, jobs, *ref, against);
  std::vector<fs::path> present;
  std::vector<int64_t> at;
  for (size_t i = 0; i < refs.size(); ++i)
    if (!refs[i].empty()) present.push_back(refs[i]), at.push_back(static_cast<int64_t>(i));
  const torch::Tensor ref_emb = embed_images(encoder, present, preprocess);
  const torch::Tensor sims =
      torch::cosine_similarity(emb.index_select(0, torch::tensor(at)), ref_emb, 1).to(torch::kFloat64).contiguous();
  for (size_t k = 0; k < at.size(); ++k) {
    Scored& s = scored[static_cast<size_t>(at[k])];
    s.reference = present[k];
    s.ref_similarity = sims[static_cast<int64_t>(k)].item<double>();
    s.psnr = detail::psnr_8bit(image::read_png(s.file).image, image::read_png(present[k]).image,
                               "'" + s.file.string() + "'");
  }
  const SampleRequest& r = ref->sampling;
  fs::path dir = fs::absolute(against).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "ref/" -> "ref"
  return {{"dir", dir.string()},
          {"images", present.size()},
          {"sampler", r.sampler},
          {"spacing", r.spacing},
          {"steps", r.steps},
          {"eta", r.eta},
          {"scale", r.scale}};
}
}  // namespace

ReportFiles write_report(const Plan& plan, const std::vector<Job>& jobs, const clip::QueryEncoder& encoder,
                         const fs::path& out, const ReportOptions& options) {
  const auto t0 = Clock::now();
  check_encoder(plan, encoder);
  ReportFiles files;
  std::vector<Scored> scored = find_images(jobs, out, options.allow_missing, files.missing);
  const StyleProbe probe = train_style_probe(plan.styles, options.probe);
  spdlog::info(
      "eval: style classifier (linear probe on {} CLIP embeddings of {} styles): held-out accuracy {:.3f} "
      "on {} images (chance {:.3f})",
      probe.train_size, plan.styles.size(), probe.holdout_accuracy, probe.test_size,
      1.0 / static_cast<double>(plan.styles.size()));
  std::set<std::string> preprocess;
  for (const auto& s : plan.styles) preprocess.insert(s.preprocess);
  if (preprocess.size() > 1)
    spdlog::warn(
        "eval: the style databases were built with different preprocessing; images are embedded as the first "
        "('{}')",
        plan.styles.front().preprocess);
  std::vector<fs::path> paths;
  for (const auto& s : scored) paths.push_back(s.file);
  c10::InferenceMode guard;
  const clip::Preprocess how =
      plan.styles.front().preprocess == "rdm" ? clip::Preprocess::Rdm : clip::Preprocess::Clip;
  const torch::Tensor emb = embed_images(encoder, paths, how);
  const torch::Tensor text = encoder.encode_texts(plan.prompts, /*truncate=*/true, 64).to(torch::kCPU);
  score_images(scored, probe, emb, text);
  json against;
  if (!options.against.empty()) against = score_against(plan, scored, emb, encoder, how, options.against);
  const Tables t = make_tables(plan, scored, emb);

  json eval = {{"kind", "rdm-eval"},
               {"version", 1},
               {"created", retrieval::utc_now()},
               {"plan", plan.to_json()},
               {"modes", plan.modes}};
  if (!against.is_null()) eval["against"] = against;
  eval["styles"] = json::array();
  for (const auto& s : plan.styles) eval["styles"].push_back(s.name);
  eval["postfix"] = json::object();
  for (const auto& s : plan.styles) eval["postfix"][s.name] = s.postfix;
  eval["classifier"] = probe.to_json();
  eval["counts"] = {{"images", scored.size()}, {"missing", files.missing}, {"jobs", jobs.size()}};
  eval["rows"] = t.rows;
  eval["overall"] = t.overall;
  eval["confusion"] = t.confusion;
  eval["images"] = json::array();
  for (const auto& s : scored) eval["images"].push_back(image_json(plan, s, out));
  eval["files"] = {{"csv", "eval.csv"}, {"html", "report.html"}, {"accuracy", "accuracy.png"}};
  for (const auto& mode : plan.modes) eval["files"]["confusion"][mode] = "confusion-" + mode + ".png";

  write_figures(eval, out, files);
  files.csv = out / "eval.csv";
  io::write_file_atomic(files.csv, eval_csv(eval));
  files.html = out / "report.html";
  io::write_file_atomic(files.html, detail::report_html(eval));
  files.json = out / "eval.json";
  eval["seconds"] = since(t0);
  io::write_file_atomic(files.json, eval.dump(2) + "\n");
  files.images = static_cast<int64_t>(scored.size());
  files.classifier_accuracy = probe.holdout_accuracy;
  files.eval = std::move(eval);
  return files;
}

}  // namespace rdm::eval
