// Style databases from untrusted inputs: every file under a build root accounted for
// (symlinks leaving the root not followed), vectors that cannot be normalised refused with the
// item named, normalisation reported from the data, CompVis .npz parts with string ids
// (tests/data/compvis_db, written by numpy), and recall measured through the search users run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <unordered_set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "unit/error_of.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/norms.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/scan.hpp"
#include "retrieval/search.hpp"

using namespace rdm::retrieval;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("rdm_hostile_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
void spit(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}
using rdm_test::error_of;
fs::path data(const std::string& rel) {
  const char* d = std::getenv("RDM_SOURCE_DIR");
  return fs::path(d ? d : ".") / "tests/data" / rel;
}
torch::Tensor clustered(int64_t n, int64_t d, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor centers = at::randn({64, d}, gen, torch::kFloat32);
  torch::Tensor pick = at::randint(0, 64, {n}, gen, torch::kLong);
  return centers.index_select(0, pick) + 0.35 * at::randn({n, d}, gen, torch::kFloat32);
}
BuildReport import_npy(const fs::path& dir, const torch::Tensor& x, IndexOptions idx = {}) {
  rdm::formats::write_npy(dir / "emb.npy", x);
  ImportOptions o;
  o.inputs = {dir / "emb.npy"};
  o.out = dir / "db";
  o.index = idx;
  return import_database(o);
}
}  // namespace

TEST(RetrievalHostile, ScanAccountsForEveryEntry) {
  fs::path base = temp_dir("scan"), root = base / "root";
  spit(root / "a.png", "x");
  spit(root / "sub/b.GIF", "x");
  spit(root / "sub/c.svg", "x");
  spit(root / "notes.txt", "x");
  spit(root / "README", "x");
  spit(root / ".hidden.png", "x");
  spit(root / ".git/config", "x");
  spit(base / "outside/secret.png", "x");
  fs::create_symlink(base / "outside/secret.png", root / "link_out.png");
  fs::create_symlink(base / "outside", root / "dir_out");
  fs::create_symlink(root / "a.png", root / "link_in.png");
  fs::create_symlink(root / "missing.png", root / "dangling.png");
  std::map<std::string, std::string> got;
  for (const auto& f : scan_images(root)) got[f.rel] = f.skip;
  EXPECT_EQ(got.size(), 11u);
  EXPECT_EQ(got.at("a.png"), "");
  EXPECT_EQ(got.at("sub/b.GIF"), "");
  EXPECT_EQ(got.at("sub/c.svg"), "");  // decoded, then named as SVG
  EXPECT_EQ(got.at("link_in.png"), "");  // stays inside the root: followed
  EXPECT_NE(got.at("notes.txt").find("not an image file (extension '.txt')"), std::string::npos);
  EXPECT_NE(got.at("README").find("no extension"), std::string::npos);
  EXPECT_NE(got.at(".hidden.png").find("hidden file"), std::string::npos);
  EXPECT_NE(got.at(".git").find("hidden folder"), std::string::npos);
  EXPECT_NE(got.at("link_out.png").find("outside the image folder"), std::string::npos);
  EXPECT_NE(got.at("dir_out").find("outside the image folder"), std::string::npos);
  EXPECT_NE(got.at("dangling.png").find("dangling symbolic link"), std::string::npos);
  // --follow-links: the links are followed (the folder's file appears under the link's path).
  std::map<std::string, std::string> all;
  for (const auto& f : scan_images(root, {}, true)) all[f.rel] = f.skip;
  EXPECT_EQ(all.at("link_out.png"), "");
  EXPECT_EQ(all.at("dir_out/secret.png"), "");
}

TEST(RetrievalHostile, ZeroNanAndInfiniteVectorsAreRefusedByName) {
  fs::path dir = temp_dir("zero");
  torch::Tensor x = torch::randn({6, 8});
  x[2].zero_();
  x[4][3] = std::numeric_limits<float>::quiet_NaN();
  std::string e = error_of([&] { import_npy(dir, x); });
  EXPECT_NE(e.find("2 of 6 embedding vectors cannot be L2-normalised"), std::string::npos) << e;
  EXPECT_NE(e.find("row 2 (img_id 2 in"), std::string::npos) << e;
  EXPECT_NE(e.find("is all zeros"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir / "db" / "manifest.json"));
  EXPECT_FALSE(fs::exists(dir / "db" / "items.sqlite"));  // refused before --out was touched
  torch::Tensor y = torch::randn({3, 8});
  y[1][0] = std::numeric_limits<float>::infinity();
  e = error_of([&] { check_embeddings(y, "src"); });
  EXPECT_NE(e.find("row 1 which holds NaN or infinite values"), std::string::npos) << e;
  EXPECT_NO_THROW(check_embeddings(torch::randn({3, 8}), "src"));
}

