// CLI tests: `rdm selftest` passes only what it ran. Skipped cases (a kind or variant the runner
// does not implement) fail the run unless --allow-skip; a filter that selects nothing is an
// error; an expect_error case passes only when the implementation rejects it (with the message
// or category the case names), never on a missing golden file. Temp golden folders in the
// cases.json format (CASES.md) stand in for hidden sets.
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
