// CLI tests of `rdm db`: build over a folder of good, odd and broken images with the tiny CLIP
// model, info, search (against brute force), contact sheet, shards + merge, append, and errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "rdm/clip/clip_model.hpp"
#include "cli/cli_run.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/retrieval/database.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

using namespace rdm_cli_test;

namespace {
fs::path scratch() { return process_scratch("rdm_cli_db"); }

RunResult run_rdm(const std::string& args) { return run_rdm_in(scratch(), args); }

fs::path golden(const std::string& rel) {
  const std::string dir = env("RDM_GOLDEN_DIR");
  return dir.empty() ? fs::path() : fs::path(dir) / rel;
}

// --- minimal PNG writer (zlib), enough for 8-bit RGB, 16-bit grey and palette images ---
void be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
void chunk(std::string& png, const char* type, const std::string& data) {
  be32(png, static_cast<uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  png += td;
  be32(png, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), td.size())));
}
std::string png_bytes(uint32_t w, uint32_t h, int bit_depth, int color_type,
                      const std::string& raw_rows /* with filter bytes */, const std::string& plte = "") {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr += static_cast<char>(bit_depth);
  ihdr += static_cast<char>(color_type);
  ihdr += std::string("\0\0\0", 3);
  chunk(png, "IHDR", ihdr);
  if (!plte.empty()) chunk(png, "PLTE", plte);
  uLongf n = compressBound(raw_rows.size());
  std::string z(n, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw_rows.data()), raw_rows.size());
  z.resize(n);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}
std::string rgb_png(int w, int h, int seed) {
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw += '\0';
    for (int x = 0; x < w; ++x) {
      raw += static_cast<char>((x * 7 + seed * 53) & 255);
      raw += static_cast<char>((y * 11 + seed * 97) & 255);
      raw += static_cast<char>(((x ^ y) * 5 + seed * 31) & 255);
    }
  }
  return png_bytes(w, h, 8, 2, raw);
}
std::string grey16_png(int w, int h) {
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw += '\0';
    for (int x = 0; x < w; ++x) {
      uint16_t v = static_cast<uint16_t>(x * 1000 + y * 300);
      raw += static_cast<char>(v >> 8);
      raw += static_cast<char>(v & 255);
    }
  }
  return png_bytes(w, h, 16, 0, raw);
}
std::string palette_png(int w, int h) {
  std::string plte, raw;
  for (int i = 0; i < 4; ++i) plte += std::string{char(i * 60), char(255 - i * 60), char(i * 20)};
  for (int y = 0; y < h; ++y) {
    raw += '\0';
    for (int x = 0; x < w; ++x) raw += static_cast<char>((x / 4 + y / 4) % 4);
  }
  return png_bytes(w, h, 8, 3, raw, plte);
}
// A PNG whose header claims 100000 x 100000 pixels (a decompression bomb).
std::string bomb_png() { return png_bytes(100000, 100000, 8, 2, std::string(64, '\0')); }

// 24-bit BMP.
std::string bmp(int w, int h, int seed) {
  int row = (w * 3 + 3) / 4 * 4;
  auto le32 = [](std::string& s, uint32_t v) { for (int i = 0; i < 4; ++i) s += char((v >> (8 * i)) & 255); };
  auto le16 = [](std::string& s, uint16_t v) { s += char(v & 255); s += char(v >> 8); };
  std::string b = "BM";
  le32(b, 54 + row * h); le32(b, 0); le32(b, 54);
  le32(b, 40); le32(b, w); le32(b, h); le16(b, 1); le16(b, 24); le32(b, 0); le32(b, row * h);
  le32(b, 2835); le32(b, 2835); le32(b, 0); le32(b, 0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) { b += char(x * 9 + seed); b += char(y * 13); b += char(seed * 40); }
    b += std::string(row - w * 3, '\0');
  }
  return b;
}

