// Style databases at scale from the command line (issue 17): `db import` streams its parts,
// resumes, and chooses the index by size (--index auto, with its reason); `db search
// --query-npy` answers raw vectors through the sampling search path with per-query latency and
// measures recall@k against exact search.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/formats/npy.hpp"

using namespace rdm_cli_test;
using nlohmann::json;

namespace {
size_t error_lines(const std::string& s) {
  size_t n = 0;
  for (size_t p = s.find("error:"); p != std::string::npos; p = s.find("error:", p + 1)) ++n;
  return n;
}
// Clustered rows (a seeded mixture), not normalised: rdm normalises.
torch::Tensor clustered(int64_t n, int64_t d, int64_t clusters, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor centres = at::randn({clusters, d}, gen);
  torch::Tensor which = at::randint(clusters, {n}, gen);
  return centres.index_select(0, which) + 0.5 * at::randn({n, d}, gen);
}
std::string q(const fs::path& p) { return quote(p.string()); }
}  // namespace

TEST(DbScaleCli, ImportOfPartsChoosesFlatAndQueryNpyMatchesBruteForce) {
  auto dir = scratch("db_scale_flat");
  torch::Tensor x = clustered(3000, 16, 20, 1);
  fs::create_directories(dir / "parts");
  for (int p = 0; p < 3; ++p) rdm::formats::write_npy(dir / "parts" / ("p" + std::to_string(p) + ".npy"), x.slice(0, p * 1000, (p + 1) * 1000).contiguous());
  auto r = run_rdm("db import " + q(dir / "parts") + " --out " + q(dir / "db") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("part 3/3 done"), std::string::npos) << r.err;        // progress
  EXPECT_NE(r.err.find("exact search (Flat)"), std::string::npos) << r.err;  // the reason for the choice
  EXPECT_EQ(json::parse(slurp(dir / "db/manifest.json"))["index"]["description"], "Flat");

  torch::Tensor qs = clustered(12, 16, 20, 2) * 3.0;  // not normalised: rdm normalises
  rdm::formats::write_npy(dir / "q.npy", qs);
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "q.npy") + " -k 5 --json --recall");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["queries"], 12);
  EXPECT_EQ(j["index"], "Flat");
  EXPECT_DOUBLE_EQ(j["recall"].get<double>(), 1.0);
  EXPECT_GT(j["latency_ms"]["p99"].get<double>(), 0.0);
  EXPECT_GE(j["latency_ms"]["p99"].get<double>(), j["latency_ms"]["p50"].get<double>());
  torch::Tensor xn = x / x.norm(2, 1, true), qn = qs / qs.norm(2, 1, true);
  torch::Tensor want = std::get<1>(qn.matmul(xn.t()).topk(5, 1));
  ASSERT_EQ(j["results"].size(), 12u);
  for (int64_t i = 0; i < 12; ++i) {
    ASSERT_EQ(j["results"][i]["neighbors"].size(), 5u);
    EXPECT_GT(j["results"][i]["latency_ms"].get<double>(), 0.0);
    for (int64_t c = 0; c < 5; ++c) EXPECT_EQ(j["results"][i]["neighbors"][c]["id"].get<int64_t>(), want[i][c].item<int64_t>());
  }
  // Plain text: one line per query.
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "q.npy") + " -k 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 13);
}

TEST(DbScaleCli, IvfSq8ImportRecallThroughQueryNpyAndFloat16Storage) {
  auto dir = scratch("db_scale_ivf");
  torch::Tensor x = clustered(4000, 32, 40, 3);
  rdm::formats::write_npy(dir / "x.npy", x);
  auto r = run_rdm("db import " + q(dir / "x.npy") + " --out " + q(dir / "db") +
                   " --index IVF32,SQ8 --nprobe 8 --rerank 50 --dtype float16");
  ASSERT_EQ(r.code, 0) << r.err;
  json m = json::parse(slurp(dir / "db/manifest.json"));
  EXPECT_EQ(m["embeddings"]["dtype"], "float16");
  EXPECT_EQ(fs::file_size(dir / "db/embeddings.npy"), 128u + 4000u * 32u * 2u);  // fp16 on disk
  rdm::formats::write_npy(dir / "q.npy", clustered(50, 32, 40, 4));
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "q.npy") + " -k 19 --json --recall");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(json::parse(r.out)["recall"].get<double>(), 0.9);
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "q.npy") + " -k 19 --json --recall --nprobe 1 --rerank 19");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(json::parse(r.out)["recall"].get<double>(), 0.9);  // the options reach the search path
}

TEST(DbScaleCli, QueryNpyUserErrors) {
  auto dir = scratch("db_scale_errors");
  rdm::formats::write_npy(dir / "x.npy", clustered(100, 8, 4, 5));
  ASSERT_EQ(run_rdm("db import " + q(dir / "x.npy") + " --out " + q(dir / "db")).code, 0);
  rdm::formats::write_npy(dir / "wide.npy", clustered(3, 9, 2, 6));
  auto r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "wide.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("--query-npy"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[N, 8]"), std::string::npos) << r.err;
  torch::Tensor z = torch::zeros({2, 8});
  rdm::formats::write_npy(dir / "zero.npy", z);
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "zero.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("non-zero"), std::string::npos) << r.err;
  r = run_rdm("db search " + q(dir / "db") + " --query-npy " + q(dir / "zero.npy") + " --text cat");
  EXPECT_EQ(r.code, 2) << r.err;  // usage: one query kind
  r = run_rdm("db search " + q(dir / "db") + " --recall --text cat");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--recall"), std::string::npos) << r.err;
}

