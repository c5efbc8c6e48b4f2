// CLI tests: one exit-code convention for every subcommand. 0 success (also --help and
// --version); 1 error (a bad file, model, database or value the command finds: one line naming
// it); 2 usage (unknown option or subcommand, missing argument, invalid option value, a path
// an option requires to exist that does not); 130 interrupted (test_cli_promises.cpp).
// Also: --threads above the available CPUs is capped with one warning.
#include <map>
#include <thread>

#include "cli/cli_demo_fixture.hpp"

using namespace rdm_cli_test;

namespace {
size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// Checks the code and that stderr is one line holding `needle`.
void expect_one_line(const std::string& args, int code, const std::string& needle) {
  SCOPED_TRACE(args);
  auto r = run_rdm("-q " + args);
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

std::string vocab() { return quote((fs::path(env("RDM_GOLDEN_DIR")) / "clip" / "bpe_simple_vocab_16e6.txt.gz").string()); }

const std::vector<std::string> kSubcommands = {"sample",    "sweep",     "demo",      "db build", "db import",
                                               "db merge",  "db info",   "db search", "embed",    "show-params",
                                               "inspect",   "selftest",  "eval"};
}  // namespace

TEST(CliExitCodes, HelpAndVersionExitZero) {
  auto r = run_rdm("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("sample"), std::string::npos);
  r = run_rdm("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("rdm "), std::string::npos);
  for (const auto& sub : kSubcommands) EXPECT_EQ(run_rdm(sub + " --help").code, 0) << sub;
}

TEST(CliExitCodes, UnknownOptionIsUsageErrorInEverySubcommand) {
  // The required arguments of each subcommand (CLI11 reports a missing one first).
  const std::string file = quote(env("RDM_BIN")), folder = quote(fs::temp_directory_path().string());
  const std::map<std::string, std::string> required = {
      {"db build", "--images " + folder + " --clip " + file + " --out y"}, {"db import", folder + " --out y"},
      {"db merge", folder + " --out y"}, {"db info", "x"}, {"db search", "x"}, {"show-params", file},
      {"inspect", file}, {"selftest", "--golden " + folder}};
  for (const auto& sub : kSubcommands) {
    const std::string args = sub + " " + (required.count(sub) ? required.at(sub) : "") + " --no-such-option";
    expect_one_line(args, 2, "--no-such-option");
    auto r = run_rdm(args);
    EXPECT_NE(r.err.find("rdm " + sub + " --help"), std::string::npos) << r.err;  // the hint names the command
  }
  expect_one_line("--no-such-global sample x", 2, "--no-such-global");
  expect_one_line("no-such-command", 2, "subcommand");
  EXPECT_EQ(run_rdm("").code, 2);    // a subcommand is required
  EXPECT_EQ(run_rdm("db").code, 2);  // so is db's
}

TEST(CliExitCodes, MissingArgumentAndBadValueAreUsageErrors) {
  expect_one_line("db build --clip " + quote(env("RDM_BIN")) + " --out y", 2, "--images");
  expect_one_line("db info", 2, "db");
  expect_one_line("db merge --out y", 2, "inputs");
  expect_one_line("show-params", 2, "files");
  expect_one_line("inspect", 2, "file");
  expect_one_line("sample x --steps 0", 2, "--steps");
  expect_one_line("sample x --sampler euler", 2, "--sampler");
  expect_one_line("sample x --steps many", 2, "--steps");
  expect_one_line("sweep --steps 0", 2, "--steps");
  expect_one_line("demo --images-per-style 0", 2, "--images-per-style");
  expect_one_line("embed --precision fp8 --text x", 2, "--precision");
  expect_one_line("--threads -1 inspect x", 2, "--threads");
  auto r = run_rdm("-q selftest --golden");  // option without its value
  EXPECT_EQ(r.code, 2) << r.err;
}

TEST(CliExitCodes, MissingInputPathIsUsageError) {
  const std::string none = "/nonexistent/rdm-test-input";
  expect_one_line("sample --prompt-file " + none, 2, none);
  expect_one_line("sample --from-png " + none + ".png", 2, none);
  expect_one_line("sweep " + none + ".jsonl", 2, none);
  expect_one_line("sweep --prompt-file " + none, 2, none);
  expect_one_line("db build --images " + none + " --clip x --out y", 2, none);
  expect_one_line("db import " + none + " --out y", 2, none);
  expect_one_line("db merge " + none + " --out y", 2, none);
  expect_one_line("db search somewhere --image " + none + ".png", 2, none);
  expect_one_line("embed --text-file " + none, 2, none);
  expect_one_line("embed --image " + none + ".png", 2, none);
  expect_one_line("show-params " + none + ".png", 2, none);
  expect_one_line("inspect " + none + ".ckpt", 2, none);
  expect_one_line("selftest --golden " + none, 2, none);
}

TEST(CliExitCodes, UserErrorsExitOneWithOneLine) {
  const fs::path dir = scratch("exit_user");
  fs::create_directories(dir / "not_a_db");
  std::ofstream(dir / "garbage.ckpt") << "not a checkpoint";
  std::ofstream(dir / "text.png") << "not a png";
  std::ofstream(dir / "bad.jsonl") << "{\"prompt\": \"x\", \"sed\": 1}\n";
  fs::create_directories(dir / "other");
  std::ofstream(dir / "other" / "mine.txt") << "x";
  const std::string d = dir.string();
  expect_one_line("db info " + quote(d + "/not_a_db"), 1, "not_a_db");                      // bad database
  expect_one_line("db search " + quote(d + "/not_a_db") + " --text x", 1, "not_a_db");
  expect_one_line("inspect " + quote(d + "/garbage.ckpt"), 1, "garbage.ckpt");             // bad file
  expect_one_line("show-params " + quote(d + "/text.png"), 1, "text.png");
  expect_one_line("selftest --golden " + quote(d), 1, "cases.json");                      // not a golden folder
  expect_one_line("sample x --model " + quote(d + "/no_model"), 1, "no_model");           // missing model
  expect_one_line("sweep " + quote(d + "/bad.jsonl") + " --model x", 1, "sed");            // bad job
  expect_one_line("embed --clip " + quote(d + "/garbage.ckpt") + " --text x --vocab " + vocab(), 1, "garbage.ckpt");
  expect_one_line("demo --random-model --no-sample --out " + quote(d + "/other"), 1, "other");             // not a demo folder
  expect_one_line("db import " + quote(d + "/text.png") + " --out " + quote(d + "/imp"), 1, "text.png");
}

TEST(CliThreads, MoreThreadsThanCpusAreCappedWithOneWarning) {
  if (!fs::exists(fs::path(env("RDM_GOLDEN_DIR")) / "clip")) GTEST_SKIP() << "no CLIP goldens (vocabulary)";
  const std::string cmd = quote(env("RDM_BIN")) + " -v --threads 1000 embed --tokens --vocab " + vocab() + " --text x";
  const fs::path dir = scratch("threads");
  const int st = std::system((cmd + " >" + quote((dir / "out").string()) + " 2>" + quote((dir / "err").string())).c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  const std::string err = slurp(dir / "err");
  // One warning naming the request and the cap.
  size_t warnings = 0;
  for (size_t p = 0; (p = err.find("--threads 1000", p)) != std::string::npos; ++p) ++warnings;
  EXPECT_EQ(warnings, 1u) << err;
  const size_t at = err.find("using ");
  ASSERT_NE(at, std::string::npos) << err;
  const int used = std::atoi(err.c_str() + at + 6);
  EXPECT_GE(used, 1);
  EXPECT_LE(used, static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) << err;
  EXPECT_NE(err.find("using " + std::to_string(used) + " thread(s)"), std::string::npos) << err;  // applied
  // Within the limit: no warning.
  auto r = run_rdm("embed --tokens --vocab " + vocab() + " --text x");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err.find("--threads"), std::string::npos) << r.err;
}
