// CLI tests of promises the README makes that no other test checked: `rdm sweep --gallery-only`,
// the gallery after Ctrl-C in a sweep (exit 130), the progress bar on a terminal (run under a
// pseudo-terminal), and `rdm embed` with a Hugging Face CLIP folder holding pytorch_model.bin.
#include <poll.h>
#include <pty.h>
#include <signal.h>

#include <chrono>
#include <regex>
#include <thread>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/image/png.hpp"
#include "rdm/formats/tensor_file.hpp"
#include "unit/clip_hf_util.hpp"
#include "unit/io_test_util.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = s.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

std::string sweep_args(const fs::path& demo, const fs::path& out) {
  return "sweep --prompts 'a red boat' 'an old castle' --databases " + db(demo, "stripes") + " " + db(demo, "dots") +
         " --seeds 1 --steps 3 -k 5 " + model_args(demo) + " --out " + quote(out.string()) + " ";
}

// index.html lists exactly the PNGs of `dir` (one figure each).
void expect_gallery_lists(const fs::path& dir) {
  const std::string html = slurp(dir / "index.html");
  const auto files = pngs(dir);
  EXPECT_EQ(count_of(html, "<figure class=\"item\""), files.size()) << html;
  EXPECT_NE(html.find("rdm sweep: " + std::to_string(files.size()) + " image(s)"), std::string::npos);
  for (const auto& p : files) EXPECT_NE(html.find(p.filename().string()), std::string::npos) << p;
}
}  // namespace

TEST(CliPromises, SweepGalleryOnlyRebuildsFromTheImagesWithoutAModel) {
  auto demo = demo_dir();
  auto out = scratch("gallery_only");
  ASSERT_EQ(run_rdm(sweep_args(demo, out) + "--shard 0/2").code, 0);
  ASSERT_EQ(run_rdm(sweep_args(demo, out) + "--shard 1/2").code, 0);
  ASSERT_EQ(pngs(out).size(), 4u);
  fs::remove(out / "index.html");
  fs::remove(out / "contact_sheet.png");
  // After all shards: no model is loaded (a model that does not exist is fine).
  const std::string args = "sweep --prompts 'a red boat' 'an old castle' --databases " + db(demo, "stripes") + " " +
                           db(demo, "dots") + " --seeds 1 --steps 3 -k 5 --model /nonexistent/model --out " +
                           quote(out.string()) + " --gallery-only";
  auto r = run_rdm(args);
  ASSERT_EQ(r.code, 0) << r.err;
  expect_gallery_lists(out);
  const auto sheet = rdm::image::read_png(out / "contact_sheet.png").image;
  EXPECT_GT(sheet.width, 2 * 192 - 1);  // 2 styles (columns) of 192-pixel cells
  EXPECT_GT(sheet.height, 2 * 192 - 1);  // 2 prompts (rows)
  EXPECT_EQ(pngs(out).size(), 4u);       // nothing sampled
  // A lost image disappears from the rebuilt gallery.
  fs::remove(pngs(out)[0]);
  ASSERT_EQ(run_rdm(args).code, 0);
  expect_gallery_lists(out);
}

TEST(CliPromises, SweepCtrlCWritesTheGalleryOfTheFinishedImages) {
  auto demo = demo_dir();
  auto out = scratch("sigint_gallery");
  const std::string args = "sweep --prompts a b c d e f g h --seeds 1 --steps 30 " + model_args(demo) + " --out " +
                           quote(out.string());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    std::string cmd = "exec " + quote(env("RDM_BIN")) + " --threads 1 " + args + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto t0 = std::chrono::steady_clock::now();
  while (pngs(out).empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(180))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  const size_t done = pngs(out).size();
  if (done == 8) GTEST_SKIP() << "the sweep finished before the interrupt arrived";
  EXPECT_EQ(WEXITSTATUS(st), 130);
  ASSERT_GE(done, 1u);
  ASSERT_TRUE(fs::exists(out / "index.html"));
  expect_gallery_lists(out);  // the finished images, and only those
  EXPECT_TRUE(fs::exists(out / "contact_sheet.png"));
  EXPECT_EQ(count_of(slurp(out / "results.jsonl"), "\"status\":\"done\""), done);
}

