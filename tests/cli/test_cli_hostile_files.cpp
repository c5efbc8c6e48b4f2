// CLI tests with hostile files: PNG metadata that nests deeply, devices instead of files,
// terminal escapes in metadata and file names, a results log planted as a symlink, symlinks
// leaving a collection, every file of a build accounted for (GIF, ICO, SVG, XPM, ...),
// vectors that cannot be normalised, and CompVis .npz parts with string ids.
#include <chrono>
#include <set>

#include <torch/torch.h>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/image/png.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
fs::path png_with(const fs::path& p, const std::vector<rdm::image::PngText>& text) {
  rdm::image::write_png(p, rdm::image::RgbImage(4, 5, 80), text);
  return p;
}
size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }
size_t error_lines(const std::string& s) {
  size_t n = 0;
  for (size_t p = s.find("error:"); p != std::string::npos; p = s.find("error:", p + 1)) ++n;
  return n;
}
bool has_control_bytes(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      return true;
  }
  return false;
}
fs::path golden(const std::string& rel) { return fs::path(env("RDM_GOLDEN_DIR")) / rel; }
bool have_clip() { return !env("RDM_GOLDEN_DIR").empty() && fs::exists(golden("clip/models/tiny_clip.safetensors")); }
std::string clip() { return quote(golden("clip/models/tiny_clip.safetensors").string()); }
fs::path test_data(const std::string& rel) { return fs::path(env("RDM_SOURCE_DIR")) / "tests/data" / rel; }
std::string rgb_png(int w, int h, int seed) {
  rdm::image::RgbImage im(h, w);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>((i * 31 + seed * 97) % 251);
  return rdm::image::encode_png(im);
}
}  // namespace

TEST(CliHostile, ShowParamsDeepNestingIsOneError) {
  auto dir = scratch("hostile_nest");
  auto f = png_with(dir / "nest.png", {{"rdm", std::string(100000, '[') + std::string(100000, ']')}});
  for (const char* flag : {"", " --json"}) {
    auto r = run_rdm("show-params " + quote(f.string()) + flag);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("nests deeper than 64 levels"), std::string::npos) << r.err;
  }
}