TEST(DbScaleCli, InterruptedImportResumesAfterItsLastFinishedPart) {
  auto dir = scratch("db_scale_resume");
  torch::Tensor x = clustered(900, 8, 6, 7);
  fs::create_directories(dir / "parts");
  for (int p = 0; p < 3; ++p) rdm::formats::write_npy(dir / "parts" / ("p" + std::to_string(p) + ".npy"), x.slice(0, p * 300, (p + 1) * 300).contiguous());
  // A bad last part stops the import after two finished parts.
  torch::Tensor bad = x.slice(0, 600, 900).clone();
  bad[7].zero_();
  rdm::formats::write_npy(dir / "parts/p2.npy", bad);
  auto r = run_rdm("db import " + q(dir / "parts") + " --out " + q(dir / "db"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("p2.npy"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "db/manifest.json"));  // no half-written database
  // Fixed, it resumes after the two finished parts; the result equals a fresh import.
  rdm::formats::write_npy(dir / "parts/p2.npy", x.slice(0, 600, 900).contiguous());
  r = run_rdm("db import " + q(dir / "parts") + " --out " + q(dir / "db"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming the import"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("after 2 parts (600 rows)"), std::string::npos) << r.err;
  ASSERT_EQ(run_rdm("db import " + q(dir / "parts") + " --out " + q(dir / "fresh")).code, 0);
  EXPECT_EQ(json::parse(slurp(dir / "db/manifest.json"))["embeddings"]["content_hash"],
            json::parse(slurp(dir / "fresh/manifest.json"))["embeddings"]["content_hash"]);
  EXPECT_EQ(slurp(dir / "db/embeddings.npy"), slurp(dir / "fresh/embeddings.npy"));
  EXPECT_FALSE(fs::exists(dir / "db/.embeddings.npy.partial"));
}

// True merges (issue 17): shards imported with --trained-from one database share its trained
// index; `db merge` merges their IVF lists (no retraining) and answers every query exactly as
// one import of all rows from the same trained index. Separately trained shards are rebuilt,
// with the reason; a --index that contradicts --trained-from is one error line.
TEST(DbScaleCli, ShardsSharingATrainedIndexMergeListByList) {
  auto dir = scratch("db_scale_merge");
  torch::Tensor x = clustered(3000, 16, 20, 7);
  rdm::formats::write_npy(dir / "a.npy", x.slice(0, 0, 1500).contiguous());
  rdm::formats::write_npy(dir / "b.npy", x.slice(0, 1500, 3000).contiguous());
  rdm::formats::write_npy(dir / "all.npy", x);
  auto r = run_rdm("db import " + q(dir / "a.npy") + " --out " + q(dir / "a") + " --index IVF16,Flat --nprobe 3");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* part : {"b", "all"}) {
    r = run_rdm("db import " + q(dir / (std::string(part) + ".npy")) + " --out " + q(dir / part) + " --trained-from " +
                q(dir / "a"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("reused"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("trained on"), std::string::npos) << r.err;  // no training
    json m = json::parse(slurp(dir / part / "manifest.json"));
    EXPECT_EQ(m["index"]["description"], "IVF16,Flat");
    EXPECT_EQ(m["index"]["nprobe"], 3);
  }
  r = run_rdm("db merge " + q(dir / "a") + " " + q(dir / "b") + " --out " + q(dir / "merged"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("lists merged"), std::string::npos) << r.err;
  json mm = json::parse(slurp(dir / "merged/manifest.json"));
  EXPECT_EQ(mm["report"]["index_merge"].get<std::string>().rfind("lists merged", 0), 0u) << mm.dump();
  EXPECT_EQ(mm["index"]["description"], "IVF16,Flat");
  EXPECT_EQ(mm["count"], 3000);

  rdm::formats::write_npy(dir / "q.npy", clustered(40, 16, 20, 8));
  auto search = [&](const char* db) {
    auto s = run_rdm("db search " + q(dir / db) + " --query-npy " + q(dir / "q.npy") + " -k 10 --json --recall");
    EXPECT_EQ(s.code, 0) << s.err;
    return json::parse(s.out);
  };
  json jm = search("merged"), jo = search("all");
  EXPECT_DOUBLE_EQ(jm["recall"].get<double>(), jo["recall"].get<double>());
  EXPECT_LT(jm["recall"].get<double>(), 1.0);  // nprobe 3 of 16: approximate, so the comparison means something
  for (size_t i = 0; i < 40; ++i)
    for (size_t c = 0; c < 10; ++c) {
      EXPECT_EQ(jm["results"][i]["neighbors"][c]["id"], jo["results"][i]["neighbors"][c]["id"]) << i << "," << c;
      EXPECT_FLOAT_EQ(jm["results"][i]["neighbors"][c]["score"].get<float>(),
                      jo["results"][i]["neighbors"][c]["score"].get<float>());
    }

  // Trained separately: rebuilt, saying why.
  r = run_rdm("db import " + q(dir / "b.npy") + " --out " + q(dir / "b2") + " --index IVF16,Flat --nprobe 3");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_rdm("db merge " + q(dir / "a") + " " + q(dir / "b2") + " --out " + q(dir / "rebuilt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("trained separately"), std::string::npos) << r.err;
  EXPECT_EQ(json::parse(slurp(dir / "rebuilt/manifest.json"))["report"]["index_merge"].get<std::string>().rfind("rebuilt", 0), 0u);

  r = run_rdm("db import " + q(dir / "b.npy") + " --out " + q(dir / "bad") + " --index Flat --trained-from " + q(dir / "a"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(error_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("--trained-from"), std::string::npos) << r.err;
}
