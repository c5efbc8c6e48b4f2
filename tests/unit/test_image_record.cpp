// Unit tests: the typed request and image record. Their JSON is pinned byte for byte against
// what rdm wrote before they were types (a demo PNG's chunks in tests/data/image_record, and
// sweep job ids printed by `rdm sweep --list`), so PNGs and resumed sweeps stay the same.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "rdm/app/image_record.hpp"
#include "rdm/app/request.hpp"
#include "rdm/app/sweep.hpp"
#include "rdm/runtime/error.hpp"
#include "unit/error_of.hpp"

using rdm_test::error_of;

namespace fs = std::filesystem;
using json = nlohmann::json;
using rdm::ImageRecord;
using rdm::SampleRequest;

namespace {
std::string fixture(const std::string& name) {
  const char* d = std::getenv("RDM_SOURCE_DIR");
  std::ifstream f(fs::path(d ? d : ".") / "tests" / "data" / "image_record" / name, std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST(ImageRecord, ReadsAndWritesSchema1ByteForByte) {
  const std::string text = fixture("rdm-0.1.0-demo.rdm.json");
  const ImageRecord r = ImageRecord::from_json(json::parse(text), "demo.png");
  EXPECT_EQ(r.to_json().dump(), text);
  EXPECT_EQ(r.parameters_text(), fixture("rdm-0.1.0-demo.parameters.txt"));
  EXPECT_EQ(r.neighbors.size(), 19u);
  EXPECT_EQ(r.job_id.value_or(""), "0894f5812b26");
  EXPECT_FALSE(r.seconds.has_value());
  // The sidecar form: timings and the file name are more keys, nothing else changes.
  ImageRecord side = r;
  side.seconds = std::map<std::string, double>{{"decode", 0.5}, {"encode", 0.25}};
  side.file = "x.png";
  json j = side.to_json();
  EXPECT_EQ(j["seconds"]["decode"], 0.5);
  j.erase("seconds");
  j.erase("file");
  EXPECT_EQ(j.dump(), text);
  EXPECT_EQ(ImageRecord::from_json(side.to_json(), "x.json").to_json(), side.to_json());
}

TEST(ImageRecord, NewerSchemaIsAnErrorNamingTheFile) {
  json j = json::parse(fixture("rdm-0.1.0-demo.rdm.json"));
  j["schema"] = 1;  // schema 1 written out is schema 1
  EXPECT_NO_THROW(ImageRecord::from_json(j, "'old.png'"));
  j["schema"] = ImageRecord::kSchema + 1;
  const std::string msg = error_of([&] { ImageRecord::from_json(j, "'new.png'"); });
  EXPECT_NE(msg.find("'new.png'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("schema 2"), std::string::npos) << msg;
  j["schema"] = "two";
  EXPECT_THROW(ImageRecord::from_json(j, "'bad.png'"), rdm::Error);
  EXPECT_THROW(ImageRecord::check_schema(json{{"schema", 0}}, "x"), rdm::Error);
  EXPECT_NO_THROW(ImageRecord::check_schema(json::object(), "x"));
}

TEST(ImageRecord, RequestOfARecordFollowsTheRules) {
  json j = json::parse(fixture("rdm-0.1.0-demo.rdm.json"));
  SampleRequest q = ImageRecord::from_json(j).request("r");
  EXPECT_EQ(q.prompt, "a lighthouse in a storm");
  EXPECT_EQ(q.seed, 42u);
  EXPECT_EQ(q.n, 1);
  ASSERT_EQ(q.databases.size(), 1u);
  EXPECT_EQ(q.databases[0].dir, "/tmp/demo-a/databases/checks");
  j["steps"] = 5.5;
  EXPECT_NE(error_of([&] { ImageRecord::from_json(j, "r.png"); }).find("'steps' must be an integer"),
            std::string::npos);
  j["steps"] = 0;
  EXPECT_THROW(ImageRecord::from_json(j, "r.png").request("r.png"), rdm::Error);
  j["steps"] = 20;
  j["sampler"] = "euler";
  EXPECT_THROW(ImageRecord::from_json(j, "r.png").request("r.png"), rdm::Error);
  j["sampler"] = "ddim";
  j["model"] = 3;
  EXPECT_NE(error_of([&] { ImageRecord::from_json(j, "r.png"); }).find("malformed"), std::string::npos);
}

// `rdm sweep --list` of rdm 0.1.0 printed these ids (before jobs held a SampleRequest).
TEST(SampleRequestJson, SweepJobIdsAreThoseOfEarlierSweeps) {
  SampleRequest d;
  d.steps = 20;
  auto jobs = rdm::cartesian_jobs({"a fox"}, {"artbench-ukiyo_e:0.7+stripes", "none"}, {7, 18446744073709551615u},
                                  {3.0}, d);
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(jobs[0].id(), "d29577135674");
  EXPECT_EQ(jobs[1].id(), "7a7995194f81");
  EXPECT_EQ(jobs[2].id(), "fa9306071fec");
  EXPECT_EQ(jobs[0].to_json().dump(),
            R"({"databases":["artbench-ukiyo_e:0.7","stripes"],"eta":0.0,"height":0,"k":19,"prompt":"a fox",)"
            R"("sampler":"ddim","scale":3.0,"seed":7,"steps":20,"width":0})");
  const SampleRequest defaults;
  auto image = rdm::SweepJob::from_json(
      json::parse(R"({"image_prompt": "photo.png", "spacing": "karras", "sampler": "dpmpp2m", "k": 4,)"
                  R"( "width": 256, "height": 128})"),
      defaults, "jobs.jsonl:1");
  EXPECT_EQ(image.id(), "09450fcd7e9d");
  EXPECT_EQ(image.file_name(), "photo_09450fcd7e9d.png");
  auto postfix = rdm::SweepJob::from_json(
      json::parse(R"({"prompt": "a boat", "no_retrieval": true, "style": "ukiyo e", "eta": 0.5, "database": "dots:2"})"),
      defaults, "jobs.jsonl:2");
  EXPECT_EQ(postfix.id(), "78ed28bf4592");
  EXPECT_EQ(postfix.style_label(), "postfix: ukiyo e");
  // A job is one image: n, batch_size and first_index are not job keys.
  EXPECT_NE(error_of([&] { rdm::SweepJob::from_json(json{{"prompt", "x"}, {"n", 2}}, defaults, "j:1"); })
                .find("unknown job key 'n'"),
            std::string::npos);
}

TEST(SampleRequestJson, RoundTripAndRules) {
  SampleRequest r;
  r.prompt = "a fox";
  r.databases = {rdm::DatabaseChoice::parse("a:0.5"), {"/db/b", 2.0, ""}};
  r.spacing = "karras";
  r.n = 4;
  r.batch_size = 2;
  r.first_index = 3;
  r.seed = 18446744073709551615u - 10;
  const json j = r.to_json();
  EXPECT_EQ(j["databases"], json::parse(R"(["a:0.5", "/db/b:2"])"));
  EXPECT_EQ(j["n"], 4);
  const SampleRequest back = SampleRequest::from_json(j, SampleRequest{}, "here");
  EXPECT_EQ(back.to_json(), j);
  EXPECT_EQ(back.databases[1].dir, "/db/b");
  EXPECT_DOUBLE_EQ(back.databases[1].weight, 2.0);
  // Defaults fill what is missing; the rules of request_checks.hpp apply with `where`.
  const SampleRequest only = SampleRequest::from_json(json{{"prompt", "p"}}, back, "here");
  EXPECT_EQ(only.n, 4);
  EXPECT_EQ(only.prompt, "p");
  EXPECT_NE(error_of([&] { SampleRequest::from_json(json{{"prompt", "p"}, {"scale", 1000}}, {}, "j:7"); })
                .find("j:7: guidance scale"),
            std::string::npos);
  EXPECT_NE(error_of([&] { SampleRequest::from_json(json{{"prompt", "p"}, {"database", "x:-1"}}, {}, "j:8"); })
                .find("j:8: database weight"),
            std::string::npos);
  EXPECT_THROW(SampleRequest::from_json(json{{"prompt", "p"}, {"n", 0}}, {}, "j"), rdm::Error);
  EXPECT_THROW(SampleRequest::from_json(json{{"prompt", "p"}, {"nn", 1}}, {}, "j"), rdm::Error);
  EXPECT_THROW(SampleRequest::from_json(json{{"k", 1}}, {}, "j"), rdm::Error);  // no prompt
}
