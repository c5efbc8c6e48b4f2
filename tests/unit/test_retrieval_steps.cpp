// The steps of db merge and db import one by one (src/retrieval/merge.hpp, importer.hpp), and
// what a database answers about itself (preprocessing, source paths) without anyone reading its
// manifest.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include <torch/types.h>

#include "unit/error_of.hpp"
#include "unit/temp_data.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/finalize.hpp"
#include "retrieval/importer.hpp"
#include "retrieval/merge.hpp"
#include "retrieval/store.hpp"

namespace fs = std::filesystem;
using namespace rdm::retrieval;

namespace {
fs::path temp_dir(const std::string& name) { return rdm_test::fresh_temp_dir("rdm_steps_unit", name); }

using rdm_test::random_rows;

using rdm_test::error_of;

StoreItem item(const std::string& path, const std::string& hash, int64_t final_id) {
  StoreItem it;
  it.path = path;
  it.hash = hash;
  it.final_id = final_id;
  return it;
}

// A database the way db build leaves one (store items with paths, a manifest with the
// collection root), without a CLIP model: rows of x are items a/0.png, a/1.png, ...; the last
// one has no path.
void write_built_like(const fs::path& dir, const torch::Tensor& x, const std::string& preprocess) {
  fs::create_directories(dir);
  {
    Store store = Store::open(dir / kStoreFile, true);
    Store::Transaction tx(store);
    for (int64_t r = 0; r < x.size(0); ++r)
      store.insert_item(item(r + 1 < x.size(0) ? "a/" + std::to_string(r) + ".png" : "", "", r));
    tx.commit();
  }
  Manifest m;
  m.clip_identity = "ViT-T/8";
  m.preprocess = preprocess;
  m.source = {{"kind", "build"}, {"root", "/data/collection"}, {"clip_model", "/models/clip.pt"}};
  write_database_files(dir, x.clone(), m, IndexOptions{}, "test");
}
}  // namespace

TEST(RetrievalSteps, DatabaseAnswersPreprocessAndSourcePaths) {
  const fs::path dir = temp_dir("answers");
  write_built_like(dir / "rdm", random_rows(4, 8, 1), "rdm");
  Database built = Database::open(dir / "rdm");
  EXPECT_EQ(built.preprocess(), rdm::clip::Preprocess::Rdm);
  EXPECT_EQ(built.source_path(1), "/data/collection/a/1.png");
  EXPECT_EQ(built.source_path(3), "");  // an item without a source path
  EXPECT_EQ(built.clip_model(), "/models/clip.pt");
  EXPECT_NE(error_of([&] { built.source_path(4); }).find("out of range"), std::string::npos);
  write_built_like(dir / "clip", random_rows(4, 8, 2), "clip");
  EXPECT_EQ(Database::open(dir / "clip").preprocess(), rdm::clip::Preprocess::Clip);

  // Imports know no preprocessing ("unknown": CLIP's) and no source images.
  rdm::formats::write_npy(dir / "emb.npy", random_rows(3, 8, 3));
  ImportOptions o;
  o.inputs = {dir / "emb.npy"};
  o.out = dir / "imported";
  import_database(o);
  Database imported = Database::open(dir / "imported");
  EXPECT_EQ(imported.manifest().preprocess, "unknown");
  EXPECT_EQ(imported.preprocess(), rdm::clip::Preprocess::Clip);
  EXPECT_EQ(imported.source_path(0), "");
  EXPECT_EQ(imported.clip_model(), "");
  fs::remove_all(dir);
}

TEST(RetrievalSteps, MergeOrdersByPathAndKeepsTheFirstOfEqualBytes) {
  using namespace merge_detail;
  std::vector<ShardItem> items = {
      {item("b.png", "h1", 0), 0}, {item("", "", 1), 0},        {item("a.png", "h2", 2), 0},
      {item("c.png", "h1", 0), 1}, {item("", "", 1), 1},        {item("a0.png", "", 2), 1}};
  PathPairs dups = {{"old.png", "orig.png"}};
  auto kept = order_and_deduplicate(items, dups);
  std::vector<std::pair<std::string, size_t>> got;
  for (const auto& k : kept) got.emplace_back(k.item.path, k.shard);
  const std::vector<std::pair<std::string, size_t>> want = {
      {"a.png", 0}, {"a0.png", 1}, {"b.png", 0}, {"", 0}, {"", 1}};  // c.png: same bytes as b.png
  EXPECT_EQ(got, want);
  EXPECT_EQ(dups, (PathPairs{{"old.png", "orig.png"}, {"c.png", "b.png"}}));

  // The kept rows come from their shard's file (read, not loaded); final ids become rows of
  // the merged matrix.
  const fs::path dir = temp_dir("merge_gather");
  std::vector<torch::Tensor> shard_emb = {random_rows(3, 4, 1), random_rows(3, 4, 2)};
  std::vector<std::shared_ptr<const NpyRows>> files;
  for (size_t s = 0; s < shard_emb.size(); ++s) {
    const fs::path f = dir / ("shard" + std::to_string(s) + ".npy");
    rdm::formats::write_npy(f, shard_emb[s]);
    files.push_back(std::make_shared<const NpyRows>(f));
  }
  torch::Tensor all = gather_embeddings(kept, files, 4);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{5, 4}));
  EXPECT_TRUE(torch::equal(all[0], shard_emb[0][2]));  // a.png: shard 0, row 2
  EXPECT_TRUE(torch::equal(all[1], shard_emb[1][2]));  // a0.png: shard 1, row 2
  EXPECT_TRUE(torch::equal(all[2], shard_emb[0][0]));  // b.png: shard 0, row 0
  EXPECT_TRUE(torch::equal(all[3], shard_emb[0][1]));  // path-less item of shard 0
  EXPECT_TRUE(torch::equal(all[4], shard_emb[1][1]));  // path-less item of shard 1
  for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(kept[r].item.final_id, r);
  fs::remove_all(dir);
}