// A JPEG with an EXIF APP1 segment saying "rotate 90" (orientation 6) after SOI.
std::string exif_rotated(const std::string& jpeg) {
  std::string tiff = std::string("MM\0\x2a\0\0\0\x08", 8) + std::string("\0\x01", 2) +
                     std::string("\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", 12) + std::string(4, '\0');
  std::string payload = std::string("Exif\0\0", 6) + tiff;
  uint16_t len = static_cast<uint16_t>(payload.size() + 2);
  std::string app1 = std::string("\xff\xe1", 2) + char(len >> 8) + char(len & 255) + payload;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

struct Collection {
  fs::path root;
  std::set<std::string> good;                   // relative paths indexed
  std::map<std::string, std::string> skipped;   // relative path -> reason fragment
  std::set<std::string> duplicates;
};

Collection make_collection(const fs::path& root) {
  Collection c;
  c.root = root;
  auto good = [&](const std::string& rel, const std::string& bytes) {
    spit(root / rel, bytes);
    c.good.insert(rel);
  };
  for (int i = 0; i < 5; ++i) good("impressionism/a" + std::to_string(i) + ".png", rgb_png(40 + i, 36, i));
  for (int i = 0; i < 3; ++i) good("cubism/sub/b" + std::to_string(i) + ".png", rgb_png(30, 50 + i, 10 + i));
  good("cubism/b.bmp", bmp(33, 21, 5));
  good("cubism/UPPER.PNG", rgb_png(20, 20, 77));
  good("grey16.png", grey16_png(37, 29));
  good("palette.png", palette_png(48, 32));
  good(u8"naïve/café_ü.png", rgb_png(25, 25, 99));
  const std::string jpeg = slurp(golden("clip/images/rocket.jpg"));
  good("photos/rocket.jpg", jpeg);
  good("photos/rotated.JPEG", exif_rotated(jpeg));
  good("photos/stripes.webp", slurp(golden("clip/images/stripes_500x375.webp")));
  // Duplicate (byte-identical to impressionism/a0.png, later in path order).
  spit(root / "zz_copy/a0_copy.png", rgb_png(40, 36, 0));
  c.duplicates.insert("zz_copy/a0_copy.png");
  // Broken files.
  spit(root / "broken/truncated.jpg", jpeg.substr(0, jpeg.size() / 3));
  spit(root / "broken/zero.png", "");
  spit(root / "broken/text.png", "this is not an image\n");
  spit(root / "broken/bomb.png", bomb_png());
  c.skipped = {{"broken/truncated.jpg", ""}, {"broken/zero.png", "empty"},
               {"broken/text.png", ""}, {"broken/bomb.png", ""}};
  // Listed as skipped without being read: hidden files, non-images. A symlink loop is safe.
  spit(root / ".hidden.png", rgb_png(10, 10, 1));
  spit(root / "notes.txt", "hello");
  c.skipped[".hidden.png"] = "hidden file";
  c.skipped["notes.txt"] = "not an image file (extension '.txt')";
  fs::create_directory_symlink("..", root / "impressionism" / "loop");
  return c;
}

bool have_model() {
  return !env("RDM_GOLDEN_DIR").empty() && fs::exists(golden("clip/models/tiny_clip.safetensors")) &&
         fs::exists(golden("clip/images/rocket.jpg"));
}
std::string model() { return golden("clip/models/tiny_clip.safetensors").string(); }
std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

class DbCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_model()) return;
    coll = new Collection(make_collection(scratch() / "images"));
    db = scratch() / "db";
    build = new RunResult(run_rdm("db build --images " + q(coll->root) + " --clip '" + model() +
                              "' --out " + q(db) + " --batch 4 --json"));
  }
  static void TearDownTestSuite() {
    delete coll;
    delete build;
    coll = nullptr;
    build = nullptr;
    fs::remove_all(scratch());
  }
  void SetUp() override {
    if (!have_model()) GTEST_SKIP() << "tiny CLIP model not found under RDM_GOLDEN_DIR";
  }
  static Collection* coll;
  static RunResult* build;
  static fs::path db;
};
Collection* DbCli::coll = nullptr;
RunResult* DbCli::build = nullptr;
fs::path DbCli::db;
}  // namespace

