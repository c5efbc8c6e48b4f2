// CLI tests: hostile values and inputs for rdm sample / sweep / embed on the demo model. Every
// bad value is refused with one line before a model loads; broken models and databases stop
// with an error instead of a black PNG; Ctrl-C keeps the finished images; --from-png is honest.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/image/png.hpp"
#include "rdm/app/request_checks.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
const std::string kFast = " --steps 2 --seed 7 ";

bool loaded_a_model(const RunResult& r) { return r.err.find("pipeline: loaded") != std::string::npos; }

// One error line, no model loaded, a non-zero status.
void expect_refused(const RunResult& r, const std::string& needle, const std::string& what) {
  EXPECT_NE(r.code, 0) << what;
  EXPECT_LT(r.code, 128) << what << ": crashed";
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
  EXPECT_FALSE(loaded_a_model(r)) << what << ": loaded the model first";
}

// Sets every float32 value of the safetensors tensors whose name matches `pred` to `value`.
void poison_safetensors(const fs::path& file, const std::function<bool(const std::string&)>& pred, float value) {
  std::string bytes = slurp(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, n));
  int hit = 0;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__" || !pred(name)) continue;
    ASSERT_EQ(info["dtype"], "F32") << name;
    const size_t begin = 8 + n + info["data_offsets"][0].get<size_t>(), end = 8 + n + info["data_offsets"][1].get<size_t>();
    for (size_t p = begin; p + 4 <= end; p += 4) std::memcpy(&bytes[p], &value, 4);
    ++hit;
  }
  ASSERT_GT(hit, 0) << "no tensor matched in " << file;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// The same tensors with 8 more bytes of header padding: a valid file with another fingerprint.
void pad_safetensors_header(const fs::path& file) {
  std::string bytes = slurp(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  bytes.insert(8 + n, 8, ' ');
  n += 8;
  std::memcpy(&bytes[0], &n, 8);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// A copy of the demo model folder; rdm.json's relative CLIP/vocabulary paths made absolute.
fs::path copy_model(const fs::path& demo, const fs::path& to) {
  const fs::path from = demo / "models/rdm/tiny";
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy(e.path(), to / e.path().filename());
  if (fs::exists(to / "rdm.json")) {
    json hint = json::parse(slurp(to / "rdm.json"));
    for (const char* key : {"clip", "vocab"})
      if (hint.contains(key) && fs::path(hint[key].get<std::string>()).is_relative())
        hint[key] = (from / hint[key].get<std::string>()).lexically_normal().string();
    std::ofstream(to / "rdm.json", std::ios::trunc) << hint.dump(2);
  }
  return to;
}
}  // namespace

TEST(CliHostileSample, SeedsAreUnsigned64BitWithoutWrapping) {
  auto demo = demo_dir();
  auto out = scratch("h_seed");
  const std::string base = "sample 'x' " + model_args(demo) + " --steps 2 --out " + quote(out.string()) + " ";
  expect_refused(run_rdm(base + "--seed -1"), "seed", "--seed -1");
  expect_refused(run_rdm(base + "--seed=-1"), "seed", "--seed=-1");
  expect_refused(run_rdm(base + "--seed 18446744073709551616"), "too large", "--seed 2^64");
  expect_refused(run_rdm(base + "--seed 1e3"), "seed", "--seed 1e3");
  // seed + i for -n images must not wrap around.
  auto r = run_rdm(base + "--seed 18446744073709551615 -n 2");
  expect_refused(r, "18446744073709551615", "seed + 1 wraps");
  EXPECT_EQ(r.code, 1);
  // The largest seed itself works.
  r = run_rdm(base + "--seed 18446744073709551615 -n 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(pngs(out).size(), 1u);
}

TEST(CliHostileSample, ValuesAreCheckedBeforeTheModelLoads) {
  auto demo = demo_dir();
  auto out = scratch("h_values");
  const std::string base = "sample 'x' " + model_args(demo) + kFast + "--out " + quote(out.string()) + " ";
  expect_refused(run_rdm(base + "--scale nan"), "guidance scale", "--scale nan");
  expect_refused(run_rdm(base + "--scale inf"), "guidance scale", "--scale inf");
  expect_refused(run_rdm(base + "--scale 1000"), "guidance scale", "--scale 1000");
  expect_refused(run_rdm(base + "--eta 2"), "eta", "--eta 2");
  expect_refused(run_rdm(base + "--eta nan"), "eta", "--eta nan");
  expect_refused(run_rdm("sample 'x' " + model_args(demo) + " --steps 1000 --out " + quote(out.string())),
                 "1 to 999 steps", "--steps 1000");
  expect_refused(run_rdm(base + "--width 100"), "multiples of 16", "--width 100");
  expect_refused(run_rdm(base + "--width 20000"), "20000", "--width 20000");
  expect_refused(run_rdm(base + "-n 0"), "n-samples", "-n 0");
  expect_refused(run_rdm(base + "-k 5000"), "knn", "-k 5000");
  EXPECT_TRUE(pngs(out).empty());
  // --help documents the ranges.
  auto h = run_rdm("sample --help");
  EXPECT_NE(h.out.find("|scale| <= 100"), std::string::npos);
  EXPECT_NE(h.out.find("[0, 1]"), std::string::npos);
}

TEST(CliHostileSample, HugeSizeIsRefusedWithTheMemoryEstimate) {
  auto demo = demo_dir();
  auto facts = rdm::ModelFacts::from_file(demo / "models/rdm/tiny/config.json");
  auto need = rdm::estimate_activation_memory(facts.config, 16384, 16384, 1, 4).peak();
  if (need < rdm::machine_memory().available) GTEST_SKIP() << "this machine has room for a 16384x16384 image";
  auto out = scratch("h_huge");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_rdm("sample 'x' " + model_args(demo) + kFast + "--width 16384 --height 16384 --device cpu --out " +
                   quote(out.string()));
  expect_refused(r, "GiB of working memory", "16384x16384");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("available on this machine"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

TEST(CliHostileSample, SweepValuesNameTheJobLine) {
  auto demo = demo_dir();
  auto out = scratch("h_sweep");
  const std::string base = "sweep " + model_args(demo) + " --steps 2 --out " + quote((out / "o").string()) + " ";
  expect_refused(run_rdm(base + "--prompts a --scales nan inf"), "scale", "--scales nan inf");
  expect_refused(run_rdm(base + "--prompts a --seeds -4"), "seed", "--seeds -4");
  auto write_jobs = [&](const std::string& second) {
    fs::path p = out / "jobs.jsonl";
    std::ofstream(p) << "{\"prompt\": \"a fox\"}\n" << second << "\n";
    return quote(p.string());
  };
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "steps": 5.7})")), "jobs.jsonl:2", "steps 5.7");
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "seeds": []})")), "jobs.jsonl:2", "seeds []");
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "seed": 1e30})")), "jobs.jsonl:2", "seed 1e30");
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "seed": 18446744073709551616})")), "jobs.jsonl:2",
                 "seed 2^64");
  // Model-dependent rules also name the line, and still come before loading.
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "width": 100})")), "jobs.jsonl:2", "width 100");
  expect_refused(run_rdm(base + write_jobs(R"({"prompt": "b", "steps": 1000})")), "jobs.jsonl:2", "steps 1000");
  EXPECT_FALSE(fs::exists(out / "o" / "results.jsonl"));
}

