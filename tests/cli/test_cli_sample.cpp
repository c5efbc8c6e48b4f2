// CLI tests: rdm sample / show-params on the demo model: every mode, determinism, batch
// invariance, metadata round trip, and the user errors of issue 6.
#include <algorithm>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/app/demo.hpp"
#include "rdm/image/png.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
// Quick settings: few steps, small batch.
const std::string kFast = " --steps 4 --seed 7 ";

json record_of(const fs::path& png) {
  auto f = rdm::image::read_png(png);
  auto t = f.find("rdm");
  EXPECT_TRUE(t.has_value()) << png;
  return t ? json::parse(*t) : json();
}
}  // namespace

TEST(CliSample, HelpListsOptions) {
  auto r = run_rdm("sample --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt : {"--database", "--sampler", "--steps", "--eta", "--scale", "--seed", "--n-samples",
                          "--batch-size", "--width", "--height", "--device", "--precision", "--model", "--clip",
                          "--out", "--grid", "--json", "--image-prompt", "--no-retrieval", "--from-png", "--overwrite"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  EXPECT_NE(r.out.find("50"), std::string::npos);  // default steps
}

TEST(CliSample, TextWithNeighborsWritesPngMetadataAndSidecar) {
  auto demo = demo_dir();
  auto out = scratch("nb");
  auto r = run_rdm("sample 'a lighthouse in a storm' " + model_args(demo) + " --database " + db(demo, "stripes") + kFast +
               "-n 2 --grid --neighbors-sheet --json --out " + quote(out.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto report = json::parse(r.out);  // pure JSON on stdout
  ASSERT_EQ(report["images"].size(), 2u);
  auto files = pngs(out);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(fs::exists(out / "grid-0000.png"));
  auto rec = record_of(files[0]);
  EXPECT_EQ(rec["mode"], "text+neighbors");
  EXPECT_EQ(rec["prompt"], "a lighthouse in a storm");
  EXPECT_EQ(rec["neighbors"].size(), 19u);
  EXPECT_EQ(rec["k"], 19);
  EXPECT_EQ(rec["seed"], 7);
  EXPECT_EQ(record_of(files[1])["seed"], 8);  // image i uses seed + i
  EXPECT_EQ(rec["sampler"], "ddim");
  EXPECT_EQ(rec["width"], 128);
  // Scores best first.
  for (size_t i = 1; i < rec["neighbors"].size(); ++i)
    EXPECT_GE(rec["neighbors"][i - 1]["score"].get<double>(), rec["neighbors"][i]["score"].get<double>());
  EXPECT_EQ(rec["databases"][0]["name"], "stripes");
  EXPECT_FALSE(rec["databases"][0]["hash"].get<std::string>().empty());
  EXPECT_FALSE(rec["model"]["hash"].get<std::string>().empty());
  // Sidecar equals the PNG chunk; the parameters chunk is human-readable.
  fs::path side = files[0];
  side.replace_extension(".json");
  // The sidecar is the PNG's record plus the timings and the file name.
  json sidecar = json::parse(slurp(side));
  EXPECT_TRUE(sidecar.contains("seconds"));
  EXPECT_EQ(sidecar.value("file", std::string()), files[0].filename().string());
  sidecar.erase("seconds");
  sidecar.erase("file");
  EXPECT_EQ(sidecar, rec);
  auto f = rdm::image::read_png(files[0]);
  EXPECT_EQ(f.image.width, 128);
  auto params = f.find("parameters").value();
  EXPECT_NE(params.find("a lighthouse in a storm\nSteps: 4, Sampler: DDIM, CFG scale: 5, Seed: 7, Size: 128x128"),
            std::string::npos)
      << params;
  // Neighbour contact sheet.
  fs::path sheet = out / (files[0].stem().string() + "-neighbors.png");
  EXPECT_TRUE(fs::exists(sheet));
  // show-params prints both.
  auto sp = run_rdm("show-params " + quote(files[0].string()));
  EXPECT_EQ(sp.code, 0);
  EXPECT_NE(sp.out.find("Sampler: DDIM"), std::string::npos);
  EXPECT_NE(sp.out.find("\"neighbors\""), std::string::npos);
  auto sj = run_rdm("show-params --json " + quote(files[0].string()));
  EXPECT_EQ(json::parse(sj.out), rec);
}

TEST(CliSample, SameSeedGivesIdenticalBytesAndNeverOverwrites) {
  auto demo = demo_dir();
  auto a = scratch("det_a"), b = scratch("det_b");
  std::string args = "sample 'a quiet harbor' " + model_args(demo) + " --database " + db(demo, "dots") + kFast + "-n 1 ";
  ASSERT_EQ(run_rdm(args + "--out " + quote(a.string())).code, 0);
  ASSERT_EQ(run_rdm(args + "--out " + quote(b.string())).code, 0);
  auto fa = pngs(a), fb = pngs(b);
  ASSERT_EQ(fa.size(), 1u);
  ASSERT_EQ(fb.size(), 1u);
  // Byte-identical files: the PNG's record holds no timings and no file name.
  EXPECT_EQ(slurp(fa[0]), slurp(fb[0]));
  EXPECT_FALSE(record_of(fa[0]).contains("seconds"));
  // The sidecar has the timings.
  auto side = fa[0];
  side.replace_extension(".json");
  EXPECT_TRUE(json::parse(slurp(side)).contains("seconds"));
  // Running again into the same folder adds a file instead of overwriting.
  ASSERT_EQ(run_rdm(args + "--out " + quote(a.string())).code, 0);
  fa = pngs(a);
  ASSERT_EQ(fa.size(), 2u);
  EXPECT_EQ(slurp(fa[0]), slurp(fa[1]));
  EXPECT_EQ(fa[0].filename().string().substr(0, 6), "00000-");
  EXPECT_EQ(fa[1].filename().string().substr(0, 6), "00001-");
  // --overwrite restarts the numbering.
  ASSERT_EQ(run_rdm(args + "--overwrite --out " + quote(a.string())).code, 0);
  EXPECT_EQ(pngs(a).size(), 2u);
}

TEST(CliSample, BatchSizeDoesNotChangeImages) {
  auto demo = demo_dir();
  auto a = scratch("batch1"), b = scratch("batch4");
  std::string args = "sample 'red flowers' " + model_args(demo) + " --database " + db(demo, "checks") + kFast + "-n 4 ";
  ASSERT_EQ(run_rdm(args + "--batch-size 1 --out " + quote(a.string())).code, 0);
  ASSERT_EQ(run_rdm(args + "--batch-size 4 --out " + quote(b.string())).code, 0);
  auto fa = pngs(a), fb = pngs(b);
  ASSERT_EQ(fa.size(), 4u);
  ASSERT_EQ(fb.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(rdm::image::read_png(fa[i]).image.pixels, rdm::image::read_png(fb[i]).image.pixels) << i;
  // Different seeds give different images.
  EXPECT_NE(rdm::image::read_png(fa[0]).image.pixels, rdm::image::read_png(fa[1]).image.pixels);
  // Image 2 of seed 7 equals image 0 of seed 9.
  auto c = scratch("seed9");
  ASSERT_EQ(run_rdm("sample 'red flowers' " + model_args(demo) + " --database " + db(demo, "checks") +
                " --steps 4 --seed 9 -n 1 --out " + quote(c.string()))
                .code,
            0);
  EXPECT_EQ(rdm::image::read_png(pngs(c)[0]).image.pixels, rdm::image::read_png(fa[2]).image.pixels);
}

// One prompt runs one-shot (CLIP released before the RDM is loaded, the UNet before the last
// decode): the same pixels as a run of two prompts that keeps every model.
TEST(CliSample, OneShotReleasesModelsAndKeepsTheImages) {
  auto demo = demo_dir();
  auto one = scratch("oneshot1"), two = scratch("oneshot2");
  const std::string tail = model_args(demo) + " --database " + db(demo, "dots") + kFast + "-n 3 --batch-size 2 ";
  auto r = run_rdm("-v sample 'red flowers' " + tail + "--out " + quote(one.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t released = r.err.find("one-shot: CLIP released before the RDM is loaded");
  EXPECT_NE(released, std::string::npos) << r.err;
  EXPECT_GT(r.err.find("loaded latent diffusion model"), released) << r.err;  // never both resident
  EXPECT_NE(r.err.find("one-shot: UNet released before the decode"), std::string::npos) << r.err;
  r = run_rdm("-v sample 'red flowers' 'an old castle' " + tail + "--out " + quote(two.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("one-shot"), std::string::npos) << r.err;
  auto fa = pngs(one), fb = pngs(two);
  ASSERT_EQ(fa.size(), 3u);
  ASSERT_EQ(fb.size(), 6u);
  size_t same = 0;
  for (const auto& a : fa)
    for (const auto& b : fb)
      same += rdm::image::read_png(a).image.pixels == rdm::image::read_png(b).image.pixels;
  EXPECT_EQ(same, 3u);  // each one-shot image is one of the two-prompt run's 'red flowers' images
}

TEST(CliSample, FromPngReproducesTheImage) {
  auto demo = demo_dir();
  auto a = scratch("from_a"), b = scratch("from_b");
  ASSERT_EQ(run_rdm("sample 'a castle at night' " + model_args(demo) + " --database " + db(demo, "gradients") +
                " --database " + db(demo, "dots") + ":0.5 -k 6 --steps 3 --eta 0.5 --scale 3 --seed 11 -n 2 --out " +
                quote(a.string()))
                .code,
            0);
  auto fa = pngs(a);
  ASSERT_EQ(fa.size(), 2u);
  auto r = run_rdm("sample --from-png " + quote(fa[1].string()) + " --out " + quote(b.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto fb = pngs(b);
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(rdm::image::read_png(fa[1]).image.pixels, rdm::image::read_png(fb[0]).image.pixels);
  auto ra = record_of(fa[1]), rb = record_of(fb[0]);
  EXPECT_EQ(ra["seed"], rb["seed"]);
  EXPECT_EQ(ra["neighbors"], rb["neighbors"]);
  // Weighted mix: k = 6 split 4 + 2 for weights 1 and 0.5.
  EXPECT_EQ(ra["databases"][0]["k"], 4);
  EXPECT_EQ(ra["databases"][1]["k"], 2);
  EXPECT_EQ(ra["neighbors"].size(), 6u);
}

TEST(CliSample, TextOnlyImagePromptAndPostfixModes) {
  auto demo = demo_dir();
  auto out = scratch("modes");
  // Text only: no database.
  auto r = run_rdm("sample 'a fox' " + model_args(demo) + kFast + "-n 1 --out " + quote((out / "text").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto rec = record_of(pngs(out / "text")[0]);
  EXPECT_EQ(rec["mode"], "text");
  EXPECT_TRUE(rec["neighbors"].empty());
  // Image prompt: the query comes from the image; its nearest neighbour is itself.
  fs::path img = demo / "images/dots/dots-003.png";
  r = run_rdm("sample --image-prompt " + quote(img.string()) + " " + model_args(demo) + " --database " + db(demo, "dots") +
          kFast + "-n 1 --out " + quote((out / "image").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  rec = record_of(pngs(out / "image")[0]);
  EXPECT_EQ(rec["mode"], "image");
  EXPECT_NEAR(rec["neighbors"][0]["score"].get<double>(), 1.0, 1e-4);
  EXPECT_NE(rec["neighbors"][0]["path"].get<std::string>().find("dots-003.png"), std::string::npos);
  // Postfix baseline: no neighbours, the style from the database name.
  r = run_rdm("sample 'a fox' --no-retrieval " + model_args(demo) + " --database " + db(demo, "stripes") + kFast +
          "-n 1 --out " + quote((out / "postfix").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  rec = record_of(pngs(out / "postfix")[0]);
  EXPECT_EQ(rec["mode"], "postfix");
  EXPECT_EQ(rec["text"], "a fox in the style of stripes");
  EXPECT_TRUE(rec["neighbors"].empty());
  // The postfix image differs from the plain text-only one.
  EXPECT_NE(rdm::image::read_png(pngs(out / "postfix")[0]).image.pixels,
            rdm::image::read_png(pngs(out / "text")[0]).image.pixels);
}

TEST(CliSample, PlmsAndPromptFile) {
  auto demo = demo_dir();
  auto out = scratch("plms");
  fs::path pf = out / "prompts.txt";
  std::ofstream(pf) << "a red boat\n\na blue bird\n";
  auto r = run_rdm("sample --prompt-file " + quote(pf.string()) + " --sampler plms " + model_args(demo) + " --database " +
               db(demo, "stripes") + kFast + "-n 1 --out " + quote((out / "o").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto files = pngs(out / "o");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(record_of(files[0])["sampler"], "plms");
}

TEST(CliSample, FastSolversAndSpacingsAreRecordedAndReproduced) {
  auto demo = demo_dir();
  auto out = scratch("solvers");
  std::vector<std::vector<uint8_t>> seen;
  for (const std::string spec : {"--sampler dpmpp2m --spacing karras", "--sampler unipc --spacing trailing",
                                 "--sampler euler_a"}) {
    const fs::path dir = out / std::to_string(seen.size());
    auto r = run_rdm("sample 'a red boat' " + spec + " " + model_args(demo) + " --database " + db(demo, "dots") +
                     " --steps 4 --seed 5 -n 1 --out " + quote(dir.string()));
    ASSERT_EQ(r.code, 0) << spec << ": " << r.err;
    auto files = pngs(dir);
    ASSERT_EQ(files.size(), 1u);
    auto rec = record_of(files[0]);
    const std::string sampler = spec.substr(10, spec.find(' ', 10) == std::string::npos ? std::string::npos
                                                                                         : spec.find(' ', 10) - 10);
    EXPECT_EQ(rec["sampler"], sampler) << spec;
    EXPECT_EQ(rec["spacing"], spec.find("karras") != std::string::npos     ? "karras"
                              : spec.find("trailing") != std::string::npos ? "trailing"
                                                                           : "uniform");
    if (sampler == "euler_a") EXPECT_EQ(rec["eta"], 1.0);  // ancestral unless --eta is given
    // --from-png reproduces the image with the recorded sampler and spacing.
    r = run_rdm("sample --from-png " + quote(files[0].string()) + " --out " + quote((dir / "again").string()));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto pixels = rdm::image::read_png(files[0]).image.pixels;
    EXPECT_EQ(rdm::image::read_png(pngs(dir / "again")[0]).image.pixels, pixels) << spec;
    for (const auto& other : seen) EXPECT_NE(other, pixels) << spec;
    seen.push_back(pixels);
  }
  // Deterministic solvers take no eta; unknown names are usage errors.
  auto r = run_rdm("sample 'a boat' --sampler dpmpp2m --eta 0.5 " + model_args(demo) + " --out " +
                   quote((out / "bad").string()));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("eta 0"), std::string::npos) << r.err;
  r = run_rdm("sample 'a boat' --spacing cosine " + model_args(demo) + " --out " + quote((out / "bad").string()));
  EXPECT_EQ(r.code, 2) << r.err;
}

TEST(CliSampleErrors, MissingModelSaysWhatToRun) {
  auto out = scratch("err_model");
  auto r = run_rdm("sample 'x' --model " + quote((out / "nope").string()) + " --out " + quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("download_models.sh"), std::string::npos) << r.err;
  // RDM_MODELS lookup by name.
  r = run_rdm("sample 'x' --model nosuchmodel --out " + quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nosuchmodel"), std::string::npos) << r.err;
}

TEST(CliSampleErrors, MismatchedClipAndForeignDatabase) {
  auto demo = demo_dir(), other = demo_dir(43);
  auto out = scratch("err_clip");
  // A database of ViT-L/14 embeddings (768-d) cannot serve the demo's 32-d CLIP.
  fs::path npy = out / "emb.npy";
  {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (30, 768), }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    std::ofstream f(npy, std::ios::binary);
    f << "\x93NUMPY" << '\x01' << '\x00';
    uint16_t len = static_cast<uint16_t>(header.size());
    f.write(reinterpret_cast<const char*>(&len), 2);
    f << header;
    for (int i = 0; i < 30 * 768; ++i) {
      float v = static_cast<float>((i * 7919) % 101) / 101.0f - 0.5f;
      f.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
  auto r = run_rdm("db import " + quote(npy.string()) + " --out " + quote((out / "vitl").string()) +
               " --clip-identity ViT-L/14");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_rdm("sample 'x' " + model_args(demo) + " --database " + quote((out / "vitl").string()) + kFast + "--out " +
          quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("ViT-L/14"), std::string::npos) << r.err;
  // Same architecture, other weights (another demo's CLIP): allowed with a warning.
  r = run_rdm("sample 'x' " + model_args(demo) + " --database " + db(other, "dots") + kFast + "--out " +
          quote(out.string()));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("different weights"), std::string::npos) << r.err;
  // A vocabulary that does not match the CLIP.
  fs::path vocab = out / "v.txt.gz";
  rdm::demo::write_vocab_gz(vocab, {"l i", "li g"});
  r = run_rdm("sample 'x' " + model_args(demo) + " --vocab " + quote(vocab.string()) + kFast + "--out " +
          quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("516 tokens"), std::string::npos) << r.err;
  // A missing vocabulary.
  r = run_rdm("sample 'x' " + model_args(demo) + " --vocab " + quote((out / "nope.gz").string()) + " --out " +
          quote(out.string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nope.gz"), std::string::npos) << r.err;
}

TEST(CliSampleErrors, UserErrors) {
  auto demo = demo_dir();
  auto out = scratch("err_user");
  const std::string base = "sample 'x' " + model_args(demo) + kFast + "--out " + quote(out.string()) + " ";
  // k larger than the database (24 images).
  auto r = run_rdm(base + "--database " + db(demo, "dots") + " -k 30");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("holds only 24"), std::string::npos) << r.err;
  // Size not allowed (multiples of 16 for the demo model).
  r = run_rdm(base + "--width 100");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("multiples of 16"), std::string::npos) << r.err;
  // CUDA asked for but absent (skip where a GPU exists).
  r = run_rdm(base + "--device cuda");
  if (r.code != 0) EXPECT_NE(r.err.find("CUDA"), std::string::npos) << r.err;
  r = run_rdm(base + "--device tpu");
  EXPECT_EQ(r.code, 1);
  // Unwritable output folder (a path below a regular file).
  std::ofstream(out / "file") << "x";
  r = run_rdm("sample 'x' " + model_args(demo) + kFast + "--out " + quote((out / "file" / "sub").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("output folder"), std::string::npos) << r.err;
  // PLMS with eta.
  r = run_rdm(base + "--sampler plms --eta 0.5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("eta"), std::string::npos) << r.err;
  // No prompt at all; postfix without a style.
  r = run_rdm("sample " + model_args(demo) + " --out " + quote(out.string()));
  EXPECT_EQ(r.code, 1);
  r = run_rdm(base + "--no-retrieval");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--style"), std::string::npos) << r.err;
  // Missing database; bad weight.
  r = run_rdm(base + "--database no_such_db");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no_such_db"), std::string::npos) << r.err;
  r = run_rdm(base + "--database " + db(demo, "dots") + ":-1");
  EXPECT_EQ(r.code, 1);
  // --from-png of a PNG without metadata.
  rdm::image::write_png(out / "plain.png", rdm::image::RgbImage(4, 4));
  r = run_rdm("sample --from-png " + quote((out / "plain.png").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("metadata"), std::string::npos) << r.err;
}

TEST(CliSampleErrors, LongPromptIsTruncatedWithAWarning) {
  auto demo = demo_dir();
  auto out = scratch("long");
  std::string prompt;
  for (int i = 0; i < 120; ++i) prompt += "lighthouse ";
  auto r = run_rdm("sample " + quote(prompt) + " " + model_args(demo) + kFast + "--out " + quote(out.string()));
  EXPECT_EQ(r.code, 0) << r.err;
  std::string err = r.err;
  std::transform(err.begin(), err.end(), err.begin(), ::tolower);
  EXPECT_NE(err.find("truncat"), std::string::npos) << r.err;
}
