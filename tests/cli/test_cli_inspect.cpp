// CLI tests: rdm inspect on the goldens, --json, --filter, and broken files.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_run.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

using namespace rdm_cli_test;

namespace {
fs::path scratch() { return process_scratch("rdm_cli_inspect"); }

// Runs `rdm <args>` with stdout and stderr captured to files.
RunResult rdm(const std::string& args) { return run_rdm_in(scratch(), args, -1); }

fs::path golden(const std::string& rel) {
  const std::string dir = env("RDM_GOLDEN_DIR");
  return dir.empty() ? fs::path() : fs::path(dir) / rel;
}

#define REQUIRE_FILE(p)                                           \
  do {                                                            \
    if (p.empty() || !fs::exists(p)) GTEST_SKIP() << "no " << p;  \
  } while (0)
}  // namespace

TEST(CliInspect, Help) {
  ASSERT_FALSE(env("RDM_BIN").empty());
  RunResult r = rdm("inspect --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--filter"), std::string::npos);
  EXPECT_NE(r.out.find("--json"), std::string::npos);
}

TEST(CliInspect, CheckpointAndSafetensorsTwinListTheSameTensors) {
  const fs::path ckpt = golden("ldm/ldm_full.ckpt"), st = golden("ldm/ldm_full.safetensors");
  REQUIRE_FILE(ckpt);
  RunResult a = rdm("inspect --json '" + ckpt.string() + "'");
  RunResult b = rdm("inspect --json '" + st.string() + "'");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  const json ja = json::parse(a.out), jb = json::parse(b.out);
  EXPECT_EQ(ja.at("format"), "torch_zip");
  EXPECT_EQ(jb.at("format"), "safetensors");
  EXPECT_GT(ja.at("num_tensors").get<int>(), 0);
  EXPECT_EQ(ja.at("num_tensors"), jb.at("num_tensors"));
  EXPECT_EQ(ja.at("tensors"), jb.at("tensors"));  // names, dtypes, shapes, bytes, in order
  EXPECT_EQ(ja.at("listed_bytes"), jb.at("listed_bytes"));
  // Lightning scalars and EMA.
  EXPECT_EQ(ja.at("metadata").at("global_step"), "1234");
  EXPECT_TRUE(ja.at("ema").at("present").get<bool>());
  EXPECT_GT(ja.at("ema").at("model_ema_tensors").get<int>(), 0);
  EXPECT_EQ(ja.at("ema").at("unet_parameters"), ja.at("ema").at("unet_parameters_with_ema"));
  // Text mode says so too.
  RunResult t = rdm("inspect '" + ckpt.string() + "'");
  ASSERT_EQ(t.code, 0);
  EXPECT_NE(t.out.find("EMA:        present"), std::string::npos);
  EXPECT_NE(t.out.find("format:     torch_zip"), std::string::npos);
}

TEST(CliInspect, Filter) {
  const fs::path st = golden("ldm/ldm_full.safetensors");
  REQUIRE_FILE(st);
  RunResult r = rdm("inspect --json --filter model.diffusion_model. '" + st.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_GT(j.at("tensors").size(), 0u);
  EXPECT_LT(j.at("listed_tensors").get<int>(), j.at("num_tensors").get<int>());
  for (const auto& t : j.at("tensors")) EXPECT_EQ(t.at("name").get<std::string>().rfind("model.diffusion_model.", 0), 0u);
}

TEST(CliInspect, TorchScriptClip) {
  const fs::path pt = golden("clip/models/tiny_clip_jit.pt"), st = golden("clip/models/tiny_clip.safetensors");
  REQUIRE_FILE(pt);
  RunResult a = rdm("inspect --json '" + pt.string() + "'");
  RunResult b = rdm("inspect --json '" + st.string() + "'");
  ASSERT_EQ(a.code, 0) << a.err;
  const json ja = json::parse(a.out), jb = json::parse(b.out);
  EXPECT_EQ(ja.at("format"), "torchscript");
  std::set<std::string> names;
  for (const auto& t : ja.at("tensors")) names.insert(t.at("name"));
  for (const auto& t : jb.at("tensors")) EXPECT_TRUE(names.count(t.at("name"))) << t.at("name");
}

TEST(CliInspect, BrokenFilesExitOneWithOneLineNamingTheFile) {
  const fs::path dir = scratch();
  std::vector<std::pair<std::string, std::string>> files = {
      {"garbage.ckpt", "this is not a checkpoint at all"},
      {"trunc.safetensors", std::string("\xff\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13)},
      {"trunc.npy", std::string("\x93NUMPY\x01\x00\x76\x00{'descr'", 19)},
      {"bad.pt", std::string("PK\x03\x04\x14\x00\x00\x00", 8) + std::string(64, '\0')}};
  for (const auto& [name, bytes] : files) {
    const fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << bytes;
    RunResult r = rdm("inspect '" + p.string() + "'");
    EXPECT_EQ(r.code, 1) << name;
    EXPECT_TRUE(r.out.empty()) << name << ": " << r.out;
    EXPECT_NE(r.err.find(p.string()), std::string::npos) << name << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << name << ": " << r.err;
  }
  // A path that does not exist is a usage error (exit 2), still one line naming it.
  RunResult r = rdm("inspect '" + (dir / "does-not-exist.ckpt").string() + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("does-not-exist.ckpt"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}
