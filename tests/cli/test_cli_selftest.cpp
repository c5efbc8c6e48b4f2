// CLI tests: `rdm selftest` passes only what it ran. Skipped cases (a kind or variant the runner
// does not implement) fail the run unless --allow-skip; a filter that selects nothing is an
// error; an expect_error case passes only when the implementation rejects it (with the message
// or category the case names), never on a missing golden file. Temp golden folders in the
// cases.json format (CASES.md) stand in for hidden sets.
#include <torch/cuda.h>

#include <map>
#include <sstream>

#include "cli/cli_demo_fixture.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
fs::path ldm_golden() { return fs::path(env("RDM_GOLDEN_DIR")) / "ldm"; }

// The DDIM schedule params of the reference for S steps (S = 3 is rejected by the reference).
json ddim_params(int steps) {
  return {{"ddim_steps", steps}, {"eta", 0.0},          {"discretize", "uniform"}, {"beta_schedule", "linear"},
          {"num_timesteps", 1000}, {"linear_start", 0.0015}, {"linear_end", 0.015},  {"cosine_s", 0.008},
          {"v_posterior", 0.0},   {"parameterization", "eps"}};
}

json rejected_case(const std::string& id) {
  return {{"id", id}, {"kind", "ddim_schedule"}, {"params", ddim_params(3)}, {"expect_error", true}};
}

// A golden folder holding `cases`; schedule.safetensors of the real ldm set is linked in.
fs::path golden_folder(const std::string& name, const json& cases) {
  const fs::path dir = scratch("golden_" + name);
  json doc = {{"schema", "golden-cases/1"}, {"suite", "ldm"}, {"num_cases", cases.size()}, {"cases", cases}};
  std::ofstream(dir / "cases.json") << doc.dump(1);
  if (fs::exists(ldm_golden() / "schedule.safetensors"))
    fs::create_symlink(ldm_golden() / "schedule.safetensors", dir / "schedule.safetensors");
  return dir;
}

RunResult selftest(const fs::path& dir, const std::string& extra = "") {
  return run_rdm("selftest --golden " + quote(dir.string()) + " " + extra);
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }
}  // namespace

