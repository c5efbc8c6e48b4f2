// Style databases at scale (issue 17): the default index by collection size, the SIMD IVF scan
// against FAISS's own search, chunked exact search and row sources against the whole matrix,
// the streamed index build against the in-memory one.
#include <gtest/gtest.h>

#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <set>

#include <torch/torch.h>

#include "rdm/formats/npy.hpp"
#include "rdm/runtime/error.hpp"
#include "retrieval/auto_index.hpp"
#include "retrieval/index.hpp"
#include "retrieval/ivf_scan.hpp"
#include "retrieval/rows.hpp"
#include "retrieval/search.hpp"
#include "unit/temp_data.hpp"

namespace fs = std::filesystem;
using namespace rdm::retrieval;

namespace {
// Clustered unit rows (a mixture, not uniform noise), seeded.
std::vector<float> clustered(int64_t n, int64_t d, int64_t clusters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(static_cast<size_t>(clusters * d));
  for (auto& v : centres) v = g(rng);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const float* c = centres.data() + static_cast<int64_t>(rng() % clusters) * d;
    for (int64_t j = 0; j < d; ++j) x[i * d + j] = c[j] + 0.6f * g(rng);
  }
  normalize_rows(x.data(), n, d);
  return x;
}
}  // namespace

TEST(AutoIndex, FlatUpToTheLimitThenIvfSq8WithTunedNprobe) {
  EXPECT_TRUE(is_auto_index("auto"));
  EXPECT_FALSE(is_auto_index("Flat"));
  IndexChoice small = choose_index(6000, 768);
  EXPECT_EQ(small.description, "Flat");
  EXPECT_EQ(small.rerank, 0);
  EXPECT_NE(small.reason.find("exact"), std::string::npos) << small.reason;
  EXPECT_EQ(choose_index(kFlatMax, 768).description, "Flat");
  IndexChoice mid = choose_index(100000, 768);
  EXPECT_EQ(mid.description, "IVF512,SQ8");
  EXPECT_GT(mid.rerank, 0);
  ASSERT_FALSE(mid.nprobes.empty());
  EXPECT_LE(mid.nprobes.back(), 512 / 4);
  EXPECT_GE(mid.recall_target, 0.99);
  IndexChoice big = choose_index(1000000, 768);
  EXPECT_EQ(big.description, "IVF2048,SQ8");
  EXPECT_GE(big.recall_target, 0.95);
  EXPECT_NE(big.reason.find("IVF2048,SQ8"), std::string::npos) << big.reason;
  for (auto n : {int64_t{50001}, int64_t{300000}, int64_t{20000000}}) {  // a trainable list count
    IndexChoice c = choose_index(n, 768);
    const int64_t nlist = std::stoll(c.description.substr(3));
    EXPECT_LE(nlist * 39, n) << c.description;
    EXPECT_EQ(nlist & (nlist - 1), 0) << c.description;
  }
}