TEST_F(DbCli, BuildIndexesGoodImagesOnceAndReportsBadOnes) {
  ASSERT_EQ(build->code, 0) << build->err;
  json r = json::parse(build->out);
  EXPECT_EQ(r["indexed"].get<size_t>(), coll->good.size());
  EXPECT_EQ(r["skipped"].get<size_t>(), coll->skipped.size());
  EXPECT_EQ(r["duplicates"].get<size_t>(), coll->duplicates.size());
  EXPECT_NE(build->err.find("skipped"), std::string::npos);

  auto d = rdm::retrieval::Database::open(db);
  ASSERT_EQ(d.size(), static_cast<int64_t>(coll->good.size()));
  std::set<std::string> paths;
  for (int64_t i = 0; i < d.size(); ++i) paths.insert(d.item(i).path);
  EXPECT_EQ(paths, coll->good);
  // Ids follow path order; labels are the folders.
  EXPECT_EQ(d.item(0).path, *coll->good.begin());
  for (int64_t i = 0; i < d.size(); ++i) {
    auto it = d.item(i);
    if (it.path == "cubism/sub/b1.png") {
      EXPECT_EQ(it.label, "cubism/sub");
      EXPECT_EQ(it.width, 30);
      EXPECT_EQ(it.height, 51);
    }
    if (it.path == "photos/rotated.JPEG") EXPECT_EQ(it.hash.rfind("sha256:", 0), 0u);
  }
  std::string report = slurp(db / "build_report.tsv");
  for (auto& [p, reason] : coll->skipped) {
    auto pos = report.find("skipped\t" + p + "\t");
    EXPECT_NE(pos, std::string::npos) << p << "\n" << report;
    if (!reason.empty() && pos != std::string::npos)
      EXPECT_NE(report.find(reason, pos), std::string::npos) << p;
  }
  EXPECT_NE(report.find("duplicate\tzz_copy/a0_copy.png\tsame bytes as impressionism/a0.png"),
            std::string::npos) << report;
  for (const char* f : {"manifest.json", "embeddings.npy", "index.faiss", "items.sqlite"})
    EXPECT_TRUE(fs::exists(db / f)) << f;
}

TEST_F(DbCli, InfoJsonAndText) {
  ASSERT_EQ(build->code, 0) << build->err;
  auto r = run_rdm("db info " + q(db) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["count"].get<size_t>(), coll->good.size());
  EXPECT_EQ(j["clip"]["embed_dim"], 32);
  EXPECT_EQ(j["index"]["description"], "Flat");
  EXPECT_EQ(j["labels"]["impressionism"], 5);
  EXPECT_GT(j["size_on_disk"].get<int64_t>(), 0);
  auto t = run_rdm("db info " + q(db));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("cubism/sub"), std::string::npos);
}

TEST_F(DbCli, SearchMatchesBruteForceAndWritesSheet) {
  ASSERT_EQ(build->code, 0) << build->err;
  const std::string vocab = golden("clip/bpe_simple_vocab_16e6.txt.gz").string();
  const int k = 7;
  auto r = run_rdm("db search " + q(db) + " --text 'a painting of a rocket' -k " + std::to_string(k) +
               " --vocab '" + vocab + "' --json --sheet " + q(scratch() / "sheet.png"));
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["neighbors"].size(), static_cast<size_t>(k));
  // Brute force over the stored embeddings with the same query embedding.
  c10::InferenceMode guard;
  auto m = rdm::clip::ClipModel::load(model());
  auto tok = rdm::clip::Tokenizer::load(vocab);
  torch::Tensor e = m.encode_text(tok.tokenize({"a painting of a rocket"}));
  e = e / e.norm(2, -1, true);
  auto d = rdm::retrieval::Database::open(db);
  std::vector<int64_t> all(d.size());
  for (int64_t i = 0; i < d.size(); ++i) all[i] = i;
  torch::Tensor s = d.embeddings(all).matmul(e[0]);
  auto [top, idx] = s.topk(k);
  for (int i = 0; i < k; ++i) {
    EXPECT_NEAR(j["neighbors"][i]["score"].get<float>(), top[i].item<float>(), 1e-5);
    // Ties aside (rocket.jpg and its EXIF-rotated copy decode to the same pixels).
    const bool apart_next = i + 1 >= k || top[i].item<float>() - top[i + 1].item<float>() > 1e-5;
    const bool apart_prev = i == 0 || top[i - 1].item<float>() - top[i].item<float>() > 1e-5;
    if (apart_next && apart_prev) {
      EXPECT_EQ(j["neighbors"][i]["id"].get<int64_t>(), idx[i].item<int64_t>());
    }
    EXPECT_EQ(j["neighbors"][i]["path"], d.item(j["neighbors"][i]["id"].get<int64_t>()).path);
  }
  std::string png = slurp(scratch() / "sheet.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");

  // Image query: the image itself is its nearest neighbour.
  auto ri = run_rdm("db search " + q(db) + " --image " + q(coll->root / "cubism/b.bmp") + " -k 3 --json");
  ASSERT_EQ(ri.code, 0) << ri.err;
  json ji = json::parse(ri.out);
  EXPECT_EQ(ji["neighbors"][0]["path"], "cubism/b.bmp");
  EXPECT_NEAR(ji["neighbors"][0]["score"].get<float>(), 1.0f, 1e-4);
  // Plain text output.
  auto rt = run_rdm("db search " + q(db) + " --image " + q(coll->root / "cubism/b.bmp") + " -k 2");
  ASSERT_EQ(rt.code, 0) << rt.err;
  EXPECT_NE(rt.out.find("cubism/b.bmp"), std::string::npos);
}