TEST(CliSelftest, UnknownKindIsASkipAndFailsTheRun) {
  const fs::path dir = golden_folder("unknown_kind", json::array({rejected_case("known/S3"),
                                                                  {{"id", "future/case"}, {"kind", "no_such_kind"}}}));
  auto r = selftest(dir);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("SKIP  future/case"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no_such_kind"), std::string::npos) << r.out;  // why it was skipped
  EXPECT_NE(r.out.find("1 passed, 0 failed, 1 skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-skip"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  // Accepted only when asked for.
  r = selftest(dir, "--allow-skip");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  // Without the unknown case nothing is skipped.
  r = selftest(dir, "--filter known/");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 passed, 0 failed, 0 skipped"), std::string::npos) << r.out;
}

TEST(CliSelftest, UnsupportedVariantIsASkipAndFailsTheRun) {
  const json c = {{"id", "sampler/fp16"},
                  {"kind", "sampler_ddim"},
                  {"model", {{"compute_dtype", "float16"}}},
                  {"params", {{"ddim_steps", 2}}}};
  const fs::path dir = golden_folder("unsupported", json::array({c}));
  auto r = selftest(dir);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("SKIP  sampler/fp16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("float16"), std::string::npos) << r.out;
  EXPECT_EQ(selftest(dir, "--allow-skip").code, 0);
}

TEST(CliSelftest, FilterMatchingNothingIsAnError) {
  const fs::path dir = golden_folder("filter", json::array({rejected_case("a/S3")}));
  auto r = selftest(dir, "--filter nomatch");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("nomatch"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  // The real goldens too.
  if (fs::exists(ldm_golden() / "cases.json")) {
    r = selftest(ldm_golden(), "--filter nomatch");
    EXPECT_EQ(r.code, 1) << r.out << r.err;
  }
  // A folder without any case.
  r = selftest(golden_folder("empty", json::array()));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no cases"), std::string::npos) << r.err;
}

TEST(CliSelftest, ExpectErrorNeedsTheImplementationsOwnRejection) {
  // Rejected by the implementation: passes.
  json ok = rejected_case("reject/S3");
  // Expected error, but the case's config file is missing: a golden-data error, not a pass.
  json missing = {{"id", "reject/missing_file"},
                  {"kind", "sampler_ddim"},
                  {"model",
                   {{"compute_dtype", "float32"},
                    {"config", {{"file", "no_such_config.json"}, {"pointer", ""}}},
                    {"weights", {{"file", "no_such_weights.safetensors"}, {"format", "safetensors"}, {"prefix", ""}}}}},
                  {"params", {{"ddim_steps", 2}, {"eta", 0.0}}},
                  {"expect_error", true}};
  // Expected error, none raised (S = 5 is valid).
  json none = {{"id", "reject/none"}, {"kind", "ddim_schedule"}, {"params", ddim_params(5)}, {"expect_error", true}};
  // The message and category forms.
  json msg_ok = rejected_case("msg/ok");
  msg_ok["expect_error"] = "out of bounds";
  json msg_bad = rejected_case("msg/bad");
  msg_bad["error_message"] = "no such message";
  json cat_ok = rejected_case("cat/ok");
  cat_ok["expect_error"] = {{"category", "IndexError"}};
  json cat_bad = rejected_case("cat/bad");
  cat_bad["error_category"] = "KeyError";
  const fs::path dir = golden_folder("expect_error", json::array({ok, missing, none, msg_ok, msg_bad, cat_ok, cat_bad}));
  auto r = selftest(dir);
  EXPECT_EQ(r.code, 1);
  auto verdict = [&](const std::string& id) {
    const size_t p = r.out.find("  " + id + "  ");
    return p == std::string::npos || p < 4 ? std::string("?") : r.out.substr(p - 4, 4);
  };
  EXPECT_EQ(verdict("reject/S3"), "PASS") << r.out;
  EXPECT_EQ(verdict("reject/missing_file"), "FAIL") << r.out;
  EXPECT_EQ(verdict("reject/none"), "FAIL") << r.out;
  EXPECT_EQ(verdict("msg/ok"), "PASS") << r.out;
  EXPECT_EQ(verdict("msg/bad"), "FAIL") << r.out;
  EXPECT_EQ(verdict("cat/ok"), "PASS") << r.out;
  EXPECT_EQ(verdict("cat/bad"), "FAIL") << r.out;
  EXPECT_NE(r.out.find("no_such_config.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("golden-data error"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 passed, 4 failed, 0 skipped"), std::string::npos) << r.out;
}

TEST(CliSelftest, MissingTensorFileFailsAComparedCase) {
  if (!fs::exists(ldm_golden() / "cases.json")) GTEST_SKIP() << "no ldm goldens under RDM_GOLDEN_DIR";
  // A real case of the ldm set, pointed at a tensor file that is not there.
  json src = json::parse(std::ifstream(ldm_golden() / "cases.json"));
  json c;
  for (const auto& k : src["cases"])
    if (k["kind"] == "ddim_schedule" && !k.value("expect_error", false)) {
      c = k;
      break;
    }
  ASSERT_FALSE(c.is_null());
  json good = c, bad = c;
  good["id"] = "good";
  bad["id"] = "bad";
  bad["io"] = "no_such_file.safetensors";
  const fs::path dir = golden_folder("missing_tensor", json::array({good, bad}));
  auto r = selftest(dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("PASS  good"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAIL  bad"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no_such_file.safetensors"), std::string::npos) << r.out;
  EXPECT_EQ(selftest(dir, "--filter good").code, 0);
}

namespace {
// role -> max_abs_err from --verbose-cases lines ("        ok  out  max_abs_err 1.2e-07 tol ...").
std::map<std::string, double> max_errors(const std::string& out) {
  std::map<std::string, double> m;
  std::istringstream in(out);
  std::string line, case_id;
  while (std::getline(in, line)) {
    if (line.rfind("PASS  ", 0) == 0 || line.rfind("FAIL  ", 0) == 0) {
      case_id = line.substr(6, line.find(' ', 6) - 6);
      continue;
    }
    const auto at = line.find("max_abs_err ");
    if (at == std::string::npos) continue;
    std::istringstream fields(line);
    std::string ok, role;
    fields >> ok >> role;
    m[case_id + ":" + role] = std::stod(line.substr(at + 12));
  }
  return m;
}
}  // namespace

// --device / --precision: the model cases run where and how asked (bf16 here: larger errors than
// fp32 in every model output, reported with the failing cases); the file/schedule cases as ever.
TEST(CliSelftest, DeviceAndPrecisionApplyToTheModelCases) {
  const std::string cases = "--verbose-cases --filter ";
  auto fp32 = selftest(ldm_golden(), cases + "unet/context_zero --device cpu --precision fp32");
  ASSERT_EQ(fp32.code, 0) << fp32.out << fp32.err;
  auto bf16 = selftest(ldm_golden(), cases + "unet/context_zero --device cpu --precision bf16");
  EXPECT_NE(bf16.out.find("model cases on cpu in bf16"), std::string::npos) << bf16.out;
  const auto e32 = max_errors(fp32.out), e16 = max_errors(bf16.out);
  ASSERT_FALSE(e32.empty()) << fp32.out;
  ASSERT_EQ(e32.size(), e16.size()) << bf16.out;
  for (const auto& [role, err] : e32) {
    ASSERT_TRUE(e16.count(role)) << role;
    EXPECT_GT(e16.at(role), 10 * err + 1e-4) << role;  // bf16 keeps 8 bits of mantissa
  }
  // A schedule case is the same on any precision (it runs in float64 on the CPU).
  auto sched = selftest(ldm_golden(), "--filter ddim_schedule/S5_eta1 --precision bf16");
  EXPECT_EQ(sched.code, 0) << sched.out << sched.err;
  // The CLIP cases follow too.
  const fs::path clip = fs::path(env("RDM_GOLDEN_DIR")) / "clip";
  auto c32 = selftest(clip, cases + "clip_text/ --precision fp32");
  auto c16 = selftest(clip, cases + "clip_text/ --precision bf16");
  ASSERT_EQ(c32.code, 0) << c32.out << c32.err;
  const auto t32 = max_errors(c32.out), t16 = max_errors(c16.out);
  ASSERT_FALSE(t32.empty());
  EXPECT_GT(t16.at("clip_text/tiny_clip_text_public:text_embeds"), t32.at("clip_text/tiny_clip_text_public:text_embeds"));
  // No CUDA in this build or machine: one clear line.
  if (!torch::cuda::is_available()) {
    auto r = selftest(ldm_golden(), "--filter unet/context_zero --device cuda");
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
  }
}