TEST(RetrievalHostile, NormStatsAreComputedFromTheFile) {
  fs::path dir = temp_dir("norms");
  import_npy(dir, torch::randn({20, 8}) * 7);
  NormStats ns = embedding_norms(dir / "db");
  EXPECT_TRUE(ns.normalised());
  EXPECT_NEAR(ns.min, 1.0, 1e-5);
  EXPECT_NEAR(ns.max, 1.0, 1e-5);
  // A file edited behind rdm's back (row 3 scaled, row 5 zeroed) is reported as it is.
  torch::Tensor e = rdm::formats::read_npy(dir / "db" / "embeddings.npy").clone();
  e[3] *= 2;
  e[5].zero_();
  rdm::formats::write_npy(dir / "db" / "embeddings.npy", e);
  NormStats bad = embedding_norms(dir / "db");
  EXPECT_FALSE(bad.normalised());
  EXPECT_EQ(bad.zero, 1);
  EXPECT_EQ(bad.off_unit, 1);
  EXPECT_NEAR(bad.max, 2.0, 1e-5);
}

TEST(RetrievalHostile, ImportsCompVisPartsWithStringIds) {
  fs::path dir = temp_dir("compvis");
  ImportOptions o;
  o.inputs = {data("compvis_db/artbench-test")};
  o.out = dir / "db";
  BuildReport rep = import_database(o);
  std::vector<std::string> ids;
  std::ifstream f(data("compvis_db/expected_ids.txt"));
  for (std::string line; std::getline(f, line);) ids.push_back(line);
  ASSERT_EQ(rep.indexed, static_cast<int64_t>(ids.size()));
  Database db = Database::open(dir / "db");
  torch::Tensor want = rdm::formats::read_npy(data("compvis_db/expected_embedding.npy")).to(torch::kFloat32);
  want = want / want.norm(2, -1, true);
  std::vector<int64_t> all(ids.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_TRUE(torch::allclose(db.embeddings(all), want, 1e-6, 1e-6));
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(db.item(static_cast<int64_t>(i)).orig_id, ids[i]);
  EXPECT_EQ(db.item(0).patch_coords.front(), '[');
  // Each stored vector finds itself first, under its string id.
  auto res = db.search(want.slice(0, 5, 8), 3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(res[r][0].id, 5 + r);
    EXPECT_EQ(db.item(res[r][0].id).orig_id, ids[5 + r]);
  }
}

TEST(RetrievalHostile, ImportsByteIntegerAndUnicodeIdsAndFloat16) {
  fs::path dir = temp_dir("variants");
  auto names = [&](const std::string& file) {
    ImportOptions o;
    o.inputs = {data("compvis_db/variants/" + file)};
    o.out = dir / file;
    import_database(o);
    Database db = Database::open(dir / file);
    std::vector<std::string> v;
    for (int64_t i = 0; i < db.size(); ++i) v.push_back(db.item(i).orig_id);
    return v;
  };
  EXPECT_EQ(names("bytes_ids_f16.npz"), (std::vector<std::string>{"img-0", "img-1", "img-2", "img-3", "img-4", "img-5"}));
  EXPECT_EQ(names("int_ids.npz"), (std::vector<std::string>{"100", "101", "102", "103", "104"}));
  EXPECT_EQ(names("unicode_ids.npz"), (std::vector<std::string>{"caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac\xe7\x94\xbb", "x"}));
}

TEST(RetrievalHostile, ReportedRecallIsWhatDbSearchAchievesOnHeldOutQueries) {
  fs::path dir = temp_dir("recall");
  const int64_t n = 4000, d = 32, k = 10;
  torch::Tensor x = clustered(n, d, 5);
  IndexOptions idx;
  idx.description = "IVF64,PQ8";
  idx.nprobe = 4;
  idx.rerank = 100;
  idx.recall_k = k;
  idx.recall_queries = 400;
  BuildReport rep = import_npy(dir, x, idx);
  Database db = Database::open(dir / "db");
  const auto& r = db.manifest().report["recall"];
  const double served = r["value"].get<double>(), raw = r["raw_ann"].get<double>();
  EXPECT_DOUBLE_EQ(rep.recall, served);
  EXPECT_DOUBLE_EQ(rep.recall_raw, raw);
  EXPECT_GT(served, raw + 0.05);  // PQ codes alone are coarse; re-ranking recovers much of it
  // Our own held-out queries (another seed) through Database::search, against exact search.
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  torch::Tensor stored = db.embeddings(all).contiguous();
  const int64_t nq = 400;
  std::vector<float> q = perturbed_queries(stored.data_ptr<float>(), n, d, nq, 12345);
  torch::Tensor qt = torch::from_blob(q.data(), {nq, d}, torch::kFloat32).clone();
  auto [top, truth] = qt.matmul(stored.t()).topk(k, 1);
  auto got = db.search(qt, k);
  int64_t hit = 0;
  for (int64_t i = 0; i < nq; ++i) {
    std::unordered_set<int64_t> t;
    for (int64_t j = 0; j < k; ++j) t.insert(truth[i][j].item<int64_t>());
    for (const auto& nb : got[i]) hit += t.count(nb.id);
  }
  const double achieved = static_cast<double>(hit) / static_cast<double>(nq * k);
  EXPECT_NEAR(achieved, served, 0.04) << "raw " << raw;
}
