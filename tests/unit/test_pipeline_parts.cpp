// Unit tests: the non-tensor parts of the pipeline (k split, names, grid, sweep jobs, shards,
// records) and the demo vocabulary (learned merges accepted by the CLIP tokenizer).
#include <gtest/gtest.h>

#include <set>

#include "rdm/clip/tokenizer.hpp"
#include "rdm/app/demo.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/app/image_record.hpp"
#include "rdm/app/output.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/sweep.hpp"
#include "rdm/runtime/shard.hpp"

using namespace rdm;

TEST(PipelineParts, SplitK) {
  EXPECT_EQ(split_k(19, {1.0}), (std::vector<int64_t>{19}));
  EXPECT_EQ(split_k(10, {0.7, 0.3}), (std::vector<int64_t>{7, 3}));
  EXPECT_EQ(split_k(6, {1.0, 0.5}), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(split_k(19, {1, 1}), (std::vector<int64_t>{10, 9}));  // ties to the first
  EXPECT_EQ(split_k(2, {1, 1, 1}), (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(split_k(0, {1, 2}), (std::vector<int64_t>{0, 0}));
  for (int64_t k = 0; k < 40; ++k) {
    auto s = split_k(k, {0.2, 0.5, 0.3});
    EXPECT_EQ(s[0] + s[1] + s[2], k);
  }
  EXPECT_THROW(split_k(5, {1, 0}), Error);
}

TEST(PipelineParts, NamesAndWeights) {
  EXPECT_EQ(style_from_database_name("artbench-ukiyo_e"), "ukiyo e");
  EXPECT_EQ(style_from_database_name("stripes"), "stripes");
  EXPECT_EQ(parse_weighted("artbench-baroque:0.3"), std::make_pair(std::string("artbench-baroque"), 0.3));
  EXPECT_EQ(parse_weighted("dir/with:colon"), std::make_pair(std::string("dir/with:colon"), 1.0));
  EXPECT_EQ(parse_weighted("plain"), std::make_pair(std::string("plain"), 1.0));
  EXPECT_THROW(parse_weighted("x:-1"), Error);
  EXPECT_THROW(parse_weighted("x:0"), Error);
  EXPECT_EQ(slugify("A Lighthouse, in a storm!"), "a-lighthouse-in-a-storm");
  EXPECT_EQ(slugify("???"), "image");
  EXPECT_LE(slugify(std::string(200, 'a')).size(), 48u);
}

TEST(PipelineParts, MakeGridFollowsTorchvision) {
  std::vector<image::RgbImage> ims;
  for (int i = 0; i < 5; ++i) ims.emplace_back(4, 6, static_cast<uint8_t>(10 * (i + 1)));
  auto g = make_grid(ims, 3);
  // 3 columns, 2 rows, padding 2: (2*(4+2)+2) x (3*(6+2)+2).
  EXPECT_EQ(g.height, 14);
  EXPECT_EQ(g.width, 26);
  EXPECT_EQ(g.at(0, 0)[0], 0);     // padding
  EXPECT_EQ(g.at(2, 2)[0], 10);    // image 0 top-left at (2, 2)
  EXPECT_EQ(g.at(2, 10)[0], 20);   // image 1 at x = 1*(6+2)+2
  EXPECT_EQ(g.at(8, 10)[0], 50);   // image 4 at row 1, column 1
  EXPECT_EQ(g.at(8, 18)[0], 0);    // empty cell stays padding
  auto one = make_grid({ims[0]}, 3);  // a single image is returned as is
  EXPECT_EQ(one.height, 4);
  EXPECT_EQ(one.pixels, ims[0].pixels);
}

TEST(PipelineParts, RecordRoundTrip) {
  nlohmann::json rec = {{"prompt", "a fox"},  {"text", "a fox"}, {"mode", "text+neighbors"}, {"seed", 9},
                        {"steps", 20},        {"eta", 0.5},      {"scale", 3.0},              {"sampler", "ddim"},
                        {"width", 256},       {"height", 128},   {"k", 7},
                        {"databases", {{{"name", "a"}, {"path", "/db/a"}, {"weight", 0.5}, {"k", 7}}}},
                        {"neighbors", nlohmann::json::array()}, {"rdm_version", "0.1.0"}};
  auto q = ImageRecord::from_json(rec).request();
  EXPECT_EQ(q.prompt, "a fox");
  EXPECT_EQ(q.seed, 9u);
  EXPECT_EQ(q.n, 1);
  EXPECT_EQ(q.steps, 20);
  EXPECT_EQ(q.width, 256);
  EXPECT_EQ(q.height, 128);
  ASSERT_EQ(q.databases.size(), 1u);
  EXPECT_EQ(q.databases[0].dir, "/db/a");
  EXPECT_DOUBLE_EQ(q.databases[0].weight, 0.5);
  auto text = ImageRecord::from_json(rec).parameters_text();
  EXPECT_EQ(text.rfind("a fox\nSteps: 20, Sampler: DDIM, CFG scale: 3, Seed: 9, Size: 256x128", 0), 0u) << text;
  EXPECT_THROW(ImageRecord::from_json(nlohmann::json::object()), Error);
}

TEST(PipelineParts, SweepJobsShardsAndIds) {
  SampleRequest d;
  d.steps = 5;
  auto jobs = cartesian_jobs({"p1", "p2"}, {"a", "b:0.5+c", "none"}, {1, 2}, {3.0}, d);
  ASSERT_EQ(jobs.size(), 12u);
  EXPECT_EQ(jobs[0].request.prompt, "p1");
  EXPECT_EQ(jobs[2].request.database_specs(), (std::vector<std::string>{"b:0.5", "c"}));
  EXPECT_TRUE(jobs[4].request.databases.empty());
  EXPECT_EQ(jobs[1].request.seed, 2u);
  std::set<std::string> ids;
  for (const auto& j : jobs) ids.insert(j.id());
  EXPECT_EQ(ids.size(), jobs.size());
  EXPECT_EQ(jobs[0].id(), cartesian_jobs({"p1"}, {"a"}, {1}, {3.0}, d)[0].id());  // stable
  EXPECT_EQ(jobs[2].style_label(), "b:0.5+c");
  // Shards partition the jobs.
  std::vector<int> seen(jobs.size(), 0);
  for (int64_t i = 0; i < 5; ++i)
    for (size_t p : shard_positions(jobs.size(), i, 5)) ++seen[p];
  for (int s : seen) EXPECT_EQ(s, 1);
  EXPECT_EQ(parse_shard("3/8"), (Shard{3, 8}));
  EXPECT_THROW(parse_shard("8/8"), Error);
  EXPECT_THROW(parse_shard("-1/2"), Error);
  EXPECT_THROW(parse_shard("1"), Error);
  EXPECT_THROW(parse_shard("a/b"), Error);
  EXPECT_THROW(SweepJob::from_json({{"prompt", "x"}, {"sed", 1}}, d, "here"), Error);
  EXPECT_THROW(SweepJob::from_json({{"seed", 1}}, d, "here"), Error);
}

TEST(PipelineParts, DemoVocabularyIsAcceptedByTheTokenizer) {
  auto merges = demo::learn_bpe_merges(demo::demo_words(), 400);
  EXPECT_EQ(merges.size(), 400u);
  EXPECT_EQ(merges, demo::learn_bpe_merges(demo::demo_words(), 400));  // deterministic
  std::set<std::string> unique(merges.begin(), merges.end());
  EXPECT_EQ(unique.size(), merges.size());
  auto tok = clip::Tokenizer::from_merges(merges);
  EXPECT_EQ(tok.vocab_size(), 512 + 400 + 2);
  auto ids = tok.encode("a lighthouse in a storm");
  EXPECT_FALSE(ids.empty());
  EXPECT_LT(ids.size(), 12u);  // frequent pieces were merged
  EXPECT_EQ(tok.decode(ids), "a lighthouse in a storm ");
  // The gzip file round-trips through Tokenizer::load.
  auto p = std::filesystem::temp_directory_path() / ("rdm_unit_vocab_" + std::to_string(::getpid()) + ".txt.gz");
  demo::write_vocab_gz(p, merges);
  auto loaded = clip::Tokenizer::load(p);
  EXPECT_EQ(loaded.vocab_size(), tok.vocab_size());
  EXPECT_EQ(loaded.encode("a red boat under the stars"), tok.encode("a red boat under the stars"));
  std::filesystem::remove(p);
}

TEST(PipelineParts, DemoImagesAreDeterministicAndDistinct) {
  for (const auto& s : demo::style_names()) {
    auto a = demo::style_image(s, 3), b = demo::style_image(s, 3), c = demo::style_image(s, 4);
    EXPECT_EQ(a.pixels, b.pixels) << s;
    EXPECT_NE(a.pixels, c.pixels) << s;
    EXPECT_EQ(a.width, 64);
  }
  EXPECT_THROW(demo::style_image("nope", 0), Error);
}