TEST(CliHostile, ShowParamsRefusesDevicesAndNonPngQuickly) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_rdm("show-params /dev/zero");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  auto dir = scratch("hostile_dev");
  spit(dir / "big.png", std::string(3u << 20, 'z'));
  r = run_rdm("show-params " + quote((dir / "big.png").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not a PNG file"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST(CliHostile, ShowParamsEscapesControlCharacters) {
  auto dir = scratch("hostile_esc");
  const std::string rec = json{{"prompt", "fox \x1b]0;pwned\x07 \x1b[2J"}, {"seed", 1}, {"c1", "\xc2\x9b" "31m"}}.dump();
  auto f = png_with(dir / "esc.png", {{"parameters", "a fox \x1b[31mred\x1b[0m\nSteps: 5"},
                                      {"rdm", rec},
                                      {"Comment", "bell\x07 del\x7f"}});
  auto r = run_rdm("show-params " + quote(f.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(has_control_bytes(r.out)) << r.out;
  EXPECT_NE(r.out.find("a fox \\x1b[31mred"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Comment: bell\\x07 del\\x7f"), std::string::npos) << r.out;
  r = run_rdm("show-params --json " + quote(f.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(has_control_bytes(r.out)) << r.out;
  EXPECT_EQ(json::parse(r.out), json::parse(rec));  // valid JSON, same values
}

TEST(CliHostile, SweepRefusesASymlinkedResultsLog) {
  auto demo = demo_dir();
  auto out = scratch("hostile_sweep");
  auto target = out.parent_path() / "hostile_sweep_target.txt";
  spit(target, "precious\n");
  fs::create_symlink(target, out / "results.jsonl");
  auto r = run_rdm("sweep --prompts 'a boat' --databases " + db(demo, "stripes") + " --seeds 1 --steps 2 -k 2 " +
                   model_args(demo) + " --out " + quote(out.string()));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("refusing to append to"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(target), "precious\n");
}

TEST(CliHostile, DbBuildAccountsForEveryFileAndKeepsToTheRoot) {
  if (!have_clip()) GTEST_SKIP() << "tiny CLIP model not found under RDM_GOLDEN_DIR";
  auto base = scratch("hostile_build");
  const fs::path root = base / "images";
  spit(root / "a.png", rgb_png(30, 20, 1));
  fs::create_directories(root / "icons");
  for (const char* f : {"global.gif", "interlaced.gif", "bmp_sizes.ico", "png_payload.ico"})
    fs::copy_file(test_data(std::string("gif_ico/") + f), root / "icons" / f);
  spit(root / "icons/logo.svg", "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
  spit(root / "icons/old.xpm", "/* XPM */\nstatic char *x[] = {\"1 1 1 1\", \"a c #000\", \"a\"};\n");
  spit(root / "icons/index.theme", "[Icon Theme]\n");
  spit(root / "icons/empty.gif", "");
  spit(root / "esc\x1b[31m.png", rgb_png(22, 26, 2));
  spit(base / "outside/private.png", rgb_png(17, 19, 3));
  fs::create_symlink(base / "outside/private.png", root / "leak.png");
  fs::create_symlink(base / "outside", root / "leakdir");
  fs::create_symlink(root / "a.png", root / "alias.png");  // inside: followed, a duplicate
  auto r = run_rdm("db build --images " + quote(root.string()) + " --clip " + clip() + " --out " +
                   quote((base / "db").string()) + " --batch 4 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["indexed"], 6);     // a, esc, 2 GIF, 2 ICO
  EXPECT_EQ(j["duplicates"], 1);  // alias.png
  EXPECT_EQ(j["skipped"], 6);     // svg, xpm, index.theme, empty.gif, leak.png, leakdir
  EXPECT_EQ(j["scanned"], 13);
  EXPECT_NE(r.err.find("13 files scanned"), std::string::npos) << r.err;
  const std::string report = slurp(base / "db/build_report.tsv");
  for (const char* want : {"skipped\ticons/logo.svg\t", "SVG (vector graphics) is not a format rdm reads",
                           "skipped\ticons/old.xpm\t", "XPM is not a format rdm reads",
                           "skipped\ticons/index.theme\tnot an image file (extension '.theme')",
                           "skipped\ticons/empty.gif\tempty file", "skipped\tleak.png\tsymbolic link to '",
                           "skipped\tleakdir\tsymbolic link to '", "--follow-links",
                           "duplicate\talias.png\tsame bytes as a.png"})
    EXPECT_NE(report.find(want), std::string::npos) << want << "\n" << report;
  EXPECT_EQ(lines(report), 1u + 6u + 1u);

  // db search lists the file whose name holds ESC escaped; --json keeps the name, as JSON.
  auto s = run_rdm("db search " + quote((base / "db").string()) + " --image " +
                   quote((root / "esc\x1b[31m.png").string()) + " -k 6");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_FALSE(has_control_bytes(s.out)) << s.out;
  EXPECT_NE(s.out.find("esc\\x1b[31m.png"), std::string::npos) << s.out;
  s = run_rdm("db search " + quote((base / "db").string()) + " --image " + quote((root / "a.png").string()) +
              " -k 6 --json");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_FALSE(has_control_bytes(s.out));
  std::set<std::string> paths;
  const json found = json::parse(s.out);
  for (auto& nb : found["neighbors"]) paths.insert(nb["path"].get<std::string>());
  EXPECT_TRUE(paths.count("esc\x1b[31m.png"));
  EXPECT_TRUE(paths.count("icons/global.gif"));

  // --follow-links indexes what the links point at.
  r = run_rdm("db build --images " + quote(root.string()) + " --clip " + clip() + " --out " +
              quote((base / "db_follow").string()) + " --follow-links --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["indexed"], 7);     // + outside/private.png (once: leakdir/private.png is a duplicate)
  EXPECT_EQ(j["duplicates"], 2);
}

TEST(CliHostile, DbImportRefusesVectorsThatCannotBeNormalised) {
  auto dir = scratch("hostile_import");
  torch::Tensor x = torch::randn({5, 8});
  x[3].zero_();
  rdm::formats::write_npy(dir / "zero.npy", x);
  auto r = run_rdm("db import " + quote((dir / "zero.npy").string()) + " --out " + quote((dir / "db").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("1 of 5 embedding vectors cannot be L2-normalised"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("row 3 (img_id 3 in"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "db/manifest.json"));
  x[3] = std::numeric_limits<float>::quiet_NaN();
  rdm::formats::write_npy(dir / "nan.npy", x);
  r = run_rdm("db import " + quote((dir / "nan.npy").string()) + " --out " + quote((dir / "db").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("holds NaN or infinite values"), std::string::npos) << r.err;
  // A good import: db info states the norms it measured.
  x[3] = 1.0;
  rdm::formats::write_npy(dir / "good.npy", x * 3);
  ASSERT_EQ(run_rdm("db import " + quote((dir / "good.npy").string()) + " --out " + quote((dir / "db").string())).code, 0);
  r = run_rdm("db info " + quote((dir / "db").string()));
  EXPECT_NE(r.out.find("(L2-normalised: norms "), std::string::npos) << r.out;
  r = run_rdm("db info --json " + quote((dir / "db").string()));
  EXPECT_EQ(json::parse(r.out)["norms"]["l2_normalised"], true);
}

TEST(CliHostile, DbImportCompVisPartsWithStringIds) {
  auto dir = scratch("hostile_compvis");
  auto r = run_rdm("db import " + quote(test_data("compvis_db/artbench-test").string()) + " --out " +
                   quote((dir / "db").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_rdm("db info --json " + quote((dir / "db").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["count"], 33);
  EXPECT_EQ(j["norms"]["l2_normalised"], true);
}
