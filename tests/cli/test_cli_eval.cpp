// CLI tests: rdm eval end to end on the demo model and its style databases (files, eval.json
// structure, resume, shards + report, --compare), bad input, and report.html in headless
// Chromium.
#include <sys/stat.h>

#include <cmath>
#include <set>

#include "cli/cli_chromium.hpp"
#include "cli/cli_demo_fixture.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/image/png.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
// 2 prompts x 2 styles x 1 seed: 4 retrieval + 4 postfix + 2 text images.
std::string eval_args(const fs::path& demo, const fs::path& out, const std::string& extra = "--steps 3") {
  return "eval --prompt 'a red boat' --prompt 'an old castle' --databases " + db(demo, "stripes") + " " +
         db(demo, "dots") + " --seeds 1 -k 5 -W 64 -H 64 " + model_args(demo) + " --out " + quote(out.string()) + " " +
         extra;
}

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

std::vector<fs::path> images_in(const fs::path& out) {
  std::vector<fs::path> v;
  if (!fs::exists(out / "images")) return v;
  for (const auto& e : fs::directory_iterator(out / "images"))
    if (e.path().extension() == ".png" && e.path().filename() != "contact_sheet.png") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

// The rows of eval.json keyed by style/mode.
std::map<std::string, json> rows_of(const json& e) {
  std::map<std::string, json> m;
  for (const char* t : {"rows", "overall"})
    for (const auto& r : e[t]) m[r["style"].get<std::string>() + "/" + r["mode"].get<std::string>()] = r;
  return m;
}

void expect_eval_json(const fs::path& out, const json& e) {
  EXPECT_EQ(e["kind"], "rdm-eval");
  EXPECT_EQ(e["styles"], json({"stripes", "dots"}));
  EXPECT_EQ(e["modes"], json({"retrieval", "postfix", "text"}));
  EXPECT_TRUE(e["classifier"]["holdout_accuracy"].is_number());
  EXPECT_EQ(e["classifier"]["train_size"].get<int64_t>() + e["classifier"]["test_size"].get<int64_t>(), 48);
  EXPECT_EQ(e["counts"]["images"], 10);
  EXPECT_EQ(e["counts"]["missing"], 0);
  ASSERT_EQ(e["rows"].size(), 6u);
  ASSERT_EQ(e["overall"].size(), 3u);
  for (const auto& [key, r] : rows_of(e)) {
    SCOPED_TRACE(key);
    const bool all = r["style"] == "all";
    EXPECT_EQ(r["n"], all ? 4 : 2);  // text rows: both text images, once per style
    EXPECT_LE(r["correct"].get<int64_t>(), r["n"].get<int64_t>());
    const double acc = r["accuracy"].get<double>();
    EXPECT_DOUBLE_EQ(acc, r["correct"].get<double>() / r["n"].get<double>());
    EXPECT_LE(r["ci95"][0].get<double>(), acc);
    EXPECT_GE(r["ci95"][1].get<double>(), acc);
    EXPECT_TRUE(r["content_similarity"].is_number());
    EXPECT_TRUE(r["content_accuracy"].is_number());  // 2 prompts
    EXPECT_TRUE(r["diversity"].is_null());           // 1 seed: no pairs
    EXPECT_GT(r["seconds_per_image"].get<double>(), 0.0);
  }
  // Text mode overall: every image counts once per style and is right for exactly one.
  EXPECT_DOUBLE_EQ(rows_of(e)["all/text"]["accuracy"].get<double>(), 0.5);
  ASSERT_EQ(e["images"].size(), 10u);
  std::map<std::string, int> modes;
  for (const auto& im : e["images"]) {
    ++modes[im["mode"].get<std::string>()];
    EXPECT_TRUE(fs::exists(out / im["file"].get<std::string>())) << im["file"];
    EXPECT_EQ(im["probabilities"].size(), 2u);
    EXPECT_EQ(im["seed"], 1);
  }
  EXPECT_EQ(modes, (std::map<std::string, int>{{"postfix", 4}, {"retrieval", 4}, {"text", 2}}));
  for (const auto& mode : {"retrieval", "postfix", "text"}) {
    const json& c = e["confusion"][mode]["matrix"];
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0][0].get<int>() + c[0][1].get<int>(), 2);
  }
}

}  // namespace