TEST(CliHostileSample, UnboundedAndBrokenTextInputsFailFast) {
  auto demo = demo_dir();
  auto out = scratch("h_text");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_rdm("sample --prompt-file /dev/zero " + model_args(demo) + " --out " + quote(out.string()));
  expect_refused(r, "not a regular file", "--prompt-file /dev/zero");
  r = run_rdm("sweep /dev/zero " + model_args(demo) + " --out " + quote(out.string()));
  expect_refused(r, "not a regular file", "sweep /dev/zero");
  r = run_rdm("embed --tokens --text-file /dev/zero");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  // Invalid UTF-8 names the file and the line.
  fs::path bad = out / "bad.txt";
  std::ofstream(bad) << "a fox\n\na \xff\xfe owl\n";
  r = run_rdm("sample --prompt-file " + quote(bad.string()) + " " + model_args(demo) + " --out " + quote(out.string()));
  expect_refused(r, "line 3 is not valid UTF-8", "invalid UTF-8");
  EXPECT_NE(r.err.find("bad.txt"), std::string::npos) << r.err;
  // A prompt file larger than 64 MiB (sparse).
  fs::path big = out / "big.txt";
  { std::ofstream f(big); }
  fs::resize_file(big, (uint64_t(64) << 20) + 1);
  r = run_rdm("sample --prompt-file " + quote(big.string()) + " " + model_args(demo) + " --out " + quote(out.string()));
  expect_refused(r, "larger than 64 MiB", "65 MiB prompt file");
}

