// Style database: search against brute force, IVF recall, manifest round trip, imports of
// synthetic CompVis .npz parts, float16 storage, sharding and user errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <torch/types.h>

#include "unit/temp_data.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/io/sha256.hpp"

namespace fs = std::filesystem;
using namespace rdm::retrieval;

namespace {
fs::path temp_dir(const std::string& name) { return rdm_test::fresh_temp_dir("rdm_db_unit", name); }

using rdm_test::random_rows;

torch::Tensor normalized(const torch::Tensor& x) { return x / x.norm(2, -1, true); }

// Imports x as a database in dir (a .npy matrix) with the given index.
Database make_db(const fs::path& dir, const torch::Tensor& x, IndexOptions index = {}) {
  rdm::formats::write_npy(dir / "emb.npy", x);
  ImportOptions o;
  o.inputs = {dir / "emb.npy"};
  o.out = dir / "db";
  o.index = index;
  o.clip_identity = "ViT-T/8";
  import_database(o);
  return Database::open(dir / "db");
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const rdm::Error& e) {
    return e.what();
  }
  return "<no error>";
}
}  // namespace

TEST(RetrievalDb, FlatSearchEqualsBruteForce) {
  fs::path dir = temp_dir("flat");
  torch::Tensor x = random_rows(600, 32, 1);
  Database db = make_db(dir, x);
  ASSERT_EQ(db.size(), 600);
  ASSERT_EQ(db.dim(), 32);
  torch::Tensor q = normalized(random_rows(25, 32, 2));
  auto res = db.search(q, 19);
  torch::Tensor scores = q.matmul(normalized(x).t());
  auto [top, idx] = scores.topk(19, 1);
  ASSERT_EQ(res.size(), 25u);
  for (int64_t r = 0; r < 25; ++r) {
    ASSERT_EQ(res[r].size(), 19u);
    for (int64_t j = 0; j < 19; ++j) {
      EXPECT_EQ(res[r][j].id, idx[r][j].item<int64_t>()) << "query " << r << " rank " << j;
      EXPECT_NEAR(res[r][j].score, top[r][j].item<float>(), 1e-5);
    }
  }
  // Stored embeddings are the normalised rows; neighbour scores are their dot products.
  torch::Tensor e = db.embeddings({res[0][0].id, res[0][1].id});
  EXPECT_TRUE(torch::allclose(e, normalized(x).index_select(0, torch::tensor({res[0][0].id, res[0][1].id})), 1e-6, 1e-6));
  EXPECT_NEAR(e[0].dot(q[0]).item<float>(), res[0][0].score, 1e-5);
  EXPECT_EQ(db.manifest().index, "Flat");
  EXPECT_EQ(db.hash().rfind("sha256:", 0), 0u);
  fs::remove_all(dir);
}

TEST(RetrievalDb, IvfRecallAndFullProbeIsExact) {
  fs::path dir = temp_dir("ivf");
  torch::Tensor x = random_rows(2000, 16, 3);
  IndexOptions idx;
  idx.description = "IVF16,Flat";
  idx.nprobe = 4;
  idx.recall_k = 10;
  Database db = make_db(dir, x, idx);
  const auto& rep = db.manifest().report;
  ASSERT_TRUE(rep.contains("recall"));
  double recall = rep["recall"]["value"].get<double>();
  EXPECT_GT(recall, 0.4);
  EXPECT_LE(recall, 1.0);
  EXPECT_EQ(db.manifest().nprobe, 4);
  torch::Tensor q = normalized(random_rows(10, 16, 4));
  auto [top, ids] = q.matmul(normalized(x).t()).topk(10, 1);
  // Probing every list is exhaustive: exact results.
  auto exact = db.search(q, 10, SearchOptions{16, 0, 0});
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t j = 0; j < 10; ++j) EXPECT_EQ(exact[r][j].id, ids[r][j].item<int64_t>());
  // Re-ranking 200 candidates with nprobe 4 returns exact scores, best first.
  auto rr = db.search(q, 10, SearchOptions{0, 0, 200});
  for (int64_t r = 0; r < 10; ++r) {
    for (int64_t j = 1; j < 10; ++j) EXPECT_GE(rr[r][j - 1].score, rr[r][j].score);
    torch::Tensor e = db.embeddings({rr[r][0].id});
    EXPECT_NEAR(e[0].dot(q[r]).item<float>(), rr[r][0].score, 1e-5);
  }
  fs::remove_all(dir);
}

