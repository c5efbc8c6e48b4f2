// CLI tests: rdm sweep (resume, shards, SIGINT, JSONL jobs, gallery in headless chromium) and
// rdm demo end to end.
#include <signal.h>

#include <chrono>
#include <set>
#include <thread>

#include "cli/cli_chromium.hpp"
#include "cli/cli_demo_fixture.hpp"
#include "rdm/image/png.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
std::string sweep_args(const fs::path& demo, const fs::path& out) {
  return "sweep --prompts 'a red boat' 'an old castle' --databases " + db(demo, "stripes") + " " + db(demo, "dots") +
         " --seeds 1 --steps 3 -k 5 " + model_args(demo) + " --out " + quote(out.string()) + " ";
}

std::map<std::string, std::string> image_pixels(const fs::path& dir) {
  std::map<std::string, std::string> m;
  for (const auto& p : pngs(dir)) {
    auto f = rdm::image::read_png(p);
    m[p.filename().string()] = std::string(f.image.pixels.begin(), f.image.pixels.end());
  }
  return m;
}

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST(CliSweep, ResumeSkipsFinishedJobs) {
  auto demo = demo_dir();
  auto out = scratch("sweep_resume");
  auto r = run_rdm(sweep_args(demo, out) + "--json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto rep = json::parse(r.out);
  EXPECT_EQ(rep["total"], 4);
  EXPECT_EQ(rep["done"], 4);
  EXPECT_EQ(pngs(out).size(), 4u);
  EXPECT_EQ(count_lines(slurp(out / "results.jsonl")), 4u);
  EXPECT_TRUE(fs::exists(out / "index.html"));
  EXPECT_TRUE(fs::exists(out / "contact_sheet.png"));
  // Re-run: nothing to do.
  r = run_rdm(sweep_args(demo, out) + "--json");
  ASSERT_EQ(r.code, 0) << r.err;
  rep = json::parse(r.out);
  EXPECT_EQ(rep["done"], 0);
  EXPECT_EQ(rep["skipped"], 4);
  // A lost image (crash before it was written) is redone, and only that one.
  auto files = pngs(out);
  auto before = rdm::image::read_png(files[2]).image.pixels;
  fs::remove(files[2]);
  r = run_rdm(sweep_args(demo, out) + "--json");
  rep = json::parse(r.out);
  EXPECT_EQ(rep["done"], 1);
  EXPECT_EQ(rdm::image::read_png(files[2]).image.pixels, before);
  // --list marks every job done.
  r = run_rdm(sweep_args(demo, out) + "--list");
  EXPECT_EQ(count_lines(r.out), 4u);
  EXPECT_EQ(r.out.find("\"done\":false"), std::string::npos);
}

TEST(CliSweep, TwoShardsMakeOneFullRun) {
  auto demo = demo_dir();
  auto full = scratch("sweep_full"), sharded = scratch("sweep_sharded");
  ASSERT_EQ(run_rdm(sweep_args(demo, full)).code, 0);
  auto r0 = run_rdm(sweep_args(demo, sharded) + "--shard 0/2 --json");
  auto r1 = run_rdm(sweep_args(demo, sharded) + "--shard 1/2 --json");
  ASSERT_EQ(r0.code, 0) << r0.err;
  ASSERT_EQ(r1.code, 0) << r1.err;
  EXPECT_EQ(json::parse(r0.out)["done"], 2);
  EXPECT_EQ(json::parse(r1.out)["done"], 2);  // nothing done twice
  EXPECT_EQ(image_pixels(full), image_pixels(sharded));
  EXPECT_EQ(count_lines(slurp(sharded / "results-shard-0-of-2.jsonl")), 2u);
  EXPECT_EQ(count_lines(slurp(sharded / "results-shard-1-of-2.jsonl")), 2u);
  EXPECT_EQ(run_rdm(sweep_args(demo, sharded) + "--shard 2/2").code, 1);
  EXPECT_EQ(run_rdm(sweep_args(demo, sharded) + "--shard x").code, 1);
}

TEST(CliSweep, JsonlJobsWithSeedListsAndErrors) {
  auto demo = demo_dir();
  auto out = scratch("sweep_jsonl");
  fs::path jobs = out / "jobs.jsonl";
  {
    std::ofstream f(jobs);
    f << "# comment\n";
    f << json({{"prompt", "a blue bird"}, {"database", (demo / "databases/checks").string()}, {"seeds", {1, 2}}}).dump()
      << "\n\n";
    f << json({{"prompt", "a blue bird"}, {"no_retrieval", true}, {"style", "checks"}, {"seed", 1}}).dump() << "\n";
  }
  auto r = run_rdm("sweep " + quote(jobs.string()) + " --steps 2 -k 4 " + model_args(demo) + " --out " +
               quote((out / "o").string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["done"], 3);
  // Bad job files.
  std::ofstream(out / "bad.jsonl") << "{\"prompt\": \"x\", \"sed\": 1}\n";
  r = run_rdm("sweep " + quote((out / "bad.jsonl").string()) + " " + model_args(demo) + " --out " + quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("sed"), std::string::npos) << r.err;
  std::ofstream(out / "bad2.jsonl") << "not json\n";
  r = run_rdm("sweep " + quote((out / "bad2.jsonl").string()) + " " + model_args(demo));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad2.jsonl:1"), std::string::npos) << r.err;
}

TEST(CliSweep, SigintFinishesTheCurrentImageAndResumes) {
  auto demo = demo_dir();
  auto out = scratch("sweep_sigint");
  const std::string args = "sweep --prompts a b c d e f --seeds 1 --steps 40 " + model_args(demo) + " --out " +
                           quote(out.string());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    std::string cmd = "exec " + quote(env("RDM_BIN")) + " --threads 1 " + args + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for the first image, then interrupt.
  auto t0 = std::chrono::steady_clock::now();
  while (pngs(out).empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  const size_t done = pngs(out).size();
  if (done == 6) GTEST_SKIP() << "the sweep finished before the interrupt arrived";
  EXPECT_EQ(WEXITSTATUS(st), 130);
  EXPECT_GE(done, 1u);
  for (const auto& p : pngs(out)) EXPECT_NO_THROW(rdm::image::read_png(p)) << p;  // complete files only
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  // Resume: the rest, nothing twice.
  auto r = run_rdm(args + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["done"].get<size_t>(), 6 - done);
  EXPECT_EQ(pngs(out).size(), 6u);
}

TEST(CliDemo, EndToEndWithGalleryInHeadlessChromium) {
  auto out = scratch("demo");
  auto r = run_rdm("demo --random-model --steps 5 --out " + quote((out / "d").string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto rep = json::parse(r.out);
  ASSERT_EQ(rep["images"].size(), 4u);  // one per style
  for (const auto& p : rep["images"]) EXPECT_TRUE(fs::exists(p.get<std::string>()));
  EXPECT_EQ(rep["neighbor_sheets"].size(), 4u);
  EXPECT_TRUE(fs::exists(rep["contact_sheet"].get<std::string>()));
  const fs::path gallery = rep["gallery"].get<std::string>();
  ASSERT_TRUE(fs::exists(gallery));
  // The demo is deterministic: the same images again.
  auto first = rdm::image::read_png(rep["images"][0].get<std::string>()).image.pixels;
  auto r2 = run_rdm("demo --random-model --steps 5 --out " + quote((out / "d").string()) + " --json");
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(rdm::image::read_png(json::parse(r2.out)["images"][0].get<std::string>()).image.pixels, first);
  // A folder not made by the demo is refused.
  fs::create_directories(out / "other");
  std::ofstream(out / "other" / "mine.txt") << "x";
  EXPECT_EQ(run_rdm("demo --out " + quote((out / "other").string())).code, 1);

  const std::string exe = find_chromium();
  if (exe.empty()) {
    if (chromium_required()) FAIL() << "RDM_REQUIRE_CHROMIUM=1 (CMake found Chromium at configure time) but none is on PATH";
    GTEST_SKIP() << "chromium is not on PATH: the gallery is not checked in a browser";
  }
  const Chromium chromium(exe, out);
  const std::string html = chromium.dump_dom(gallery, out / "dom.html");
  ASSERT_FALSE(html.empty()) << "chromium could not render " << gallery;
  // The browser parsed the page into one figure per image, each with its prompt, style and seed.
  size_t figures = 0;
  for (size_t p = 0; (p = html.find("<figure class=\"item\"", p)) != std::string::npos; ++p) ++figures;
  EXPECT_EQ(figures, 4u);
  EXPECT_NE(html.find("a lighthouse in a storm"), std::string::npos);
  EXPECT_NE(html.find("style: "), std::string::npos);
  EXPECT_NE(html.find("seed 42"), std::string::npos);
  EXPECT_NE(html.find("neighbours"), std::string::npos);
  // Every image the page refers to exists.
  for (size_t p = 0; (p = html.find("src=\"", p)) != std::string::npos;) {
    p += 5;
    std::string src = html.substr(p, html.find('"', p) - p);
    if (src.rfind("file://", 0) == 0) src = src.substr(7);
    fs::path target = fs::path(src).is_absolute() ? fs::path(src) : gallery.parent_path() / src;
    EXPECT_TRUE(fs::exists(target)) << src;
  }
  // A screenshot renders (the page displays): not a blank page, the gallery images make many colours.
  const fs::path shot = out / "shot.png";
  ASSERT_TRUE(chromium.screenshot(gallery, shot, 1000, 800)) << "chromium wrote no screenshot";
  const auto img = rdm::image::read_png(shot).image;
  EXPECT_EQ(img.width, 1000);
  EXPECT_GT(distinct_colors(img), 50u);
}