TEST(IvfFastScan, SameNeighboursAsFaissForIvfFlatAndSq8) {
  const int64_t n = 4000, d = 64, nq = 40, k = 10;
  std::vector<float> x = clustered(n, d, 30, 1), q = clustered(nq, d, 30, 2);
  for (const char* desc : {"IVF32,Flat", "IVF32,SQ8"}) {
    std::unique_ptr<faiss::Index> index(faiss::index_factory(d, desc, faiss::METRIC_INNER_PRODUCT));
    index->train(n, x.data());
    index->add(n, x.data());
    dynamic_cast<faiss::IndexIVF*>(index.get())->nprobe = 4;
    ASSERT_TRUE(ivf_fast_supported(*index)) << desc;
    std::vector<float> s0(nq * k), s1(nq * k);
    std::vector<faiss::Index::idx_t> i0(nq * k);
    std::vector<int64_t> i1(nq * k);
    index->search(nq, q.data(), k, s0.data(), i0.data());
    ivf_search_fast(*index, q.data(), nq, k, s1.data(), i1.data());
    int64_t same = 0;
    for (int64_t r = 0; r < nq; ++r) {
      std::set<int64_t> a(i0.begin() + r * k, i0.begin() + (r + 1) * k), b(i1.begin() + r * k, i1.begin() + (r + 1) * k);
      for (auto id : b) same += a.count(id);
      for (int64_t j = 0; j < k; ++j) EXPECT_NEAR(s0[r * k + j], s1[r * k + j], 2e-3) << desc;
    }
    EXPECT_GE(same, nq * k - 2) << desc;  // ties at the k-th place may differ
    ivf_search_fast(*index, q.data(), 1, k, s1.data(), i1.data());  // the one-query path
    EXPECT_EQ(std::set<int64_t>(i1.begin(), i1.begin() + k), std::set<int64_t>(i0.begin(), i0.begin() + k));
  }
  std::unique_ptr<faiss::Index> pq(faiss::index_factory(d, "IVF8,PQ8", faiss::METRIC_INNER_PRODUCT));
  EXPECT_FALSE(ivf_fast_supported(*pq));  // other kinds keep FAISS's search
}

TEST(RowSources, NpyFileRowsChunkedExactSearchAndStreamedBuildMatchTheMatrix) {
  const int64_t n = 3000, d = 32, nq = 20, k = 7;
  std::vector<float> x = clustered(n, d, 12, 3), q = clustered(nq, d, 12, 4);
  fs::path dir = rdm_test::fresh_temp_dir("rdm_scale_unit", "rows");
  for (auto dtype : {torch::kFloat32, torch::kFloat16}) {
    torch::Tensor t = torch::from_blob(x.data(), {n, d}, torch::kFloat32).to(dtype).contiguous();
    rdm::formats::write_npy(dir / "e.npy", t);
    NpyRows file(dir / "e.npy");
    ASSERT_EQ(file.rows(), n);
    ASSERT_EQ(file.dim(), d);
    torch::Tensor want = t.to(torch::kFloat32).contiguous();
    normalize_rows(want.data_ptr<float>(), n, d);
    std::vector<float> got(static_cast<size_t>(n * d));
    file.read(0, n, got.data());
    EXPECT_TRUE(torch::allclose(torch::from_blob(got.data(), {n, d}), want, 0, 1e-6));
    std::vector<float> g2(static_cast<size_t>(2 * d));
    file.gather({n - 1, 5}, g2.data());
    EXPECT_TRUE(torch::allclose(torch::from_blob(g2.data(), {2, d}), want.index_select(0, torch::tensor(std::vector<int64_t>{n - 1, 5})), 0, 1e-6));
    // Many scattered ids, unsorted (read with pread, never through the mapping), and an id out
    // of range: an error naming the file, not a read past the data.
    EXPECT_THROW(file.gather({0, n}, g2.data()), rdm::Error);
    std::vector<int64_t> many;
    for (int64_t i = 0; i < n; ++i)
      if (i % 4 != 0) many.push_back(i);
    many.push_back(7);  // unsorted too
    ASSERT_GT(many.size(), 2048u);
    std::vector<float> gm(many.size() * static_cast<size_t>(d));
    file.gather(many, gm.data());
    EXPECT_TRUE(torch::allclose(torch::from_blob(gm.data(), {static_cast<int64_t>(many.size()), d}),
                                want.index_select(0, torch::tensor(many)), 0, 1e-6));

    // Chunked exact search (chunks of 1000 rows) = exact search over the whole matrix.
    std::vector<float> s0(nq * k), s1(nq * k);
    std::vector<int64_t> i0(nq * k), i1(nq * k);
    exact_search(want.data_ptr<float>(), n, q.data(), nq, d, k, s0.data(), i0.data());
    exact_search_rows(file, q.data(), nq, k, s1.data(), i1.data(), 1000);
    EXPECT_EQ(i0, i1);
    for (size_t j = 0; j < s0.size(); ++j) EXPECT_NEAR(s0[j], s1[j], 1e-5);

    // Streamed build (rows read in chunks) = in-memory build: same trained index, same answers.
    FaissIndex a = FaissIndex::build("IVF16,SQ8", want.data_ptr<float>(), n, d, 0, 9);
    FaissIndex b = FaissIndex::build("IVF16,SQ8", file, 0, 9);
    a.set_search_params(4, 0);
    b.set_search_params(4, 0);
    a.search(q.data(), nq, k, s0.data(), i0.data());
    b.search(q.data(), nq, k, s1.data(), i1.data());
    EXPECT_EQ(i0, i1);
  }
}