TEST(RetrievalDb, ManifestRoundTrip) {
  Manifest m;
  m.name = "surrealism";
  m.created = "2026-01-01T00:00:00Z";
  m.clip_identity = "ViT-L/14:0123456789ab";
  m.dim = 768;
  m.preprocess = "rdm";
  m.count = 5999;
  m.embeddings_dtype = "float16";
  m.index = "IVF64,PQ16";
  m.nprobe = 8;
  m.ef = 0;
  m.rerank = 40;
  m.content_hash = "sha256:abc";
  m.source = {{"kind", "build"}, {"root", "/data/x"}};
  m.report = {{"skipped", 3}};
  Manifest r = Manifest::from_json(m.to_json(), "test");
  EXPECT_EQ(r.to_json(), m.to_json());
  fs::path dir = temp_dir("manifest");
  m.write(dir);
  EXPECT_EQ(Manifest::read(dir).to_json(), m.to_json());
  std::ofstream(dir / "manifest.json") << "{\"format\": \"rdm-style-database\", \"format_version\": 1}";
  EXPECT_NE(error_of([&] { Manifest::read(dir); }).find("rdm db build"), std::string::npos);
  fs::remove_all(dir);
}

TEST(RetrievalDb, ImportsCompVisNpzPartsInNameOrder) {
  fs::path dir = temp_dir("npz");
  fs::create_directories(dir / "parts");
  torch::Tensor a = random_rows(30, 8, 5).to(torch::kFloat16), b = random_rows(20, 8, 6).to(torch::kFloat64);
  // Written in reverse name order: the import sorts by file name (db_part_1 first).
  rdm::formats::write_npz(dir / "parts" / "db_part_2.npz",
                     {{"embedding", b}, {"img_id", torch::arange(100, 120, torch::kInt64)},
                      {"patch_coords", torch::zeros({20, 4}, torch::kInt32)}}, true);
  rdm::formats::write_npz(dir / "parts" / "db_part_1.npz",
                     {{"embedding", a}, {"img_id", torch::arange(0, 30, torch::kInt64)},
                      {"patch_coords", torch::ones({30, 4}, torch::kInt32)}}, false);
  ImportOptions o;
  o.inputs = {dir / "parts"};
  o.out = dir / "db";
  import_database(o);
  Database db = Database::open(dir / "db");
  ASSERT_EQ(db.size(), 50);
  EXPECT_EQ(db.clip_identity(), "ViT-L/14");
  torch::Tensor want = normalized(torch::cat({a.to(torch::kFloat32), b.to(torch::kFloat32)}));
  torch::Tensor got = db.embeddings({0, 29, 30, 49});
  EXPECT_TRUE(torch::allclose(got, want.index_select(0, torch::tensor({0, 29, 30, 49})), 1e-6, 1e-6));
  EXPECT_EQ(db.item(30).orig_id, "100");
  EXPECT_EQ(db.item(0).patch_coords, "[1,1,1,1]");
  EXPECT_EQ(db.item(49).path, "");
  // The nearest neighbour of a stored row is itself.
  auto res = db.search(want.index_select(0, torch::tensor({42})), 1);
  EXPECT_EQ(res[0][0].id, 42);
  fs::remove_all(dir);
}

