// CLI tests: rdm embed (token ids, JSON embeddings, .npy output, errors).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "rdm/formats/npy.hpp"

namespace fs = std::filesystem;

namespace {
struct Result {
  int code;
  std::string out;
};
Result run(const std::string& args) {
  const char* bin = std::getenv("RDM_BIN");
  std::string cmd = std::string(bin ? bin : "rdm") + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
fs::path golden() {
  const char* g = std::getenv("RDM_GOLDEN_DIR");
  return fs::path(g ? g : "") / "clip";
}
}  // namespace

TEST(CliEmbed, TokensAndEmbeddings) {
  const fs::path g = golden();
  if (!fs::exists(g / "models" / "tiny_clip.safetensors")) GTEST_SKIP() << "no CLIP goldens under RDM_GOLDEN_DIR";
  const std::string vocab = "--vocab " + (g / "bpe_simple_vocab_16e6.txt.gz").string();
  auto r = run("embed --tokens " + vocab + " --text 'a painting of a virus monster playing guitar'");
  ASSERT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"][0]["ids"], (std::vector<int64_t>{320, 3086, 539, 320, 11808, 6060, 1629, 5084}));
  EXPECT_EQ(j["tokens"][0]["eot_index"], 9);

  const std::string model = "--clip " + (g / "models" / "tiny_clip.safetensors").string();
  r = run("embed " + model + " " + vocab + " --text 'a cat' --text 'a dog' --image " + (g / "images" / "pixel_1x1.png").string());
  ASSERT_EQ(r.code, 0);
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["texts"].size(), 2u);
  ASSERT_EQ(j["images"].size(), 1u);
  for (auto* part : {&j["texts"], &j["images"]})
    for (auto& item : *part) {
      auto v = item["embedding"].get<std::vector<double>>();
      ASSERT_EQ(static_cast<int64_t>(v.size()), j["dim"].get<int64_t>());
      double n2 = 0;
      for (double x : v) n2 += x * x;
      EXPECT_NEAR(n2, 1.0, 1e-5);
    }
  EXPECT_NE(j["texts"][0]["embedding"], j["texts"][1]["embedding"]);

  const fs::path out = fs::temp_directory_path() / ("rdm_cli_embed_" + std::to_string(::getpid()) + ".npy");
  r = run("embed " + model + " " + vocab + " --text 'a cat' --out " + out.string());
  ASSERT_EQ(r.code, 0);
  auto t = rdm::formats::read_npy(out);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{1, j["dim"].get<int64_t>()}));
  EXPECT_NEAR(t[0][0].item<float>(), j["texts"][0]["embedding"][0].get<double>(), 1e-6);
  fs::remove(out);
}

TEST(CliEmbed, Errors) {
  const fs::path g = golden();
  if (!fs::exists(g / "models" / "tiny_clip.safetensors")) GTEST_SKIP() << "no CLIP goldens under RDM_GOLDEN_DIR";
  const std::string vocab = "--vocab " + (g / "bpe_simple_vocab_16e6.txt.gz").string();
  EXPECT_EQ(run("embed --clip /nonexistent/model.safetensors " + vocab + " --text x").code, 1);
  EXPECT_EQ(run("embed " + vocab).code, 1);  // nothing to embed
  std::string long_text(300, 'a');
  for (size_t i = 1; i < long_text.size(); i += 2) long_text[i] = ' ';
  EXPECT_EQ(run("embed --tokens --no-truncate " + vocab + " --text '" + long_text + "'").code, 1);
  EXPECT_EQ(run("embed --tokens " + vocab + " --text '" + long_text + "'").code, 0);
  EXPECT_EQ(run("embed --clip " + (g / "models" / "tiny_clip.safetensors").string() + " " + vocab +
                " --image /nonexistent.png").code, 2);  // a path that does not exist: usage error
  EXPECT_EQ(run("embed --tokens " + vocab + " --text \"$(printf '\\377\\376')\"").code, 1);  // invalid UTF-8
}
