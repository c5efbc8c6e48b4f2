// CLI tests of `rdm world`: the folder layout, captions.jsonl, the PNG text chunks, the contact
// sheet, determinism across runs and style subsets, and the refusal of bad arguments.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_run.hpp"

#include "rdm/image/png.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

using namespace rdm_cli_test;

namespace {
fs::path scratch() { return process_scratch("rdm_cli_world"); }

RunResult run_rdm(const std::string& args, int threads = 2) { return run_rdm_in(scratch(), args, threads); }

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}
}  // namespace

TEST(CliWorld, WritesStyleFoldersCaptionsAndContactSheet) {
  const fs::path dir = scratch() / "world";
  RunResult r = run_rdm("world --out '" + dir.string() +
                        "' --count 4 --styles dots,sketch --objects boat,moon --seed 5 --size 32 "
                        "--style-prob 1 --sheet-columns 3");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream jl(dir / "captions.jsonl");
  std::string line;
  std::set<std::string> files;
  int n = 0;
  while (std::getline(jl, line)) {
    const json j = json::parse(line);
    ++n;
    for (const char* key : {"file", "caption", "object", "colour", "size", "position", "style"})
      ASSERT_TRUE(j.contains(key)) << key << " in " << line;
    const std::string file = j["file"], style = j["style"], object = j["object"];
    EXPECT_TRUE(style == "dots" || style == "sketch") << line;
    EXPECT_TRUE(object == "boat" || object == "moon") << line;
    EXPECT_EQ(file.substr(0, style.size() + 1), style + "/") << line;
    const std::string caption = j["caption"];
    EXPECT_NE(caption.find(j["colour"].get<std::string>() + " " + object), std::string::npos);
    EXPECT_NE(caption.find("in the style of " + style), std::string::npos) << caption;
    // The picture: 32 x 32 RGB, its caption in the parameters chunk.
    const rdm::image::PngFile png = rdm::image::read_png(dir / file);
    EXPECT_EQ(png.image.width, 32);
    EXPECT_EQ(png.image.height, 32);
    EXPECT_EQ(png.find("parameters").value_or(""), caption);
    files.insert(file);
  }
  EXPECT_EQ(n, 8);
  EXPECT_EQ(files.size(), 8u);
  EXPECT_TRUE(fs::exists(dir / "dots" / "00003.png"));
  EXPECT_FALSE(fs::exists(dir / "dots" / "00004.png"));
  const rdm::image::PngFile sheet = rdm::image::read_png(dir / "contact_sheet.png");
  EXPECT_GT(sheet.image.width, sheet.image.height);  // 3 columns, 2 rows
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();

  // Same seed, one style only, another thread count: the same bytes.
  const fs::path again = scratch() / "again";
  r = run_rdm("world --out '" + again.string() +
                  "' --count 2 --styles sketch --objects boat,moon --seed 5 --size 32 --style-prob 1",
              1);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(again / "sketch" / "00001.png"), slurp(dir / "sketch" / "00001.png"));
  EXPECT_FALSE(fs::exists(again / "dots"));
  EXPECT_EQ(lines(slurp(again / "captions.jsonl")), 2);
}

TEST(CliWorld, RefusesBadArguments) {
  const fs::path dir = scratch() / "bad";
  RunResult r = run_rdm("world --out '" + dir.string() + "' --styles dots,cubism");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown style 'cubism'"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir / "captions.jsonl"));

  r = run_rdm("world --out '" + dir.string() + "' --objects dragon");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown object 'dragon'"), std::string::npos) << r.err;

  r = run_rdm("world --out '" + dir.string() + "' --colours mauve");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown colour 'mauve'"), std::string::npos) << r.err;

  // Usage errors (CLI11 validators): CLI11's exit codes, the option named on stderr.
  for (const char* bad : {"--count 0", "--size 8", "--style-prob 2"}) {
    r = run_rdm("world --out '" + dir.string() + "' " + bad);
    EXPECT_NE(r.code, 0) << bad;
    EXPECT_NE(r.code, 1) << bad;
    const std::string option = std::string(bad).substr(0, std::string(bad).find(' '));
    EXPECT_NE(r.err.find(option), std::string::npos) << r.err;
  }
  r = run_rdm("world --count 3");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;

  // An output "folder" that is a file.
  const fs::path file = scratch() / "a_file";
  std::ofstream(file) << "x";
  r = run_rdm("world --out '" + file.string() + "' --count 1 --styles flat");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot create folder"), std::string::npos) << r.err;

  r = run_rdm("world --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--styles"), std::string::npos);
}