TEST(CliHostileSample, BomIsStrippedFromPromptFiles) {
  auto demo = demo_dir();
  auto out = scratch("h_bom");
  fs::path pf = out / "prompts.txt";
  std::ofstream(pf) << "\xEF\xBB\xBF" "a red boat\r\n";
  auto r = run_rdm("sample --prompt-file " + quote(pf.string()) + " " + model_args(demo) + kFast + "-n 1 --out " +
                   quote((out / "o").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto files = pngs(out / "o");
  ASSERT_EQ(files.size(), 1u);
  auto rec = json::parse(rdm::image::read_png(files[0]).find("rdm").value());
  EXPECT_EQ(rec["prompt"], "a red boat");
}

TEST(CliHostileSample, ImagePromptWithTextIsAUsageError) {
  auto demo = demo_dir();
  auto out = scratch("h_imgtext");
  fs::path img = demo / "images/dots/dots-003.png";
  auto r = run_rdm("sample 'a fox' --image-prompt " + quote(img.string()) + " " + model_args(demo) + kFast +
                   "--out " + quote(out.string()));
  expect_refused(r, "--image-prompt", "image prompt + text");
  EXPECT_NE(r.code, 1);  // a usage error, not a runtime one
  EXPECT_TRUE(pngs(out).empty());
}

TEST(CliHostileSample, FromPngConflictsAndHashes) {
  auto demo = demo_dir();
  auto out = scratch("h_frompng");
  // An image made with a private copy of the 'stripes' database.
  fs::path mydb = out / "db";
  fs::copy(demo / "databases/stripes", mydb, fs::copy_options::recursive);
  auto r = run_rdm("sample 'a fox' " + model_args(demo) + " --database " + quote(mydb.string()) + kFast +
                   "-n 1 --out " + quote((out / "a").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string png = quote(pngs(out / "a").at(0).string());
  // Options that the record fixes are usage errors, never silently dropped.
  const std::vector<std::string> fixed = {"--seed 3",  "--steps 4", "-n 2",      "'another prompt'", "-d " + db(demo, "dots"),
                                         "--scale 2", "--eta 0.5", "-k 3",      "--width 32",       "--batch-size 2"};
  for (const std::string& extra : fixed) {
    r = run_rdm("sample --from-png " + png + " " + extra + " --out " + quote((out / "b").string()));
    EXPECT_NE(r.code, 0) << extra;
    EXPECT_NE(r.code, 1) << extra << ": should be a usage error";
    EXPECT_NE(r.err.find("conflicts with --from-png"), std::string::npos) << extra << ": " << r.err;
  }
  // Overrides that are allowed: the output folder, the device, threads.
  r = run_rdm("sample --from-png " + png + " --device cpu --out " + quote((out / "c").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(rdm::image::read_png(pngs(out / "a")[0]).image.pixels, rdm::image::read_png(pngs(out / "c")[0]).image.pixels);
  // The database at the recorded path is now another one: refused unless --ignore-hashes.
  fs::remove_all(mydb);
  fs::copy(demo / "databases/dots", mydb, fs::copy_options::recursive);
  r = run_rdm("sample --from-png " + png + " --out " + quote((out / "d").string()));
  expect_refused(r, "differs from the one the image was made with", "database swapped");
  EXPECT_NE(r.err.find("--ignore-hashes"), std::string::npos) << r.err;
  r = run_rdm("sample --from-png " + png + " --ignore-hashes --out " + quote((out / "d").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--ignore-hashes"), std::string::npos) << r.err;  // warned
  // Another model file at the recorded path: refused.
  fs::path model = copy_model(demo, out / "model");
  r = run_rdm("sample 'a fox' --model " + quote(model.string()) + kFast + "-n 1 --out " + quote((out / "e").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string png2 = quote(pngs(out / "e").at(0).string());
  pad_safetensors_header(model / "model.safetensors");
  r = run_rdm("sample --from-png " + png2 + " --out " + quote((out / "f").string()));
  expect_refused(r, "differs from the one the image was made with", "model changed");
  EXPECT_NE(r.err.find("model '"), std::string::npos) << r.err;
  r = run_rdm("sample --from-png " + png2 + " --ignore-hashes --out " + quote((out / "f").string()));
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(CliHostileSample, BrokenWeightsAndDatabasesStopInsteadOfBlackImages) {
  auto demo = demo_dir();
  auto out = scratch("h_nan");
  // Decoder weights full of NaN: the decoded image is not finite.
  fs::path model = copy_model(demo, out / "dec");
  poison_safetensors(model / "model.safetensors", [](const std::string& n) { return n.find("first_stage_model.decoder.conv_out.bias") != std::string::npos; },
                     std::nanf(""));
  auto r = run_rdm("sample 'a fox' --model " + quote(model.string()) + kFast + "-n 1 --out " + quote((out / "a").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("decoded image is not finite"), std::string::npos) << r.err;
  EXPECT_TRUE(pngs(out / "a").empty());
  // UNet output layer full of inf (raw and EMA copies): stops at step 1.
  model = copy_model(demo, out / "unet");
  poison_safetensors(model / "model.safetensors", [](const std::string& n) {
    return n.rfind("model.diffusion_model.out.2.", 0) == 0 || n.rfind("model_ema.diffusion_modelout2", 0) == 0;
  }, INFINITY);
  r = run_rdm("sample 'a fox' --model " + quote(model.string()) + kFast + "-n 1 --out " + quote((out / "b").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNet output is not finite at DDIM step 1/2"), std::string::npos) << r.err;
  EXPECT_TRUE(pngs(out / "b").empty());
  // A database whose embeddings are all zero: an error naming it.
  fs::path zdb = out / "zero_db";
  fs::copy(demo / "databases/dots", zdb, fs::copy_options::recursive);
  std::string npy = slurp(zdb / "embeddings.npy");
  uint16_t hlen = 0;
  std::memcpy(&hlen, npy.data() + 8, 2);
  std::fill(npy.begin() + 10 + hlen, npy.end(), '\0');
  std::ofstream(zdb / "embeddings.npy", std::ios::binary | std::ios::trunc) << npy;
  r = run_rdm("sample 'a fox' " + model_args(demo) + " --database " + quote(zdb.string()) + kFast + "-n 1 --out " +
              quote((out / "c").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("zero or not finite"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("zero_db"), std::string::npos) << r.err;
  EXPECT_TRUE(pngs(out / "c").empty());
}

TEST(CliHostileSample, DatabaseOfAnotherWidthIsRefusedBeforeLoading) {
  auto demo = demo_dir();
  auto out = scratch("h_dbdim");
  fs::path wdb = out / "wide_db";
  fs::copy(demo / "databases/dots", wdb, fs::copy_options::recursive);
  json m = json::parse(slurp(wdb / "manifest.json"));
  m["clip"]["embed_dim"] = m["clip"]["embed_dim"].get<int64_t>() * 2;
  std::ofstream(wdb / "manifest.json", std::ios::trunc) << m.dump(2);
  auto r = run_rdm("sample 'a fox' " + model_args(demo) + " --database " + quote(wdb.string()) + kFast + "--out " +
                   quote(out.string()));
  expect_refused(r, "-d embeddings", "database dim");
}

TEST(CliHostileSample, CtrlCKeepsFinishedImagesAndExits130) {
  auto demo = demo_dir();
  auto out = scratch("h_sigint");
  const fs::path err = out / "err.txt";
  const std::string bin = env("RDM_BIN");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    int nul = ::open("/dev/null", O_RDWR);
    ::dup2(nul, 0);
    ::dup2(nul, 1);
    const std::string model = (demo / "models/rdm/tiny").string(), o = (out / "o").string();
    ::execl(bin.c_str(), bin.c_str(), "--threads", "1", "sample", "a lighthouse", "--model", model.c_str(), "-n", "4",
            "--batch-size", "1", "--steps", "300", "--seed", "5", "--out", o.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for the first PNG (written as soon as image 0 is decoded), then Ctrl-C.
  auto t0 = std::chrono::steady_clock::now();
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(240)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = fs::exists(out / "o") && !pngs(out / "o").empty();
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) FAIL() << "rdm ended before the first image: " << slurp(err);
  }
  ASSERT_TRUE(seen) << slurp(err);
  ::kill(pid, SIGINT);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by a signal: " << slurp(err);
  auto files = pngs(out / "o");
  if (files.size() == 4 && WEXITSTATUS(st) == 0) GTEST_SKIP() << "all images finished before the interrupt arrived";
  EXPECT_EQ(WEXITSTATUS(st), 130) << slurp(err);
  ASSERT_GE(files.size(), 1u);
  EXPECT_LT(files.size(), 4u);  // interrupted before the end
  for (const auto& f : files) {
    auto png = rdm::image::read_png(f);  // complete, readable files with their records
    EXPECT_EQ(png.image.width, 128);
    EXPECT_TRUE(png.find("rdm").has_value());
    fs::path side = f;
    EXPECT_TRUE(fs::exists(side.replace_extension(".json"))) << f;
  }
  const std::string log = slurp(err);
  EXPECT_NE(log.find("interrupted: " + std::to_string(files.size()) + " finished image(s) written to"), std::string::npos)
      << log;
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(out / "o"))
    EXPECT_TRUE(e.path().extension() == ".png" || e.path().extension() == ".json") << e.path();
}