TEST(CliPromises, ProgressBarOnATerminal) {
  auto demo = demo_dir();
  auto out = scratch("pty");
  const std::string bin = env("RDM_BIN");
  const std::vector<std::string> argv_s = {bin,   "--threads", "1", "sample", "a lighthouse", "--model",
                                           (demo / "models/rdm/tiny").string(),  "--steps", "4", "-n", "1",
                                           "--out", out.string()};
  int master = -1;
  struct winsize ws {};
  ws.ws_col = 200;
  ws.ws_row = 40;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  std::string tty;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  for (;;) {
    pollfd pfd{master, POLLIN, 0};
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(&pfd, 1, 1000) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child has exited
    tty.append(buf, static_cast<size_t>(n));
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(master);
  ASSERT_TRUE(WIFEXITED(st)) << tty;
  ASSERT_EQ(WEXITSTATUS(st), 0) << tty;
  // The bar is redrawn in place (\r) at every step: label, bar, step i/N, it/s, ETA.
  const std::regex bar(R"(\rimage 1/1 \[(#*)(\.*)\] step (\d+)/4  \d+\.\d\d it/s  ETA \d+s )");
  std::vector<int> steps;
  for (std::sregex_iterator it(tty.begin(), tty.end(), bar), end; it != end; ++it) {
    const auto& m = *it;
    EXPECT_EQ(m[1].length() + m[2].length(), 30u) << m.str();
    const int step = std::stoi(m[3]);
    EXPECT_EQ(static_cast<int>(m[1].length()), 30 * step / 4) << m.str();  // filled share = step / steps
    steps.push_back(step);
  }
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4})) << tty;
  EXPECT_NE(tty.find("[##############################] step 4/4"), std::string::npos) << tty;
  // Not a terminal: periodic log lines instead, no carriage returns.
  auto r = run_rdm("sample 'a lighthouse' " + model_args(demo) + " --steps 4 -n 1 --out " + quote(out.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  EXPECT_NE(r.err.find("image 1/1: step 4/4 ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("it/s, ETA"), std::string::npos) << r.err;
}

namespace {
// Writes `sd` the way torch.save(state_dict) does (zip: archive/data.pkl with an OrderedDict of
// _rebuild_tensor_v2 calls, archive/data/<n> records, archive/version).
void write_pytorch_bin(const fs::path& path, const rdm::formats::StateDict& sd) {
  iotest::Pickle p;
  p.global("collections", "OrderedDict").empty_tuple().reduce().mark();
  std::vector<std::pair<std::string, std::string>> records;
  for (const auto& [name, t0] : sd) {
    const torch::Tensor t = t0.contiguous();
    const std::string key = std::to_string(records.size());
    const char* storage = t.scalar_type() == torch::kFloat32 ? "FloatStorage" : "LongStorage";
    ASSERT_TRUE(t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kInt64) << name;
    p.str(name).tensor(key, storage, t.numel(), 0, t.sizes().vec(), t.strides().vec());
    records.emplace_back(key, iotest::bytes_of(t));
  }
  p.setitems().stop();
  std::ofstream(path, std::ios::binary) << iotest::torch_archive("archive", p.b, records);
}
}  // namespace

TEST(CliPromises, EmbedWithHuggingFaceFolderOfPytorchModelBin) {
  const fs::path g = fs::path(env("RDM_GOLDEN_DIR")) / "clip";
  if (!fs::exists(g / "models" / "tiny_clip.safetensors")) GTEST_SKIP() << "no CLIP goldens under RDM_GOLDEN_DIR";
  // The golden tiny CLIP (OpenAI names) rewritten as a transformers CLIPModel folder.
  const auto openai = rdm::formats::read_tensor_file(g / "models" / "tiny_clip.safetensors").tensors;
  const auto cfg = rdm::clip::ClipConfig::from_json(json::parse(std::ifstream(g / "models" / "tiny_clip_config.json")));
  const fs::path hf = scratch("hf_clip") / "clip-vit-tiny";
  fs::create_directories(hf);
  write_pytorch_bin(hf / "pytorch_model.bin", clip_test::to_hf(openai, cfg));
  std::ofstream(hf / "config.json") << clip_test::hf_config(cfg).dump(2);
  ASSERT_FALSE(fs::exists(hf / "model.safetensors"));

  const std::string rest = " --vocab " + quote((g / "bpe_simple_vocab_16e6.txt.gz").string()) +
                           " --text 'a painting of a lighthouse' --text 'a cat' --image " +
                           quote((g / "images" / "chelsea.png").string());
  auto a = run_rdm("embed --clip " + quote(hf.string()) + rest);
  auto b = run_rdm("embed --clip " + quote((g / "models" / "tiny_clip.safetensors").string()) + rest);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  const json ja = json::parse(a.out), jb = json::parse(b.out);
  EXPECT_EQ(ja.at("dim"), cfg.embed_dim);
  for (const char* part : {"texts", "images"}) {
    ASSERT_EQ(ja.at(part).size(), jb.at(part).size()) << part;
    for (size_t i = 0; i < ja.at(part).size(); ++i) {
      const auto x = ja[part][i].at("embedding").get<std::vector<double>>();
      const auto y = jb[part][i].at("embedding").get<std::vector<double>>();
      ASSERT_EQ(x.size(), y.size());
      for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(x[k], y[k], 1e-6) << part << " " << i << " " << k;
    }
  }
  // The folder is really what was read: a broken pytorch_model.bin is an error naming it.
  std::ofstream(hf / "pytorch_model.bin", std::ios::binary | std::ios::trunc) << "PK broken";
  auto c = run_rdm("-q embed --clip " + quote(hf.string()) + rest);
  EXPECT_EQ(c.code, 1);
  EXPECT_NE(c.err.find("pytorch_model.bin"), std::string::npos) << c.err;
}