TEST(RetrievalDb, Float16StorageAgreesWithIndex) {
  fs::path dir = temp_dir("f16");
  torch::Tensor x = random_rows(300, 24, 7);
  IndexOptions idx;
  idx.dtype = "float16";
  Database db = make_db(dir, x, idx);
  EXPECT_EQ(rdm::formats::read_npy(dir / "db" / "embeddings.npy").scalar_type(), torch::kFloat16);
  torch::Tensor q = normalized(random_rows(5, 24, 8));
  auto res = db.search(q, 5);
  for (int64_t r = 0; r < 5; ++r)
    for (auto& nb : res[r])
      EXPECT_NEAR(db.embeddings({nb.id})[0].dot(q[r]).item<float>(), nb.score, 1e-5);
  fs::remove_all(dir);
}

TEST(RetrievalDb, UserErrors) {
  fs::path dir = temp_dir("errors");
  torch::Tensor x = random_rows(40, 8, 9);
  Database db = make_db(dir, x);
  torch::Tensor q = normalized(random_rows(1, 8, 10));
  EXPECT_NE(error_of([&] { db.search(q, 41); }).find("holds only 40"), std::string::npos);
  EXPECT_NE(error_of([&] { db.search(normalized(random_rows(1, 16, 1)), 3); }).find("8-d"), std::string::npos);
  EXPECT_NE(error_of([&] { db.check_query_encoder("ViT-B/32:abc", 8); }).find("built with CLIP"), std::string::npos);
  EXPECT_NE(error_of([&] { db.check_query_encoder("ViT-T/8:abc", 16); }).find("dim"), std::string::npos);
  EXPECT_EQ(error_of([&] { db.check_query_encoder("ViT-T/8:abc", 8); }), "<no error>");
  EXPECT_NE(error_of([&] { Database::open(dir / "nothing"); }).find("does not exist"), std::string::npos);

  // Unknown index string.
  IndexOptions bad;
  bad.description = "NoSuchIndex42";
  EXPECT_NE(error_of([&] { make_db(temp_dir("errors2"), x, bad); }).find("NoSuchIndex42"), std::string::npos);
  fs::remove_all(temp_dir("errors2"));

  // Damaged / missing index.
  { std::ofstream(dir / "db" / "index.faiss", std::ios::trunc) << "garbage"; }
  std::string e = error_of([&] { Database::open(dir / "db"); });
  EXPECT_NE(e.find("damaged"), std::string::npos) << e;
  EXPECT_NE(e.find("rdm db build"), std::string::npos) << e;
  fs::remove(dir / "db" / "index.faiss");
  EXPECT_NE(error_of([&] { Database::open(dir / "db"); }).find("missing"), std::string::npos);
  fs::remove(dir / "db" / "manifest.json");
  EXPECT_NE(error_of([&] { Database::open(dir / "db"); }).find("no manifest.json"), std::string::npos);

  // Empty database.
  fs::path edir = temp_dir("empty");
  Database empty = make_db(edir, torch::zeros({0, 8}));
  EXPECT_EQ(empty.size(), 0);
  EXPECT_NE(error_of([&] { empty.search(q, 1); }).find("empty"), std::string::npos);
  fs::remove_all(edir);
  fs::remove_all(dir);
}

TEST(RetrievalDb, ShardsPartitionDeterministically) {
  std::set<std::string> seen;
  int64_t counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 400; ++i) {
    std::string p = "style_" + std::to_string(i % 7) + "/img_" + std::to_string(i) + ".jpg";
    int64_t s = shard_of(p, 4);
    ASSERT_GE(s, 0);
    ASSERT_LT(s, 4);
    EXPECT_EQ(s, shard_of(p, 4));
    ++counts[s];
  }
  for (int64_t c : counts) EXPECT_GT(c, 50);
  EXPECT_EQ(shard_of("a.jpg", 1), 0);
  // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c: a fixed function across machines.
  EXPECT_EQ(shard_of("a", 1000), static_cast<int64_t>(0xaf63dc4c8601ec8cULL % 1000));
}

TEST(RetrievalDb, Sha256KnownVectors) {
  EXPECT_EQ(rdm::io::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(rdm::io::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string m(1000, 'a');
  rdm::io::Sha256 h;
  for (int i = 0; i < 1000; ++i) h.update(m.data(), m.size());  // one million 'a'
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