TEST(RecallSet, TuningReusesOneGroundTruthAndRecallGrowsWithNprobe) {
  const int64_t n = 5000, d = 32;
  std::vector<float> x = clustered(n, d, 40, 5);
  MatrixRows rows(x.data(), n, d);
  FaissIndex index = FaissIndex::build("IVF64,SQ8", rows, 0, 1);
  RecallSet set = make_recall_set(rows, 10, 100, 2);
  ASSERT_EQ(set.queries, 100);
  ASSERT_EQ(set.truth.size(), 1000u);
  index.set_search_params(1, 0);
  double low = measure_recall(index, rows, set, 0).served;
  index.set_search_params(64, 0);
  RecallFigures all = measure_recall(index, rows, set, 50);
  EXPECT_LT(low, all.raw);
  EXPECT_GE(all.raw, 0.95);      // every list probed: only the 8-bit codes differ
  EXPECT_GE(all.served, 0.999);  // re-ranked exactly
  // The old interface gives the same figures for the same seed.
  RecallFigures old = measure_recall(index, x.data(), n, d, 10, 100, 50, 2);
  EXPECT_DOUBLE_EQ(old.served, all.served);
}

// The IVF build assigns every row first, sizes each list exactly, then adds with those
// assignments: the same lists (ids, codes, order) as FAISS's own add on the same trained index.
TEST(IvfBuild, TwoPassAddEqualsFaissAdd) {
  const int64_t n = 40000, d = 32;  // more than two row chunks
  std::vector<float> x = clustered(n, d, 20, 5);
  normalize_rows(x.data(), n, d);
  fs::path dir = rdm_test::fresh_temp_dir("rdm_scale_unit", "twopass");
  for (const char* desc : {"IVF16,SQ8", "IVF16,Flat"}) {
    FaissIndex built = FaissIndex::build(desc, x.data(), n, d, 0, 3);
    built.write(dir / "built.faiss");
    std::unique_ptr<faiss::Index> a(faiss::read_index((dir / "built.faiss").c_str()));
    std::unique_ptr<faiss::Index> b(faiss::read_index((dir / "built.faiss").c_str()));
    auto* ivf_b = dynamic_cast<faiss::IndexIVF*>(b.get());
    ASSERT_NE(ivf_b, nullptr) << desc;
    ivf_b->reset();  // same trained quantizer and codec, empty lists
    ivf_b->add(n, x.data());
    auto* la = dynamic_cast<faiss::IndexIVF*>(a.get())->invlists;
    auto* lb = ivf_b->invlists;
    ASSERT_EQ(a->ntotal, n);
    for (size_t l = 0; l < la->nlist; ++l) {
      ASSERT_EQ(la->list_size(l), lb->list_size(l)) << desc << " list " << l;
      const size_t bytes = la->list_size(l) * la->code_size;
      EXPECT_EQ(0, std::memcmp(la->get_codes(l), lb->get_codes(l), bytes)) << desc << " list " << l;
      EXPECT_EQ(0, std::memcmp(la->get_ids(l), lb->get_ids(l), la->list_size(l) * sizeof(faiss::Index::idx_t)))
          << desc << " list " << l;
    }
  }
}