TEST(CliEval, EndToEndWritesTheReportAndResumes) {
  auto demo = demo_dir();
  auto out = scratch("eval_full");
  auto r = run_rdm(eval_args(demo, out));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"eval.json", "eval.csv", "report.html", "accuracy.png", "confusion-retrieval.png",
                        "confusion-postfix.png", "confusion-text.png", "eval-plan.json", "images/results.jsonl"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_EQ(images_in(out).size(), 10u);
  const json e = json::parse(slurp(out / "eval.json"));
  expect_eval_json(out, e);
  EXPECT_NE(r.out.find("held-out accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("all      retrieval"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("style classifier"), std::string::npos);
  EXPECT_EQ(count_lines(slurp(out / "eval.csv")), 1u + 9u);
  auto png = rdm::image::read_png(out / "confusion-retrieval.png");
  EXPECT_GT(png.image.width, 100);

  // A rerun samples nothing: the images stay as they are and the log gets no line.
  struct stat before {};
  ::stat(images_in(out)[0].c_str(), &before);
  r = run_rdm(eval_args(demo, out));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to sample"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("pipeline: loaded"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(slurp(out / "images" / "results.jsonl")), 10u);
  struct stat after {};
  ::stat(images_in(out)[0].c_str(), &after);
  EXPECT_EQ(before.st_mtime, after.st_mtime);
  // A lost image is sampled again, and only that one.
  fs::remove(images_in(out)[3]);
  r = run_rdm(eval_args(demo, out));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(slurp(out / "images" / "results.jsonl")), 11u);
  EXPECT_EQ(images_in(out).size(), 10u);
  // --out alone continues the eval from its plan; --report-only too.
  r = run_rdm("eval --out " + quote(out.string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  expect_eval_json(out, json::parse(r.out));
  EXPECT_EQ(run_rdm("eval --report-only --out " + quote(out.string())).code, 0);
  // Another plan in the same folder is refused.
  r = run_rdm("-q " + eval_args(demo, out, "--steps 4"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("belongs to another eval"), std::string::npos) << r.err;
}

TEST(CliEval, ShardsThenOneReportEqualsAFullRun) {
  auto demo = demo_dir();
  auto full = scratch("eval_ref"), sharded = scratch("eval_sharded");
  ASSERT_EQ(run_rdm(eval_args(demo, full)).code, 0);
  auto r0 = run_rdm(eval_args(demo, sharded, "--steps 3 --shard 0/2"));
  ASSERT_EQ(r0.code, 0) << r0.err;
  EXPECT_FALSE(fs::exists(sharded / "eval.json"));
  EXPECT_EQ(images_in(sharded).size(), 5u);
  // Half the images: the report needs --allow-missing.
  auto r = run_rdm("-q eval --report-only --out " + quote(sharded.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("5 of the eval's 10 images are missing"), std::string::npos) << r.err;
  r = run_rdm("eval --report-only --allow-missing --out " + quote(sharded.string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["counts"]["missing"], 5);
  auto r1 = run_rdm(eval_args(demo, sharded, "--steps 3 --shard 1/2"));
  ASSERT_EQ(r1.code, 0) << r1.err;
  EXPECT_EQ(images_in(sharded).size(), 10u);
  // The merge run samples nothing and scores the same images as the unsharded run.
  r = run_rdm("eval --out " + quote(sharded.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to sample"), std::string::npos) << r.err;
  const json a = json::parse(slurp(full / "eval.json")), b = json::parse(slurp(sharded / "eval.json"));
  expect_eval_json(sharded, b);
  auto ra = rows_of(a), rb = rows_of(b);
  for (const auto& [key, row] : ra) {
    SCOPED_TRACE(key);
    EXPECT_EQ(row["correct"], rb[key]["correct"]);
    EXPECT_NEAR(row["content_similarity"].get<double>(), rb[key]["content_similarity"].get<double>(), 1e-6);
  }
  std::vector<fs::path> fa = images_in(full), fb = images_in(sharded);
  ASSERT_EQ(fa.size(), fb.size());
  for (size_t i = 0; i < fa.size(); ++i) EXPECT_EQ(fa[i].filename(), fb[i].filename());
}

TEST(CliEval, CompareTwoRuns) {
  auto demo = demo_dir();
  auto a = scratch("eval_cmp_a"), b = scratch("eval_cmp_b");
  ASSERT_EQ(run_rdm(eval_args(demo, a)).code, 0);
  ASSERT_EQ(run_rdm(eval_args(demo, b, "--steps 5 --sampler dpmpp2m")).code, 0);
  const std::string files = quote((a / "eval.json").string()) + " " + quote((b / "eval.json").string());
  auto r = run_rdm("eval --compare " + files);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("B - A"), std::string::npos) << r.out;
  EXPECT_EQ(count_lines(r.out), 3u + 1u + 9u + 1u) << r.out;
  r = run_rdm("eval --compare " + files + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 9u);
  for (const auto& row : j["rows"]) {
    const double d = row["accuracy_difference"].get<double>();
    EXPECT_DOUBLE_EQ(d, row["accuracy_b"].get<double>() - row["accuracy_a"].get<double>());
    EXPECT_LE(row["accuracy_difference_ci95"][0].get<double>(), d);
    EXPECT_GE(row["accuracy_difference_ci95"][1].get<double>(), d);
  }
  // A compared with itself: differences 0.
  r = run_rdm("eval --compare " + quote((a / "eval.json").string()) + " " + quote((a / "eval.json").string()) +
              " --json");
  for (const auto& row : json::parse(r.out)["rows"]) EXPECT_EQ(row["accuracy_difference"].get<double>(), 0.0);
  // Bad and mismatched files: one line naming the file.
  const fs::path junk = a / "junk.json", other = a / "other.json", missing = a / "missing.json";
  spit(junk, "{\"kind\": \"something else\"}");
  json o = json::parse(slurp(a / "eval.json"));
  o["styles"] = {"stripes", "checks"};
  spit(other, o.dump());
  for (const auto& [bad, needle] : std::vector<std::pair<fs::path, std::string>>{
           {junk, "not an `rdm eval` report"}, {other, "scores the styles"}, {missing, "no such file"}}) {
    r = run_rdm("-q eval --compare " + quote((a / "eval.json").string()) + " " + quote(bad.string()));
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
}

// The samplers' yardstick: --modes retrieval, --against a reference eval (PSNR, CLIP similarity),
// --tabulate with its plot.
TEST(CliEval, YardstickAgainstAReferenceAndTabulate) {
  auto demo = demo_dir();
  auto ref = scratch("eval_ys_ref"), same = scratch("eval_ys_same"), fast = scratch("eval_ys_fast");
  ASSERT_EQ(run_rdm(eval_args(demo, ref, "--steps 4 --modes retrieval")).code, 0);
  const json er = json::parse(slurp(ref / "eval.json"));
  EXPECT_EQ(er["modes"], json({"retrieval"}));
  EXPECT_EQ(er["counts"]["images"], 4);  // 2 prompts x 2 styles x 1 seed, retrieval only
  EXPECT_EQ(er["overall"].size(), 1u);
  EXPECT_EQ(er["confusion"].size(), 1u);
  EXPECT_TRUE(fs::exists(ref / "confusion-retrieval.png"));
  EXPECT_FALSE(fs::exists(ref / "confusion-postfix.png"));
  EXPECT_FALSE(er.contains("against"));
  // The same sampling against itself: identical images (100 dB, similarity 1).
  const std::string against = " --against " + quote(ref.string());
  auto r = run_rdm(eval_args(demo, same, "--steps 4 --modes retrieval" + against));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("PSNR"), std::string::npos) << r.out;
  const json es = json::parse(slurp(same / "eval.json"));
  EXPECT_EQ(es["against"]["steps"], 4);
  EXPECT_EQ(es["against"]["images"], 4);
  for (const auto& im : es["images"]) {
    EXPECT_DOUBLE_EQ(im["psnr"].get<double>(), 100.0);
    EXPECT_NEAR(im["reference_similarity"].get<double>(), 1.0, 1e-5);
  }
  // Another sampler: each image's PSNR is that of its file against the reference's file.
  r = run_rdm(eval_args(demo, fast, "--steps 2 --sampler dpmpp2m --modes retrieval" + against));
  ASSERT_EQ(r.code, 0) << r.err;
  const json ef = json::parse(slurp(fast / "eval.json"));
  double sum = 0;
  for (const auto& im : ef["images"]) {
    const auto a = rdm::image::read_png(fast / im["file"].get<std::string>()).image;
    const auto b = rdm::image::read_png(im["reference"].get<std::string>()).image;
    ASSERT_EQ(a.pixels.size(), b.pixels.size());
    double se = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) se += std::pow(double(a.pixels[i]) - double(b.pixels[i]), 2);
    const double psnr = 10 * std::log10(255.0 * 255.0 * double(a.pixels.size()) / se);
    EXPECT_NEAR(im["psnr"].get<double>(), psnr, 1e-9) << im["file"];
    EXPECT_LT(psnr, 100.0);
    EXPECT_LT(im["reference_similarity"].get<double>(), 1.0);
    sum += psnr;
  }
  EXPECT_NEAR(ef["overall"][0]["psnr"].get<double>(), sum / 4, 1e-9);
  EXPECT_EQ(ef["overall"][0]["reference_n"], 4);
  // --tabulate: one line per eval, sorted by sampler and model calls; the reference marked.
  const fs::path plot = fast / "ys.png";
  r = run_rdm("eval --tabulate " + quote(fast.string()) + " " + quote(ref.string()) + " " + quote(same.string()) +
              " " + quote((ref / "eval.json").string()) + " --plot " + quote(plot.string()));
  EXPECT_NE(r.err.find("listed twice"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.out), 2u + 3u + 2u) << r.out;  // header, 3 runs (the repeat once), note
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| ddim | uniform | 4 | 4 | (reference) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| ddim | uniform | 4 | 4 | 100.00 ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| dpmpp2m | uniform | 2 | 2 | "), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("| ddim |"), r.out.find("| dpmpp2m |")) << r.out;
  const auto png = rdm::image::read_png(plot).image;
  EXPECT_EQ(png.width, 720);
  EXPECT_EQ(png.height, 760);
  r = run_rdm("eval --tabulate " + quote(fast.string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json t = json::parse(r.out);
  ASSERT_EQ(t["rows"].size(), 1u);
  EXPECT_EQ(t["rows"][0]["model_calls"], 2);
  EXPECT_DOUBLE_EQ(t["rows"][0]["psnr"].get<double>(), ef["overall"][0]["psnr"].get<double>());
  // Bad input: one line each.
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {eval_args(demo, scratch("eval_ys_bad"), "--steps 2 --modes retrieval --against " +
                                                        quote(demo.string())),
            "holds no eval"},
           {"eval --tabulate " + quote((demo / "nothing").string()), "no such file"},
           {"eval --plot x.png --out " + quote(ref.string()), "--plot: goes with --tabulate"}}) {
    r = run_rdm("-q " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  EXPECT_EQ(run_rdm("-q " + eval_args(demo, scratch("eval_ys_bad2"), "--modes retrieval,styles")).code, 2);
}

TEST(CliEval, BadInputIsOneClearLine) {
  auto demo = demo_dir();
  auto out = scratch("eval_bad");
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    SCOPED_TRACE(args);
    auto r = run_rdm("-q " + args);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out / "x" / "eval.json"));
  };
  const std::string base =
      "eval --seeds 1 --steps 2 -W 64 -H 64 " + model_args(demo) + " --out " + quote((out / "x").string()) + " ";
  // An unknown database.
  expect_error(base + "--prompt boat --databases " + db(demo, "stripes") + " no-such-style-db", "no-such-style-db");
  // An empty prompt file.
  spit(out / "empty.txt", "\n  \n");
  expect_error(base + "--prompts " + quote((out / "empty.txt").string()) + " --databases " + db(demo, "stripes") + " " +
                   db(demo, "dots"),
               "has no prompts");
  // A database of another CLIP width (16-d embeddings; the demo CLIP makes 32-d ones).
  rdm::formats::write_npy(out / "narrow.npy", torch::randn({24, 16}));
  ASSERT_EQ(
      run_rdm("-q db import " + quote((out / "narrow.npy").string()) + " --out " + quote((out / "narrow").string()))
          .code,
      0);
  expect_error(base + "--prompt boat --databases " + db(demo, "stripes") + " " + quote((out / "narrow").string()),
               "16-d");
  // Two of them: the model's context width refuses them before it loads.
  rdm::formats::write_npy(out / "narrow2.npy", torch::randn({24, 16}));
  ASSERT_EQ(
      run_rdm("-q db import " + quote((out / "narrow2.npy").string()) + " --out " + quote((out / "narrow2").string()))
          .code,
      0);
  expect_error(
      base + "--prompt boat --databases " + quote((out / "narrow").string()) + " " + quote((out / "narrow2").string()),
      "narrow");
  // One style only, and k above a database's size.
  expect_error(base + "--prompt boat --databases " + db(demo, "stripes"), "at least 2 style databases");
  expect_error(base + "--prompt boat -k 30 --databases " + db(demo, "stripes") + " " + db(demo, "dots"),
               "-k 30 is more than the 24 image(s)");
  // --out without a plan.
  expect_error("eval --out " + quote((out / "empty-eval").string()), "holds no eval");
}

TEST(CliEval, ReportRendersInHeadlessChromium) {
  const std::string exe = find_chromium();
  if (exe.empty()) {
    if (chromium_required())
      FAIL() << "RDM_REQUIRE_CHROMIUM=1 (CMake found Chromium at configure time) but no chromium is on PATH";
    GTEST_SKIP() << "chromium is not on PATH: report.html not checked in a browser";
  }
  auto demo = demo_dir();
  auto out = scratch("eval_html");
  // A prompt with markup must arrive as text, not as HTML.
  auto r = run_rdm("eval --prompt '<b>a red boat</b> & co' --prompt 'an old castle' --databases " +
                   db(demo, "stripes") + " " + db(demo, "dots") + " --seeds 1 2 --steps 2 -k 5 -W 64 -H 64 " +
                   model_args(demo) + " --out " + quote(out.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path html = out / "report.html";
  const Chromium chromium(exe, out);
  const std::string page = chromium.dump_dom(html, out / "dom.html");
  ASSERT_FALSE(page.empty()) << "chromium could not render " << html;
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = 0; (p = page.find(needle, p)) != std::string::npos; p += needle.size()) ++n;
    return n;
  };
  for (const char* id : {"id=\"setup\"", "id=\"classifier\"", "id=\"results\"", "id=\"samples\"",
                         "id=\"accuracy-plot\"", "id=\"classifier-accuracy\""})
    EXPECT_EQ(count(id), 1u) << id;
  EXPECT_EQ(count("class=\"overall\""), 3u);
  EXPECT_EQ(count("<img class=\"confusion\""), 3u);
  // 2 styles x (4 retrieval + 4 postfix + 4 text) thumbnails.
  EXPECT_EQ(count("<figure class=\"sample\""), 24u);
  EXPECT_EQ(count("<b>a red boat</b>"), 0u);
  EXPECT_GT(count("&lt;b&gt;a red boat&lt;/b&gt; &amp; co"), 0u);
  // Every image the page shows exists beside it.
  size_t srcs = 0;
  for (size_t p = 0; (p = page.find("src=\"", p)) != std::string::npos;) {
    p += 5;
    const std::string src = page.substr(p, page.find('"', p) - p);
    EXPECT_TRUE(fs::exists(out / src)) << src;
    ++srcs;
  }
  EXPECT_EQ(srcs, 24u + 1u + 3u);
  // The page displays: a screenshot with many colours (the thumbnails and plots).
  const fs::path shot = out / "shot.png";
  ASSERT_TRUE(chromium.screenshot(html, shot, 1200, 2000)) << "chromium wrote no screenshot";
  const auto img = rdm::image::read_png(shot).image;
  EXPECT_EQ(img.width, 1200);
  EXPECT_GT(distinct_colors(img), 100u);
}