TEST_F(DbCli, UserErrors) {
  ASSERT_EQ(build->code, 0) << build->err;
  auto big = run_rdm("db search " + q(db) + " --image " + q(coll->root / "cubism/b.bmp") + " -k 500");
  EXPECT_EQ(big.code, 1);
  EXPECT_NE(big.err.find("holds only"), std::string::npos) << big.err;
  auto none = run_rdm("db info " + q(scratch() / "images"));
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("rdm db build"), std::string::npos) << none.err;
  auto bad = run_rdm("db build --images " + q(coll->root / "cubism") + " --clip '" + model() +
                 "' --out " + q(scratch() / "badindex") + " --index NoSuchIndex");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("NoSuchIndex"), std::string::npos) << bad.err;
  auto noq = run_rdm("db search " + q(db));
  EXPECT_EQ(noq.code, 1);
  auto shard = run_rdm("db build --images " + q(coll->root) + " --clip '" + model() + "' --out " +
                   q(scratch() / "x") + " --shard 3/2");
  EXPECT_EQ(shard.code, 1);
  EXPECT_NE(shard.err.find("--shard"), std::string::npos) << shard.err;
}

TEST_F(DbCli, ShardsMergeIntoTheUnshardedDatabase) {
  ASSERT_EQ(build->code, 0) << build->err;
  std::string shards;
  for (int s = 0; s < 2; ++s) {
    fs::path out = scratch() / ("shard" + std::to_string(s));
    auto r = run_rdm("db build --images " + q(coll->root) + " --clip '" + model() + "' --out " + q(out) +
                 " --batch 3 --shard " + std::to_string(s) + "/2");
    ASSERT_EQ(r.code, 0) << r.err;
    shards += " " + q(out);
  }
  auto m = run_rdm("db merge" + shards + " --out " + q(scratch() / "merged") + " --json");
  ASSERT_EQ(m.code, 0) << m.err;
  auto full = rdm::retrieval::Database::open(db);
  auto merged = rdm::retrieval::Database::open(scratch() / "merged");
  ASSERT_EQ(merged.size(), full.size());
  std::vector<int64_t> all(full.size());
  for (int64_t i = 0; i < full.size(); ++i) {
    all[i] = i;
    EXPECT_EQ(merged.item(i).path, full.item(i).path);
    EXPECT_EQ(merged.item(i).hash, full.item(i).hash);
  }
  EXPECT_TRUE(torch::allclose(merged.embeddings(all), full.embeddings(all), 1e-4, 1e-5));
  EXPECT_EQ(json::parse(m.out)["duplicates"].get<size_t>(), coll->duplicates.size());
}

TEST_F(DbCli, RerunIsUpToDateAndAppendAddsNewImages) {
  ASSERT_EQ(build->code, 0) << build->err;
  fs::path root = scratch() / "small";
  spit(root / "x/one.png", rgb_png(20, 20, 201));
  spit(root / "x/two.png", rgb_png(20, 20, 202));
  fs::path out = scratch() / "small_db";
  std::string cmd = "db build --images " + q(root) + " --clip '" + model() + "' --out " + q(out);
  ASSERT_EQ(run_rdm(cmd).code, 0);
  auto again = run_rdm(cmd);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("up to date"), std::string::npos) << again.err;
  spit(root / "y/three.png", rgb_png(20, 20, 203));
  auto refused = run_rdm(cmd);
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("--append"), std::string::npos) << refused.err;
  auto app = run_rdm(cmd + " --append --json");
  ASSERT_EQ(app.code, 0) << app.err;
  auto d = rdm::retrieval::Database::open(out);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d.item(0).path, "x/one.png");
  EXPECT_EQ(d.item(2).path, "y/three.png");
}