// True merges: two shards built from one trained index merge list by list (ids renumbered,
// dropped rows removed) into exactly the lists of one build of the kept rows from that index:
// per list, the same (id, code) entries. Shards trained separately are refused with the reason.
TEST(IvfMerge, SharedTrainedIndexMergesIntoTheListsOfOneBuild) {
  const int64_t n = 6000, d = 32;
  std::vector<float> x = clustered(n, d, 20, 11);
  normalize_rows(x.data(), n, d);
  fs::path dir = rdm_test::fresh_temp_dir("rdm_scale_unit", "merge");
  for (const char* desc : {"IVF16,SQ8", "IVF16,Flat"}) {
    const int64_t half = n / 2;
    FaissIndex trained = FaissIndex::build(desc, x.data(), half, d, 0, 3);
    MatrixRows a_rows(x.data(), half, d), b_rows(x.data() + half * d, n - half, d);
    FaissIndex a = FaissIndex::build_from_trained(trained, a_rows, "shard a");
    FaissIndex b = FaissIndex::build_from_trained(trained, b_rows, "shard b");
    ASSERT_EQ(FaissIndex::why_not_mergeable({&a, &b}), "") << desc;
    // Shard b's rows go first in the merged order; every 7th row of shard a is dropped.
    std::vector<std::vector<int64_t>> ids(2);
    std::vector<float> kept;
    int64_t next = 0;
    ids[1].resize(static_cast<size_t>(n - half));
    for (int64_t i = 0; i < n - half; ++i) {
      ids[1][i] = next++;
      kept.insert(kept.end(), x.begin() + (half + i) * d, x.begin() + (half + i + 1) * d);
    }
    ids[0].assign(static_cast<size_t>(half), -1);
    for (int64_t i = 0; i < half; ++i)
      if (i % 7 != 0) {
        ids[0][i] = next++;
        kept.insert(kept.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
      }
    std::vector<FaissIndex> shards;
    shards.push_back(std::move(a));
    shards.push_back(std::move(b));
    FaissIndex merged = FaissIndex::merge_lists(std::move(shards), ids);
    FaissIndex one = FaissIndex::build_from_trained(trained, MatrixRows(kept.data(), next, d), "kept rows");
    ASSERT_EQ(merged.ntotal(), next) << desc;
    merged.write(dir / "merged.faiss");
    one.write(dir / "one.faiss");
    std::unique_ptr<faiss::Index> m(faiss::read_index((dir / "merged.faiss").c_str()));
    std::unique_ptr<faiss::Index> o(faiss::read_index((dir / "one.faiss").c_str()));
    auto* lm = dynamic_cast<faiss::IndexIVF*>(m.get())->invlists;
    auto* lo = dynamic_cast<faiss::IndexIVF*>(o.get())->invlists;
    for (size_t l = 0; l < lm->nlist; ++l) {
      ASSERT_EQ(lm->list_size(l), lo->list_size(l)) << desc << " list " << l;
      std::set<std::pair<int64_t, std::string>> em, eo;
      for (size_t j = 0; j < lm->list_size(l); ++j) {
        em.emplace(lm->get_ids(l)[j], std::string(reinterpret_cast<const char*>(lm->get_codes(l)) + j * lm->code_size, lm->code_size));
        eo.emplace(lo->get_ids(l)[j], std::string(reinterpret_cast<const char*>(lo->get_codes(l)) + j * lo->code_size, lo->code_size));
      }
      EXPECT_EQ(em, eo) << desc << " list " << l;
    }
    // Trained on another sample: another quantizer, refused with the reason.
    FaissIndex other = FaissIndex::build(desc, x.data() + half * d, n - half, d, 0, 4);
    FaissIndex c = FaissIndex::build_from_trained(trained, a_rows, "shard a");
    EXPECT_NE(FaissIndex::why_not_mergeable({&c, &other}).find("trained separately"), std::string::npos) << desc;
    FaissIndex flat = FaissIndex::build("Flat", x.data(), 100, d, 0, 0);
    EXPECT_NE(FaissIndex::why_not_mergeable({&flat, &c}).find("no IVF index"), std::string::npos) << desc;
  }
}
