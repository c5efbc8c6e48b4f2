// The value rules of sampling requests (request_checks.hpp): seeds, scales, eta, steps, sizes,
// JSON integers, memory estimate, databases; and the sweep JSONL reader that applies them.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "unit/error_of.hpp"
#include "io_test_util.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/app/sweep.hpp"

namespace {
using nlohmann::json;
namespace fs = std::filesystem;

using rdm_test::error_of;

rdm::ModelFacts rdm768() {
  const char* src = std::getenv("RDM_SOURCE_DIR");
  fs::path root = src ? fs::path(src) : fs::path(__FILE__).parent_path().parent_path().parent_path();
  return rdm::ModelFacts::from_file(root / "models/rdm-768.yaml");
}

TEST(RequestChecks, Seeds) {
  EXPECT_EQ(rdm::parse_seed("0"), 0u);
  EXPECT_EQ(rdm::parse_seed("42"), 42u);
  EXPECT_EQ(rdm::parse_seed("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"-1", "18446744073709551616", "99999999999999999999999", "1e3", "", "+5", " 5", "0x10", "4.0"})
    EXPECT_THROW(rdm::parse_seed(bad, "--seed"), rdm::Error) << bad;
  EXPECT_NE(error_of([] { rdm::parse_seed("-1", "--seed"); }).find("--seed '-1'"), std::string::npos);
  EXPECT_NE(error_of([] { rdm::parse_seed("18446744073709551616", "--seed"); }).find("too large"), std::string::npos);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_NO_THROW(rdm::check_seed_span(max, 1, "x"));
  EXPECT_NO_THROW(rdm::check_seed_span(max - 3, 4, "x"));
  EXPECT_THROW(rdm::check_seed_span(max - 3, 5, "x"), rdm::Error);
  EXPECT_THROW(rdm::check_seed_span(max, 2, "x"), rdm::Error);
}

TEST(RequestChecks, ScaleEtaStepsK) {
  for (double ok : {0.0, 1.0, 5.0, -3.0, 100.0, -100.0}) EXPECT_NO_THROW(rdm::check_scale(ok, "s")) << ok;
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {std::nan(""), inf, -inf, 100.5, 1e300})
    EXPECT_THROW(rdm::check_scale(bad, "s"), rdm::Error) << bad;
  for (double ok : {0.0, 0.5, 1.0}) EXPECT_NO_THROW(rdm::check_eta(ok, "ddim", "e"));
  for (double bad : {-0.1, 1.01, std::nan(""), inf}) EXPECT_THROW(rdm::check_eta(bad, "ddim", "e"), rdm::Error);
  EXPECT_THROW(rdm::check_eta(0.5, "plms", "e"), rdm::Error);
  EXPECT_NO_THROW(rdm::check_steps(999, 999, "t"));
  EXPECT_THROW(rdm::check_steps(1000, 999, "t"), rdm::Error);
  EXPECT_THROW(rdm::check_steps(0, 999, "t"), rdm::Error);
  EXPECT_THROW(rdm::check_k(-1, "k"), rdm::Error);
  EXPECT_THROW(rdm::check_k(1001, "k"), rdm::Error);
  EXPECT_THROW(rdm::check_count(0, "n"), rdm::Error);
}

TEST(RequestChecks, JsonIntegersMustBeIntegers) {
  json j = json::parse(R"({"steps": 5.7, "k": "5", "w": 64, "big": 1e30, "neg": -3, "huge": 18446744073709551615})");
  EXPECT_NE(error_of([&] { rdm::json_integer(j, "steps", 50, "jobs.jsonl:2"); }).find("jobs.jsonl:2: 'steps' must be an integer"),
            std::string::npos);
  EXPECT_THROW(rdm::json_integer(j, "k", 19, "w"), rdm::Error);
  EXPECT_THROW(rdm::json_integer(j, "big", 0, "w"), rdm::Error);
  EXPECT_THROW(rdm::json_integer(j, "huge", 0, "w"), rdm::Error);
  EXPECT_EQ(rdm::json_integer(j, "w", 0, "w"), 64);
  EXPECT_EQ(rdm::json_integer(j, "neg", 0, "w"), -3);
  EXPECT_EQ(rdm::json_integer(j, "absent", 7, "w"), 7);
  // Seeds: non-negative integers below 2^64; 2^64 and 1e30 parse as floats and are refused.
  EXPECT_EQ(rdm::json_seed(json::parse("18446744073709551615"), "w"), std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"18446744073709551616", "1e30", "-1", "4.5", "\"7\"", "null"})
    EXPECT_THROW(rdm::json_seed(json::parse(bad), "w"), rdm::Error) << bad;
}

TEST(RequestChecks, ModelFactsAndSizes) {
  auto f = rdm768();
  EXPECT_EQ(f.size_multiple, 128);
  EXPECT_EQ(f.native_width, 768);
  EXPECT_EQ(f.max_steps, 999);
  EXPECT_EQ(f.context_dim, 768);
  EXPECT_NO_THROW(rdm::check_size(0, 0, f, "s"));
  EXPECT_NO_THROW(rdm::check_size(512, 1024, f, "s"));
  EXPECT_THROW(rdm::check_size(100, 768, f, "s"), rdm::Error);
  EXPECT_THROW(rdm::check_size(768, -128, f, "s"), rdm::Error);
  EXPECT_THROW(rdm::check_size(16384 + 128, 768, f, "s"), rdm::Error);
}

TEST(RequestChecks, MemoryEstimateRefusesHugeSizes) {
  auto f = rdm768();
  auto e768 = rdm::estimate_activation_memory(f.config, 768, 768, 1, 4);
  auto e1536 = rdm::estimate_activation_memory(f.config, 1536, 1536, 1, 4);
  EXPECT_GT(e768.peak(), 0.2e9);  // at least the decoder's full-resolution maps
  EXPECT_LT(e768.peak(), 8e9);
  EXPECT_GT(e1536.peak(), 3.9 * e768.peak());  // grows at least with the pixels
  rdm::MachineMemory machine{16.0 * (1 << 30), 24.0 * (1 << 30)};
  EXPECT_NO_THROW(rdm::check_memory(768, 768, 1, f, "cpu", "fp32", machine, "s"));
  std::string msg = error_of([&] { rdm::check_memory(16384, 16384, 1, f, "cpu", "fp32", machine, "rdm sample"); });
  EXPECT_NE(msg.find("GiB of working memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("16.0 GiB available"), std::string::npos) << msg;
  // Unknown machine memory: no refusal.
  EXPECT_NO_THROW(rdm::check_memory(16384, 16384, 1, f, "cpu", "fp32", rdm::MachineMemory{}, "s"));
  auto real = rdm::machine_memory();
  EXPECT_GT(real.total, 0);
  EXPECT_GT(real.available, 0);
}

TEST(RequestChecks, RequestRules) {
  auto f = rdm768();
  rdm::SampleRequest r;
  r.prompt = "a fox";
  EXPECT_NO_THROW(rdm::check_request(r, f, "req"));
  r.image_prompt = fs::path("photo.png");
  EXPECT_NE(error_of([&] { rdm::check_request(r, f, "req"); }).find("cannot be combined"), std::string::npos);
  r.image_prompt.reset();
  r.seed = std::numeric_limits<uint64_t>::max();
  r.n = 2;
  EXPECT_THROW(rdm::check_request(r, f, "req"), rdm::Error);
  r.seed = 1;
  r.steps = 1000;
  EXPECT_THROW(rdm::check_request(r, f, "req"), rdm::Error);
}

TEST(RequestChecks, DatabaseOfAnotherWidthIsRefusedBeforeLoading) {
  fs::path dir = iotest::tmpdir() / "db_dim7";
  fs::create_directories(dir);
  rdm::retrieval::Manifest m;
  m.name = "seven";
  m.dim = 7;
  m.count = 3;
  m.clip_identity = "ViT-L/14";
  m.write(dir);
  rdm::SampleRequest r;
  r.prompt = "a fox";
  r.databases.push_back({dir, 1.0});
  std::string msg = error_of([&] { rdm::check_request(r, rdm768(), "req"); });
  EXPECT_NE(msg.find("'seven'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7-d embeddings"), std::string::npos) << msg;
  EXPECT_NE(msg.find("768-d"), std::string::npos) << msg;
}

fs::path jobs_file(const std::string& name, const std::string& text) { return iotest::write(name, text); }

TEST(RequestChecks, SweepJsonlValuesNameTheLine) {
  rdm::SampleRequest d;
  auto err = [&](const std::string& line2) {
    return error_of([&] { rdm::read_jobs_jsonl(jobs_file("jobs.jsonl", "{\"prompt\": \"ok\"}\n" + line2 + "\n"), d); });
  };
  EXPECT_NE(err(R"({"prompt": "a", "steps": 5.7})").find("jobs.jsonl:2: 'steps' must be an integer"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "seeds": []})").find("jobs.jsonl:2"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "seed": 1e30})").find("jobs.jsonl:2: seed"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "seed": 18446744073709551616})").find("jobs.jsonl:2"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "seeds": [1, -2]})").find("jobs.jsonl:2"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "scales": []})").find("jobs.jsonl:2"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "scale": 1000})").find("jobs.jsonl:2: guidance scale"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "eta": 2})").find("jobs.jsonl:2: eta"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "k": 2.5})").find("jobs.jsonl:2"), std::string::npos);
  EXPECT_NE(err(R"({"prompt": "a", "image_prompt": "x.png"})").find("not both"), std::string::npos);
  EXPECT_EQ(err(R"({"prompt": "a", "seeds": [18446744073709551615], "steps": 7})"), "");
  // A BOM before the first job is not part of the JSON.
  auto jobs = rdm::read_jobs_jsonl(jobs_file("bom.jsonl", "\xEF\xBB\xBF{\"prompt\": \"a fox\", \"seed\": 3}\n"), d);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].request.seed, 3u);
  EXPECT_NE(jobs[0].source.find("bom.jsonl:1"), std::string::npos) << jobs[0].source;
}

}  // namespace