TEST(RetrievalSteps, MergeIndexSettingsComeFromTheFirstShardUnlessGiven) {
  using namespace merge_detail;
  Manifest first;
  first.index = "IVF4,Flat";
  first.nprobe = 2;
  first.ef = 0;
  first.rerank = 7;
  first.embeddings_dtype = "float16";
  MergeOptions o;
  o.index.description = "HNSW8";
  o.index.recall_k = 5;
  IndexOptions shards = index_options(o, first);
  EXPECT_EQ(shards.description, "IVF4,Flat");
  EXPECT_EQ(shards.nprobe, 2);
  EXPECT_EQ(shards.rerank, 7);
  EXPECT_EQ(shards.dtype, "float16");
  EXPECT_EQ(shards.recall_k, 5);  // not a shard setting
  o.index_given = true;
  EXPECT_EQ(index_options(o, first).description, "HNSW8");
  EXPECT_EQ(index_options(o, first).dtype, "float32");

  const fs::path dir = temp_dir("merge_out");
  MergeOptions none;
  EXPECT_NE(error_of([&] { check_output(none); }).find("nothing to merge"), std::string::npos);
  write_built_like(dir / "db", random_rows(2, 4, 3), "clip");
  MergeOptions into_db;
  into_db.inputs = {dir / "other"};
  into_db.out = dir / "db";
  EXPECT_NE(error_of([&] { check_output(into_db); }).find("already holds a database"), std::string::npos);
  into_db.inputs = {dir / "db"};
  EXPECT_NE(error_of([&] { check_output(into_db); }).find("is one of the inputs"), std::string::npos);
  fs::remove_all(dir);
}

TEST(RetrievalSteps, ImportReadsOnePartAtATime) {
  using namespace import_detail;
  const fs::path dir = temp_dir("import_parts");
  torch::Tensor a = random_rows(3, 4, 1);
  rdm::formats::write_npz(dir / "p.npz",
                          {{"embedding", a}, {"img_id", torch::arange(7, 10, torch::kInt64)},
                           {"patch_coords", torch::ones({3, 2}, torch::kInt32)}},
                          false);
  Part p = import_detail::read_part(dir / "p.npz", 10, -1);
  EXPECT_TRUE(torch::equal(p.embeddings, a));
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[2].orig_id, "9");
  EXPECT_EQ(p.items[2].patch_coords, "[1,1]");
  EXPECT_EQ(p.items[2].final_id, 12);
  EXPECT_EQ(p.info.at("rows"), 3);
  // A .npy matrix: ids are the row numbers; its width must match the earlier parts'.
  rdm::formats::write_npy(dir / "m.npy", random_rows(2, 5, 2));
  Part m = import_detail::read_part(dir / "m.npy", 3, -1);
  EXPECT_EQ(m.items[1].orig_id, "4");
  EXPECT_NE(error_of([&] { import_detail::read_part(dir / "m.npy", 3, 4); }).find("earlier parts have 4-d"),
            std::string::npos);
  EXPECT_EQ(row_json(torch::tensor({1.5, 2.0}, torch::kFloat64), 0), "1.5");

  // Folders give their .npz parts in name order; other files are refused.
  rdm::formats::write_npz(dir / "a.npz", {{"embedding", a}}, false);
  auto files = expand_inputs({dir});
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "a.npz");
  EXPECT_NE(error_of([&] { expand_inputs({dir / "nothing"}); }).find("no such file"), std::string::npos);

  // Import replaces an earlier import, never a built database.
  write_built_like(dir / "built", random_rows(2, 4, 3), "clip");
  EXPECT_NE(error_of([&] { import_detail::check_output(dir / "built"); }).find("already holds a built database"),
            std::string::npos);
  EXPECT_NO_THROW(import_detail::check_output(dir / "new"));
  fs::remove_all(dir);
}
